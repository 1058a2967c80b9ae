//! Triples drawn ahead of their use, with the memory each one touches requested early.
//!
//! Drawing a triple is a chain of dependent random reads: the interaction's entry (user and
//! item), then, to reject a negative that is a positive of the user, the user's row offsets and
//! the user's sorted items. Each is a cache miss on data sets larger than the cache, and a
//! kernel that draws a triple and then uses it waits for every one in turn (BPR's native kernel
//! spent most of its time there). Here sample `k + AHEAD_ENTRY` is drawn while sample `k` is
//! trained, and each later read is issued a few samples before it is needed (a software
//! pipeline), so the misses of many samples overlap; the rejection test asks a Bloom filter of
//! the training pairs first (one line, see [`super::pair_filter`]) and reads the user's items
//! only on its rare "maybe".
//!
//! The draws are the very ones [`TripleSampler::fill`] makes, in the same order. The catch is the
//! rejection: it is known only after the user is read, and a rejected draw takes more numbers
//! from the generator, moving every later draw. So a negative is drawn assuming it is accepted,
//! with the generator's state kept; when it turns out rejected (about |row| / n_items of the
//! samples), the generator goes back to that state, the negative is redrawn as `fill` would,
//! and the samples already drawn after it are drawn again.

#![allow(clippy::indexing_slicing, reason = "the draw-ahead pipeline: ring slots are taken modulo RING and entries are drawn below the entries' length")]
#![allow(clippy::arithmetic_side_effects, reason = "the read-ahead ring: positions are below the batch's length and taken modulo RING")]

use super::negatives::Distribution;
use super::pair_filter::PairFilter;
use super::rng::{below, Rng};
use super::triples::TripleSampler;

/// Samples between drawing a triple (and requesting its interaction entry) and training it.
const AHEAD_ENTRY: usize = 12;
/// ... and reading its entry (then requesting the user's factor rows and the filter's line).
const AHEAD_USER: usize = 6;
/// Slots in flight: a power of two above AHEAD_ENTRY.
const RING: usize = 16;

/// Requests `bytes` from `p` into cache. A hint: it never faults, so `p` may be anything.
#[inline(always)]
pub fn prefetch<T>(p: *const T, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = p as *const i8;
        // SAFETY: prefetching is a hint; it never faults, even out of bounds.
        (0..bytes.max(1)).step_by(64).for_each(|off| unsafe { _mm_prefetch(p.wrapping_add(off), _MM_HINT_T0) });
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes);
}

/// The rows a kernel reads for a triple, requested into cache when the triple's user or items
/// become known.
pub trait RowPrefetch {
    fn user(&self, u: usize);
    fn item(&self, i: usize);
}

/// A sample on its way through the pipeline.
#[derive(Clone)]
struct Slot {
    /// The interaction drawn (index into the entries).
    entry: usize,
    /// The negative drawn assuming it is accepted, and the generator just after it.
    neg: u32,
    after: Rng,
    user: usize,
    pos: usize,
}

impl TripleSampler<'_> {
    /// The filter of this sampler's (user, item) pairs, for [`draw_ahead`](Self::draw_ahead).
    pub fn pair_filter(&self) -> crate::error::Result<PairFilter> {
        PairFilter::new(self.data)
    }

    /// Whether [`draw_ahead`](Self::draw_ahead) can run: one negative per sample, drawn from a
    /// distribution that does not depend on the positive (uniform or popularity), so it can be
    /// drawn before the positive is read.
    pub fn draws_ahead(&self) -> bool {
        self.n_negatives() == 1
            && self.n_candidates() == 1
            && self.cosine.is_none()
            && matches!(self.dist, Distribution::Uniform { .. } | Distribution::Popularity(_))
    }

    /// Calls `train(user, positive, negative)` for `len` triples drawn from `rng`: the triples
    /// [`fill`](Self::fill) draws from the same generator, in the same order (see the module's
    /// comment), with their memory and `rows` requested ahead. `filter` holds this sampler's
    /// pairs. Only where [`draws_ahead`](Self::draws_ahead) holds.
    #[inline(always)]
    pub fn draw_ahead(&self, filter: &PairFilter, rng: &mut Rng, len: usize, rows: &impl RowPrefetch, mut train: impl FnMut(usize, usize, usize)) {
        debug_assert!(self.draws_ahead());
        let csr = self.data.by_user();
        let entries = &self.entries[..];
        // Stage 1: draw the entry and the negative; request the entry and the negative's row.
        let draw = |rng: &mut Rng| {
            let entry = below(rng, entries.len() as u64) as usize;
            let neg = self.negative_draw(rng, 0, 0);
            prefetch(entries.as_ptr().wrapping_add(entry), 8);
            rows.item(neg as usize);
            Slot { entry, neg, after: rng.clone(), user: 0, pos: 0 }
        };
        // Stage 2: read the entry; request the user's and the positive's rows and the filter's
        // line for (user, negative).
        let read_entry = |s: &mut Slot| {
            [s.user, s.pos] = entries[s.entry].map(|x| x as usize);
            rows.user(s.user);
            rows.item(s.pos);
            filter.prefetch(s.user, s.neg);
        };
        let empty = Slot { entry: 0, neg: 0, after: rng.clone(), user: 0, pos: 0 };
        let mut ring = vec![empty; RING];
        // Draws samples `from..` as far ahead as the pipeline holds them when sample `next` is
        // the next to train, each through the stages it would have passed by then.
        let refill = |ring: &mut [Slot], rng: &mut Rng, next: usize, from: usize| {
            for m in from..len.min(next + AHEAD_ENTRY + 1) {
                let mut s = draw(rng);
                if m <= next + AHEAD_USER {
                    read_entry(&mut s);
                }
                ring[m % RING] = s;
            }
        };
        refill(&mut ring, rng, 0, 0);
        for k in 0..len {
            let s = &ring[k % RING];
            // The filter's "no" is certain; its "maybe" (a positive, or ~1% of the others) is
            // settled in the user's row.
            if filter.may_contain(s.user, s.neg) {
                let row = csr.row(s.user);
                if row.binary_search(&s.neg).is_ok() {
                    // Rejected: redraw as `fill` would, then redraw the samples drawn after it.
                    *rng = s.after.clone();
                    let (user, pos) = (s.user, s.pos);
                    let neg = self.negative_after(rng, row, pos, 1);
                    train(user, pos, neg as usize);
                    refill(&mut ring, rng, k + 1, k + 1);
                    continue;
                }
            }
            train(s.user, s.pos, s.neg as usize);
            if k + AHEAD_ENTRY + 1 < len {
                ring[(k + AHEAD_ENTRY + 1) % RING] = draw(rng);
            }
            if k + AHEAD_USER + 1 < len {
                read_entry(&mut ring[(k + AHEAD_USER + 1) % RING]);
            }
        }
    }
}
