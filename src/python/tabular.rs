//! Bindings: delimited interaction files, id lists, and string ids in Arrow's layout.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::interactions::{given_id_maps, HeldIds, PyInteractions};
use crate::data::{Duplicates, IdKind, Unknown};
use crate::io::tabular::{self, Col, CsvOptions, CsvReport, IdColumn, IdSet, IdType};

/// String ids as Arrow lays them out: id k is the UTF-8 bytes `data[offsets[k]..offsets[k+1]]`.
/// A pyarrow string/binary column reaches the core through it without one Python str per id
/// (165k ASOS users, 31M H&M transactions). Checked (bounds, UTF-8) each time it is used.
#[pyclass(name = "Utf8Column", module = "fashionrec._core", frozen)]
pub struct PyUtf8Column {
    pub offsets: Py<PyArray1<i64>>,
    pub data: Py<PyArray1<u8>>,
}

#[pymethods]
impl PyUtf8Column {
    #[new]
    fn new(offsets: Bound<'_, PyArray1<i64>>, data: Bound<'_, PyArray1<u8>>) -> PyResult<Self> {
        if offsets.len()? == 0 {
            return Err(PyValueError::new_err("offsets must hold n + 1 entries (at least one)"));
        }
        Ok(PyUtf8Column { offsets: offsets.unbind(), data: data.unbind() })
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.offsets.bind(py).len()?.saturating_sub(1))
    }

    /// The ids as a list of str (for inspection; the core never needs it).
    fn to_list(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let (o, d) = (self.offsets.bind(py).try_readonly()?, self.data.bind(py).try_readonly()?);
        let mut v = Vec::new();
        utf8_views(o.as_slice()?, d.as_slice()?, "ids", &mut v)?;
        Ok(v.into_iter().map(str::to_string).collect())
    }
}

/// `&str` views of an Arrow-layout column; bad offsets or bytes name the column and row.
pub(crate) fn utf8_views<'a>(offsets: &[i64], data: &'a [u8], column: &str, out: &mut Vec<&'a str>) -> PyResult<()> {
    if offsets.is_empty() {
        return Err(PyValueError::new_err(format!("column '{column}': offsets must hold n + 1 entries")));
    }
    out.reserve(offsets.len().saturating_sub(1));
    for (row, (&a, &b)) in offsets.iter().zip(offsets.iter().skip(1)).enumerate() {
        let Some(bytes) = usize::try_from(a).ok().zip(usize::try_from(b).ok()).and_then(|(a, b)| data.get(a..b)) else {
            return Err(PyValueError::new_err(format!(
                "column '{column}', row {row}: offsets {a}..{b} are out of range for {} bytes",
                data.len()
            )));
        };
        match std::str::from_utf8(bytes) {
            Ok(s) => out.push(s),
            Err(_) => {
                return Err(PyValueError::new_err(format!(
                    "column '{column}', row {row}: the id bytes {:?} are not valid UTF-8",
                    String::from_utf8_lossy(bytes)
                )))
            }
        }
    }
    Ok(())
}

fn column(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Col> {
    if let Ok(p) = ob.extract::<usize>() {
        return Ok(Col::Pos(p));
    }
    if let Ok(n) = ob.extract::<String>() {
        return Ok(Col::Name(n));
    }
    Err(PyTypeError::new_err(format!("{what} must be a column name (str) or a 0-based position (int >= 0)")))
}

fn id_set(ob: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<IdSet>> {
    let Some(ob) = ob else { return Ok(None) };
    let held = HeldIds::extract(ob, what)?;
    let mut strs = Vec::new();
    Ok(Some(IdSet::new(held.raw(&mut strs)?)))
}

fn kind_name(k: Option<IdKind>) -> &'static str {
    match k {
        Some(IdKind::Int) => "int",
        Some(IdKind::Str) => "str",
        None => "",
    }
}

fn report_dict<'py>(py: Python<'py>, r: &CsvReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("rows", r.rows)?;
    d.set_item("blank_lines", r.blank_lines)?;
    d.set_item("dropped_min_value", r.dropped_min_value)?;
    d.set_item("dropped_values", r.dropped_values)?;
    d.set_item("dropped_items", r.dropped_items)?;
    d.set_item("dropped_min_item_rows", r.dropped_min_item_rows)?;
    d.set_item("items_below_min_rows", r.items_below_min_rows)?;
    d.set_item("dropped_unknown", r.dropped_unknown)?;
    d.set_item("kept", r.kept)?;
    d.set_item("pairs", r.pairs)?;
    d.set_item("user_type", kind_name(r.user_kind))?;
    d.set_item("item_type", kind_name(r.item_kind))?;
    d.set_item("parallel", r.parallel)?;
    Ok(d)
}

/// Reads a delimited interaction file in Rust; returns (interactions, report dict).
#[pyfunction]
#[pyo3(signature = (path, user_col, item_col, value_col=None, header=true, delimiter=",", user_type="auto", item_type="auto", min_value=None, drop_values=Vec::new(), keep_items=None, drop_items=None, min_item_rows=None, like=None, user_ids=None, item_ids=None, unknown="error", duplicates="sum"))]
#[allow(clippy::too_many_arguments)]
fn read_interactions_csv<'py>(
    py: Python<'py>,
    path: PathBuf,
    user_col: &Bound<'py, PyAny>,
    item_col: &Bound<'py, PyAny>,
    value_col: Option<&Bound<'py, PyAny>>,
    header: bool,
    delimiter: &str,
    user_type: &str,
    item_type: &str,
    min_value: Option<f64>,
    drop_values: Vec<f64>,
    keep_items: Option<&Bound<'py, PyAny>>,
    drop_items: Option<&Bound<'py, PyAny>>,
    min_item_rows: Option<usize>,
    like: Option<PyRef<'py, PyInteractions>>,
    user_ids: Option<&Bound<'py, PyAny>>,
    item_ids: Option<&Bound<'py, PyAny>>,
    unknown: &str,
    duplicates: &str,
) -> PyResult<(PyInteractions, Bound<'py, PyDict>)> {
    let delim = match delimiter.as_bytes() {
        [b] if b.is_ascii() => *b,
        _ => return Err(PyValueError::new_err(format!("delimiter must be one ASCII character, not {delimiter:?}"))),
    };
    if like.is_some() && min_item_rows.is_some() {
        return Err(PyValueError::new_err(
            "min_item_rows cannot be used with like=: it would change the training set's item ids",
        ));
    }
    let opts = CsvOptions {
        delimiter: delim,
        header,
        user: column(user_col, "user_col")?,
        item: column(item_col, "item_col")?,
        value: value_col.map(|c| column(c, "value_col")).transpose()?,
        user_type: user_type.parse()?,
        item_type: item_type.parse()?,
        min_value,
        drop_values,
        keep_items: id_set(keep_items, "keep_items")?,
        drop_items: id_set(drop_items, "drop_items")?,
        min_item_rows,
    };
    let (dup, unknown): (Duplicates, Unknown) = (duplicates.parse()?, unknown.parse()?);
    let (user_map, item_map) = given_id_maps(like.as_deref(), user_ids, item_ids)?;
    let (x, report) =
        py.allow_threads(|| tabular::read_interactions(&path, &opts, user_map, item_map, unknown, dup))?;
    Ok((PyInteractions { inner: Arc::new(x) }, report_dict(py, &report)?))
}

/// One id per line: an int64 array or a list of str.
#[pyfunction]
#[pyo3(signature = (path, id_type="auto", header=false))]
fn read_id_list<'py>(py: Python<'py>, path: PathBuf, id_type: &str, header: bool) -> PyResult<Bound<'py, PyAny>> {
    let t: IdType = id_type.parse()?;
    let ids = py.allow_threads(|| tabular::read_id_list(&path, t, header))?;
    Ok(match ids {
        IdColumn::Int(v) => PyArray1::from_vec(py, v).into_any(),
        IdColumn::Str(s) => PyList::new(py, s.iter().collect::<Vec<_>>())?.into_any(),
    })
}

/// Integer columns as CSV (synthetic rating files for tests and benchmarks).
#[pyfunction]
fn write_int_csv(py: Python<'_>, path: PathBuf, header: Vec<String>, columns: Vec<PyReadonlyArray1<'_, i64>>) -> PyResult<()> {
    let slices = columns.iter().map(|c| c.as_slice()).collect::<Result<Vec<_>, _>>()?;
    let names: Vec<&str> = header.iter().map(String::as_str).collect();
    py.allow_threads(|| tabular::write_int_csv(&path, &names, &slices))?;
    Ok(())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyUtf8Column>()?;
    m.add_function(wrap_pyfunction!(read_interactions_csv, m)?)?;
    m.add_function(wrap_pyfunction!(read_id_list, m)?)?;
    m.add_function(wrap_pyfunction!(write_int_csv, m)?)?;
    Ok(())
}
