//! fashionrec: the Rust core of a library for visually-aware and implicit-feedback
//! recommendation.
//!
//! * [`data`]: id maps, interactions (CSR), splits, synthetic data.
//! * [`sampling`]: seeded, parallel negative sampling.
//! * [`train`]: the one training loop every model runs in.
//! * [`models`]: the models, behind the [`models::Recommender`] trait, and their checkpoints.
//! * [`metrics`]: ranking metrics and top-k selection.
//!
//! The Python bindings live apart in `python/` (compiled in, but the core never uses PyO3).

pub mod data;
pub mod error;
pub mod metrics;
pub mod models;
pub mod sampling;
pub mod tensors;
pub mod train;

mod python;

pub use error::{Error, Result};
pub use python::core_module;
