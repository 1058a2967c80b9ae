//! Negative sampling for pairwise and sampled losses, seeded and parallel.

pub mod rng;
pub mod triples;

pub use triples::{TripleBatch, TripleSampler};
