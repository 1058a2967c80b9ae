//! Free functions: splits, synthetic data, sampling, metrics, top-k, similarity, device info.

use std::sync::Arc;

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::interactions::PyInteractions;
use crate::data::{split, synthetic, Interactions};
use crate::metrics::{evaluate_block as eval_core, top_k_block as topk_core, EvalOptions, Metric};
use crate::models;
use crate::sampling::{TripleBatch, TripleSampler};

/// (users, positives, negatives) index arrays.
type Triples<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>, Bound<'py, PyArray2<i64>>);
/// (item indices, scores) of top-k lists, one row per query.
type Ranked<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>);

fn wrap(parts: Vec<Interactions>) -> Vec<PyInteractions> {
    parts.into_iter().map(|x| PyInteractions { inner: Arc::new(x) }).collect()
}

/// [train, test] or [train, validation, test]: one random held-out item per user and part.
#[pyfunction]
#[pyo3(signature = (data, validation=true, seed=0))]
fn leave_one_out(py: Python<'_>, data: PyRef<'_, PyInteractions>, validation: bool, seed: u64) -> PyResult<Vec<PyInteractions>> {
    let d = data.inner.clone();
    Ok(wrap(py.allow_threads(|| split::leave_one_out(&d, validation, seed))?))
}

/// [train, test] with round(test_fraction * len) random interactions in test.
#[pyfunction]
#[pyo3(signature = (data, test_fraction=0.2, seed=0))]
fn random_split(py: Python<'_>, data: PyRef<'_, PyInteractions>, test_fraction: f64, seed: u64) -> PyResult<Vec<PyInteractions>> {
    let d = data.inner.clone();
    Ok(wrap(py.allow_threads(|| split::random_split(&d, test_fraction, seed))?))
}

#[pyfunction]
#[pyo3(signature = (n_users=2000, n_items=1500, mean_items_per_user=30.0, factors=8, taste=3.0, popularity=0.7, seed=0))]
#[allow(clippy::too_many_arguments)]
fn synthetic_interactions(
    py: Python<'_>,
    n_users: usize,
    n_items: usize,
    mean_items_per_user: f64,
    factors: usize,
    taste: f64,
    popularity: f64,
    seed: u64,
) -> PyResult<PyInteractions> {
    let cfg = synthetic::SyntheticConfig { n_users, n_items, mean_items_per_user, factors, taste, popularity, seed };
    let x = py.allow_threads(|| synthetic::synthetic(&cfg))?;
    Ok(PyInteractions { inner: Arc::new(x) })
}

/// (users, positives, negatives (n, n_negatives)) as int64 arrays.
#[pyfunction]
#[pyo3(signature = (data, n, n_negatives=1, seed=0, stream=0))]
fn sample_triples<'py>(
    py: Python<'py>,
    data: PyRef<'py, PyInteractions>,
    n: usize,
    n_negatives: usize,
    seed: u64,
    stream: u64,
) -> PyResult<Triples<'py>> {
    let d = data.inner.clone();
    // Users, positives and n_negatives negatives per sample, as i64.
    let what = format!("sample_triples(n={n}, n_negatives={n_negatives})");
    crate::limits::bytes_for(&what, crate::limits::mul(&what, n, n_negatives.saturating_add(2))?, 8)?;
    let batch = py.allow_threads(|| -> crate::Result<TripleBatch> {
        let sampler = TripleSampler::new(&d, n_negatives)?;
        let mut b = TripleBatch::default();
        sampler.fill(&mut b, n, seed, stream);
        Ok(b)
    })?;
    Ok((
        PyArray1::from_vec(py, batch.users),
        PyArray1::from_vec(py, batch.pos),
        PyArray1::from_vec(py, batch.neg).reshape([n, n_negatives])?,
    ))
}

pub(crate) fn user_slice(users: &PyReadonlyArray1<'_, i64>) -> PyResult<Vec<u32>> {
    users
        .as_slice()?
        .iter()
        .map(|&u| u32::try_from(u).map_err(|_| pyo3::exceptions::PyValueError::new_err(format!("bad user index {u}"))))
        .collect()
}

/// Per-user metric values for a (len(users), n_items) block of scores: a list of float64
/// arrays, one per metric, NaN for users with no positive.
#[pyfunction]
#[pyo3(signature = (scores, users, test, exclude, metrics, sampled_negatives=100, seed=0))]
#[allow(clippy::too_many_arguments)]
fn evaluate_block<'py>(
    py: Python<'py>,
    scores: PyReadonlyArray2<'py, f32>,
    users: PyReadonlyArray1<'py, i64>,
    test: PyRef<'py, PyInteractions>,
    exclude: Vec<PyRef<'py, PyInteractions>>,
    metrics: Vec<String>,
    sampled_negatives: usize,
    seed: u64,
) -> PyResult<Vec<Bound<'py, PyArray1<f64>>>> {
    let parsed: Vec<Metric> = metrics.iter().map(|m| m.parse()).collect::<crate::Result<_>>()?;
    let s = scores.as_slice()?;
    let u = user_slice(&users)?;
    let t = test.inner.clone();
    let ex: Vec<Arc<Interactions>> = exclude.iter().map(|x| x.inner.clone()).collect();
    let opts = EvalOptions { sampled_negatives, seed };
    let out = py.allow_threads(|| {
        let ex_refs: Vec<&Interactions> = ex.iter().map(|x| x.as_ref()).collect();
        eval_core(s, &u, &t, &ex_refs, &parsed, opts, None)
    })?;
    Ok(out.into_iter().map(|v| PyArray1::from_vec(py, v)).collect())
}

/// (user indices, [per-user values of each metric]).
pub(crate) type PerUserPy<'py> = (Bound<'py, PyArray1<i64>>, Vec<Bound<'py, PyArray1<f64>>>);

/// The one evaluation loop (Rust, blocks of users) for a model or a Python scorer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate_per_user<'py>(
    py: Python<'py>,
    score: &(dyn Fn(&[i64]) -> crate::Result<tch::Tensor> + Sync),
    rank: Option<&crate::metrics::Rank<'_>>,
    test: PyRef<'py, PyInteractions>,
    exclude: Vec<PyRef<'py, PyInteractions>>,
    metrics: Vec<String>,
    users: Option<PyReadonlyArray1<'py, i64>>,
    candidates: Option<PyReadonlyArray1<'py, bool>>,
    sampled_negatives: usize,
    seed: u64,
    progress: Option<PyObject>,
) -> PyResult<PerUserPy<'py>> {
    let (parsed, opts) = super::metric_options(&metrics, sampled_negatives, seed)?;
    let t = test.inner.clone();
    let ex: Vec<Arc<Interactions>> = exclude.iter().map(|x| x.inner.clone()).collect();
    let users = users.as_ref().map(user_slice).transpose()?;
    let cands = candidates.as_ref().map(|c| c.as_slice()).transpose()?;
    let out = py.allow_threads(|| {
        super::guarded(|| {
            let ex_refs: Vec<&Interactions> = ex.iter().map(|x| x.as_ref()).collect();
            let mut on_block = |done: f64| -> crate::Result<()> {
                let Some(p) = &progress else { return Ok(()) };
                Python::with_gil(|py| {
                    py.check_signals().and_then(|_| p.call1(py, (done,))).map(|_| ()).map_err(|e| crate::Error::state(e.to_string()))
                })
            };
            crate::metrics::evaluate_users(score, rank, &t, &ex_refs, &parsed, opts, users, cands, &mut on_block)
        })
    })?;
    let idx: Vec<i64> = out.users.iter().map(|&u| u as i64).collect();
    Ok((PyArray1::from_vec(py, idx), out.values.into_iter().map(|v| PyArray1::from_vec(py, v)).collect()))
}

/// Per-user metrics of any scorer: `score(user_indices)` returns float32 scores
/// (len(users), test.n_items). The block loop runs in Rust; each block calls back into Python.
#[pyfunction]
#[pyo3(signature = (score, test, exclude, metrics, users=None, candidates=None, sampled_negatives=100, seed=0, progress=None))]
#[allow(clippy::too_many_arguments)]
fn evaluate_scorer<'py>(
    py: Python<'py>,
    score: PyObject,
    test: PyRef<'py, PyInteractions>,
    exclude: Vec<PyRef<'py, PyInteractions>>,
    metrics: Vec<String>,
    users: Option<PyReadonlyArray1<'py, i64>>,
    candidates: Option<PyReadonlyArray1<'py, bool>>,
    sampled_negatives: usize,
    seed: u64,
    progress: Option<PyObject>,
) -> PyResult<PerUserPy<'py>> {
    let n_items = test.inner.n_items();
    let call = |idx: &[i64]| -> crate::Result<tch::Tensor> {
        Python::with_gil(|py| -> PyResult<tch::Tensor> {
            let arr = PyArray1::from_slice(py, idx);
            let out = score.call1(py, (arr,))?;
            let np = py.import("numpy")?;
            let a = np.call_method1("ascontiguousarray", (out, "float32"))?;
            let a: PyReadonlyArray2<'_, f32> = a.extract().map_err(|_| {
                pyo3::exceptions::PyValueError::new_err("score() must return a 2-D array of (users, items) scores")
            })?;
            if a.shape() != [idx.len(), n_items] {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "score() returned shape {:?}, expected ({}, {n_items})",
                    a.shape(),
                    idx.len()
                )));
            }
            Ok(tch::Tensor::from_slice(a.as_slice()?).reshape([idx.len() as i64, n_items as i64]))
        })
        .map_err(|e| crate::Error::invalid(e.to_string()))
    };
    evaluate_per_user(py, &call, None, test, exclude, metrics, users, candidates, sampled_negatives, seed, progress)
}

/// Run the code written for GPUs on CPU tensors too (process-wide; for tests: CI has no GPU).
#[pyfunction]
fn set_gpu_paths_on_cpu(on: bool) {
    crate::tensors::set_gpu_paths_on_cpu(on)
}

/// Canonical metric names, e.g. "P@10" -> "precision@10"; ValueError for unknown names.
#[pyfunction]
fn canonical_metrics(metrics: Vec<String>) -> PyResult<Vec<String>> {
    Ok(metrics.iter().map(|m| m.parse::<Metric>().map(|m| m.to_string())).collect::<crate::Result<_>>()?)
}

/// Top-k item indices and scores per row of a score block, skipping `exclude`'s items.
#[pyfunction]
#[pyo3(signature = (scores, users, k, exclude=None))]
fn top_k_block<'py>(
    py: Python<'py>,
    scores: PyReadonlyArray2<'py, f32>,
    users: PyReadonlyArray1<'py, i64>,
    k: usize,
    exclude: Option<PyRef<'py, PyInteractions>>,
) -> PyResult<Ranked<'py>> {
    let &[_, n_items] = scores.shape() else {
        return Err(pyo3::exceptions::PyValueError::new_err(format!("scores must be 2-D, got shape {:?}", scores.shape())));
    };
    let s = scores.as_slice()?;
    let u = user_slice(&users)?;
    let ex = exclude.as_ref().map(|x| x.inner.clone());
    let (items, best) = py.allow_threads(|| topk_core(s, n_items, &u, k, ex.as_deref(), None))?;
    let (n, k) = (u.len(), k.min(n_items)); // the core's row length
    Ok((PyArray1::from_vec(py, items).reshape([n, k])?, PyArray1::from_vec(py, best).reshape([n, k])?))
}

/// The k most cosine-similar items to each query row index of `vectors` (itself excluded).
#[pyfunction]
fn similar_items<'py>(
    py: Python<'py>,
    vectors: PyReadonlyArray2<'py, f32>,
    queries: PyReadonlyArray1<'py, i64>,
    k: usize,
) -> PyResult<Ranked<'py>> {
    let &[n, d] = vectors.shape() else {
        return Err(pyo3::exceptions::PyValueError::new_err(format!("vectors must be 2-D, got shape {:?}", vectors.shape())));
    };
    let v = vectors.as_slice()?;
    let q = queries.as_slice()?;
    let (items, sims) = py.allow_threads(|| {
        // SAFETY: the view lives only inside this closure, while `vectors` is borrowed.
        let t = unsafe { crate::tensors::view_f32(v, n, d) };
        models::similar::similar_items(&t, q, k)
    })?;
    let (n, k) = (q.len(), models::similar::effective_k(k, n)); // the core's row length
    Ok((PyArray1::from_vec(py, items).reshape([n, k])?, PyArray1::from_vec(py, sims).reshape([n, k])?))
}

#[pyfunction]
fn default_config(kind: &str) -> PyResult<String> {
    Ok(models::default_config(kind)?)
}

#[pyfunction]
fn model_kinds() -> Vec<&'static str> {
    models::KINDS.to_vec()
}

/// (CUDA available to libtorch, device count, cuDNN available).
#[pyfunction]
fn cuda_info() -> (bool, i64, bool) {
    (tch::Cuda::is_available(), tch::Cuda::device_count(), tch::Cuda::cudnn_is_available())
}

/// (rayon threads, libtorch intra-op threads).
/// Which decoder reads JPEGs in this build.
#[pyfunction]
fn jpeg_decoder() -> &'static str {
    crate::images::decode::jpeg_decoder()
}

#[pyfunction]
fn threads_info() -> (usize, i32) {
    (rayon::current_num_threads(), tch::get_num_threads())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(leave_one_out, m)?)?;
    m.add_function(wrap_pyfunction!(set_gpu_paths_on_cpu, m)?)?;
    m.add_function(wrap_pyfunction!(random_split, m)?)?;
    m.add_function(wrap_pyfunction!(synthetic_interactions, m)?)?;
    m.add_function(wrap_pyfunction!(sample_triples, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate_block, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate_scorer, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(top_k_block, m)?)?;
    m.add_function(wrap_pyfunction!(similar_items, m)?)?;
    m.add_function(wrap_pyfunction!(default_config, m)?)?;
    m.add_function(wrap_pyfunction!(model_kinds, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_info, m)?)?;
    m.add_function(wrap_pyfunction!(threads_info, m)?)?;
    m.add_function(wrap_pyfunction!(jpeg_decoder, m)?)?;
    Ok(())
}
