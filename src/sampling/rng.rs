//! Seeded random streams. Every parallel piece of work (a chunk of a batch, a user) gets its
//! own generator derived from (seed, stream, index), so results do not depend on how rayon
//! schedules the work or on the number of threads.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

pub type Rng = Xoshiro256PlusPlus;

/// SplitMix64 finaliser: a bijective mix of 64 bits.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform integer in 0..n (n > 0) by Lemire's multiply-shift: one multiplication, no
/// division or rejection loop. Its bias is at most n / 2^64, far below anything measurable.
#[inline(always)]
#[allow(clippy::arithmetic_side_effects, reason = "two u64s: their product fits in u128")]
pub fn below(rng: &mut Rng, n: u64) -> u64 {
    use rand::RngCore;
    ((rng.next_u64() as u128 * n as u128) >> 64) as u64
}

/// The generator of piece `index` of stream `stream` under `seed`.
pub fn stream_rng(seed: u64, stream: u64, index: u64) -> Rng {
    let s = mix64(mix64(mix64(seed) ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93)) ^ index);
    Rng::seed_from_u64(s)
}

/// The seed of sub-stream `index` of stream `stream` under `seed`: a new seed for work that
/// itself draws from several streams (a training batch's chunks). Mixed through a different
/// path than [`stream_rng`], so a derived seed never reproduces a named stream of `seed`.
pub fn sub_seed(seed: u64, stream: u64, index: u64) -> u64 {
    mix64(mix64(seed ^ 0x5851_F42D_4C95_7F2D).wrapping_add(mix64(stream ^ mix64(index))))
}

/// The generator of chunk `chunk` of training batch `batch` (0-based over the whole fit).
/// Batches never share a stream with each other or with the named streams below (the batch
/// counter used to be the stream number, so batch 1 replayed the initialisation stream).
pub fn batch_rng(seed: u64, batch: u64, chunk: u64) -> Rng {
    stream_rng(sub_seed(seed, streams::TRAIN, batch), streams::CHUNK, chunk)
}

/// Named streams, so different uses of one seed never draw the same numbers.
pub mod streams {
    pub const INIT: u64 = 1;
    pub const TRAIN: u64 = 2;
    pub const SPLIT: u64 = 3;
    pub const EVAL: u64 = 4;
    pub const SYNTHETIC: u64 = 5;
    /// The chunks of one training batch (under that batch's own seed).
    pub const CHUNK: u64 = 6;
    /// Model-owned randomness beside the sampler's (dropout seeds, shuffles of item batches).
    pub const MODEL: u64 = 7;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    /// Every use of one seed draws its own numbers: the first outputs of the named streams
    /// (over many indices) and of the training batches' chunks are all distinct.
    #[test]
    fn streams_are_distinct_for_every_use() {
        let seed = 0;
        let mut seen = std::collections::HashSet::new();
        for stream in 1..=7u64 {
            for index in (0..300u64).chain([u64::MAX, 1 << 40]) {
                assert!(seen.insert(stream_rng(seed, stream, index).next_u64()), "stream {stream} index {index}");
            }
        }
        for batch in 0..2000u64 {
            for chunk in 0..4u64 {
                assert!(seen.insert(batch_rng(seed, batch, chunk).next_u64()), "batch {batch} chunk {chunk} collides");
            }
        }
        // The old scheme: batch b used stream b, so batch 1 replayed the initialisation stream.
        assert_eq!(stream_rng(seed, 1, 0).next_u64(), stream_rng(seed, streams::INIT, 0).next_u64());
    }
}
