//! PyO3 bindings: conversions between numpy/Python objects and the core, nothing more.
//! The typed, documented API users see is the `fashionrec` Python package on top of this.

mod datasets;
mod formats;
mod functions;
mod images;
mod interactions;
mod model;
mod side;
mod tabular;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyFileNotFoundError, PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::error::Error;
use crate::metrics::{EvalOptions, Metric};

/// Runs `f`, turning a panic inside it (tch's infallible calls panic on libtorch errors: a
/// CUDA out-of-memory, a shape mismatch) into an error, so Python gets a `RuntimeError` (or
/// `MemoryError`) that `except Exception` catches instead of a `PanicException`.
pub(crate) fn guarded<T>(f: impl FnOnce() -> crate::Result<T>) -> crate::Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "an internal error (panic without a message)".into());
        Err(Error::Torch(msg))
    })
}

/// Parsed metric names and options of an evaluation.
pub(crate) fn metric_options(metrics: &[String], sampled_negatives: usize, seed: u64) -> crate::Result<(Vec<Metric>, EvalOptions)> {
    let parsed = metrics.iter().map(|m| m.parse()).collect::<crate::Result<_>>()?;
    Ok((parsed, EvalOptions { sampled_negatives, seed }))
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        match e {
            Error::InvalidInput(_) | Error::File { .. } => PyValueError::new_err(msg),
            Error::Io { message, .. } if message.contains("No such file") => PyFileNotFoundError::new_err(msg),
            Error::Io { .. } => PyOSError::new_err(msg),
            Error::Torch(m) if m.contains("out of memory") || m.contains("OutOfMemory") => PyMemoryError::new_err(msg),
            Error::State(_) | Error::Torch(_) => PyRuntimeError::new_err(msg),
        }
    }
}

#[pymodule]
#[pyo3(name = "_core")]
pub fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<interactions::PyInteractions>()?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<side::PyFeatureTable>()?;
    m.add_class::<side::PySideInfo>()?;
    functions::register(m)?;
    datasets::register(m)?;
    images::register(m)?;
    formats::register(m)?;
    tabular::register(m)?;
    Ok(())
}
