//! `_core.FeatureTable` and `_core.SideInfo`: side data for `fit`, already aligned to the
//! interaction indices by the Python layer (`fashionrec/_side.py`).

use std::sync::Arc;

use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::images::PyImageBank;
use crate::data::{CategoricalColumn, DenseMatrix, FeatureTable, ItemImages, SideInfo};

#[pyclass(name = "FeatureTable", module = "fashionrec._core", frozen)]
pub struct PyFeatureTable {
    pub inner: Arc<FeatureTable>,
}

#[pymethods]
impl PyFeatureTable {
    /// `n_rows` rows: categorical columns as (name, values as str), and an optional float32
    /// (n_rows, k) block of continuous columns named `names`.
    #[new]
    #[pyo3(signature = (n_rows, categorical, continuous=None, names=Vec::new()))]
    fn new(
        py: Python<'_>,
        n_rows: usize,
        categorical: Vec<(String, Vec<String>)>,
        continuous: Option<PyReadonlyArray2<'_, f32>>,
        names: Vec<String>,
    ) -> PyResult<Self> {
        let dense = match &continuous {
            Some(a) => {
                let &[rows, cols] = a.shape() else {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!("continuous must be 2-D, got shape {:?}", a.shape())));
                };
                let data = a.as_slice()?.to_vec();
                Some(py.allow_threads(|| DenseMatrix::new(rows, cols, data, names))?)
            }
            None => None,
        };
        let cats = categorical.into_iter().map(|(name, values)| CategoricalColumn { name, values }).collect();
        Ok(PyFeatureTable { inner: Arc::new(FeatureTable::new(n_rows, cats, dense)?) })
    }

    #[getter]
    fn n_rows(&self) -> usize {
        self.inner.n_rows
    }

    fn column_names(&self) -> Vec<String> {
        self.inner.column_names()
    }
}

#[pyclass(name = "SideInfo", module = "fashionrec._core", frozen)]
#[derive(Clone, Default)]
pub struct PySideInfo {
    pub inner: SideInfo,
}

#[pymethods]
impl PySideInfo {
    /// `image_rows[i]`: the bank row of item index i (None: the same index).
    #[new]
    #[pyo3(signature = (images=None, image_rows=None, item_features=None, user_features=None, categories=None))]
    fn new(
        images: Option<PyRef<'_, PyImageBank>>,
        image_rows: Option<PyReadonlyArray1<'_, i64>>,
        item_features: Option<PyRef<'_, PyFeatureTable>>,
        user_features: Option<PyRef<'_, PyFeatureTable>>,
        categories: Option<PyReadonlyArray1<'_, i64>>,
    ) -> PyResult<Self> {
        let images = match images {
            Some(b) => Some(ItemImages::new(b.inner.clone(), image_rows.map(|r| r.as_slice().map(<[i64]>::to_vec)).transpose()?)?),
            None => None,
        };
        Ok(PySideInfo {
            inner: SideInfo {
                images,
                item_features: item_features.map(|t| t.inner.clone()),
                user_features: user_features.map(|t| t.inner.clone()),
                categories: categories.map(|c| c.as_slice().map(|s| Arc::new(s.to_vec()))).transpose()?,
            },
        })
    }

    fn parts(&self) -> Vec<&'static str> {
        self.inner.names_present()
    }
}
