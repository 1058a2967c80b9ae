//! PyO3 bindings: conversions between numpy/Python objects and the core, nothing more.
//! The typed, documented API users see is the `fashionrec` Python package on top of this.

mod cae;
mod datasets;
mod formats;
mod functions;
mod images;
mod interactions;
mod model;
mod side;
mod tabular;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyFileNotFoundError, PyIsADirectoryError, PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
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

/// The longest message an exception carries: a bound even where a message quotes input that
/// no check cut short (the places that quote input use `error::quote`).
const MAX_MESSAGE_BYTES: usize = 2000;

fn bounded(msg: String) -> String {
    if msg.len() <= MAX_MESSAGE_BYTES {
        return msg;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... (message cut: {} bytes in all)", &msg[..end], msg.len())
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = bounded(e.to_string());
        match e {
            Error::InvalidInput(_) | Error::File { .. } => PyValueError::new_err(msg),
            Error::Io { message, .. } if message.contains("No such file") => PyFileNotFoundError::new_err(msg),
            Error::Io { message, .. } if message.starts_with(crate::io::IS_A_DIRECTORY) => {
                PyIsADirectoryError::new_err(msg)
            }
            Error::Io { .. } => PyOSError::new_err(msg),
            Error::Torch(m) if m.contains("out of memory") || m.contains("OutOfMemory") => PyMemoryError::new_err(msg),
            Error::State(_) | Error::Torch(_) => PyRuntimeError::new_err(msg),
            Error::Memory(_) => PyMemoryError::new_err(msg),
        }
    }
}

#[pymodule]
#[pyo3(name = "_core")]
pub fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Whether the reduced-scale JPEG decoder was built with libjpeg-turbo's SIMD (nasm).
    m.add("JPEG_SIMD", cfg!(feature = "jpeg-simd"))?;
    m.add_class::<interactions::PyInteractions>()?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<side::PyFeatureTable>()?;
    m.add_class::<side::PySideInfo>()?;
    functions::register(m)?;
    datasets::register(m)?;
    images::register(m)?;
    formats::register(m)?;
    tabular::register(m)?;
    cae::register(m)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tch's infallible calls panic on a libtorch error; `guarded` turns that into an error
    /// carrying libtorch's message (a RuntimeError in Python, not a PanicException).
    #[test]
    fn libtorch_panics_become_errors() {
        let out = guarded(|| {
            let a = tch::Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu));
            let _ = a.matmul(&a); // (2, 3) x (2, 3): a shape error inside libtorch
            Ok(())
        });
        match out {
            Err(Error::Torch(m)) => assert!(m.contains("shapes cannot be multiplied") || m.contains("size"), "{m}"),
            other => panic!("expected a libtorch error, got {other:?}"),
        }
        assert_eq!(guarded(|| Ok(7)).unwrap(), 7);
    }
}
