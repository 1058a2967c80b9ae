//! `_core.Interactions`: the core `Interactions` behind an `Arc`, so splits, models and the
//! Python objects share one copy.

use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyList;

use crate::data::idmap::{display_raw, first_repeat};
use crate::data::{Columns, Duplicates, IdKind, IdMap, Interactions, RawIds, Unknown};

#[pyclass(name = "Interactions", module = "fashionrec._core", frozen)]
pub struct PyInteractions {
    pub inner: Arc<Interactions>,
}

/// Three arrays of a sparse matrix (CSR: indptr, indices, values; COO: rows, cols, values).
type Sparse<'py, T> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<T>>, Option<Bound<'py, PyArray1<f32>>>);

/// Raw ids held for the duration of a call: an int64 numpy array, a list of str, or a
/// `Utf8Column` (string ids in Arrow's offsets + bytes layout, no Python str per id).
pub(crate) enum HeldIds<'py> {
    Int(PyReadonlyArray1<'py, i64>),
    Str(Vec<PyBackedStr>),
    Utf8 { offsets: PyReadonlyArray1<'py, i64>, data: PyReadonlyArray1<'py, u8>, column: String },
}

impl<'py> HeldIds<'py> {
    pub fn extract(ob: &Bound<'py, PyAny>, column: &str) -> PyResult<Self> {
        if let Ok(a) = ob.extract::<PyReadonlyArray1<'py, i64>>() {
            return Ok(HeldIds::Int(a));
        }
        if let Ok(c) = ob.downcast::<super::tabular::PyUtf8Column>() {
            let c = c.get();
            let py = ob.py();
            return Ok(HeldIds::Utf8 {
                offsets: c.offsets.bind(py).try_readonly()?,
                data: c.data.bind(py).try_readonly()?,
                column: column.to_string(),
            });
        }
        match ob.extract::<Vec<PyBackedStr>>() {
            Ok(v) => Ok(HeldIds::Str(v)),
            Err(_) => Err(PyTypeError::new_err(format!(
                "column '{column}': ids must be a 1-D int64 array, a list of str or a Utf8Column"
            ))),
        }
    }

    /// Borrowed view; `strs` keeps the &str slices alive.
    pub fn raw<'a>(&'a self, strs: &'a mut Vec<&'a str>) -> PyResult<RawIds<'a>> {
        match self {
            HeldIds::Int(a) => Ok(RawIds::Int(a.as_slice()?)),
            HeldIds::Str(v) => {
                strs.extend(v.iter().map(|s| &**s));
                Ok(RawIds::Str(strs))
            }
            HeldIds::Utf8 { offsets, data, column } => {
                super::tabular::utf8_views(offsets.as_slice()?, data.as_slice()?, column, strs)?;
                Ok(RawIds::Str(strs))
            }
        }
    }
}

/// Ids in index order: int64 numpy array or list of str.
pub(crate) fn ids_to_py<'py>(py: Python<'py>, map: &IdMap) -> PyResult<Bound<'py, PyAny>> {
    // String ids for a string map, else integers (a range's or the map's own).
    match map.str_ids() {
        Some(ids) => Ok(PyList::new(py, ids)?.into_any()),
        None => Ok(PyArray1::from_vec(py, map.int_ids().unwrap_or_default()).into_any()),
    }
}

/// Indices of raw ids in `map`; an unknown id is a ValueError naming `column` and the row.
pub(crate) fn index_of<'py>(
    py: Python<'py>,
    map: &IdMap,
    ids: &Bound<'py, PyAny>,
    arg: &str,
    what: &str,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let held = HeldIds::extract(ids, arg)?;
    let mut strs = Vec::new();
    let raw = held.raw(&mut strs)?;
    let idx = py.allow_threads(|| map.index_arg(raw, arg, what))?;
    Ok(PyArray1::from_vec(py, idx.into_iter().map(|i| i as i64).collect()))
}

/// An id map from a list of catalogue ids (sorted; an id listed twice is an error).
pub(crate) fn catalogue(ids: &Bound<'_, PyAny>, what: &str) -> PyResult<IdMap> {
    let held = HeldIds::extract(ids, what)?;
    let mut strs = Vec::new();
    let raw = held.raw(&mut strs)?;
    if raw.is_empty() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!("{what} is empty")));
    }
    // A catalogue lists each id once (as an id-list file must): a repeat is a mistake upstream.
    if let Some((first, second)) = first_repeat(raw) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{what}: id {} appears twice (positions {first} and {second})",
            display_raw(raw, second)
        )));
    }
    Ok(IdMap::build(raw))
}

/// Optional (users, items) id maps.
type GivenMaps = (Option<Arc<IdMap>>, Option<Arc<IdMap>>);

/// The id maps a new Interactions takes, per side: `like`'s, else a catalogue's (sorted,
/// an id listed twice is an error), else None (built from the data).
pub(crate) fn given_id_maps(
    like: Option<&PyInteractions>,
    user_ids: Option<&Bound<'_, PyAny>>,
    item_ids: Option<&Bound<'_, PyAny>>,
) -> PyResult<GivenMaps> {
    let side = |from_like: Option<&Arc<IdMap>>, ids: Option<&Bound<'_, PyAny>>, what: &str| -> PyResult<Option<Arc<IdMap>>> {
        match (from_like, ids) {
            (Some(m), _) => Ok(Some(m.clone())),
            (None, Some(ids)) => Ok(Some(Arc::new(catalogue(ids, what)?))),
            _ => Ok(None),
        }
    };
    let maps = like.map(|l| l.inner.ids());
    Ok((side(maps.map(|m| &m.users), user_ids, "user_ids")?, side(maps.map(|m| &m.items), item_ids, "item_ids")?))
}

fn opt_slice<'a>(v: &'a Option<PyReadonlyArray1<'_, f32>>) -> PyResult<Option<&'a [f32]>> {
    v.as_ref().map(|a| a.as_slice().map_err(PyErr::from)).transpose()
}

#[pymethods]
impl PyInteractions {
    /// From 0-based int64 index arrays.
    #[staticmethod]
    #[pyo3(signature = (users, items, values=None, n_users=None, n_items=None, duplicates="sum", user_col="users", item_col="items", value_col="values"))]
    #[allow(clippy::too_many_arguments)]
    fn from_indices(
        py: Python<'_>,
        users: PyReadonlyArray1<'_, i64>,
        items: PyReadonlyArray1<'_, i64>,
        values: Option<PyReadonlyArray1<'_, f32>>,
        n_users: Option<usize>,
        n_items: Option<usize>,
        duplicates: &str,
        user_col: &str,
        item_col: &str,
        value_col: &str,
    ) -> PyResult<Self> {
        let dup: Duplicates = duplicates.parse()?;
        let (u, i, v) = (users.as_slice()?, items.as_slice()?, opt_slice(&values)?);
        let cols = Columns { user: user_col, item: item_col, value: value_col };
        let x = py.allow_threads(|| Interactions::from_indices(u, i, v, n_users, n_items, dup, cols))?;
        Ok(PyInteractions { inner: Arc::new(x) })
    }

    /// From raw ids (int64 arrays or lists of str). Each side's id map comes from `like`
    /// (another Interactions), else from `user_ids` / `item_ids` (a catalogue), else from the
    /// data. Returns (interactions, rows dropped as unknown).
    #[staticmethod]
    #[pyo3(signature = (users, items, values=None, like=None, user_ids=None, item_ids=None, unknown="error", duplicates="sum", user_col="user", item_col="item", value_col="value"))]
    #[allow(clippy::too_many_arguments)]
    fn from_ids<'py>(
        py: Python<'py>,
        users: &Bound<'py, PyAny>,
        items: &Bound<'py, PyAny>,
        values: Option<PyReadonlyArray1<'py, f32>>,
        like: Option<PyRef<'py, PyInteractions>>,
        user_ids: Option<&Bound<'py, PyAny>>,
        item_ids: Option<&Bound<'py, PyAny>>,
        unknown: &str,
        duplicates: &str,
        user_col: &str,
        item_col: &str,
        value_col: &str,
    ) -> PyResult<(Self, usize)> {
        let (dup, unknown): (Duplicates, Unknown) = (duplicates.parse()?, unknown.parse()?);
        let (hu, hi) = (HeldIds::extract(users, user_col)?, HeldIds::extract(items, item_col)?);
        let (mut su, mut si) = (Vec::new(), Vec::new());
        let (ru, ri) = (hu.raw(&mut su)?, hi.raw(&mut si)?);
        let v = opt_slice(&values)?;
        let (user_map, item_map) = given_id_maps(like.as_deref(), user_ids, item_ids)?;
        let cols = Columns { user: user_col, item: item_col, value: value_col };
        let (x, dropped) =
            py.allow_threads(|| Interactions::from_raw(ru, ri, v, user_map, item_map, unknown, dup, cols))?;
        Ok((PyInteractions { inner: Arc::new(x) }, dropped))
    }

    #[getter]
    fn n_users(&self) -> usize {
        self.inner.n_users()
    }

    #[getter]
    fn n_items(&self) -> usize {
        self.inner.n_items()
    }

    #[getter]
    fn nnz(&self) -> usize {
        self.inner.nnz()
    }

    fn __len__(&self) -> usize {
        self.inner.nnz()
    }

    fn user_ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ids_to_py(py, &self.inner.ids().users)
    }

    fn item_ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ids_to_py(py, &self.inner.ids().items)
    }

    /// Indices of raw ids given as the argument `arg` of a call (named by an unknown id's error).
    #[pyo3(signature = (ids, arg="user_index(): ids"))]
    fn user_index<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>, arg: &str) -> PyResult<Bound<'py, PyArray1<i64>>> {
        index_of(py, &self.inner.ids().users, ids, arg, "user")
    }

    #[pyo3(signature = (ids, arg="item_index(): ids"))]
    fn item_index<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>, arg: &str) -> PyResult<Bound<'py, PyArray1<i64>>> {
        index_of(py, &self.inner.ids().items, ids, arg, "item")
    }

    /// "int" or "str", per side.
    fn id_kinds(&self) -> (&'static str, &'static str) {
        let k = |m: &IdMap| if m.kind() == IdKind::Str { "str" } else { "int" };
        (k(&self.inner.ids().users), k(&self.inner.ids().items))
    }

    /// (indptr, indices, values or None) of the CSR by user, as new arrays.
    fn csr<'py>(
        &self,
        py: Python<'py>,
    ) -> Sparse<'py, i32> {
        let c = self.inner.by_user();
        (
            PyArray1::from_iter(py, c.indptr.iter().map(|&x| x as i64)),
            PyArray1::from_iter(py, c.indices.iter().map(|&x| x as i32)),
            c.values.as_ref().map(|v| PyArray1::from_slice(py, v)),
        )
    }

    /// (user indices, item indices, values or None), sorted by user then item.
    fn coo<'py>(
        &self,
        py: Python<'py>,
    ) -> Sparse<'py, i64> {
        let (u, i, v) = py.allow_threads(|| self.inner.to_coo());
        (
            PyArray1::from_iter(py, u.into_iter().map(i64::from)),
            PyArray1::from_iter(py, i.into_iter().map(i64::from)),
            v.map(|v| PyArray1::from_vec(py, v)),
        )
    }

    fn item_counts<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_iter(py, self.inner.item_counts().into_iter().map(i64::from))
    }

    /// Indices of the users with at least one interaction.
    fn active_users<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_iter(py, self.inner.active_users().into_iter().map(i64::from))
    }

    /// Item indices of one user, sorted.
    fn user_items<'py>(&self, py: Python<'py>, user: usize) -> PyResult<Bound<'py, PyArray1<i64>>> {
        if user >= self.inner.n_users() {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "user index {user} out of range for {} users",
                self.inner.n_users()
            )));
        }
        Ok(PyArray1::from_iter(py, self.inner.user_items(user).iter().map(|&i| i as i64)))
    }

    fn has_values(&self) -> bool {
        self.inner.by_user().values.is_some()
    }

    fn same_ids(&self, other: PyRef<'_, PyInteractions>) -> bool {
        self.inner.ids().same_as(other.inner.ids())
    }

    /// The same interactions over id maps grown by the ids of `extra_users` / `extra_items`
    /// that are new (appended in order; existing ids keep their indices): a catalogue with
    /// items that have side data but no interaction.
    #[pyo3(signature = (extra_users=None, extra_items=None))]
    fn with_extra_ids(&self, extra_users: Option<&Bound<'_, PyAny>>, extra_items: Option<&Bound<'_, PyAny>>) -> PyResult<PyInteractions> {
        let ids = self.inner.ids();
        let grow = |map: &IdMap, extra: Option<&Bound<'_, PyAny>>, what: &str| -> PyResult<IdMap> {
            let Some(ob) = extra else { return Ok(map.clone()) };
            let held = HeldIds::extract(ob, what)?;
            let mut strs = Vec::new();
            let raw = held.raw(&mut strs)?;
            Ok(map.extended(raw, what)?)
        };
        let users = grow(&ids.users, extra_users, "user ids")?;
        let items = grow(&ids.items, extra_items, "item ids")?;
        let grown = crate::data::IdMaps::new(users, items);
        Ok(PyInteractions { inner: Arc::new(self.inner.with_ids(grown)?) })
    }

    /// The same interactions over `like`'s id maps, which must extend this one's.
    fn with_ids_of(&self, like: PyRef<'_, PyInteractions>) -> PyResult<PyInteractions> {
        if self.inner.ids().same_as(like.inner.ids()) {
            return Ok(PyInteractions { inner: self.inner.clone() });
        }
        Ok(PyInteractions { inner: Arc::new(self.inner.with_ids(like.inner.ids().clone())?) })
    }

    fn __repr__(&self) -> String {
        format!(
            "<Interactions: {} users x {} items, {} interactions>",
            self.inner.n_users(),
            self.inner.n_items(),
            self.inner.nnz()
        )
    }
}
