//! PyO3 bindings: conversions between numpy/Python objects and the core, nothing more.
//! The typed, documented API users see is the `fashionrec` Python package on top of this.

mod datasets;
mod formats;
mod functions;
mod images;
mod interactions;
mod model;
mod tabular;

use pyo3::exceptions::{PyFileNotFoundError, PyIsADirectoryError, PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::error::Error;

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
            Error::State(_) | Error::Torch(_) => PyRuntimeError::new_err(msg),
            Error::Memory(_) => PyMemoryError::new_err(msg),
        }
    }
}

#[pymodule]
#[pyo3(name = "_core")]
pub fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<interactions::PyInteractions>()?;
    m.add_class::<model::PyModel>()?;
    functions::register(m)?;
    datasets::register(m)?;
    images::register(m)?;
    formats::register(m)?;
    tabular::register(m)?;
    Ok(())
}
