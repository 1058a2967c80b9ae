//! `_core.ConvAutoencoder` (the autoencoder pretrained on item images) and
//! `_core.inception_features` (ImageNet features of images, from a weights file).

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, TryLockError};

use numpy::{PyArray1, PyArray2, PyArray4, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tch::nn::ModuleT;
use tch::{Device, Tensor};

use super::{fit_observer, guarded};
use super::images::PyImageBank;
use crate::error::Error;
use crate::models::cae::{Autoencoder, CaeConfig};
use crate::nets::inception::InceptionV3;
use crate::nets::towers::read_inception_weights;
use crate::tensors::{parse_device, to_vec_f32};
use crate::train::EpochLog;


#[pyclass(name = "ConvAutoencoder", module = "fashionrec._core")]
pub struct PyConvAutoencoder {
    inner: Mutex<Autoencoder>,
}

impl PyConvAutoencoder {
    /// The model, unless another thread is training it (an error rather than a deadlock).
    pub(crate) fn lock(&self) -> PyResult<MutexGuard<'_, Autoencoder>> {
        match self.inner.try_lock() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => {
                Err(Error::state("the autoencoder is busy: it is training or in use by another thread").into())
            }
        }
    }
}

/// Epoch logs as dicts {"epoch", "loss", "seconds", "val_..."} (the validation metrics, when
/// the fit had validation data): a model's, its pretraining's, the autoencoder's.
pub(crate) fn history_dicts<'py>(py: Python<'py>, history: &[EpochLog]) -> PyResult<Vec<Bound<'py, PyDict>>> {
    history
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

fn f32_array<'py>(py: Python<'py>, t: Tensor) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let (rows, cols) = (crate::tensors::size_at(&t, 0)?, crate::tensors::size_at(&t, 1)?);
    let v = py.allow_threads(move || to_vec_f32(&t))?;
    PyArray1::from_vec(py, v).reshape([rows as usize, cols as usize])
}

#[pymethods]
impl PyConvAutoencoder {
    #[new]
    fn new(config_json: &str) -> PyResult<Self> {
        let cfg: CaeConfig =
            serde_json::from_str(config_json).map_err(|e| Error::invalid(format!("ConvAutoencoder configuration: {e}")))?;
        Ok(PyConvAutoencoder { inner: Mutex::new(Autoencoder::new(cfg)?) })
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
        Ok(self.lock()?.is_fitted())
    }

    /// Train on every image of `bank`. `callback(event: dict)` as `_core.Model.fit`'s.
    /// Returns True when stopped early (by the callback or Ctrl-C, which is re-raised).
    #[pyo3(signature = (bank, callback=None))]
    fn fit(&self, py: Python<'_>, bank: PyRef<'_, PyImageBank>, callback: Option<PyObject>) -> PyResult<bool> {
        let bank = bank.inner.clone();
        let mut guard = self.lock()?;
        let mut pending = None;
        let report = {
            let mut obs = fit_observer(&callback, &mut pending);
            let model: &mut Autoencoder = &mut guard;
            py.allow_threads(|| guarded(|| model.fit(&bank, &mut obs)))
        };
        if let Some(e) = pending {
            return Err(e);
        }
        Ok(report?.stopped)
    }

    fn history<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        history_dicts(py, self.lock()?.history())
    }

    /// The codes of every image of `bank`: float32 (n, latent).
    fn encode<'py>(&self, py: Python<'py>, bank: PyRef<'py, PyImageBank>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let bank = bank.inner.clone();
        let mut guard = self.lock()?;
        // A &mut is Send (a tensor is not Sync): the model moves to the GIL-free thread.
        let model: &mut Autoencoder = &mut guard;
        let t = py.allow_threads(move || guarded(|| model.encode(&bank)))?;
        f32_array(py, t)
    }

    /// Reconstructions of the bank's `rows`: uint8 (len(rows), S, S, 3).
    fn reconstruct<'py>(
        &self,
        py: Python<'py>,
        bank: PyRef<'py, PyImageBank>,
        rows: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Bound<'py, PyArray4<u8>>> {
        let bank = bank.inner.clone();
        let rows = rows.as_slice()?.to_vec();
        let mut guard = self.lock()?;
        // A &mut is Send (a tensor is not Sync): the model moves to the GIL-free thread.
        let model: &mut Autoencoder = &mut guard;
        let t = py.allow_threads(move || guarded(|| model.reconstruct(&bank, &rows)))?;
        let size: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let &[n, h, w, c] = size.as_slice() else {
            return Err(Error::state(format!("a reconstruction of shape {size:?}, not (N, H, W, 3)")).into());
        };
        let v = Vec::<u8>::try_from(t.flatten(0, -1)).map_err(Error::from)?;
        PyArray1::from_vec(py, v).reshape([n, h, w, c])
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let mut guard = self.lock()?;
        // A &mut is Send (a tensor is not Sync): the model moves to the GIL-free thread.
        let model: &mut Autoencoder = &mut guard;
        py.allow_threads(move || guarded(|| model.save(&path)))?;
        Ok(())
    }

    #[staticmethod]
    #[pyo3(signature = (path, device=None))]
    fn load(py: Python<'_>, path: PathBuf, device: Option<String>) -> PyResult<Self> {
        let model = py.allow_threads(|| guarded(|| Autoencoder::load(&path, device.as_deref())))?;
        Ok(PyConvAutoencoder { inner: Mutex::new(model) })
    }
}

/// Pooled Inception v3 features (N, 2048) of uint8 (N, H, W, 3) images, H = W >= 75, with
/// the weights of a file written by `fashionrec.io.convert_inception_weights`.
#[pyfunction]
#[pyo3(signature = (weights, images, transform_input=true, batch_size=64, device="auto"))]
fn inception_features<'py>(
    py: Python<'py>,
    weights: PathBuf,
    images: PyReadonlyArray4<'py, u8>,
    transform_input: bool,
    batch_size: usize,
    device: &str,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let shape = images.shape().to_vec();
    let (height, width) = match shape.as_slice() {
        &[_, h, w, 3] if h == w => (h, w),
        _ => return Err(Error::invalid(format!("images must be square RGB, (N, S, S, 3); got shape {shape:?}")).into()),
    };
    InceptionV3::check_size(height as i64)?;
    if batch_size == 0 {
        return Err(Error::invalid("batch_size must be at least 1").into());
    }
    let device: Device = parse_device(device)?;
    let pixels = images.as_slice()?;
    let run = || -> crate::Result<Tensor> {
        let tensors = read_inception_weights(&weights)?;
        let mut vs = tch::nn::VarStore::new(device);
        let net = InceptionV3::new(&vs.root(), transform_input);
        net.load(&tensors, "", &weights.display().to_string())?;
        vs.freeze();
        // The dimensions of an array that exists: their product fits.
        let image = height.saturating_mul(width).saturating_mul(3);
        let mut parts = Vec::new();
        for block in pixels.chunks(batch_size.saturating_mul(image).max(1)) {
            let n = block.len().checked_div(image).unwrap_or(0) as i64;
            let xs = Tensor::from_slice(block).f_view([n, height as i64, width as i64, 3])?.f_to_device(device)?;
            parts.push(tch::no_grad(|| net.forward_t(&xs, false)).f_to_device(Device::Cpu)?);
        }
        if parts.is_empty() {
            return Ok(Tensor::zeros([0, crate::nets::inception::FEATURES], (tch::Kind::Float, Device::Cpu)));
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    };
    let t = py.allow_threads(|| guarded(run))?;
    f32_array(py, t)
}

/// Loads a weights file into the network (as the tower does); returns how many tensors it used.
#[pyfunction]
fn check_inception_weights(py: Python<'_>, path: PathBuf) -> PyResult<usize> {
    let run = || -> crate::Result<usize> {
        let tensors = read_inception_weights(&path)?;
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let net = InceptionV3::new(&vs.root(), true);
        net.load(&tensors, "", &path.display().to_string())?;
        Ok(net.named_parameters().len())
    };
    Ok(py.allow_threads(|| guarded(run))?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyConvAutoencoder>()?;
    m.add_function(wrap_pyfunction!(inception_features, m)?)?;
    m.add_function(wrap_pyfunction!(check_inception_weights, m)?)?;
    Ok(())
}
