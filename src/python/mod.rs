//! PyO3 bindings: conversions between numpy/Python objects and the core, nothing more.
//! The typed, documented API users see is the `fashionrec` Python package on top of this.

mod cae;
mod datasets;
mod distributed;
mod formats;
mod functions;
mod images;
mod interactions;
mod model;
mod side;
mod tabular;

use std::time::{Duration, Instant};

use pyo3::exceptions::{PyFileNotFoundError, PyIsADirectoryError, PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

// `guarded` is the core's (tested there by `cargo test`, which builds no bindings).
pub(crate) use crate::error::guarded;
use crate::error::Error;
use crate::metrics::{EvalOptions, Metric};
use crate::train::{Control, Event};

/// Parsed metric names and options of an evaluation.
pub(crate) fn metric_options(metrics: &[String], sampled_negatives: usize, seed: u64) -> crate::Result<(Vec<Metric>, EvalOptions)> {
    let parsed = metrics.iter().map(|m| m.parse()).collect::<crate::Result<_>>()?;
    Ok((parsed, EvalOptions { sampled_negatives, seed }))
}

/// How often a running fit reports progress to Python (and checks for Ctrl-C).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The observer of a fit called from Python (`_core.Model.fit`, `_core.ConvAutoencoder.fit`):
/// the training events as the dicts `fashionrec._progress.FitProgress` takes, progress at most
/// every [`PROGRESS_EVERY`]. Ctrl-C stops training; a callback's exception is kept in
/// `pending` and fails the fit (the caller raises it).
pub(crate) fn fit_observer<'a>(callback: &'a Option<PyObject>, pending: &'a mut Option<PyErr>) -> impl FnMut(&Event<'_>) -> Control + 'a {
    let mut last = Instant::now();
    move |ev: &Event<'_>| {
        if matches!(ev, Event::Progress { .. }) && last.elapsed() < PROGRESS_EVERY {
            return Control::Continue;
        }
        last = Instant::now();
        Python::with_gil(|py| {
            if let Err(e) = py.check_signals() {
                *pending = Some(e);
                return Control::Stop;
            }
            let Some(cb) = callback else { return Control::Continue };
            let d = PyDict::new(py);
            let filled = match ev {
                Event::Progress { epoch, samples, total } => d
                    .set_item("event", "progress")
                    .and(d.set_item("epoch", epoch))
                    .and(d.set_item("samples", samples))
                    .and(d.set_item("total", total)),
                Event::EpochEnd(log) => d
                    .set_item("event", "epoch")
                    .and(d.set_item("epoch", log.epoch))
                    .and(d.set_item("loss", log.loss))
                    .and(d.set_item("seconds", log.seconds))
                    .and(log.metrics.iter().try_for_each(|(k, v)| d.set_item(k, v))),
            };
            match filled.and_then(|_| cb.call1(py, (d,))).and_then(|ret| callback_stops(ret.bind(py))) {
                Ok(true) => Control::Stop,
                Ok(false) => Control::Continue,
                Err(e) => {
                    *pending = Some(e);
                    Control::Fail
                }
            }
        })
    }
}

/// The longest message an exception carries: a bound even where a message quotes input that
/// no check cut short (the places that quote input use `error::quote`).
const MAX_MESSAGE_BYTES: usize = 2000;

/// How every training loop reads what a user's callback returned: by truthiness, as Python
/// does (`False`, `0`, `np.False_`, an empty container stop), except that `None` (no return
/// statement) continues. A value whose truth cannot be read (a numpy array of several
/// elements) is the callback's error.
pub(crate) fn callback_stops(ret: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(!ret.is_none() && !ret.is_truthy()?)
}

fn bounded(msg: String) -> String {
    if msg.len() <= MAX_MESSAGE_BYTES {
        return msg;
    }
    // The last character boundary at or before the limit (0 is always one).
    let end = (0..=MAX_MESSAGE_BYTES).rev().find(|&i| msg.is_char_boundary(i)).unwrap_or(0);
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
