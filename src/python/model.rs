//! `_core.Model`: any core model (`Box<dyn Recommender>`) by registry name.

use std::path::PathBuf;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tch::Tensor;

use super::cae::{history_dicts, PyConvAutoencoder};
use super::interactions::{ids_to_py, index_of, PyInteractions};
use super::side::{PyFeatureTable, PySideInfo};
use super::{fit_observer, guarded, metric_options};
use crate::data::SideInfo;
use crate::error::Error;
use crate::metrics::Validation;
use crate::models::core::Model;
use crate::models::dvbpr::Dvbpr;
use crate::models::ensemble::Ensemble;
use crate::models::{checkpoint, create, FitOptions, Recommender};
use super::distributed::PyCollective;
use crate::train::distributed::ProcessGroup;

/// A copy of member `k` of the ensemble in `shared` (a function, so a closure captures the
/// `Sync` wrapper whole, not the model inside it).
fn member_of(shared: &Shared, k: usize) -> crate::Result<Box<dyn Recommender>> {
    match shared.0.as_any().downcast_ref::<Ensemble>() {
        Some(e) => e.member(k),
        None => Err(Error::invalid(format!("a {} model has no members", shared.0.kind()))),
    }
}

/// A core model shared between Python threads.
pub struct Shared(pub Box<dyn Recommender>);

// SAFETY: `Recommender`'s `&self` methods only read the model (its contract, documented on
// the trait): concurrent reads of libtorch tensors are thread-safe, so sharing `&Shared`
// between threads is sound. Writes (`fit`, `restore`) take the write lock.
unsafe impl Sync for Shared {}

impl std::ops::Deref for Shared {
    type Target = dyn Recommender;
    fn deref(&self) -> &(dyn Recommender + 'static) {
        self.0.as_ref()
    }
}

/// The core model behind a read-write lock: reading calls (score, recommend, evaluate, save)
/// run concurrently with the GIL released; `fit` is exclusive. Calls never wait on the lock
/// while holding the GIL: a model busy in another thread is an error instead of a deadlock.
#[pyclass(name = "Model", module = "fashionrec._core")]
pub struct PyModel {
    inner: RwLock<Shared>,
}

impl PyModel {
    fn read(&self) -> PyResult<RwLockReadGuard<'_, Shared>> {
        match self.inner.try_read() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(busy()),
        }
    }

    fn write(&self) -> PyResult<RwLockWriteGuard<'_, Shared>> {
        match self.inner.try_write() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(busy()),
        }
    }

    /// What `compute` makes of the model (under the read lock, the GIL released), as a new
    /// numpy array.
    fn computed<'py>(&self, py: Python<'py>, compute: impl FnOnce(&dyn Recommender) -> crate::Result<Tensor> + Send) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let guard = self.read()?;
        let model: &Shared = &guard;
        let t = py.allow_threads(move || guarded(|| compute(model.0.as_ref())))?;
        to_numpy2(py, t)
    }
}

fn busy() -> PyErr {
    Error::state(
        "the model is busy: it is training (a fit callback cannot use the model; pass \
         validation= to fit for per-epoch metrics), or another thread is training it or using it while fit was called",
    )
    .into()
}

fn fit_refused() -> PyErr {
    Error::state(
        "fit refused: this model is already fitting (fit was called again from another thread, or from \
         its own callback) or another thread is using it; a model runs one fit at a time: wait for the \
         other call to return, or fit a copy",
    )
    .into()
}

fn fitted_ids(m: &Shared) -> PyResult<&crate::data::IdMaps> {
    let m = m.0.as_ref();
    m.ids().ok_or_else(|| Error::state(format!("this {} model is not fitted yet: call fit() first", m.kind())).into())
}

/// A (rows, cols) f32 tensor as a new numpy array.
fn to_numpy2(py: Python<'_>, t: Tensor) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let size = t.size();
    let [rows, cols] = size[..] else {
        return Err(Error::state(format!("expected a 2-D result, got shape {size:?}")).into());
    };
    let (rows, cols) = (rows as usize, cols as usize);
    // Sized through the memory budget, then written in place: one copy out of libtorch.
    crate::limits::bytes_for("the result", crate::limits::mul("the result", rows, cols)?, 4)?;
    // SAFETY: a new C-contiguous array, every element written before it is returned.
    let arr = unsafe { PyArray2::<f32>::new(py, [rows, cols], false) };
    let out = unsafe { arr.as_slice_mut()? };
    py.allow_threads(move || crate::tensors::copy_f32_into(&t, out))?;
    Ok(arr)
}

#[pymethods]
impl PyModel {
    #[new]
    fn new(kind: &str, config_json: &str) -> PyResult<Self> {
        Ok(PyModel { inner: RwLock::new(Shared(guarded(|| create(kind, config_json))?)) })
    }

    #[getter]
    fn kind(&self) -> PyResult<&'static str> {
        Ok(self.read()?.0.kind())
    }

    fn config_json(&self) -> PyResult<String> {
        Ok(self.read()?.0.config_json())
    }

    #[getter]
    fn device(&self) -> PyResult<String> {
        Ok(self.read()?.0.device())
    }

    #[getter]
    fn is_fitted(&self) -> PyResult<bool> {
        Ok(self.read()?.0.ids().is_some())
    }

    /// Side data this model requires / can use: {"images": "required", ...}.
    fn needs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let n = self.read()?.0.needs();
        let d = PyDict::new(py);
        for (name, need) in [("images", n.images), ("item_features", n.item_features), ("user_features", n.user_features), ("categories", n.categories)] {
            d.set_item(name, format!("{need:?}").to_lowercase())?;
        }
        Ok(d)
    }

    /// Train on `train`. `callback(event: dict)` gets {"event": "progress", "epoch",
    /// "samples", "total"} at most every 100 ms and {"event": "epoch", "epoch", "loss",
    /// "seconds", "val_<metric>"...} after each epoch; returning False stops training. With
    /// `validation` (held-out Interactions in the same ids), `metrics` are computed on it after
    /// every epoch, the training data excluded from the candidates. Ctrl-C stops training
    /// too; either way the model keeps what it learnt, and Ctrl-C (or an exception raised by
    /// the callback) is re-raised after it stopped. Returns True when stopped early.
    ///
    /// `side`: side data aligned to `train`'s indices. If training fails (an error, or a
    /// libtorch failure such as CUDA running out of memory), the model is left unfitted.
    /// `checkpoint_dir`: a checkpoint is written there after every epoch; with `resume`, a
    /// fit continues from the one there. `group`: a `fashionrec.distributed._Group`, to
    /// train on several processes (every rank calls `fit` with the same arguments).
    #[pyo3(signature = (train, callback=None, validation=None, metrics=Vec::new(), sampled_negatives=100, seed=0, side=None, checkpoint_dir=None, resume=false, group=None))]
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
        side: Option<PyRef<'_, PySideInfo>>,
        checkpoint_dir: Option<PathBuf>,
        resume: bool,
        group: Option<PyObject>,
    ) -> PyResult<bool> {
        let group = match group {
            Some(g) => Some(ProcessGroup(std::sync::Arc::new(PyCollective::new(py, g)?))),
            None => None,
        };
        let fit_options = FitOptions { checkpoint_dir, resume, group };
        let data = train.inner.clone();
        let side: SideInfo = side.map(|s| s.inner.clone()).unwrap_or_default();
        let held_out = validation.as_ref().map(|v| v.inner.clone());
        let (parsed, options) = metric_options(&metrics, sampled_negatives, seed)?;
        let val = held_out
            .as_deref()
            .map(|d| Validation { data: d, exclude: vec![data.as_ref()], metrics: parsed, options });
        // The fit lock: a second fit (or a fit while another thread uses the model) is
        // refused at once, never queued behind the first.
        let mut guard = self.write().map_err(|_| fit_refused())?;
        let mut pending: Option<PyErr> = None;
        let report = {
            let mut observer = fit_observer(&callback, &mut pending);
            let model: &mut dyn Recommender = guard.0.as_mut();
            py.allow_threads(|| guarded(|| model.fit(&data, &side, val.as_ref(), &mut observer, &fit_options)))
        };
        if let Err(e) = &report {
            // A failed fit leaves no half-trained model behind.
            if let Ok(fresh) = create(guard.0.kind(), &guard.0.config_json()) {
                guard.0 = fresh;
            }
            if pending.is_none() {
                return Err(e.clone().into());
            }
        }
        if let Some(e) = pending {
            return Err(e);
        }
        Ok(report?.stopped)
    }

    /// A fitted ensemble of copies of the fitted `models` (the mean of their scores).
    #[staticmethod]
    fn ensemble(py: Python<'_>, models: Vec<PyRef<'_, PyModel>>) -> PyResult<Self> {
        let guards = models.iter().map(|m| m.read()).collect::<PyResult<Vec<_>>>()?;
        let shared: Vec<&Shared> = guards.iter().map(|g| &**g).collect();
        let e = py.allow_threads(|| {
            let members: Vec<&dyn Recommender> = shared.iter().map(|s| s.0.as_ref()).collect();
            guarded(|| Ensemble::of_fitted(&members))
        })?;
        Ok(PyModel { inner: RwLock::new(Shared(Box::new(e))) })
    }

    /// A copy of member `k` of an ensemble (fitted if the ensemble is).
    fn member(&self, py: Python<'_>, k: usize) -> PyResult<Self> {
        let guard = self.read()?;
        if !guard.0.as_any().is::<Ensemble>() {
            return Err(Error::invalid(format!("a {} model has no members", guard.0.kind())).into());
        }
        let model: &Shared = &guard;
        let m = py.allow_threads(|| guarded(|| member_of(model, k)))?;
        Ok(PyModel { inner: RwLock::new(Shared(m)) })
    }

    /// Build on the trained encoder of `encoder` (a `_core.ConvAutoencoder`): DVBPR's
    /// tower="cae". Checked (tower, image size, fitted) and copied now.
    fn set_encoder(&self, encoder: PyRef<'_, PyConvAutoencoder>) -> PyResult<()> {
        let cae = encoder.lock()?;
        let mut guard = self.write()?;
        let kind = guard.0.kind();
        let dvbpr = guard.0.as_any_mut().downcast_mut::<Model<Dvbpr>>().ok_or_else(|| Error::invalid(format!("the {kind} model takes no encoder")))?;
        // A copy of the encoder's few tensors: quick, so the GIL is kept.
        guarded(|| dvbpr.set_encoder(&cae))?;
        Ok(())
    }

    /// The losses of the autoencoder DVBPR pretrained in its last fit (tower="cae" without
    /// an encoder): a list of {"epoch", "loss", "seconds"}; empty for other models.
    fn pretrain_history<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let guard = self.read()?;
        let pretrained = guard.0.as_any().downcast_ref::<Model<Dvbpr>>().map(|d| d.pretrain_history()).unwrap_or_default();
        history_dicts(py, pretrained)
    }

    /// Per-epoch logs of the last fit: a list of {"epoch", "loss", "seconds", "val_..."}.
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        history_dicts(py, self.read()?.0.history())
    }

    /// Scores of user indices for every item, (len(users), n_items) float32.
    fn score_indices<'py>(&self, py: Python<'py>, users: PyReadonlyArray1<'py, i64>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let u = users.as_slice()?;
        let guard = self.read()?;
        let model: &Shared = &guard;
        // Dot-product models write straight into the array (one buffer, not two).
        let n_items = fitted_ids(&guard)?.items.len();
        let total = crate::limits::mul("the scores (users x items)", u.len(), n_items)?;
        crate::limits::bytes_for("the scores (users x items)", total, 4)?;
        // SAFETY: a new C-contiguous array, only written (every element) before it is returned.
        let arr = unsafe { PyArray2::<f32>::new(py, [u.len(), n_items], false) };
        let out = unsafe { arr.as_slice_mut()? };
        if py.allow_threads(|| guarded(|| model.score_into(u, out)))? {
            return Ok(arr);
        }
        let t = py.allow_threads(move || guarded(|| model.score(u)))?;
        to_numpy2(py, t)
    }

    /// Scores of new users from their features (rows of `users`), for every item.
    fn score_new_users<'py>(&self, py: Python<'py>, users: PyRef<'py, PyFeatureTable>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let table = users.inner.clone();
        self.computed(py, move |model| model.score_new_users(&table))
    }

    /// Item vectors of new items from their side data (images, features).
    fn embed_new_items<'py>(&self, py: Python<'py>, side: PyRef<'py, PySideInfo>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let side = side.inner.clone();
        self.computed(py, move |model| model.embed_new_items(&side))
    }

    /// Top-k (item indices, scores), each (len(users), k), for user indices; each user's
    /// items in `exclude` are not candidates, nor (with `candidates`, one bool per item) the
    /// items not flagged. Scoring and selection run in Rust.
    #[pyo3(signature = (users, k, exclude=None, candidates=None))]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        users: PyReadonlyArray1<'py, i64>,
        k: usize,
        exclude: Option<PyRef<'py, PyInteractions>>,
        candidates: Option<PyReadonlyArray1<'py, bool>>,
    ) -> PyResult<(Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>)> {
        let u = users.as_slice()?;
        let ex = exclude.map(|x| x.inner.clone());
        let cand = candidates.as_ref().map(|c| c.as_slice()).transpose()?;
        let guard = self.read()?;
        let model: &Shared = &guard;
        let n_items = fitted_ids(&guard)?.items.len();
        let k = k.min(n_items);
        let (items, scores) = py.allow_threads(|| guarded(|| model.recommend(u, k, ex.as_deref(), cand)))?;
        let n = u.len();
        Ok((PyArray1::from_vec(py, items).reshape([n, k])?, PyArray1::from_vec(py, scores).reshape([n, k])?))
    }

    /// Per-user metrics of this model on `test`: (user indices, [values per metric]).
    /// `users` restricts the users, `candidates` (bool per item) the candidate items.
    #[pyo3(signature = (test, exclude, metrics, users=None, candidates=None, sampled_negatives=100, seed=0, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        test: PyRef<'py, PyInteractions>,
        exclude: Vec<PyRef<'py, PyInteractions>>,
        metrics: Vec<String>,
        users: Option<PyReadonlyArray1<'py, i64>>,
        candidates: Option<PyReadonlyArray1<'py, bool>>,
        sampled_negatives: usize,
        seed: u64,
        progress: Option<PyObject>,
    ) -> PyResult<super::functions::PerUserPy<'py>> {
        let guard = self.read()?;
        let model: &Shared = &guard;
        // Cut-off metrics of a dot-product model: ranked in blocks, never scored in full.
        let same_items = fitted_ids(&guard)?.items.len() == test.inner.n_items();
        let rank = |idx: &[i64], k: usize, keep: &crate::metrics::Keep<'_>| model.rank(idx, k, keep);
        super::functions::evaluate_per_user(
            py,
            &|idx: &[i64]| model.score(idx),
            same_items.then_some(&rank as &crate::metrics::Rank<'_>),
            test,
            exclude,
            metrics,
            users,
            candidates,
            sampled_negatives,
            seed,
            progress,
        )
    }

    /// Item vectors (n_items, d) float32, for similarity.
    fn item_vectors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let guard = self.read()?;
        let t = guarded(|| guard.0.item_vectors())?;
        to_numpy2(py, t)
    }

    /// User vectors (n_users, d) float32, for plots.
    fn user_vectors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let guard = self.read()?;
        let t = guarded(|| guard.0.user_vectors())?;
        to_numpy2(py, t)
    }

    /// Named parameters as float32/int64 numpy arrays (copies).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let guard = self.read()?;
        for (name, t) in guarded(|| guard.0.state())? {
            let t = t.detach().to_device(tch::Device::Cpu).to_kind(tch::Kind::Float).contiguous();
            let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
            let v = crate::tensors::to_vec_f32(&t)?;
            d.set_item(name, PyArray1::from_vec(py, v).reshape(shape)?)?;
        }
        Ok(d)
    }

    fn user_ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ids_to_py(py, &fitted_ids(&*self.read()?)?.users)
    }

    fn item_ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ids_to_py(py, &fitted_ids(&*self.read()?)?.items)
    }

    /// Indices of raw ids given as the argument `arg` of a call ("score(): users"), which an
    /// unknown id's error names.
    #[pyo3(signature = (ids, arg="users"))]
    fn user_index<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>, arg: &str) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let ids_map = fitted_ids(&*self.read()?)?.users.clone();
        index_of(py, &ids_map, ids, arg, "user")
    }

    #[pyo3(signature = (ids, arg="items"))]
    fn item_index<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>, arg: &str) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let ids_map = fitted_ids(&*self.read()?)?.items.clone();
        index_of(py, &ids_map, ids, arg, "item")
    }

    /// (n_users, n_items) of the training data.
    fn shape(&self) -> PyResult<(usize, usize)> {
        let guard = self.read()?;
        let ids = fitted_ids(&guard)?;
        Ok((ids.users.len(), ids.items.len()))
    }

    /// True when `data` uses this model's user and item ids.
    fn same_ids(&self, data: PyRef<'_, PyInteractions>) -> PyResult<bool> {
        Ok(fitted_ids(&*self.read()?)?.same_as(data.inner.ids()))
    }

    /// `data` over this model's id maps, when they extend its own (a catalogue grown by
    /// side data); a ValueError otherwise.
    fn align(&self, data: PyRef<'_, PyInteractions>) -> PyResult<PyInteractions> {
        let ids = fitted_ids(&*self.read()?)?.clone();
        // Only the item catalogue grows (side data adds items, never users).
        if *ids.users != *data.inner.ids().users {
            return Err(Error::invalid("the data's users are not the model's").into());
        }
        Ok(PyInteractions { inner: std::sync::Arc::new(data.inner.with_ids(ids)?) })
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let guard = self.read()?;
        let model: &Shared = &guard;
        py.allow_threads(move || guarded(|| checkpoint::save(&**model, &path)))?;
        Ok(())
    }

    #[staticmethod]
    #[pyo3(signature = (path, device=None))]
    fn load(py: Python<'_>, path: PathBuf, device: Option<String>) -> PyResult<Self> {
        let inner = py.allow_threads(|| guarded(|| checkpoint::load(&path, device.as_deref())))?;
        Ok(PyModel { inner: RwLock::new(Shared(inner)) })
    }

    fn __repr__(&self) -> PyResult<String> {
        let m = self.read()?;
        Ok(format!("<_core.Model {} {}>", m.0.kind(), m.0.config_json()))
    }
}
