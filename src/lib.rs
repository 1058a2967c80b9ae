//! fashionrec: the Rust core of a library for visually-aware and implicit-feedback
//! recommendation.
//!
//! * [`data`]: id maps, interactions (CSR), splits, synthetic data.
//! * [`io`]: readers of the seed data sets' file formats (npy/pickle, `.b`, metadata, CSV).
//! * [`images`]: image sources, decoding, resizing and the decode-once image bank.
//! * [`sampling`]: seeded, parallel negative sampling.
//! * [`train`]: the one training loop every model runs in.
//! * [`models`]: the models, behind the [`models::Recommender`] trait, and their checkpoints.
//! * [`nets`]: libtorch networks (`nn::ModuleT` structs) and image towers.
//! * [`metrics`]: ranking metrics and top-k selection.
//!
//! The Python bindings live apart in `python/` (compiled in, but the core never uses PyO3).

pub mod data;
pub mod error;
pub mod images;
pub mod io;
pub mod metrics;
pub mod models;
pub mod nets;
pub mod sampling;
pub mod tensors;
pub mod train;

mod python;

pub use error::{Error, Result};
pub use python::core_module;
