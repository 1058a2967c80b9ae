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
//! * [`limits`]: sizes and counts from users and files, checked before allocating.
//! * [`nets`]: networks (MLP, feature embedder, ...) as `nn::ModuleT` structs.
//!
//! The Python bindings live apart in `python/`, behind the `python` Cargo feature (on for
//! maturin, off for `cargo test`, so the core builds and tests without PyO3 or libpython); the
//! core never uses PyO3.

// No panic on input-derived values: errors go through `Result` (a panic would reach Python
// as an error only where `error::guarded` catches it, and abort elsewhere), nothing is
// indexed or sliced with `[]` (`get`, iterators, slice patterns instead), and integer
// arithmetic on sizes, counts, offsets and ids is `checked_*` (an error naming the value),
// `saturating_*` (a count then compared with a limit, a position past which `get` sees the
// end) or `try_from`. Checked by `make lint` in CI, on the core and on the core with the
// Python bindings. The remaining allowances are marked where they are, with why, and listed
// in docs/guide/security.md: `config_json` (serialising a plain struct cannot fail), the
// `ModuleT::forward_t` (tch's trait cannot return an error; models call the fallible
// forward); indexing and arithmetic in the numeric kernels, whose sizes are checked at their
// entry (module-level allowances in images/resize.rs, models/dot.rs, models/bpr/{kernel,
// native}.rs, models/triplet/{native, deep_native}.rs, metrics/{ranking, topk}.rs and
// sampling/{negatives, triples, ahead, pair_filter}.rs; `impl Csr` in data/interactions.rs;
// sampling::rng::below); and arithmetic that is tensor / float maths (tch's operators on
// `Tensor`, var-store paths): the network modules in nets/, the models' steps and
// regularisers, train/{torch_step, distributed}.rs, and single functions elsewhere. The
// readers (io/, data/ but `impl Csr`, images/ but resize.rs and the tensor maths of
// `ImageBank::batch`, limits.rs, models/core/, models/checkpoint.rs, the Python bindings)
// have no arithmetic allowance.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::disallowed_methods,
        clippy::arithmetic_side_effects
    )
)]

pub mod data;
pub mod error;
pub mod images;
pub mod io;
pub mod limits;
pub mod metrics;
pub mod models;
pub mod nets;
pub mod sampling;
pub mod tensors;
pub mod train;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};
#[cfg(feature = "python")]
pub use python::core_module;
