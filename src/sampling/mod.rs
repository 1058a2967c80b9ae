//! Negative sampling for pairwise and sampled losses, seeded and parallel.

pub mod ahead;
pub mod negatives;
pub mod pair_filter;
pub mod rng;
pub mod triples;

pub use negatives::{warp_weight, Choice, SamplerConfig};
pub use triples::{TripleBatch, TripleSampler};
