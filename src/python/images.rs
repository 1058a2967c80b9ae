//! Bindings: image sources, the image bank (zero-copy numpy views of its pixels), and the
//! decode and resize kernels on their own (for checking them against PIL).

use std::path::PathBuf;
use std::sync::Arc;

use numpy::ndarray::ArrayView4;
use numpy::{PyArray1, PyArray3, PyArray4, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::images::bank::CacheUse;
use crate::images::{decode_rgb, BankSpec, DecodeOptions, Filter, ImageBank, ImageSource, OnError, DEFAULT_MAX_PIXELS};

#[pyclass(name = "ImageSource", module = "fashionrec._core", frozen)]
pub struct PyImageSource {
    pub inner: Arc<ImageSource>,
}

#[pymethods]
impl PyImageSource {
    #[staticmethod]
    fn files(paths: Vec<PathBuf>) -> Self {
        PyImageSource { inner: Arc::new(ImageSource::files(paths)) }
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// The encoded bytes of item `i`.
    fn read<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyBytes>> {
        check_index(i, self.inner.len())?;
        Ok(PyBytes::new(py, &self.inner.read(i)?))
    }

    /// Where item `i`'s image is (file, or byte range of the container).
    fn locate(&self, i: usize) -> PyResult<String> {
        check_index(i, self.inner.len())?;
        Ok(self.inner.locate(i))
    }

    /// The container file of a span source (None for files).
    fn container(&self) -> Option<PathBuf> {
        self.inner.container().map(|p| p.to_path_buf())
    }
}

fn check_index(i: usize, n: usize) -> PyResult<()> {
    if i >= n {
        return Err(pyo3::exceptions::PyIndexError::new_err(format!("row {i} is out of range for {n} images")));
    }
    Ok(())
}

#[pyclass(name = "ImageBank", module = "fashionrec._core", frozen)]
pub struct PyImageBank {
    pub(crate) inner: Arc<ImageBank>,
}

#[pymethods]
impl PyImageBank {
    /// Decode `source` into a bank. `progress(done, total)` is called between blocks; returns
    /// (bank, how the cache was used: "none", "built", "reused" or "rebuilt", reason or None).
    #[staticmethod]
    #[pyo3(signature = (source, height, width, filter="bilinear", on_error="raise", cache=None, threads=0, progress=None, reduce=true, max_pixels=DEFAULT_MAX_PIXELS))]
    #[allow(clippy::too_many_arguments)]
    fn build(
        py: Python<'_>,
        source: PyRef<'_, PyImageSource>,
        height: usize,
        width: usize,
        filter: &str,
        on_error: &str,
        cache: Option<PathBuf>,
        threads: usize,
        progress: Option<PyObject>,
        reduce: bool,
        max_pixels: u64,
    ) -> PyResult<(Self, &'static str, Option<String>)> {
        // The core's limit, under the name Python users pass it by.
        crate::limits::check_threads("workers", threads)?;
        let spec = BankSpec { height, width, filter: filter.parse()?, reduce };
        let on_error: OnError = on_error.parse()?;
        let src = source.inner.clone();
        let mut pending: Option<PyErr> = None;
        let mut report = |done: usize, total: usize| -> bool {
            Python::with_gil(|py| {
                let r = py.check_signals().and_then(|_| match &progress {
                    Some(cb) => cb.call1(py, (done, total)).map(|_| ()),
                    None => Ok(()),
                });
                match r {
                    Ok(()) => true,
                    Err(e) => {
                        pending = Some(e);
                        false
                    }
                }
            })
        };
        let built = py.allow_threads(|| ImageBank::build(&src, spec, on_error, max_pixels, cache.as_deref(), threads, &mut report));
        if let Some(e) = pending {
            return Err(e);
        }
        let (bank, used) = built?;
        let (used, reason) = match used {
            CacheUse::None => ("none", None),
            CacheUse::Built => ("built", None),
            CacheUse::Reused => ("reused", None),
            CacheUse::Rebuilt(r) => ("rebuilt", Some(r)),
        };
        Ok((PyImageBank { inner: Arc::new(bank) }, used, reason))
    }

    /// Open a cache file without its source.
    #[staticmethod]
    fn open(path: PathBuf) -> PyResult<Self> {
        Ok(PyImageBank { inner: Arc::new(ImageBank::open(&path)?) })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    #[getter]
    fn height(&self) -> usize {
        self.inner.spec().height
    }

    #[getter]
    fn width(&self) -> usize {
        self.inner.spec().width
    }

    #[getter]
    fn filter(&self) -> &'static str {
        self.inner.spec().filter.name()
    }

    /// (item index, reason) of the images that could not be decoded.
    #[getter]
    fn skipped(&self) -> Vec<(usize, String)> {
        self.inner.skipped().to_vec()
    }

    /// Whether large JPEGs were decoded at reduced scale.
    #[getter]
    fn reduce(&self) -> bool {
        self.inner.spec().reduce
    }

    #[getter]
    fn cache_path(&self) -> Option<PathBuf> {
        self.inner.cache_path().map(|p| p.to_path_buf())
    }

    /// All pixels as a read-only uint8 (N, H, W, 3) array viewing the bank (no copy); the
    /// array keeps the bank alive.
    fn array<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray4<u8>>> {
        let bank = slf.get().inner.clone();
        let s = bank.spec();
        let view = ArrayView4::from_shape((bank.len(), s.height, s.width, 3), bank.pixels())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        // SAFETY: the pixels live as long as `inner`, which the container (this object) holds;
        // they are never written after the build, and the array is made read-only.
        let arr = unsafe { PyArray4::borrow_from_array(&view, slf.into_any()) };
        arr.call_method1("setflags", (false,))?;
        Ok(arr)
    }

    /// The images of `items`, copied into a new uint8 (len(items), H, W, 3) array.
    fn gather<'py>(&self, py: Python<'py>, items: PyReadonlyArray1<'py, i64>) -> PyResult<Bound<'py, PyArray4<u8>>> {
        let idx = items.as_slice()?;
        let s = self.inner.spec();
        let out = PyArray4::<u8>::zeros(py, [idx.len(), s.height, s.width, 3], false);
        {
            let mut w = out.readwrite();
            let buf = w.as_slice_mut()?;
            let bank = self.inner.clone();
            py.allow_threads(|| bank.gather(idx, buf))?;
        }
        Ok(out)
    }
}

/// JPEG/PNG bytes to a uint8 (H, W, 3) array, as PIL's `Image.open(...).convert("RGB")`;
/// with `reduce_to = (height, width)` a large JPEG is decoded at reduced scale, as after PIL's
/// `im.draft("RGB", (width, height))`.
#[pyfunction]
#[pyo3(signature = (data, reduce_to=None, max_pixels=DEFAULT_MAX_PIXELS))]
fn decode_image<'py>(
    py: Python<'py>,
    data: &[u8],
    reduce_to: Option<(usize, usize)>,
    max_pixels: u64,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let options = DecodeOptions { max_pixels, reduce: reduce_to.is_some() };
    let size = reduce_to.map(|(h, w)| (w, h));
    let img = py.allow_threads(|| decode_rgb(data, size, options)).map_err(PyValueError::new_err)?;
    PyArray1::from_vec(py, img.data).reshape([img.height, img.width, 3])
}

/// Resize a uint8 (H, W, 3) array as PIL's `Image.resize((width, height), filter)`.
#[pyfunction]
#[pyo3(signature = (image, height, width, filter="bilinear"))]
fn resize_image<'py>(
    py: Python<'py>,
    image: PyReadonlyArray3<'py, u8>,
    height: usize,
    width: usize,
    filter: &str,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let f: Filter = filter.parse()?;
    let shape = image.shape().to_vec();
    let &[h, w, 3] = shape.as_slice() else {
        return Err(PyValueError::new_err(format!("expected an (H, W, 3) image, got shape {shape:?}")));
    };
    if height == 0 || width == 0 {
        return Err(PyValueError::new_err("the target size must be positive"));
    }
    // Checked before anything is allocated for it.
    let pixels = (height as u64).saturating_mul(width as u64);
    if pixels > DEFAULT_MAX_PIXELS {
        return Err(PyValueError::new_err(format!(
            "size: {height}x{width} = {pixels} pixels is above the limit of {DEFAULT_MAX_PIXELS}"
        )));
    }
    let src = image.as_slice()?;
    let mut out = Vec::new();
    let cannot = || pyo3::exceptions::PyMemoryError::new_err(format!("cannot allocate a {height}x{width} image"));
    let bytes = height.checked_mul(width).and_then(|p| p.checked_mul(3)).ok_or_else(cannot)?;
    out.try_reserve_exact(bytes).map_err(|_| cannot())?;
    out.resize(bytes, 0);
    py.allow_threads(|| crate::images::resize::resize_rgb(src, w, h, &mut out, width, height, f));
    PyArray1::from_vec(py, out).reshape([height, width, 3])
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyImageSource>()?;
    m.add_class::<PyImageBank>()?;
    m.add_function(wrap_pyfunction!(decode_image, m)?)?;
    m.add_function(wrap_pyfunction!(resize_image, m)?)?;
    Ok(())
}
