//! (user, positive, negatives) sampling for pairwise and sampled-softmax losses.
//!
//! A positive is a uniformly drawn stored interaction (so users weigh by their activity, as in
//! BPR); each negative is drawn from the configured distribution (see [`super::negatives`])
//! and checked not to be a positive of that user (binary search in the user's sorted row).
//! Batches are filled in parallel, in chunks that each own a generator derived from
//! (seed, batch, chunk): the same seed gives the same triples whatever the thread count.

#![allow(clippy::indexing_slicing, reason = "sampling kernels: entries and rows come from the training CSR the sampler is built on (TripleSampler::new), batch buffers are sized by fill for width() negatives a sample")]
#![allow(clippy::arithmetic_side_effects, reason = "sampling kernels: n_negatives and the candidates are at most MAX_CANDIDATES (TripleSampler::new), batch sizes are at most the training loop's batch_size (train::fit_loop), rows and entries come from the training CSR")]

use rayon::prelude::*;

use super::negatives::{Distribution, SamplerConfig};
use super::rng::{batch_rng, below, Rng};
use crate::data::{Interactions, SideInfo};
use crate::error::{Error, Result};
use crate::train::BatchSource;

/// Samples per generator; small enough to balance threads, large enough to amortise seeding.
const CHUNK: usize = 1024;

/// One batch: `users[b]`, `pos[b]`, and the negatives of sample b,
/// `neg[b * w .. (b + 1) * w]` with `w = n_neg * n_cand`: `n_neg` slots of `n_cand`
/// candidates each (one candidate unless the model picks among them: WARP, best of n).
/// Stored as i64 so libtorch can index with it in place (see `crate::tensors::view_i64`).
#[derive(Debug, Clone, Default)]
pub struct TripleBatch {
    pub users: Vec<i64>,
    pub pos: Vec<i64>,
    pub neg: Vec<i64>,
    pub n_neg: usize,
    pub n_cand: usize,
    /// On several processes, the negatives of the global batch's first sample (which serve
    /// every sample with shared negatives); empty in one process.
    pub first_neg: Vec<i64>,
}

impl TripleBatch {
    pub fn len(&self) -> usize {
        self.users.len()
    }
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
    /// Negatives per sample (`n_neg * n_cand`, at least one candidate per slot).
    pub fn width(&self) -> usize {
        self.n_neg * self.n_cand.max(1)
    }
    /// The negatives shared by every sample (models with shared negatives): the first
    /// sample's of the whole batch.
    pub fn shared_neg(&self) -> &[i64] {
        if self.first_neg.is_empty() {
            &self.neg[..self.width().min(self.neg.len())]
        } else {
            &self.first_neg
        }
    }
}

impl crate::train::Shard for TripleBatch {
    fn samples(&self) -> usize {
        self.len()
    }
    fn keep(&mut self, range: std::ops::Range<usize>) {
        let w = self.width();
        // The batch was just filled: its first sample's negatives are the global batch's.
        self.first_neg = self.neg[..w.min(self.neg.len())].to_vec();
        self.users = self.users[range.clone()].to_vec();
        self.pos = self.pos[range.clone()].to_vec();
        self.neg = self.neg[(range.start * w).min(self.neg.len())..(range.end * w).min(self.neg.len())].to_vec();
    }
}

pub struct TripleSampler<'a> {
    pub(super) data: &'a Interactions,
    /// (user, item) of each stored interaction, so a positive is one draw and one cache line.
    pub(super) entries: Vec<[u32; 2]>,
    n_neg: usize,
    /// Candidates the batch carries per negative slot.
    n_cand: usize,
    pub(super) dist: Distribution,
    /// `"cosine"`: unit-norm item feature rows; each slot keeps, of `n` drawn candidates, the
    /// one most similar to the positive.
    pub(super) cosine: Option<Cosine>,
}

pub(super) struct Cosine {
    rows: Vec<f32>,
    dim: usize,
    n: usize,
}

impl Cosine {
    #[inline]
    fn similarity(&self, a: usize, b: usize) -> f32 {
        let (x, y) = (&self.rows[a * self.dim..(a + 1) * self.dim], &self.rows[b * self.dim..(b + 1) * self.dim]);
        x.iter().zip(y).map(|(p, q)| p * q).sum()
    }
}

impl<'a> TripleSampler<'a> {
    /// Uniform negatives, one candidate per slot.
    pub fn new(data: &'a Interactions, n_negatives: usize) -> Result<Self> {
        Self::with_config(data, n_negatives, &SamplerConfig::default(), &SideInfo::default())
    }

    /// Negatives as `config` says; `side` supplies item categories (`"category"`) or item
    /// features (`"cosine"`), aligned to `data`'s item indices.
    pub fn with_config(data: &'a Interactions, n_negatives: usize, config: &SamplerConfig, side: &SideInfo) -> Result<Self> {
        config.validate()?;
        if data.nnz() == 0 {
            return Err(Error::invalid("cannot sample from empty interactions"));
        }
        if n_negatives == 0 {
            return Err(Error::invalid("n_negatives must be at least 1"));
        }
        let n_items = data.n_items();
        if let Some(u) = (0..data.n_users()).find(|&u| data.user_items(u).len() >= n_items) {
            return Err(Error::invalid(format!(
                "user {} has interacted with all {n_items} items, so no negative item exists for it",
                data.ids().users.display(u)
            )));
        }
        if n_negatives > super::negatives::MAX_CANDIDATES {
            return Err(Error::invalid(format!("n_negatives must be at most {}", super::negatives::MAX_CANDIDATES)));
        }
        let n = n_items as u64;
        let dist = match config.kind.as_str() {
            "popularity" => {
                let weights: Vec<f64> = data.item_counts().iter().map(|&c| (c as f64).powf(config.exponent)).collect();
                Distribution::Popularity(super::negatives::AliasTable::new(&weights)?)
            }
            "category" => {
                let cats = side.categories.as_ref().ok_or_else(|| {
                    Error::invalid("sampler='category' needs item categories: pass categories= to fit")
                })?;
                Distribution::categories(cats, n_items, config.tries)?
            }
            _ => Distribution::Uniform { n_items: n },
        };
        let cosine = if config.needs_item_features() {
            let f = side.item_features.as_ref().and_then(|t| t.continuous.as_ref()).ok_or_else(|| {
                Error::invalid("sampler='cosine' needs item features: pass item_features= to fit")
            })?;
            if f.rows != n_items {
                return Err(Error::invalid(format!("item_features has {} rows for {n_items} items", f.rows)));
            }
            Some(Cosine { rows: f.unit_rows(), dim: f.cols, n: config.n_candidates })
        } else {
            None
        };
        Ok(TripleSampler {
            data,
            entries: data.by_user().row_of_entries().into_par_iter().zip(&data.by_user().indices).map(|(u, &i)| [u, i]).collect(),
            n_neg: n_negatives,
            n_cand: config.candidates(),
            dist,
            cosine,
        })
    }

    pub fn n_negatives(&self) -> usize {
        self.n_neg
    }

    /// Candidates per negative slot (see [`TripleBatch`]).
    pub fn n_candidates(&self) -> usize {
        self.n_cand
    }

    /// Number of positives in one epoch (one pass over the interactions, in expectation).
    pub fn epoch_len(&self) -> usize {
        self.entries.len()
    }

    /// Fill `batch` with `size` triples: batch `batch_index` of `seed`.
    pub fn fill(&self, batch: &mut TripleBatch, size: usize, seed: u64, batch_index: u64) {
        let width = self.n_neg * self.n_cand;
        batch.n_neg = self.n_neg;
        batch.n_cand = self.n_cand;
        batch.users.resize(size, 0);
        batch.pos.resize(size, 0);
        batch.neg.resize(size * width, 0);
        batch
            .users
            .par_chunks_mut(CHUNK)
            .zip(batch.pos.par_chunks_mut(CHUNK))
            .zip(batch.neg.par_chunks_mut(CHUNK * width))
            .enumerate()
            .for_each(|(chunk, ((us, ps), ns))| {
                let mut rng = self.chunk_rng(seed, batch_index, chunk);
                for b in 0..us.len() {
                    let (u, i) = self.draw(&mut rng, &mut ns[b * width..(b + 1) * width]);
                    us[b] = u as i64;
                    ps[b] = i as i64;
                }
            });
    }

    /// Number of chunks (generators) a batch of `size` triples is drawn in; chunk c holds
    /// triples `c * CHUNK ..` of the batch. Kernels that sample inside their own parallel
    /// loop (without a batch buffer) use these with [`chunk_rng`] and [`draw`] to draw the
    /// very triples [`fill`] would.
    ///
    /// [`chunk_rng`]: Self::chunk_rng
    /// [`draw`]: Self::draw
    /// [`fill`]: Self::fill
    pub fn chunks(size: usize) -> impl IndexedParallelIterator<Item = (usize, usize)> {
        (0..size.div_ceil(CHUNK)).into_par_iter().map(move |c| (c, CHUNK.min(size - c * CHUNK)))
    }

    pub fn chunk_rng(&self, seed: u64, batch_index: u64, chunk: usize) -> Rng {
        batch_rng(seed, batch_index, chunk as u64)
    }

    /// One positive (user, item) and `negs.len()` negatives (or candidates) of that user.
    #[inline(always)]
    pub fn draw(&self, rng: &mut Rng, negs: &mut [i64]) -> (usize, usize) {
        let csr = self.data.by_user();
        let [u, pos] = self.entries[below(rng, self.entries.len() as u64) as usize].map(|x| x as usize);
        let row = csr.row(u);
        match &self.cosine {
            None => negs.iter_mut().for_each(|slot| *slot = self.negative(rng, row, pos) as i64),
            Some(c) => {
                for slot in negs.iter_mut() {
                    let mut best = (f32::NEG_INFINITY, 0u32);
                    for _ in 0..c.n {
                        let j = self.negative(rng, row, pos);
                        let s = c.similarity(pos, j as usize);
                        if s > best.0 {
                            best = (s, j);
                        }
                    }
                    *slot = best.1 as i64;
                }
            }
        }
        (u, pos)
    }

    /// One positive: (user, item, the user's sorted items), for kernels that draw their
    /// negatives one at a time (WARP stops at the first violator).
    #[inline(always)]
    pub fn draw_positive(&self, rng: &mut Rng) -> (usize, usize, &[u32]) {
        let csr = self.data.by_user();
        let [u, pos] = self.entries[below(rng, self.entries.len() as u64) as usize].map(|x| x as usize);
        (u, pos, csr.row(u))
    }

    /// One negative candidate for the positive `pos` of the user whose items are `row`.
    #[inline(always)]
    pub fn draw_negative(&self, rng: &mut Rng, row: &[u32], pos: usize) -> u32 {
        self.negative(rng, row, pos)
    }

    /// One item that is not in `row` (the user's sorted positives).
    #[inline(always)]
    fn negative(&self, rng: &mut Rng, row: &[u32], pos: usize) -> u32 {
        self.negative_after(rng, row, pos, 0)
    }

    /// [`negative`](Self::negative) once `attempt` draws were rejected.
    #[inline(always)]
    pub(super) fn negative_after(&self, rng: &mut Rng, row: &[u32], pos: usize, mut attempt: usize) -> u32 {
        loop {
            let j = self.negative_draw(rng, pos, attempt);
            if row.binary_search(&j).is_err() {
                return j;
            }
            attempt += 1;
        }
    }

    /// Draw number `attempt` for a negative of positive `pos`, before rejection.
    #[inline(always)]
    pub(super) fn negative_draw(&self, rng: &mut Rng, pos: usize, attempt: usize) -> u32 {
        if self.dist.fallback(attempt) {
            below(rng, self.data.n_items() as u64) as u32
        } else {
            self.dist.draw(rng, pos, attempt)
        }
    }
}

impl BatchSource for TripleSampler<'_> {
    type Batch = TripleBatch;

    fn epoch_len(&self) -> usize {
        self.epoch_len()
    }

    fn fill(&self, batch: &mut TripleBatch, size: usize, seed: u64, batch_index: u64) {
        TripleSampler::fill(self, batch, size, seed, batch_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Columns, Duplicates};

    fn data() -> Interactions {
        let users = [0, 0, 0, 1, 1, 2, 3, 3, 3, 3];
        let items = [0, 1, 2, 2, 3, 4, 0, 1, 3, 4];
        Interactions::from_indices(&users, &items, None, None, Some(6), Duplicates::Sum, Columns::default())
            .unwrap()
    }

    #[test]
    fn triples_are_valid_and_seeded() {
        let d = data();
        let s = TripleSampler::new(&d, 3).unwrap();
        let mut a = TripleBatch::default();
        s.fill(&mut a, 5000, 42, 0);
        assert_eq!((a.len(), a.neg.len()), (5000, 15000));
        for b in 0..a.len() {
            let row = d.user_items(a.users[b] as usize);
            assert!(row.contains(&(a.pos[b] as u32)));
            for &j in &a.neg[b * 3..b * 3 + 3] {
                assert!(!row.contains(&(j as u32)), "negative {j} is a positive of user {}", a.users[b]);
            }
        }
        let mut b = TripleBatch::default();
        s.fill(&mut b, 5000, 42, 0);
        assert_eq!((&a.users, &a.neg), (&b.users, &b.neg));
        s.fill(&mut b, 5000, 42, 1);
        assert_ne!(a.neg, b.neg);
    }

    #[test]
    fn same_triples_on_one_thread() {
        let d = data();
        let s = TripleSampler::new(&d, 1).unwrap();
        let mut a = TripleBatch::default();
        s.fill(&mut a, 3000, 9, 5);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let mut b = TripleBatch::default();
        pool.install(|| s.fill(&mut b, 3000, 9, 5));
        assert_eq!(a.neg, b.neg);
    }

    #[test]
    fn positives_follow_interaction_counts() {
        let d = data();
        let s = TripleSampler::new(&d, 1).unwrap();
        let mut a = TripleBatch::default();
        s.fill(&mut a, 100_000, 1, 0);
        // User 3 has 4 of the 10 interactions.
        let share = a.users.iter().filter(|&&u| u == 3).count() as f64 / 100_000.0;
        assert!((share - 0.4).abs() < 0.01, "{share}");
    }

    #[test]
    fn user_with_every_item_is_refused() {
        let d = Interactions::from_indices(&[0, 0], &[0, 1], None, None, None, Duplicates::Sum, Columns::default())
            .unwrap();
        let e = TripleSampler::new(&d, 1).err().unwrap().to_string();
        assert!(e.contains("user 0 has interacted with all 2 items"), "{e}");
    }

    fn side_with(categories: Option<Vec<i64>>, features: Option<Vec<f32>>) -> SideInfo {
        use crate::data::{DenseMatrix, FeatureTable};
        use std::sync::Arc;
        SideInfo {
            categories: categories.map(Arc::new),
            item_features: features.map(|f| Arc::new(FeatureTable::dense(DenseMatrix::new(6, 2, f, vec![]).unwrap()))),
            ..Default::default()
        }
    }

    #[test]
    fn popularity_draws_popular_items_more() {
        let d = data();
        let cfg = SamplerConfig { kind: "popularity".into(), exponent: 1.0, ..Default::default() };
        let s = TripleSampler::with_config(&d, 1, &cfg, &SideInfo::default()).unwrap();
        let mut b = TripleBatch::default();
        s.fill(&mut b, 50_000, 3, 0);
        let count = |i: i64| b.neg.iter().filter(|&&j| j == i).count();
        // Item 5 has no interaction: weight 0, never drawn; item 4 (2 interactions) is drawn
        // more often than item 2 would be for users who may take both.
        assert_eq!(count(5), 0);
        for bb in 0..b.len() {
            assert!(!d.user_items(b.users[bb] as usize).contains(&(b.neg[bb] as u32)));
        }
    }

    #[test]
    fn category_negatives_share_the_positives_category() {
        let d = data();
        // Items 0, 1, 2 in category 7; 3, 4, 5 in category 9.
        let side = side_with(Some(vec![7, 7, 7, 9, 9, 9]), None);
        let cfg = SamplerConfig { kind: "category".into(), tries: 1000, ..Default::default() };
        let s = TripleSampler::with_config(&d, 1, &cfg, &side).unwrap();
        let mut b = TripleBatch::default();
        s.fill(&mut b, 20_000, 5, 0);
        let cat = |i: i64| if i < 3 { 7 } else { 9 };
        // User 2 (item 4) can take 3 or 5 from its category; users 0 and 1 (items 0-2, 2-3)
        // have same-category negatives only some of the time, then fall back to uniform.
        let same = (0..b.len()).filter(|&k| b.users[k] == 2).all(|k| cat(b.neg[k]) == cat(b.pos[k]));
        assert!(same);
        let e = TripleSampler::with_config(&d, 1, &cfg, &SideInfo::default()).err().unwrap().to_string();
        assert!(e.contains("needs item categories"), "{e}");
    }

    #[test]
    fn cosine_keeps_the_candidate_nearest_the_positive() {
        let d = data();
        // Item 3 points the same way as item 4; the others are orthogonal to it.
        let f = vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 2.0, 1.0, 0.1];
        let side = side_with(None, Some(f));
        let cfg = SamplerConfig { kind: "cosine".into(), n_candidates: 50, ..Default::default() };
        let s = TripleSampler::with_config(&d, 1, &cfg, &side).unwrap();
        let mut b = TripleBatch::default();
        s.fill(&mut b, 2000, 1, 0);
        // User 2's only positive is item 4: among 50 candidates item 3 is almost surely drawn.
        let picks: Vec<i64> = (0..b.len()).filter(|&k| b.users[k] == 2).map(|k| b.neg[k]).collect();
        assert!(!picks.is_empty() && picks.iter().all(|&j| j == 3), "{picks:?}");
    }

    #[test]
    fn warp_batches_carry_candidates() {
        let d = data();
        let cfg = SamplerConfig { kind: "warp".into(), max_sampled: 4, ..Default::default() };
        let s = TripleSampler::with_config(&d, 1, &cfg, &SideInfo::default()).unwrap();
        let mut b = TripleBatch::default();
        s.fill(&mut b, 100, 1, 0);
        assert_eq!((b.n_neg, b.n_cand, b.neg.len()), (1, 4, 400));
    }
}
