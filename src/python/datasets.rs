//! Bindings: the DVBPR reader and writer.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyDict;

use super::images::PyImageSource;
use super::interactions::PyInteractions;
use crate::images::ImageSource;
use crate::io::dvbpr;

/// Read a DVBPR file: a dict with train, validation, test (Interactions), merged (repeats
/// merged per split), n_users, n_items, images (ImageSource), categories (int64 array or
/// None), item_asins (list or None).
#[pyfunction]
fn read_dvbpr(py: Python<'_>, path: PathBuf) -> PyResult<Bound<'_, PyDict>> {
    let (data, parts, merged) = py.allow_threads(|| -> crate::Result<_> {
        let data = dvbpr::read(&path)?;
        let (parts, merged) = data.layout.interactions()?;
        Ok((data, parts, merged))
    })?;
    let d = PyDict::new(py);
    for (name, x) in ["train", "validation", "test"].iter().zip(parts) {
        d.set_item(name, PyInteractions { inner: Arc::new(x) })?;
    }
    d.set_item("merged", merged.to_vec())?;
    let layout = data.layout;
    d.set_item("n_users", layout.n_users)?;
    d.set_item("n_items", layout.n_items)?;
    d.set_item("categories", layout.categories.map(|c| PyArray1::from_vec(py, c)))?;
    d.set_item("item_asins", layout.item_asins)?;
    let source = ImageSource::spans(data.path, data.map, layout.images)?;
    d.set_item("images", PyImageSource { inner: Arc::new(source) })?;
    Ok(d)
}

/// Write a DVBPR file (the real layout) from three Interactions over one id space, one
/// encoded image per item, optional category indices (-1 = none, written one-hot) and ASINs.
/// Returns the file size.
#[pyfunction]
#[pyo3(signature = (path, train, validation, test, images, categories=None, item_asins=None))]
#[allow(clippy::too_many_arguments)]
fn write_dvbpr(
    py: Python<'_>,
    path: PathBuf,
    train: PyRef<'_, PyInteractions>,
    validation: PyRef<'_, PyInteractions>,
    test: PyRef<'_, PyInteractions>,
    images: Vec<PyBackedBytes>,
    categories: Option<PyReadonlyArray1<'_, i64>>,
    item_asins: Option<Vec<String>>,
) -> PyResult<u64> {
    let refs: Vec<&[u8]> = images.iter().map(|b| &b[..]).collect();
    let cats = categories.as_ref().map(|c| c.as_slice()).transpose()?;
    let (a, b, c) = (train.inner.clone(), validation.inner.clone(), test.inner.clone());
    let input = dvbpr::WriteInput { splits: [&a, &b, &c], images: &refs, categories: cats, item_asins: item_asins.as_deref() };
    Ok(py.allow_threads(|| dvbpr::write(&path, &input))?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_dvbpr, m)?)?;
    m.add_function(wrap_pyfunction!(write_dvbpr, m)?)?;
    Ok(())
}
