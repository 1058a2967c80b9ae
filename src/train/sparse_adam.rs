//! A row-sparse Adam (torch.optim.SparseAdam, TensorFlow's LazyAdam): for each parameter the
//! step is given the distinct rows a batch touched and their gradient, and only those rows
//! and their moments move; every other row, and its moments, stays as it is. A step then
//! costs O(touched rows x row width) whatever the table's size, where the dense Adam
//! (`train::adam`) moves every row of every table at every step (the moments of an untouched
//! row decay and the row keeps moving with them). It is a different optimiser from the dense
//! one, not a faster way to compute it: a row seen once in a while takes one step each time
//! it is seen, from moments that did not decay in between.
//!
//! The moments are named tensors, so a checkpoint can save and restore them exactly (as
//! `train::adam::Adam`'s). On the CPU each step is one pass over the touched rows' memory; on
//! a GPU it is tensor ops (gather the rows, update, copy them back).

use std::collections::HashMap;

use tch::Tensor;

use super::adam::{BETA1, BETA2, EPS};
use crate::error::{Error, Result};
use crate::train::distributed::RowsIn;
use crate::tensors::cpu_f32_ptr;

/// Where epsilon sits in the update, the two forms of Adam in use. Both move a row with
/// m / sqrt(v) scaled by lr and the bias corrections bc1 = 1 - beta1^t, bc2 = 1 - beta2^t;
/// they differ while sqrt(v) is near epsilon (a row's first steps, tiny gradients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EpsAt {
    /// torch.optim.SparseAdam's form (and TensorFlow's LazyAdam, which SampledSoftmax has
    /// always used): m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
    /// p <- p - lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps): epsilon is added to the root of the
    /// uncorrected second moment, the corrections folded into the step size.
    #[default]
    Uncorrected,
    /// torch.optim.Adam's form, with the arithmetic (and bits) of the dense `train::adam::Adam`:
    /// p <- p - lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps). A row touched at every step moves
    /// exactly as under the dense Adam.
    Corrected,
}

/// The gradient of one parameter at a step: `rows`, distinct indices into its first
/// dimension, and `grad` with one row per entry of `rows` (shape (rows.len(), ...)).
pub struct RowGrad<'a> {
    pub rows: &'a [i64],
    pub grad: &'a Tensor,
}

/// Adam over the rows of named parameters that each step touches (see the module's notes).
pub struct SparseAdam {
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Steps taken by each parameter: as torch.optim.SparseAdam, counted at every step that
    /// gives the parameter a gradient (even one with no rows), not at the others.
    t: Vec<i64>,
    pub lr: f64,
    pub eps_at: EpsAt,
    /// Training on several processes: each step's rows and gradients are gathered from every
    /// process and summed by row before the update.
    pub sync: Option<crate::train::GradSync>,
}

impl SparseAdam {
    /// Zero moments for each parameter (tensors of one or more dimensions, rows along the
    /// first), in torch.optim.SparseAdam's form ([`EpsAt::Uncorrected`]).
    pub fn new(params: Vec<(String, Tensor)>, lr: f64) -> Result<Self> {
        let mut m = Vec::with_capacity(params.len());
        let mut v = Vec::with_capacity(params.len());
        for (name, p) in &params {
            if p.dim() == 0 {
                return Err(Error::state(format!("sparse Adam: parameter '{name}' has no rows")));
            }
            m.push(p.f_zeros_like()?);
            v.push(p.f_zeros_like()?);
        }
        let t = vec![0; params.len()];
        Ok(SparseAdam { params, m, v, t, lr, eps_at: EpsAt::default(), sync: None })
    }

    /// The same optimiser with epsilon in the other place.
    pub fn with_eps_at(mut self, eps_at: EpsAt) -> Self {
        self.eps_at = eps_at;
        self
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Steps taken by parameter `i` (0 for a parameter it does not have).
    pub fn steps(&self, i: usize) -> i64 {
        self.t.get(i).copied().unwrap_or(0)
    }

    /// One step: `grads[i]` is parameter i's gradient on the rows it names (None: the
    /// parameter had no gradient this step; it neither moves nor counts the step).
    pub fn step(&mut self, grads: &[Option<RowGrad<'_>>]) -> Result<()> {
        if grads.len() != self.params.len() {
            return Err(Error::state(format!("sparse Adam: {} gradients for {} parameters", grads.len(), self.params.len())));
        }
        // On several processes: every process's rows summed by row, for all tables at once.
        if let Some(sync) = self.sync.clone() {
            let tables: Vec<RowsIn<'_>> = grads
                .iter()
                .zip(&self.params)
                .map(|(g, (_, p))| RowsIn { mine: g.as_ref().map(|g| (g.rows, g.grad)), row_shape: p.size().get(1..).map(<[i64]>::to_vec).unwrap_or_default(), kind: p.kind(), device: p.device() })
                .collect();
            for (i, summed) in sync.reduce_rows(&tables)?.into_iter().enumerate() {
                if let Some((rows, grad)) = summed {
                    self.update_local(i, &rows, &grad)?;
                }
            }
            return Ok(());
        }
        for (i, g) in grads.iter().enumerate() {
            if let Some(g) = g {
                self.update_local(i, g.rows, g.grad)?;
            }
        }
        Ok(())
    }

    /// The update of parameter `i` alone at its next step: distinct `rows` and their
    /// gradient `grad` (one row of it per entry of `rows`). No rows: the step is counted and
    /// nothing moves (as torch with an empty sparse gradient). (On several processes, a step
    /// of its own: [`SparseAdam::step`] sums every table in one exchange.)
    pub fn update(&mut self, i: usize, rows: &[i64], grad: &Tensor) -> Result<()> {
        if self.sync.is_some() {
            let mut grads: Vec<Option<RowGrad<'_>>> = (0..self.params.len()).map(|_| None).collect();
            *grads.get_mut(i).ok_or_else(|| Error::state(format!("sparse Adam: no parameter {i}")))? = Some(RowGrad { rows, grad });
            return self.step(&grads);
        }
        self.update_local(i, rows, grad)
    }

    fn update_local(&mut self, i: usize, rows: &[i64], grad: &Tensor) -> Result<()> {
        let (Some(steps), Some((_, p)), Some(m), Some(v)) = (self.t.get_mut(i), self.params.get(i), self.m.get(i), self.v.get(i)) else {
            return Err(Error::state(format!("sparse Adam: no parameter {i}")));
        };
        // Restored from a checkpoint: any i64.
        *steps = steps.saturating_add(1);
        if rows.is_empty() {
            return Ok(());
        }
        let t = *steps as i32;
        let (bc1, bc2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        let _guard = tch::no_grad_guard();
        if !crate::tensors::gpu_path(p.device()) {
            return update_cpu(p, m, v, rows, grad, self.lr, bc1, bc2, self.eps_at);
        }
        let rows = Tensor::from_slice(rows).f_to_device(p.device())?;
        update_tensors(p, m, v, &rows, grad, self.lr, bc1, bc2, self.eps_at)
    }

    /// The moments and step counts as named tensors ("sparse_adam.m.<param>",
    /// "sparse_adam.v.<param>", "sparse_adam.t.<param>").
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(self.params.len().saturating_mul(3));
        for (((name, _), m), (v, t)) in self.params.iter().zip(&self.m).zip(self.v.iter().zip(&self.t)) {
            out.push((format!("sparse_adam.t.{name}"), Tensor::from_slice(&[*t])));
            out.push((format!("sparse_adam.m.{name}"), m.shallow_clone()));
            out.push((format!("sparse_adam.v.{name}"), v.shallow_clone()));
        }
        out
    }

    /// Moments and step counts from [`SparseAdam::state`]'s names (shapes checked).
    pub fn restore(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let get = |k: &str| state.get(k).ok_or_else(|| Error::state(format!("checkpoint has no '{k}'")));
        let _guard = tch::no_grad_guard();
        for ((((name, p), steps), mine_m), mine_v) in self.params.iter().zip(&mut self.t).zip(&mut self.m).zip(&mut self.v) {
            let (m, v) = (get(&format!("sparse_adam.m.{name}"))?, get(&format!("sparse_adam.v.{name}"))?);
            for (what, saved) in [("m", m), ("v", v)] {
                if saved.size() != p.size() {
                    return Err(Error::state(format!("checkpoint's sparse_adam.{what}.{name} has shape {:?}, the parameter {:?}", saved.size(), p.size())));
                }
            }
            *steps = get(&format!("sparse_adam.t.{name}"))?.f_int64_value(&[0])?;
            mine_m.f_copy_(m)?;
            mine_v.f_copy_(v)?;
        }
        Ok(())
    }
}

/// One pass over the touched rows' memory (the tensor version is about ten small ops per
/// parameter whose index kernels dominated SampledSoftmax's CPU epochs).
#[allow(clippy::too_many_arguments)]
fn update_cpu(p: &Tensor, m: &Tensor, v: &Tensor, rows: &[i64], g: &Tensor, lr: f64, bc1: f64, bc2: f64, eps_at: EpsAt) -> Result<()> {
    let g = g.f_contiguous()?;
    let n = p.size().first().copied().unwrap_or(0);
    let len = p.numel();
    let d = if n > 0 { len.checked_div(n as usize).unwrap_or(0) } else { 0 };
    let g_len = rows.len().checked_mul(d);
    if g_len != Some(g.numel()) || m.numel() != len || v.numel() != len {
        return Err(Error::state("sparse Adam: gradient and parameter shapes disagree"));
    }
    if let Some(&bad) = rows.iter().find(|&&r| r < 0 || r >= n) {
        return Err(Error::state(format!("sparse Adam: row {bad} out of range for {n} rows")));
    }
    // SAFETY: contiguous f32 CPU tensors checked by cpu_f32_ptr, of `len` elements (g: rows *
    // d); the parameter and its moments are the optimiser's, untouched by anything else during
    // the step; g is read only. Rows are in range (checked) and distinct (the caller's
    // contract: a repeated row would be updated twice, never aliased mutably at once).
    let (w, m, v, g) = unsafe {
        (
            std::slice::from_raw_parts_mut(cpu_f32_ptr(p, "sparse Adam")?, len),
            std::slice::from_raw_parts_mut(cpu_f32_ptr(m, "sparse Adam")?, len),
            std::slice::from_raw_parts_mut(cpu_f32_ptr(v, "sparse Adam")?, len),
            std::slice::from_raw_parts(cpu_f32_ptr(&g, "sparse Adam")? as *const f32, g.numel()),
        )
    };
    let step = lr * bc2.sqrt() / bc1;
    // Row i's elements: i * d .. (i + 1) * d.
    let span = |i: usize| {
        let at = i.checked_mul(d)?;
        Some(at..at.checked_add(d)?)
    };
    for (k, &r) in rows.iter().enumerate() {
        // In range: rows were checked against n above, and g's length against rows x d.
        let (at, from) = (span(r as usize), span(k));
        let (Some(w), Some(m), Some(v), Some(g)) =
            (at.clone().and_then(|s| w.get_mut(s)), at.clone().and_then(|s| m.get_mut(s)), at.and_then(|s| v.get_mut(s)), from.and_then(|s| g.get(s)))
        else {
            return Err(Error::state(format!("sparse Adam: row {r} out of range")));
        };
        match eps_at {
            EpsAt::Uncorrected => uncorrected_row(w, m, v, g, step as f32),
            EpsAt::Corrected => super::adam::update_slices(w, m, v, g, lr, bc1, bc2),
        }
    }
    Ok(())
}

/// torch.optim.SparseAdam's update of one row, with `step` = lr sqrt(bc2) / bc1 (the
/// arithmetic SampledSoftmax's lazy Adam always had: its fits keep their bits).
#[inline]
fn uncorrected_row(w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], step: f32) {
    let (b1, b2, eps) = (BETA1 as f32, BETA2 as f32, EPS as f32);
    for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        *m = *m * b1 + g * (1.0 - b1);
        *v = *v * b2 + g * g * (1.0 - b2);
        *w -= step * *m / (v.sqrt() + eps);
    }
}

/// The update in tensor ops on any device: the touched rows gathered, updated and copied
/// back (`rows` distinct, so a copy of the moved rows is the add; `index_add_` dispatches a
/// small op per row on the CPU).
#[allow(clippy::too_many_arguments)]
#[allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic")]
fn update_tensors(p: &Tensor, m: &Tensor, v: &Tensor, rows: &Tensor, g: &Tensor, lr: f64, bc1: f64, bc2: f64, eps_at: EpsAt) -> Result<()> {
    let (mut p, mut m, mut v) = (p.shallow_clone(), m.shallow_clone(), v.shallow_clone());
    match eps_at {
        EpsAt::Uncorrected => {
            let step = lr * bc2.sqrt() / bc1;
            let m_rows = m.f_index_select(0, rows)? * BETA1 + g * (1.0 - BETA1);
            let v_rows = v.f_index_select(0, rows)? * BETA2 + g.f_square()? * (1.0 - BETA2);
            let _ = m.f_index_copy_(0, rows, &m_rows)?;
            let _ = v.f_index_copy_(0, rows, &v_rows)?;
            let delta = m_rows / (v_rows.f_sqrt()? + EPS) * (-step);
            let moved = p.f_index_select(0, rows)? + delta;
            let _ = p.f_index_copy_(0, rows, &moved)?;
        }
        EpsAt::Corrected => {
            let (w_rows, mut m_rows, mut v_rows) = (p.f_index_select(0, rows)?, m.f_index_select(0, rows)?, v.f_index_select(0, rows)?);
            let mut tmp = w_rows.f_empty_like()?;
            super::adam::tensor_step(&w_rows, &mut m_rows, &mut v_rows, &mut tmp, g, super::adam::Step { lr, bc1, bc2, l2: 0.0 })?;
            let _ = m.f_index_copy_(0, rows, &m_rows)?;
            let _ = v.f_index_copy_(0, rows, &v_rows)?;
            let _ = p.f_index_copy_(0, rows, &w_rows)?;
        }
    }
    Ok(())
}

/// Sorted distinct values of `idx` and, for each entry, its position among them: the rows
/// a batch touches and where each of its entries reads them.
pub fn unique_inverse(idx: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let mut uniq = idx.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    let inverse = idx.iter().map(|x| uniq.binary_search(x).unwrap_or_else(|at| at) as i64).collect();
    (uniq, inverse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;
    use tch::Kind;

    /// Deterministic pseudo-random values (no global generator: tests run in parallel).
    fn noise(shape: &[i64], seed: i64) -> Tensor {
        let n: i64 = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|k| ((k * 7919 + seed * 104_729) as f32 * 0.618).sin() * 1.5).collect();
        Tensor::from_slice(&v).view(shape)
    }

    fn table(rows: i64, d: i64, seed: i64) -> Tensor {
        noise(&[rows, d], seed)
    }

    /// Each step's touched rows (distinct, in varying order) and their gradient.
    fn schedule(d: i64) -> Vec<(Vec<i64>, Tensor)> {
        let rows: [&[i64]; 6] = [&[0, 3], &[3], &[4, 0, 1], &[], &[3, 4], &[0]];
        rows.iter()
            .enumerate()
            .map(|(s, r)| (r.to_vec(), noise(&[r.len() as i64, d], 100 + s as i64) * 0.3))
            .collect()
    }

    /// torch.optim.SparseAdam's update, written with its tensor ops (torch/optim/_functional.py,
    /// `sparse_adam`) over the touched rows of dense state.
    fn torch_sparse_adam(p: &Tensor, m: &Tensor, v: &Tensor, rows: &[i64], g: &Tensor, lr: f64, step: i32) {
        if rows.is_empty() {
            return;
        }
        let idx = Tensor::from_slice(rows);
        let (mut p, mut m, mut v) = (p.shallow_clone(), m.shallow_clone(), v.shallow_clone());
        let old_m = m.index_select(0, &idx);
        let m_upd = (g - &old_m) * (1.0 - BETA1);
        let _ = m.index_add_(0, &idx, &m_upd);
        let old_v = v.index_select(0, &idx);
        let v_upd = (g.square() - &old_v) * (1.0 - BETA2);
        let _ = v.index_add_(0, &idx, &v_upd);
        let numer = m_upd + old_m;
        let denom = (v_upd + old_v).sqrt() + EPS;
        let step_size = lr * (1.0 - BETA2.powi(step)).sqrt() / (1.0 - BETA1.powi(step));
        let _ = p.index_add_(0, &idx, &((numer / denom) * (-step_size)));
    }

    /// The default form takes torch.optim.SparseAdam's steps (to float rounding): only the
    /// touched rows and their moments move, a step with no rows counts for the bias
    /// correction, and rows never touched keep their values and zero moments.
    #[test]
    fn default_form_is_torch_sparse_adam() {
        let d = 5;
        for cpu in [true, false] {
            let w = table(6, d, 1);
            let start = w.copy();
            let reference = w.copy();
            let (rm, rv) = (reference.zeros_like(), reference.zeros_like());
            let mut opt = SparseAdam::new(vec![("w".into(), w.shallow_clone())], 0.05).unwrap();
            for (s, (rows, g)) in schedule(d).iter().enumerate() {
                if cpu {
                    opt.update(0, rows, g).unwrap();
                } else {
                    // The tensor path (GPUs), run on CPU tensors.
                    opt.t[0] += 1;
                    if !rows.is_empty() {
                        let (t, p) = (opt.t[0] as i32, &opt.params[0].1);
                        let (bc1, bc2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
                        tch::no_grad(|| update_tensors(p, &opt.m[0], &opt.v[0], &Tensor::from_slice(rows), g, 0.05, bc1, bc2, EpsAt::Uncorrected)).unwrap();
                    }
                }
                torch_sparse_adam(&reference, &rm, &rv, rows, g, 0.05, s as i32 + 1);
            }
            assert_eq!(opt.steps(0), 6);
            assert!(w.allclose(&reference, 1e-6, 1e-6, false), "cpu={cpu}: {w} vs {reference}");
            // Relative to the largest moment (an entry near a sign change has no relative precision).
            let rel = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[]);
            // v differs by up to ~1.3e-5 relative: 1 - beta2 is rounded in float32 here (the
            // arithmetic SampledSoftmax was tuned with), from a float64 scalar in torch.
            assert!(rel(&opt.m[0], &rm) < 1e-5 && rel(&opt.v[0], &rv) < 5e-5, "{} {}", rel(&opt.m[0], &rm), rel(&opt.v[0], &rv));
            // Row 2 and row 5 were never touched.
            for r in [2, 5] {
                assert!(w.get(r).equal(&start.get(r)), "row {r} moved");
                assert_eq!(opt.m[0].get(r).abs().sum(Kind::Float).double_value(&[]), 0.0);
            }
            assert!(!w.get(1).equal(&start.get(1)));
        }
    }

    /// The corrected form on rows touched at every step is the dense Adam, bit for bit, and
    /// leaves the other rows alone (the dense Adam would move them: its moments decay there).
    #[test]
    fn corrected_form_is_the_dense_adam_on_touched_rows() {
        let d = 7;
        let (sparse, dense) = (table(5, d, 3), table(5, d, 3));
        let start = sparse.copy();
        let mut s = SparseAdam::new(vec![("w".into(), sparse.shallow_clone())], 0.02).unwrap().with_eps_at(EpsAt::Corrected);
        let mut a = super::super::adam::Adam::new(vec![("w".into(), dense.shallow_clone())], 0.02).unwrap();
        let rows = [4i64, 1];
        for step in 0..4 {
            let g_rows = noise(&[2, d], 7 + step);
            // The dense gradient: the rows' gradient, zero elsewhere.
            let g = Tensor::zeros([5, d], (Kind::Float, Device::Cpu));
            let g = g.index_copy(0, &Tensor::from_slice(&rows), &g_rows);
            s.update(0, &rows, &g_rows).unwrap();
            a.step(&[g]).unwrap();
        }
        for r in rows {
            assert!(sparse.get(r).equal(&dense.get(r)), "row {r}: {} vs {}", sparse.get(r), dense.get(r));
        }
        for r in [0, 2, 3] {
            assert!(sparse.get(r).equal(&start.get(r)), "row {r} moved");
        }
        // The tensor path (GPUs) agrees with the CPU pass in both forms.
        for eps_at in [EpsAt::Corrected, EpsAt::Uncorrected] {
            let (a, b) = (table(5, d, 9), table(5, d, 9));
            let mut ca = SparseAdam::new(vec![("w".into(), a.shallow_clone())], 0.1).unwrap().with_eps_at(eps_at);
            let (bm, bv) = (b.zeros_like(), b.zeros_like());
            for (t, (rows, g)) in schedule(d).iter().enumerate() {
                ca.update(0, rows, g).unwrap();
                if !rows.is_empty() {
                    let t = t as i32 + 1;
                    let (bc1, bc2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
                    tch::no_grad(|| update_tensors(&b, &bm, &bv, &Tensor::from_slice(rows), g, 0.1, bc1, bc2, eps_at)).unwrap();
                }
            }
            assert!(a.allclose(&b, 1e-5, 1e-5, false), "{eps_at:?}: {a} vs {b}");
            assert!(!a.get(1).equal(&table(5, d, 9).get(1)));
        }
    }

    #[test]
    fn state_round_trips_and_names_what_is_missing() {
        let w = table(4, 3, 5);
        let bias = Tensor::zeros([4], (Kind::Float, Device::Cpu));
        let mut a = SparseAdam::new(vec![("w".into(), w.shallow_clone()), ("b".into(), bias.shallow_clone())], 0.1).unwrap();
        let g = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        let gb = Tensor::ones([2], (Kind::Float, Device::Cpu));
        a.step(&[Some(RowGrad { rows: &[1, 3], grad: &g }), Some(RowGrad { rows: &[0, 2], grad: &gb })]).unwrap();
        a.step(&[Some(RowGrad { rows: &[2, 0], grad: &g }), None]).unwrap();
        assert_eq!((a.steps(0), a.steps(1)), (2, 1));
        let state: HashMap<String, Tensor> = a.state().into_iter().map(|(k, v)| (k, v.copy())).collect();
        let mut b = SparseAdam::new(vec![("w".into(), w.copy()), ("b".into(), bias.copy())], 0.1).unwrap();
        b.restore(&state).unwrap();
        assert_eq!((b.steps(0), b.steps(1)), (2, 1));
        assert!(b.m[0].equal(&a.m[0]) && b.v[1].equal(&a.v[1]));
        let e = b.restore(&HashMap::new()).unwrap_err().to_string();
        assert!(e.contains("sparse_adam.m.w"), "{e}");
        assert!(a.step(&[None]).is_err());
        assert!(a.update(0, &[4], &Tensor::ones([1, 3], (Kind::Float, Device::Cpu))).unwrap_err().to_string().contains("out of range"));
    }

    #[test]
    fn unique_inverse_rebuilds_the_input() {
        let x = [5i64, 3, 5, 9, 3, 3];
        let (u, inv) = unique_inverse(&x);
        assert_eq!(u, vec![3, 5, 9]);
        assert_eq!(inv.iter().map(|&k| u[k as usize]).collect::<Vec<_>>(), x.to_vec());
    }
}
