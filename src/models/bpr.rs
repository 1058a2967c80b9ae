//! BPR: matrix factorisation with an item bias, trained on sampled (user, positive, negative)
//! triples to maximise ln sigmoid(score(u, i) - score(u, j)) (Rendle et al. 2009).
//!
//! Two backends run the same algorithm (per-sample SGD with L2 on the touched rows):
//! * `native`: a lock-free (Hogwild) rayon kernel on the CPU, with no per-batch libtorch
//!   overhead; the fast path on CPU.
//! * `torch`: libtorch through tch, on CPU or CUDA; autograd on the gathered rows and a sparse
//!   `index_add_` update for SGD, or a dense Adam step.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use super::factors::{FactorHandles, Factors};
use super::{not_fitted, validator, Recommender};
use crate::data::{IdMaps, Interactions};
use crate::error::{quote, Error, Result};
use crate::metrics::Validation;
use crate::sampling::{TripleBatch, TripleSampler};
use crate::tensors::{cpu_f32_ptr, device_name, parse_device, view_i64};
use crate::train::{fit_triples, BatchStep, Control, EpochLog, Event, FitReport, LoopConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BprConfig {
    /// Latent dimension.
    pub factors: usize,
    /// Passes over the training interactions.
    pub epochs: usize,
    /// Learning rate (per sample for SGD).
    pub lr: f64,
    /// Learning rate at the last epoch, as a fraction of `lr` (linear decay; 1 keeps it constant).
    pub lr_final: f64,
    /// L2 weight on the factors of the rows a sample touches.
    pub reg: f64,
    /// L2 weight on the item biases a sample touches.
    pub bias_reg: f64,
    /// Triples per step (the libtorch backend's minibatch; the native kernel's work unit).
    pub batch_size: usize,
    /// "sgd" or "adam".
    pub optimizer: String,
    /// Standard deviation of the initial factors.
    pub init_std: f64,
    /// "auto", "cpu", "cuda" or "cuda:N".
    pub device: String,
    /// "auto" (native on CPU with SGD, else torch), "native" or "torch".
    pub backend: String,
    pub seed: u64,
    /// CPU threads for sampling and the native kernel; 0 uses every core.
    pub threads: usize,
}

impl Default for BprConfig {
    fn default() -> Self {
        BprConfig {
            factors: 64,
            // Chosen on a validation split of MovieLens 100k u1.base (benches/tune_bpr_defaults.py).
            epochs: 50,
            lr: 0.1,
            lr_final: 0.1,
            reg: 0.02,
            bias_reg: 0.01,
            batch_size: 4096,
            optimizer: "sgd".into(),
            init_std: 0.1,
            device: "auto".into(),
            backend: "auto".into(),
            seed: 0,
            threads: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Native,
    Torch,
}

impl BprConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        if self.factors == 0 {
            return bad("factors must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        crate::limits::check_threads("threads", self.threads)?;
        crate::tensors::check_device_name(&self.device)?;
        for (name, v, strictly) in [
            ("lr", self.lr, true),
            ("init_std", self.init_std, true),
            ("reg", self.reg, false),
            ("bias_reg", self.bias_reg, false),
        ] {
            // f32 is what the kernels compute in: a finite f64 beyond it would become inf there.
            if !v.is_finite() || v.abs() > f32::MAX as f64 || v < 0.0 || (strictly && v == 0.0) {
                return bad(format!("{name} must be a finite number {} 0, got {v}", if strictly { ">" } else { ">=" }));
            }
        }
        if !(self.lr_final > 0.0 && self.lr_final <= 1.0) {
            return bad(format!("lr_final must be in (0, 1], got {}", self.lr_final));
        }
        if !["sgd", "adam"].contains(&self.optimizer.as_str()) {
            return bad(format!("optimizer must be 'sgd' or 'adam', not {}", quote(&self.optimizer)));
        }
        if !["auto", "native", "torch"].contains(&self.backend.as_str()) {
            return bad(format!("backend must be 'auto', 'native' or 'torch', not {}", quote(&self.backend)));
        }
        if self.backend == "native" && self.optimizer != "sgd" {
            return bad("the native backend implements SGD only; use backend='torch' for Adam".into());
        }
        Ok(())
    }

    /// The backend and device this configuration trains on, here.
    pub fn resolve(&self) -> Result<(Backend, Device)> {
        let device = parse_device(&self.device)?;
        let backend = match self.backend.as_str() {
            "native" if device != Device::Cpu => {
                return Err(Error::invalid(format!(
                    "the native backend runs on the CPU, but device {:?} was asked for",
                    self.device
                )))
            }
            "native" => Backend::Native,
            "torch" => Backend::Torch,
            _ if device == Device::Cpu && self.optimizer == "sgd" => Backend::Native,
            _ => Backend::Torch,
        };
        Ok((backend, device))
    }

    /// Learning rate of 0-based `epoch`: linear from `lr` to `lr * lr_final`.
    fn lr_at(&self, epoch: usize) -> f64 {
        let t = if self.epochs > 1 { epoch as f64 / (self.epochs - 1) as f64 } else { 0.0 };
        self.lr * (1.0 - t * (1.0 - self.lr_final))
    }
}

pub struct Bpr {
    config: BprConfig,
    params: Option<Factors>,
    ids: Option<IdMaps>,
    history: Vec<EpochLog>,
}

impl Bpr {
    pub fn new(config: BprConfig) -> Result<Self> {
        config.validate()?;
        Ok(Bpr { config, params: None, ids: None, history: Vec::new() })
    }

    pub fn config(&self) -> &BprConfig {
        &self.config
    }

    pub fn factors(&self) -> Option<&Factors> {
        self.params.as_ref()
    }

    fn fitted(&self) -> Result<&Factors> {
        self.params.as_ref().ok_or_else(|| not_fitted("BPR"))
    }
}

impl Recommender for Bpr {
    fn kind(&self) -> &'static str {
        "bpr"
    }

    fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap()
    }

    fn fit(
        &mut self,
        train: &Interactions,
        validation: Option<&Validation<'_>>,
        observer: &mut dyn FnMut(&Event<'_>) -> Control,
    ) -> Result<FitReport> {
        let cfg = self.config.clone();
        let (backend, device) = cfg.resolve()?;
        let sampler = TripleSampler::new(train, 1)?;
        // The model is usable (and reports what it has) even if training stops early.
        self.params = Some(Factors::random(train.n_users(), train.n_items(), cfg.factors, cfg.init_std, cfg.seed, device)?);
        self.ids = Some(train.ids().clone());
        self.history.clear();
        let params = self.params.as_ref().unwrap();
        let loop_cfg =
            LoopConfig { epochs: cfg.epochs, batch_size: cfg.batch_size, seed: cfg.seed, threads: cfg.threads };
        let mut step: Box<dyn BatchStep + '_> = match (backend, cfg.optimizer.as_str()) {
            (Backend::Native, _) => Box::new(NativeSgd::new(params, &cfg)?),
            (Backend::Torch, "sgd") => Box::new(TorchSgd::new(params, &cfg)),
            (Backend::Torch, _) => Box::new(TorchAdam::new(params, &cfg)?),
        };
        let mut validate = validator(train, validation, |u| params.score(u))?;
        let report = fit_triples(step.as_mut(), &sampler, &loop_cfg, &mut validate, observer)?;
        drop(validate);
        drop(step);
        self.history = report.history.clone();
        Ok(report)
    }

    fn ids(&self) -> Option<&IdMaps> {
        self.ids.as_ref()
    }

    fn history(&self) -> &[EpochLog] {
        &self.history
    }

    fn score(&self, users: &[i64]) -> Result<Tensor> {
        self.fitted()?.score(users)
    }

    fn item_vectors(&self) -> Result<Tensor> {
        Ok(self.fitted()?.items.detach().to_device(Device::Cpu))
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(self.fitted()?.named())
    }

    fn restore(
        &mut self,
        state: &HashMap<String, Tensor>,
        ids: IdMaps,
        history: Vec<EpochLog>,
        device: Option<&str>,
    ) -> Result<()> {
        let f = Factors::from_state(state, device.unwrap_or(&self.config.device))?;
        if f.n_users() != ids.users.len() || f.n_items() != ids.items.len() || f.dim() != self.config.factors {
            return Err(Error::state(format!(
                "saved factors ({} users x {} items x {}) do not match the saved ids ({} x {}) and factors={}",
                f.n_users(),
                f.n_items(),
                f.dim(),
                ids.users.len(),
                ids.items.len(),
                self.config.factors
            )));
        }
        self.params = Some(f);
        self.ids = Some(ids);
        self.history = history;
        Ok(())
    }

    fn device(&self) -> String {
        self.params.as_ref().map(|p| device_name(p.device())).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Native backend: Hogwild SGD over the CPU tensors' memory.
// ---------------------------------------------------------------------------------------------

/// Raw parameter pointers shared by the rayon workers. Hogwild (Recht et al. 2011): workers
/// update rows without locks; with sparse updates collisions are rare and harmless to
/// convergence. Results are bit-for-bit reproducible with one thread.
#[derive(Clone, Copy)]
struct SharedRows {
    users: *mut f32,
    items: *mut f32,
    bias: *mut f32,
    dim: usize,
}
unsafe impl Send for SharedRows {}
unsafe impl Sync for SharedRows {}

impl SharedRows {
    /// Hint the CPU to fetch the rows of triple (u, i, j) into cache.
    #[inline(always)]
    fn prefetch(&self, (u, i, j): (usize, usize, usize)) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let bytes = self.dim * 4;
            for p in [self.users.wrapping_add(u * self.dim), self.items.wrapping_add(i * self.dim), self.items.wrapping_add(j * self.dim)] {
                let p = p as *const i8;
                // SAFETY: prefetching is a hint; it never faults, even out of bounds.
                (0..bytes).step_by(64).for_each(|off| unsafe { _mm_prefetch(p.wrapping_add(off), _MM_HINT_T0) });
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (u, i, j);
    }
}

/// Triples drawn ahead of the one being trained, so their rows are in cache when needed.
const PREFETCH_AHEAD: usize = 4;

/// Samples per rayon task when training from a filled batch.
const NATIVE_CHUNK: usize = 1024;

struct NativeSgd<'a> {
    rows: SharedRows,
    cfg: &'a BprConfig,
    lr: f32,
    loss: f64,
    // Handles on the parameter tensors keep the memory behind `rows` alive.
    _params: FactorHandles,
}

impl<'a> NativeSgd<'a> {
    fn new(p: &Factors, cfg: &'a BprConfig) -> Result<Self> {
        let h = p.handles();
        let rows = SharedRows {
            users: cpu_f32_ptr(&h.users, "user factors")?,
            items: cpu_f32_ptr(&h.items, "item factors")?,
            bias: cpu_f32_ptr(&h.item_bias, "item bias")?,
            dim: p.dim(),
        };
        Ok(NativeSgd { rows, cfg, lr: cfg.lr as f32, loss: 0.0, _params: h })
    }
}

impl BatchStep for NativeSgd<'_> {
    fn begin_epoch(&mut self, epoch: usize, _epochs: usize) -> Result<()> {
        self.lr = self.cfg.lr_at(epoch) as f32;
        Ok(())
    }

    fn step(&mut self, batch: &TripleBatch) -> Result<()> {
        let (rows, lr, reg, breg) = (self.rows, self.lr, self.cfg.reg as f32, self.cfg.bias_reg as f32);
        let kernel = select_kernel();
        let loss: f64 = batch
            .users
            .par_chunks(NATIVE_CHUNK)
            .zip(batch.pos.par_chunks(NATIVE_CHUNK))
            .zip(batch.neg.par_chunks(NATIVE_CHUNK))
            .map(|((us, ps), ns)| {
                let mut loss = 0f64;
                for k in 0..us.len() {
                    // SAFETY: see `sample_and_step`.
                    loss += unsafe { kernel(rows, us[k] as usize, ps[k] as usize, ns[k] as usize, lr, reg, breg) };
                }
                loss
            })
            .sum();
        self.loss += loss;
        Ok(())
    }

    /// Sampling fused into the update loop: the same triples as `fill`, without a buffer and
    /// with one parallel pass per batch instead of two.
    fn sample_and_step(
        &mut self,
        sampler: &TripleSampler<'_>,
        _batch: &mut TripleBatch,
        size: usize,
        seed: u64,
        stream: u64,
    ) -> Result<()> {
        let (rows, lr, reg, breg) = (self.rows, self.lr, self.cfg.reg as f32, self.cfg.bias_reg as f32);
        let kernel = select_kernel();
        let loss: f64 = TripleSampler::chunks(size)
            .map(|(chunk, len)| {
                let mut rng = sampler.chunk_rng(seed, stream, chunk);
                let mut neg = [0i64; 1];
                let mut draw = |rng: &mut _| {
                    let (u, i) = sampler.draw(rng, &mut neg);
                    (u, i, neg[0] as usize)
                };
                // Triples are drawn PREFETCH_AHEAD ahead of the update (in order) and their rows
                // fetched meanwhile: the update waits on memory more than on arithmetic.
                let ahead = PREFETCH_AHEAD.min(len);
                let mut ring = [(0usize, 0usize, 0usize); PREFETCH_AHEAD];
                for slot in ring.iter_mut().take(ahead) {
                    *slot = draw(&mut rng);
                    rows.prefetch(*slot);
                }
                let mut loss = 0f64;
                for k in 0..len {
                    let (u, i, j) = ring[k % PREFETCH_AHEAD];
                    if k + ahead < len {
                        let next = draw(&mut rng);
                        rows.prefetch(next);
                        ring[k % PREFETCH_AHEAD] = next;
                    }
                    // SAFETY: indices come from the sampler over this model's shapes, with the
                    // negative never a positive of the user (so never equal to i); the
                    // pointers are live for the step (see `_params`). Concurrent writes to one
                    // row from two threads are the Hogwild race, accepted by design.
                    loss += unsafe { kernel(rows, u, i, j, lr, reg, breg) };
                }
                loss
            })
            .sum();
        self.loss += loss;
        Ok(())
    }

    fn take_loss(&mut self) -> Result<f64> {
        Ok(std::mem::take(&mut self.loss))
    }
}

type Kernel = unsafe fn(SharedRows, usize, usize, usize, f32, f32, f32) -> f64;

/// The update compiled for the best instruction set this CPU has (AVX2+FMA doubles the
/// vector width of the default x86-64 build).
fn select_kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return sgd_update_avx2;
        }
    }
    sgd_update
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sgd_update_avx2(rows: SharedRows, u: usize, i: usize, j: usize, lr: f32, reg: f32, breg: f32) -> f64 {
    sgd_update(rows, u, i, j, lr, reg, breg)
}

/// One BPR SGD update; returns the sample's loss -ln sigmoid(x).
///
/// # Safety
/// `u`, `i`, `j` must be in range of the parameter matrices behind `rows`, and `i != j`
/// (a negative is never a positive of the same user).
#[inline(always)]
unsafe fn sgd_update(rows: SharedRows, u: usize, i: usize, j: usize, lr: f32, reg: f32, breg: f32) -> f64 {
    let d = rows.dim;
    // Distinct rows (users and items are different matrices, i != j), so these slices do not
    // overlap within a thread, which lets the compiler vectorise the loops below.
    let pu = std::slice::from_raw_parts_mut(rows.users.add(u * d), d);
    let qi = std::slice::from_raw_parts_mut(rows.items.add(i * d), d);
    let qj = std::slice::from_raw_parts_mut(rows.items.add(j * d), d);
    let (bi, bj) = (&mut *rows.bias.add(i), &mut *rows.bias.add(j));
    let x = *bi - *bj + dot_diff(pu, qi, qj);
    // z = sigmoid(-x) = d(-ln sigmoid(x))/d(-x)
    let z = 1.0 / (1.0 + x.exp());
    for ((uf, pf), qf) in pu.iter_mut().zip(qi.iter_mut()).zip(qj.iter_mut()) {
        let (u0, p0, q0) = (*uf, *pf, *qf);
        *uf = u0 + lr * (z * (p0 - q0) - reg * u0);
        *pf = p0 + lr * (z * u0 - reg * p0);
        *qf = q0 + lr * (-z * u0 - reg * q0);
    }
    *bi += lr * (z - breg * *bi);
    *bj += lr * (-z - breg * *bj);
    // -ln sigmoid(x) = ln(1 + e^x) - x = -ln(z) - x; past x = 30 it is e^-x, below f32 noise.
    (if x > 30.0 { 0.0 } else { -z.ln() - x }) as f64
}

/// a . (p - q) with eight partial sums, so the compiler can vectorise it.
#[inline(always)]
fn dot_diff(a: &[f32], p: &[f32], q: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let n8 = a.len() / 8 * 8;
    for ((ca, cp), cq) in a[..n8].chunks_exact(8).zip(p[..n8].chunks_exact(8)).zip(q[..n8].chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += ca[k] * (cp[k] - cq[k]);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for k in n8..a.len() {
        s += a[k] * (p[k] - q[k]);
    }
    s
}

// ---------------------------------------------------------------------------------------------
// libtorch backend.
// ---------------------------------------------------------------------------------------------

/// Gathered rows of one batch and the summed BPR loss over them; `leaf` makes the gathered
/// rows autograd leaves (for the sparse SGD update) instead of views of the parameters.
struct Gathered {
    idx: [Tensor; 3],
    rows: [Tensor; 3],
    bias: [Tensor; 2],
    data_loss: Tensor,
    total_loss: Tensor,
}

fn gather(p: &FactorHandles, batch: &TripleBatch, reg: f64, breg: f64, leaf: bool) -> Gathered {
    let dev = p.device;
    // SAFETY: the views live only inside this step, while `batch` is borrowed and unchanged.
    let idx = unsafe { [view_i64(&batch.users), view_i64(&batch.pos), view_i64(&batch.neg)] }
        .map(|t| t.to_device(dev));
    let take = |w: &Tensor, i: &Tensor| {
        let g = w.index_select(0, i);
        if leaf {
            g.detach().set_requires_grad(true)
        } else {
            g
        }
    };
    let rows = [take(&p.users, &idx[0]), take(&p.items, &idx[1]), take(&p.items, &idx[2])];
    let bias = [take(&p.item_bias, &idx[1]), take(&p.item_bias, &idx[2])];
    let x = (&rows[0] * (&rows[1] - &rows[2])).sum_dim_intlist(-1, false, Kind::Float) + &bias[0] - &bias[1];
    let data_loss = (-x).softplus().sum(Kind::Float);
    let sq = |t: &Tensor| t.square().sum(Kind::Float);
    let reg_loss = (sq(&rows[0]) + sq(&rows[1]) + sq(&rows[2])) * (0.5 * reg) + (sq(&bias[0]) + sq(&bias[1])) * (0.5 * breg);
    let total_loss = &data_loss + reg_loss;
    Gathered { idx, rows, bias, data_loss, total_loss }
}

/// Per-sample-equivalent SGD: the summed loss's gradients on the gathered rows are added back
/// with `index_add_`, so only touched rows move (as in the native kernel).
struct TorchSgd<'a> {
    p: FactorHandles,
    cfg: &'a BprConfig,
    lr: f64,
    loss: Tensor,
}

impl<'a> TorchSgd<'a> {
    fn new(p: &Factors, cfg: &'a BprConfig) -> Self {
        TorchSgd { p: p.handles(), cfg, lr: cfg.lr, loss: zero_loss(p.device()) }
    }
}

fn zero_loss(device: Device) -> Tensor {
    Tensor::zeros([], (Kind::Double, device))
}

impl BatchStep for TorchSgd<'_> {
    fn begin_epoch(&mut self, epoch: usize, _epochs: usize) -> Result<()> {
        self.lr = self.cfg.lr_at(epoch);
        Ok(())
    }

    fn step(&mut self, batch: &TripleBatch) -> Result<()> {
        let g = gather(&self.p, batch, self.cfg.reg, self.cfg.bias_reg, true);
        g.total_loss.f_backward()?;
        tch::no_grad(|| -> Result<()> {
            let lr = -self.lr;
            let targets = [&self.p.users, &self.p.items, &self.p.items];
            for ((w, i), r) in targets.into_iter().zip(&g.idx).zip(&g.rows) {
                let _ = w.shallow_clone().f_index_add_(0, i, &(r.grad() * lr))?;
            }
            for (i, b) in g.idx[1..].iter().zip(&g.bias) {
                let _ = self.p.item_bias.shallow_clone().f_index_add_(0, i, &(b.grad() * lr))?;
            }
            self.loss += g.data_loss.to_kind(Kind::Double);
            Ok(())
        })
    }

    fn take_loss(&mut self) -> Result<f64> {
        let v = self.loss.double_value(&[]);
        self.loss = zero_loss(self.p.device);
        Ok(v)
    }
}

/// Adam on the whole parameter tensors (libtorch's optimizer).
struct TorchAdam<'a> {
    p: FactorHandles,
    cfg: &'a BprConfig,
    opt: nn::Optimizer,
    loss: Tensor,
}

impl<'a> TorchAdam<'a> {
    fn new(p: &Factors, cfg: &'a BprConfig) -> Result<Self> {
        let opt = nn::Adam::default().build(&p.vs, cfg.lr)?;
        Ok(TorchAdam { p: p.handles(), cfg, opt, loss: zero_loss(p.device()) })
    }
}

impl BatchStep for TorchAdam<'_> {
    fn begin_epoch(&mut self, epoch: usize, _epochs: usize) -> Result<()> {
        self.opt.set_lr(self.cfg.lr_at(epoch));
        Ok(())
    }

    fn step(&mut self, batch: &TripleBatch) -> Result<()> {
        let g = gather(&self.p, batch, self.cfg.reg, self.cfg.bias_reg, false);
        self.opt.zero_grad();
        g.total_loss.f_backward()?;
        self.opt.step();
        tch::no_grad(|| self.loss += g.data_loss.to_kind(Kind::Double));
        Ok(())
    }

    fn take_loss(&mut self) -> Result<f64> {
        let v = self.loss.double_value(&[]);
        self.loss = zero_loss(self.p.device);
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_diff_matches_naive() {
        let a: Vec<f32> = (0..19).map(|x| x as f32 * 0.1).collect();
        let p: Vec<f32> = (0..19).map(|x| (x as f32).sin()).collect();
        let q: Vec<f32> = (0..19).map(|x| (x as f32).cos()).collect();
        let naive: f32 = (0..19).map(|k| a[k] * (p[k] - q[k])).sum();
        assert!((dot_diff(&a, &p, &q) - naive).abs() < 1e-5);
    }

    #[test]
    fn sgd_update_matches_the_gradient() {
        // One user, items 0 (positive) and 1 (negative), d = 3; compare with the formulas.
        let mut users = vec![0.1f32, -0.2, 0.3];
        let mut items = vec![0.5f32, 0.1, -0.4, -0.3, 0.2, 0.6];
        let mut bias = vec![0.05f32, -0.1];
        let rows = SharedRows { users: users.as_mut_ptr(), items: items.as_mut_ptr(), bias: bias.as_mut_ptr(), dim: 3 };
        let (lr, reg, breg) = (0.1f32, 0.01f32, 0.02f32);
        let (u0, i0, j0, b0) = (users.clone(), items[..3].to_vec(), items[3..].to_vec(), bias.clone());
        let x: f32 = b0[0] - b0[1] + (0..3).map(|f| u0[f] * (i0[f] - j0[f])).sum::<f32>();
        let z = 1.0 / (1.0 + x.exp());
        let loss = unsafe { sgd_update(rows, 0, 0, 1, lr, reg, breg) };
        assert!((loss - (1.0 + (-x as f64).exp()).ln()).abs() < 1e-6);
        for f in 0..3 {
            assert!((users[f] - (u0[f] + lr * (z * (i0[f] - j0[f]) - reg * u0[f]))).abs() < 1e-7);
            assert!((items[f] - (i0[f] + lr * (z * u0[f] - reg * i0[f]))).abs() < 1e-7);
            assert!((items[3 + f] - (j0[f] + lr * (-z * u0[f] - reg * j0[f]))).abs() < 1e-7);
        }
        assert!((bias[0] - (b0[0] + lr * (z - breg * b0[0]))).abs() < 1e-7);
        assert!((bias[1] - (b0[1] + lr * (-z - breg * b0[1]))).abs() < 1e-7);
    }

    #[test]
    fn config_validation() {
        assert!(BprConfig { lr: -1.0, ..Default::default() }.validate().is_err());
        assert!(BprConfig { optimizer: "rmsprop".into(), ..Default::default() }.validate().is_err());
        let e = BprConfig { backend: "native".into(), optimizer: "adam".into(), ..Default::default() }.validate();
        assert!(e.unwrap_err().to_string().contains("SGD only"));
        let c = BprConfig { device: "cpu".into(), ..Default::default() };
        assert_eq!(c.resolve().unwrap(), (Backend::Native, Device::Cpu));
        let c = BprConfig { device: "cpu".into(), optimizer: "adam".into(), ..Default::default() };
        assert_eq!(c.resolve().unwrap().0, Backend::Torch);
        let err = serde_json::from_str::<BprConfig>(r#"{"factorz": 3}"#).unwrap_err().to_string();
        assert!(err.contains("factorz"), "{err}");
    }

    #[test]
    fn fused_sampling_draws_the_triples_fill_draws() {
        use crate::data::synthetic::{synthetic, SyntheticConfig};
        let data = synthetic(&SyntheticConfig { n_users: 60, n_items: 50, ..Default::default() }).unwrap();
        let sampler = TripleSampler::new(&data, 1).unwrap();
        let cfg = BprConfig { factors: 8, device: "cpu".into(), ..Default::default() };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let run = |fused: bool| {
            let p = Factors::random(60, 50, 8, 0.1, 3, Device::Cpu).unwrap();
            let mut step = NativeSgd::new(&p, &cfg).unwrap();
            let mut batch = TripleBatch::default();
            pool.install(|| {
                if fused {
                    step.sample_and_step(&sampler, &mut batch, 3000, 7, 2).unwrap();
                } else {
                    sampler.fill(&mut batch, 3000, 7, 2);
                    step.step(&batch).unwrap();
                }
            });
            (crate::tensors::to_vec_f32(&p.items).unwrap(), step.take_loss().unwrap())
        };
        let (a, la) = run(true);
        let (b, lb) = run(false);
        assert_eq!(a, b);
        assert_eq!(la, lb);
    }

    #[test]
    fn lr_decays_linearly() {
        let c = BprConfig { epochs: 5, lr: 1.0, lr_final: 0.2, ..Default::default() };
        assert!((c.lr_at(0) - 1.0).abs() < 1e-12 && (c.lr_at(4) - 0.2).abs() < 1e-12);
    }
}
