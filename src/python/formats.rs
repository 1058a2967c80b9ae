//! Bindings: McAuley image features (.b), Amazon metadata, and the literal parser.

use std::os::raw::c_int;
use std::path::PathBuf;

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyList, PySet, PyString, PyTuple};
use rustc_hash::FxHashMap;

use crate::io::amazon::{self, CompatibilityPairs, Format, OnError, ReadOptions, RELATIONS};
use crate::io::features::ImageFeatures;
use crate::io::pyliteral::{self, Dialect, Literal};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyImageFeatures>()?;
    m.add_function(wrap_pyfunction!(parse_literal, m)?)?;
    m.add_function(wrap_pyfunction!(read_amazon_metadata, m)?)?;
    m.add_function(wrap_pyfunction!(compatibility_pairs, m)?)?;
    Ok(())
}

// -- literals ----------------------------------------------------------------------------

fn literal_to_py<'py>(py: Python<'py>, v: Literal) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Literal::None => py.None().into_bound(py),
        Literal::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Literal::Int(i) => i.into_pyobject(py)?.into_any(),
        Literal::BigInt(s) => py.get_type::<PyInt>().call1((s,))?,
        Literal::Float(f) => PyFloat::new(py, f).into_any(),
        Literal::Str(s) => PyString::new(py, &s).into_any(),
        Literal::Bytes(b) => PyBytes::new(py, &b).into_any(),
        Literal::List(items) => {
            PyList::new(py, items.into_iter().map(|x| literal_to_py(py, x)).collect::<PyResult<Vec<_>>>()?)?.into_any()
        }
        Literal::Tuple(items) => {
            PyTuple::new(py, items.into_iter().map(|x| literal_to_py(py, x)).collect::<PyResult<Vec<_>>>()?)?.into_any()
        }
        Literal::Set(items) => {
            PySet::new(py, items.into_iter().map(|x| literal_to_py(py, x)).collect::<PyResult<Vec<_>>>()?)?.into_any()
        }
        Literal::Dict(pairs) => {
            let d = PyDict::new(py);
            for (k, v) in pairs {
                d.set_item(literal_to_py(py, k)?, literal_to_py(py, v)?)?;
            }
            d.into_any()
        }
    })
}

fn dialect(name: &str) -> PyResult<Dialect> {
    match name {
        "python" => Ok(Dialect::Python),
        "json" => Ok(Dialect::Json),
        _ => Err(PyValueError::new_err(format!("dialect must be 'python' or 'json', not {}", crate::error::quote(name)))),
    }
}

/// One Python literal or JSON value (str or bytes) as Python objects; never `eval`.
/// A malformed text is a ValueError "byte N: reason".
#[pyfunction]
#[pyo3(signature = (text, dialect="python"))]
fn parse_literal<'py>(py: Python<'py>, text: &Bound<'py, PyAny>, dialect: &str) -> PyResult<Bound<'py, PyAny>> {
    let d = self::dialect(dialect)?;
    let value = if let Ok(b) = text.downcast::<PyBytes>() {
        pyliteral::parse(b.as_bytes(), d)
    } else if let Ok(s) = text.downcast::<PyString>() {
        pyliteral::parse(s.to_str()?.as_bytes(), d)
    } else {
        return Err(PyTypeError::new_err("text must be str or bytes"));
    };
    literal_to_py(py, value.map_err(|e| PyValueError::new_err(e.to_string()))?)
}

// -- Amazon metadata ---------------------------------------------------------------------

/// Python str objects for repeated text (ASINs, category names), made once each. ASINs
/// (10 bytes) are keyed by value, without a heap key or a memcmp call.
struct Interned<'py> {
    py: Python<'py>,
    asins: FxHashMap<[u8; 10], Bound<'py, PyString>>,
    other: FxHashMap<Box<str>, Bound<'py, PyString>>,
}

impl<'py> Interned<'py> {
    fn get(&mut self, s: &str) -> Bound<'py, PyString> {
        let py = self.py;
        if let Ok(key) = <[u8; 10]>::try_from(s.as_bytes()) {
            return self.asins.entry(key).or_insert_with(|| PyString::new(py, s)).clone();
        }
        if let Some(v) = self.other.get(s) {
            return v.clone();
        }
        let v = PyString::new(py, s);
        self.other.insert(s.into(), v.clone());
        v
    }
    fn list<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a str>) -> PyResult<Bound<'py, PyList>> {
        let objs: Vec<Bound<'py, PyString>> = items.map(|s| self.get(s)).collect();
        PyList::new(self.py, objs)
    }
}

fn opt_str<'py>(py: Python<'py>, s: Option<String>) -> Bound<'py, PyAny> {
    match s {
        Some(s) => PyString::new(py, &s).into_any(),
        None => py.None().into_bound(py),
    }
}

/// Pauses Python's cyclic garbage collector while millions of lists and dicts are made
/// (none can form a cycle; otherwise each batch of allocations triggers a scan of all of
/// them, which cost more than the whole parse), and restores its state on drop.
struct GcPause<'py> {
    gc: Option<Bound<'py, PyModule>>,
}

impl<'py> GcPause<'py> {
    fn new(py: Python<'py>) -> PyResult<Self> {
        let gc = py.import("gc")?;
        if gc.call_method0("isenabled")?.extract::<bool>()? {
            gc.call_method0("disable")?;
            return Ok(GcPause { gc: Some(gc) });
        }
        Ok(GcPause { gc: None })
    }
}

impl Drop for GcPause<'_> {
    fn drop(&mut self) {
        if let Some(gc) = &self.gc {
            let _ = gc.call_method0("enable");
        }
    }
}

/// The columns of a metadata file: a dict of lists (and a float64 `price` array), plus
/// `skipped` [(line, message)], `format` and `lines`.
#[pyfunction]
#[pyo3(signature = (path, format="auto", on_error="raise", description=false))]
fn read_amazon_metadata<'py>(
    py: Python<'py>,
    path: PathBuf,
    format: &str,
    on_error: &str,
    description: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = ReadOptions { format: format.parse::<Format>()?, on_error: on_error.parse::<OnError>()?, description };
    let meta = py.allow_threads(|| amazon::read_metadata(&path, opts))?;
    let n = meta.products.len();
    let _gc = GcPause::new(py)?;
    let mut intern = Interned { py, asins: FxHashMap::default(), other: FxHashMap::default() };
    let mut asin = Vec::with_capacity(n);
    let mut title = Vec::with_capacity(n);
    let mut brand = Vec::with_capacity(n);
    let mut price = Vec::with_capacity(n);
    let mut categories = Vec::with_capacity(n);
    let mut related: [Vec<Bound<'py, PyList>>; 4] = Default::default();
    let mut sales_rank = Vec::with_capacity(n);
    let mut main_cat = Vec::with_capacity(n);
    let mut image_url = Vec::with_capacity(n);
    let mut descr = Vec::with_capacity(if description { n } else { 0 });
    let mut line = Vec::with_capacity(n);
    // Consumed record by record, so the Rust copy shrinks as the Python one grows.
    for p in meta.products {
        line.push(p.line as i64);
        asin.push(intern.get(&p.asin));
        title.push(opt_str(py, p.title));
        brand.push(opt_str(py, p.brand));
        price.push(p.price);
        let paths = p.categories.iter().map(|c| intern.list(c.iter().map(String::as_str))).collect::<PyResult<Vec<_>>>()?;
        categories.push(PyList::new(py, paths)?);
        for (out, list) in related.iter_mut().zip(&p.related) {
            out.push(intern.list(list.iter())?);
        }
        let ranks = PyDict::new(py);
        for (cat, rank) in &p.sales_rank {
            ranks.set_item(intern.get(cat), rank)?;
        }
        sales_rank.push(ranks);
        main_cat.push(opt_str(py, p.main_cat));
        image_url.push(opt_str(py, p.image_url));
        if description {
            descr.push(opt_str(py, p.description));
        }
    }
    let columns = PyDict::new(py);
    columns.set_item("asin", PyList::new(py, asin)?)?;
    columns.set_item("title", PyList::new(py, title)?)?;
    columns.set_item("brand", PyList::new(py, brand)?)?;
    columns.set_item("price", PyArray1::from_vec(py, price))?;
    columns.set_item("categories", PyList::new(py, categories)?)?;
    for (name, lists) in RELATIONS.iter().zip(related) {
        columns.set_item(*name, PyList::new(py, lists)?)?;
    }
    columns.set_item("sales_rank", PyList::new(py, sales_rank)?)?;
    columns.set_item("main_cat", PyList::new(py, main_cat)?)?;
    columns.set_item("image_url", PyList::new(py, image_url)?)?;
    if description {
        columns.set_item("description", PyList::new(py, descr)?)?;
    }
    let out = PyDict::new(py);
    out.set_item("columns", columns)?;
    out.set_item("line", PyArray1::from_vec(py, line))?;
    let skipped: Vec<(u64, String)> = meta.skipped.into_iter().map(|s| (s.line, s.message)).collect();
    out.set_item("skipped", skipped)?;
    out.set_item(
        "format",
        match meta.dialect {
            Some(Dialect::Python) => Some("python"),
            Some(Dialect::Json) => Some("json"),
            None => None,
        },
    )?;
    out.set_item("lines", meta.lines)?;
    Ok(out)
}

/// One cell of a relation column: a list/tuple of str; None or NaN (pandas' missing) is empty.
fn for_each_asin(cell: &Bound<'_, PyAny>, column: &str, row: usize, mut f: impl FnMut(&str)) -> PyResult<()> {
    if cell.is_none() || cell.downcast::<PyFloat>().is_ok_and(|x| x.value().is_nan()) {
        return Ok(());
    }
    if cell.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!("column '{column}', row {row}: a str, expected a list of ASINs")));
    }
    let iter = cell
        .try_iter()
        .map_err(|_| PyTypeError::new_err(format!("column '{column}', row {row}: {} is not a list of ASINs", cell.get_type())))?;
    for (k, item) in iter.enumerate() {
        let item = item?;
        let s = item.downcast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!("column '{column}', row {row}, item {k}: {} is not a str ASIN", item.get_type()))
        })?;
        f(s.to_str()?);
    }
    Ok(())
}

/// (i, j, counts) of [`compatibility_pairs`].
type IndexPairs<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>, Bound<'py, PyDict>);

/// (i, j, counts): edges record -> related ASIN as indices into `asins` (see
/// `amazon::CompatibilityPairs`). `related` holds one column (a list of lists) per relation.
#[pyfunction]
fn compatibility_pairs<'py>(
    py: Python<'py>,
    sources: &Bound<'py, PyList>,
    related: Vec<(String, Bound<'py, PyList>)>,
    asins: Vec<PyBackedStr>,
) -> PyResult<IndexPairs<'py>> {
    let keys: Vec<&str> = asins.iter().map(|s| &**s).collect();
    let mut pairs = CompatibilityPairs::new(&keys)?;
    for (name, column) in &related {
        if column.len() != sources.len() {
            return Err(PyValueError::new_err(format!(
                "column '{name}' has {} rows, 'asin' has {}",
                column.len(),
                sources.len()
            )));
        }
    }
    for (row, src) in sources.iter().enumerate() {
        let s = src
            .downcast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("column 'asin', row {row}: {} is not a str", src.get_type())))?;
        let source = pairs.source(s.to_str()?);
        for (name, column) in &related {
            for_each_asin(&column.get_item(row)?, name, row, |t| pairs.add(source, t))?;
        }
    }
    let (i, j, s) = pairs.finish();
    let counts = PyDict::new(py);
    counts.set_item("edges", s.edges)?;
    counts.set_item("kept", s.kept)?;
    counts.set_item("missing_source", s.missing_source)?;
    counts.set_item("missing_target", s.missing_target)?;
    counts.set_item("self_loops", s.self_loops)?;
    counts.set_item("duplicates", s.duplicates)?;
    Ok((PyArray1::from_vec(py, i), PyArray1::from_vec(py, j), counts))
}

// -- image features ----------------------------------------------------------------------

/// A memory-mapped `image_features_*.b` file. Exports the mapped bytes through the buffer
/// protocol (read-only), so a numpy array can view the floats in place and keep this object
/// (and with it the map) alive as its base.
#[pyclass(name = "ImageFeatures", module = "fashionrec._core", frozen)]
pub struct PyImageFeatures {
    inner: ImageFeatures,
}

#[pymethods]
impl PyImageFeatures {
    #[new]
    #[pyo3(signature = (path, dim=4096))]
    fn new(py: Python<'_>, path: PathBuf, dim: usize) -> PyResult<Self> {
        Ok(PyImageFeatures { inner: py.allow_threads(|| ImageFeatures::open(&path, dim))? })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    #[getter]
    fn record_size(&self) -> usize {
        self.inner.record_size()
    }

    #[getter]
    fn path(&self) -> String {
        self.inner.path().display().to_string()
    }

    /// Every record's ASIN in file order.
    fn asins<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.inner.asins())
    }

    /// (records whose ASIN came earlier in the file, the first of them or None).
    fn duplicates(&self) -> (usize, Option<usize>) {
        self.inner.duplicates()
    }

    /// Row of each ASIN (its first record); an unknown one is a ValueError naming it.
    fn index<'py>(&self, py: Python<'py>, asins: Vec<PyBackedStr>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let keys: Vec<&str> = asins.iter().map(|s| &**s).collect();
        Ok(PyArray1::from_vec(py, py.allow_threads(|| self.inner.index_of(&keys))?))
    }

    /// The given rows as a new contiguous (k, dim) float32 array (gathered in parallel).
    fn rows<'py>(&self, py: Python<'py>, rows: PyReadonlyArray1<'py, i64>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let idx = rows.as_slice()?;
        // numpy's allocation (huge pages), filled without the GIL.
        let out = PyArray2::<f32>::zeros(py, [idx.len(), self.inner.dim()], false);
        {
            let mut rw = out.readwrite();
            let buf = rw.as_slice_mut()?;
            py.allow_threads(|| self.inner.gather_into(idx, buf))?;
        }
        Ok(out)
    }

    /// ValueError naming the first record / ASIN / column holding NaN or an infinity.
    fn check_finite(&self, py: Python<'_>) -> PyResult<()> {
        Ok(py.allow_threads(|| self.inner.check_finite())?)
    }

    /// The sum of every value (a full parallel pass over the file).
    fn sum(&self, py: Python<'_>) -> f64 {
        py.allow_threads(|| self.inner.sum())
    }

    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("null view"));
        }
        let bytes = slf.get().inner.bytes();
        // Fills a 1-D read-only byte buffer and takes a reference to `slf` for the view's
        // lifetime; a writable request fails with BufferError (numpy then asks read-only).
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                bytes.as_ptr() as *mut std::os::raw::c_void,
                bytes.len() as ffi::Py_ssize_t,
                1,
                flags,
            )
        };
        if rc != 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
}
