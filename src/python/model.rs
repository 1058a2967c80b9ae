//! `_core.Model`: any core model (`Box<dyn Recommender>`) by registry name.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tch::Tensor;

use super::interactions::{ids_to_py, index_of, PyInteractions};
use crate::error::Error;
use crate::metrics::{EvalOptions, Metric, Validation};
use crate::models::{checkpoint, create, Recommender};
use crate::train::{Control, Event};

/// How often a running fit reports progress to Python (and checks for Ctrl-C).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The core model sits behind a mutex (Python objects must be shareable between threads).
/// Calls never wait on it while holding the GIL: a model busy in another thread (a fit that
/// reports progress through the GIL) is an error instead of a deadlock.
#[pyclass(name = "Model", module = "fashionrec._core")]
pub struct PyModel {
    inner: Mutex<Box<dyn Recommender>>,
}

type Guard<'a> = MutexGuard<'a, Box<dyn Recommender>>;

impl PyModel {
    fn lock(&self) -> PyResult<Guard<'_>> {
        match self.inner.try_lock() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(Error::state(
                "the model is busy: it is training (a fit callback cannot use the model; pass \
                 validation= to fit for per-epoch metrics) or in use by another thread",
            )
            .into()),
        }
    }
}

fn fitted_ids(m: &dyn Recommender) -> PyResult<&crate::data::IdMaps> {
    m.ids().ok_or_else(|| Error::state(format!("this {} model is not fitted yet: call fit() first", m.kind())).into())
}

/// A (rows, cols) f32 tensor as a new numpy array.
fn to_numpy2(py: Python<'_>, t: Tensor) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let size = t.size();
    let v = py.allow_threads(move || crate::tensors::to_vec_f32(&t))?;
    PyArray1::from_vec(py, v).reshape([size[0] as usize, size[1] as usize])
}

#[pymethods]
impl PyModel {
    #[new]
    fn new(kind: &str, config_json: &str) -> PyResult<Self> {
        Ok(PyModel { inner: Mutex::new(create(kind, config_json)?) })
    }

    #[getter]
    fn kind(&self) -> PyResult<&'static str> {
        Ok(self.lock()?.kind())
    }

    fn config_json(&self) -> PyResult<String> {
        Ok(self.lock()?.config_json())
    }

    #[getter]
    fn device(&self) -> PyResult<String> {
        Ok(self.lock()?.device())
    }

    #[getter]
    fn is_fitted(&self) -> PyResult<bool> {
        Ok(self.lock()?.ids().is_some())
    }

    /// Train on `train`. `callback(event: dict)` gets {"event": "progress", "epoch",
    /// "samples", "total"} at most every 100 ms and {"event": "epoch", "epoch", "loss",
    /// "seconds", "val_<metric>"...} after each epoch; returning False stops training. With
    /// `validation` (held-out Interactions in the same ids), `metrics` are computed on it after
    /// every epoch, the training data excluded from the candidates. Ctrl-C stops training
    /// too; either way the model keeps what it learnt, and Ctrl-C (or an exception raised by
    /// the callback) is re-raised after it stopped. Returns True when stopped early.
    #[pyo3(signature = (train, callback=None, validation=None, metrics=Vec::new(), sampled_negatives=100, seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn fit(
        &self,
        py: Python<'_>,
        train: PyRef<'_, PyInteractions>,
        callback: Option<PyObject>,
        validation: Option<PyRef<'_, PyInteractions>>,
        metrics: Vec<String>,
        sampled_negatives: usize,
        seed: u64,
    ) -> PyResult<bool> {
        let data = train.inner.clone();
        let held_out = validation.as_ref().map(|v| v.inner.clone());
        let parsed: Vec<Metric> = metrics.iter().map(|m| m.parse()).collect::<crate::Result<_>>()?;
        let options = EvalOptions { sampled_negatives, seed };
        let val = held_out
            .as_deref()
            .map(|d| Validation { data: d, exclude: vec![data.as_ref()], metrics: parsed, options });
        let mut guard = self.lock()?;
        let mut pending: Option<PyErr> = None;
        let mut last = Instant::now();
        let mut observer = |ev: &Event<'_>| -> Control {
            if matches!(ev, Event::Progress { .. }) && last.elapsed() < PROGRESS_EVERY {
                return Control::Continue;
            }
            last = Instant::now();
            Python::with_gil(|py| {
                if let Err(e) = py.check_signals() {
                    pending = Some(e);
                    return Control::Stop;
                }
                let Some(cb) = &callback else { return Control::Continue };
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
                match filled.and_then(|_| cb.call1(py, (d,))) {
                    Ok(ret) if ret.bind(py).is(pyo3::types::PyBool::new(py, false).as_any()) => Control::Stop,
                    Ok(_) => Control::Continue,
                    Err(e) => {
                        pending = Some(e);
                        Control::Stop
                    }
                }
            })
        };
        let model: &mut dyn Recommender = guard.as_mut();
        let report = py.allow_threads(|| model.fit(&data, val.as_ref(), &mut observer));
        if let Some(e) = pending {
            return Err(e);
        }
        Ok(report?.stopped)
    }

    /// Per-epoch logs of the last fit: a list of {"epoch", "loss", "seconds", "val_..."}.
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.lock()?
            .history()
            .iter()
            .map(|h| {
                let d = PyDict::new(py);
                d.set_item("epoch", h.epoch)?;
                d.set_item("loss", h.loss)?;
                d.set_item("seconds", h.seconds)?;
                for (k, v) in &h.metrics {
                    d.set_item(k, v)?;
                }
                Ok(d)
            })
            .collect()
    }

    /// Scores of user indices for every item, (len(users), n_items) float32.
    fn score_indices<'py>(&self, py: Python<'py>, users: PyReadonlyArray1<'py, i64>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let u = users.as_slice()?;
        let mut guard = self.lock()?;
        let model: &mut dyn Recommender = guard.as_mut();
        let t = py.allow_threads(move || model.score(u))?;
        to_numpy2(py, t)
    }

    /// Item vectors (n_items, d) float32, for similarity.
    fn item_vectors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let t = self.lock()?.item_vectors()?;
        to_numpy2(py, t)
    }

    /// Named parameters as float32/int64 numpy arrays (copies).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, t) in self.lock()?.state()? {
            let t = t.detach().to_device(tch::Device::Cpu).to_kind(tch::Kind::Float).contiguous();
            let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
            let v = crate::tensors::to_vec_f32(&t)?;
            d.set_item(name, PyArray1::from_vec(py, v).reshape(shape)?)?;
        }
        Ok(d)
    }

    fn user_ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ids_to_py(py, &fitted_ids(self.lock()?.as_ref())?.users)
    }

    fn item_ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ids_to_py(py, &fitted_ids(self.lock()?.as_ref())?.items)
    }

    #[pyo3(signature = (ids, column="users"))]
    fn user_index<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>, column: &str) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let ids_map = fitted_ids(self.lock()?.as_ref())?.users.clone();
        index_of(py, &ids_map, ids, column)
    }

    #[pyo3(signature = (ids, column="items"))]
    fn item_index<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>, column: &str) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let ids_map = fitted_ids(self.lock()?.as_ref())?.items.clone();
        index_of(py, &ids_map, ids, column)
    }

    /// (n_users, n_items) of the training data.
    fn shape(&self) -> PyResult<(usize, usize)> {
        let guard = self.lock()?;
        let ids = fitted_ids(guard.as_ref())?;
        Ok((ids.users.len(), ids.items.len()))
    }

    /// True when `data` uses this model's user and item ids.
    fn same_ids(&self, data: PyRef<'_, PyInteractions>) -> PyResult<bool> {
        Ok(fitted_ids(self.lock()?.as_ref())?.same_as(data.inner.ids()))
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let mut guard = self.lock()?;
        let model: &mut dyn Recommender = guard.as_mut();
        py.allow_threads(move || checkpoint::save(model, &path))?;
        Ok(())
    }

    #[staticmethod]
    #[pyo3(signature = (path, device=None))]
    fn load(py: Python<'_>, path: PathBuf, device: Option<String>) -> PyResult<Self> {
        let inner = py.allow_threads(|| checkpoint::load(&path, device.as_deref()))?;
        Ok(PyModel { inner: Mutex::new(inner) })
    }

    fn __repr__(&self) -> PyResult<String> {
        let m = self.lock()?;
        Ok(format!("<_core.Model {} {}>", m.kind(), m.config_json()))
    }
}
