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
pub fn below(rng: &mut Rng, n: u64) -> u64 {
    use rand::RngCore;
    ((rng.next_u64() as u128 * n as u128) >> 64) as u64
}

/// The generator of piece `index` of stream `stream` under `seed`.
pub fn stream_rng(seed: u64, stream: u64, index: u64) -> Rng {
    let s = mix64(mix64(mix64(seed) ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93)) ^ index);
    Rng::seed_from_u64(s)
}

/// Named streams, so different uses of one seed never draw the same numbers.
pub mod streams {
    pub const INIT: u64 = 1;
    pub const TRAIN: u64 = 2;
    pub const SPLIT: u64 = 3;
    pub const EVAL: u64 = 4;
    pub const SYNTHETIC: u64 = 5;
}
