//! Which (user, item) pairs are interactions, in a blocked Bloom filter (Putze et al. 2007):
//! "no" is certain, "maybe" is checked in the user's row.
//!
//! Rejecting a negative that is a positive of the user reads the user's row offsets and then
//! the row itself: two dependent cache misses for a test that almost always passes (a
//! uniform negative hits one of the user's items about |row| / n_items of the time). The
//! filter answers from one cache line, at about 1.5 bytes per interaction (a few MiB, mostly
//! in the last-level cache), and only its rare "maybe" reads the row.

#![allow(clippy::indexing_slicing, reason = "the Bloom filter: block indices are masked by the power-of-two block count (locate), bit indices are below 512 (bits)")]
#![allow(clippy::arithmetic_side_effects, reason = "the Bloom filter: the block count is a power of two of at least 1 (its size checked by limits::mul in PairFilter::new), bit shifts and indices below 64 and 512")]

use super::rng::mix64;
use crate::data::Interactions;
use crate::error::Result;

/// Filter bits per stored interaction (before rounding the block count up to a power of two).
const BITS_PER_PAIR: usize = 12;
/// Bits set per pair, all in one 512-bit block (one cache line).
const BITS_SET: u32 = 3;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([u64; 8]);

pub struct PairFilter {
    blocks: Vec<Block>,
    mask: usize,
}

impl PairFilter {
    /// The filter of every stored (user, item) pair of `data`.
    pub fn new(data: &Interactions) -> Result<Self> {
        let total_bits = crate::limits::mul("the pair filter", data.nnz(), BITS_PER_PAIR)?;
        let n_blocks = total_bits.div_ceil(512).max(1).next_power_of_two();
        let blocks = crate::limits::try_filled("the pair filter", n_blocks, Block([0; 8]))?;
        let mut filter = PairFilter { blocks, mask: n_blocks - 1 };
        let csr = data.by_user();
        for u in 0..csr.n_rows() {
            for &i in csr.row(u) {
                let (b, h) = filter.locate(u, i);
                for bit in bits(h) {
                    filter.blocks[b].0[bit >> 6] |= 1 << (bit & 63);
                }
            }
        }
        Ok(filter)
    }

    #[inline(always)]
    fn locate(&self, user: usize, item: u32) -> (usize, u64) {
        let h = mix64(((user as u64) << 32) | item as u64);
        (h as usize & self.mask, h)
    }

    /// False only if (user, item) is not a stored pair.
    #[inline(always)]
    pub fn may_contain(&self, user: usize, item: u32) -> bool {
        let (b, h) = self.locate(user, item);
        let block = &self.blocks[b].0;
        bits(h).all(|bit| block[bit >> 6] & (1 << (bit & 63)) != 0)
    }

    /// Requests the line that [`may_contain`](Self::may_contain) reads for (user, item).
    #[inline(always)]
    pub fn prefetch(&self, user: usize, item: u32) {
        let (b, _) = self.locate(user, item);
        super::ahead::prefetch(self.blocks.as_ptr().wrapping_add(b), 64);
    }
}

/// The bits of a pair within its block, from the hash's high half (the low half chose the block).
#[inline(always)]
fn bits(h: u64) -> impl Iterator<Item = usize> {
    (0..BITS_SET).map(move |k| (h >> (32 + 9 * k)) as usize & 511)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{synthetic, SyntheticConfig};

    #[test]
    fn stored_pairs_are_always_maybe_and_others_mostly_no() {
        let data = synthetic(&SyntheticConfig { n_users: 300, n_items: 400, ..Default::default() }).unwrap();
        let filter = PairFilter::new(&data).unwrap();
        let (mut stored, mut false_maybe, mut absent) = (0usize, 0usize, 0usize);
        for u in 0..data.n_users() {
            let row = data.user_items(u);
            for i in 0..data.n_items() as u32 {
                if row.contains(&i) {
                    assert!(filter.may_contain(u, i), "stored pair ({u}, {i}) answered no");
                    stored += 1;
                } else {
                    absent += 1;
                    false_maybe += filter.may_contain(u, i) as usize;
                }
            }
        }
        assert!(stored > 1000);
        // About 12 bits a pair with 3 set: under 2% false "maybe" (more would only slow down).
        assert!((false_maybe as f64) < 0.02 * absent as f64, "{false_maybe} of {absent}");
    }
}
