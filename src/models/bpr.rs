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
use tch::{Device, Kind, Tensor};

use super::core::{Common, FitCtx, ParamStore, Spec};
use super::factors::{FactorHandles, Factors};
use crate::data::{Interactions, SideInfo, SideNeeds};
use crate::error::{quote, Error, Result};
use crate::sampling::{Choice, SamplerConfig, TripleBatch, TripleSampler};
use crate::tensors::{cpu_f32_ptr, parse_device};
use crate::train::torch_step::{Gathered, Loss, Optimizer, Reduction, StepConfig, TorchStep, TwoTower};
use crate::train::{BatchStep, FitReport};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BprConfig {
    /// Latent dimension.
    pub factors: usize,
    /// epochs, lr (per sample for SGD), batch_size (the libtorch backend's minibatch; the
    /// native kernel's work unit), seed, threads (sampling and the native kernel), device.
    #[serde(flatten)]
    pub common: Common,
    /// Learning rate at the last epoch, as a fraction of `lr` (linear decay; 1 keeps it constant).
    pub lr_final: f64,
    /// L2 weight on the factors of the rows a sample touches.
    pub reg: f64,
    /// L2 weight on the item biases a sample touches.
    pub bias_reg: f64,
    /// "sgd" or "adam".
    pub optimizer: String,
    /// Standard deviation of the initial factors.
    pub init_std: f64,
    /// "auto" (native on CPU with SGD, else torch), "native" or "torch".
    pub backend: String,
    /// Which negatives to train on (see `crate::sampling::negatives`).
    pub sampler: SamplerConfig,
}

impl Default for BprConfig {
    fn default() -> Self {
        BprConfig {
            factors: 64,
            // Chosen on a validation split of MovieLens 100k u1.base (benches/tune_bpr_defaults.py).
            common: Common::new(50, 0.1, 4096),
            lr_final: 0.1,
            reg: 0.02,
            bias_reg: 0.01,
            optimizer: "sgd".into(),
            init_std: 0.1,
            backend: "auto".into(),
            // WARP's margin is on the score scale: 4 was chosen for these factors on a
            // validation split of u1.base (benches/tune_warp.py); LightFM's 1 is too hard a
            // margin for BPR's log loss (NDCG@10 0.180 against 0.235 there).
            sampler: SamplerConfig { margin: 4.0, ..SamplerConfig::default() },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Native,
    Torch,
}

/// Checks that each named value is finite, >= 0 (> 0 where `strictly`) and within f32 (what
/// the kernels compute in: a finite f64 beyond it would become inf there).
pub(crate) fn check_weights(values: &[(&str, f64, bool)]) -> Result<()> {
    for &(name, v, strictly) in values {
        if !v.is_finite() || v.abs() > f32::MAX as f64 || v < 0.0 || (strictly && v == 0.0) {
            return Err(Error::invalid(format!("{name} must be a finite number {} 0, got {v}", if strictly { ">" } else { ">=" })));
        }
    }
    Ok(())
}

impl BprConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        if self.factors == 0 {
            return bad("factors must be at least 1".into());
        }
        check_weights(&[("init_std", self.init_std, true), ("reg", self.reg, false), ("bias_reg", self.bias_reg, false)])?;
        if !(self.lr_final > 0.0 && self.lr_final <= 1.0) {
            return bad(format!("lr_final must be in (0, 1], got {}", self.lr_final));
        }
        if !["sgd", "adam"].contains(&self.optimizer.as_str()) {
            return bad(format!("optimizer must be 'sgd' or 'adam', not {}", quote(&self.optimizer)));
        }
        if !["auto", "native", "torch"].contains(&self.backend.as_str()) {
            return bad(format!("backend must be 'auto', 'native' or 'torch', not {}", quote(&self.backend)));
        }
        self.sampler.validate()?;
        if self.backend == "native" && self.optimizer != "sgd" {
            return bad("the native backend implements SGD only; use backend='torch' for Adam".into());
        }
        Ok(())
    }

    /// The backend and device this configuration trains on, here.
    pub fn resolve(&self) -> Result<(Backend, Device)> {
        let device = parse_device(&self.common.device)?;
        let backend = match self.backend.as_str() {
            "native" if device != Device::Cpu => {
                return Err(Error::invalid(format!(
                    "the native backend runs on the CPU, but device {:?} was asked for",
                    self.common.device
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
        let epochs = self.common.epochs;
        let t = if epochs > 1 { epoch as f64 / (epochs - 1) as f64 } else { 0.0 };
        self.common.lr * (1.0 - t * (1.0 - self.lr_final))
    }
}

/// BPR-MF: factors with an item bias (the matrix-factorisation layout every factor model shares).
pub struct Bpr;

impl Spec for Bpr {
    const KIND: &'static str = "bpr";
    const NAME: &'static str = "BPR";
    type Config = BprConfig;
    type Params = Factors;

    fn common(c: &BprConfig) -> Option<&Common> {
        Some(&c.common)
    }

    fn validate(c: &BprConfig) -> Result<()> {
        c.validate()
    }

    fn needs(c: &BprConfig) -> SideNeeds {
        c.sampler.side_needs()
    }

    fn build(c: &BprConfig, train: &Interactions, _: &SideInfo, device: Device) -> Result<Factors> {
        c.resolve()?;
        Factors::random(train.n_users(), train.n_items(), c.factors, c.init_std, c.common.seed, device)
    }

    fn train(c: &BprConfig, p: &Factors, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let sampler = TripleSampler::with_config(train, 1, &c.sampler, side)?;
        let mut step: Box<dyn BatchStep<TripleSampler<'_>> + '_> = match c.resolve()?.0 {
            Backend::Native => Box::new(NativeSgd::new(p, c)?),
            Backend::Torch => Box::new(torch_step(p, c, train.n_items())?),
        };
        ctx.run(step.as_mut(), &sampler, &|u| p.score_block(&Tensor::from_slice(u).f_to_device(p.device())?))
    }

    fn store(p: &Factors) -> &ParamStore {
        &p.store
    }

    fn restore(c: &BprConfig, shape: (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<Factors> {
        Factors::from_state(state, shape, c.factors, device)
    }

    fn score_block(_: &BprConfig, p: &Factors, users: &Tensor) -> Result<Tensor> {
        p.score_block(users)
    }

    fn item_vectors(_: &BprConfig, p: &Factors) -> Result<Tensor> {
        Ok(p.items.shallow_clone())
    }

    fn user_vectors(_: &BprConfig, p: &Factors) -> Result<Tensor> {
        Ok(p.users.shallow_clone())
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
    /// score(u, j) = p_u . q_j + b_j.
    ///
    /// # Safety
    /// `u` and `j` in range of the matrices.
    #[inline(always)]
    unsafe fn score(&self, u: usize, j: usize) -> f32 {
        let d = self.dim;
        let pu = std::slice::from_raw_parts(self.users.add(u * d), d);
        let qj = std::slice::from_raw_parts(self.items.add(j * d), d);
        *self.bias.add(j) + pu.iter().zip(qj).map(|(a, b)| a * b).sum::<f32>()
    }

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
    choice: Choice,
    n_items: usize,
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
        Ok(NativeSgd { rows, cfg, lr: cfg.common.lr as f32, loss: 0.0, choice: cfg.sampler.choice(), n_items: p.n_items(), _params: h })
    }
}

// WARP's rank weight: defined once, in the sampling module (`TorchStep` uses it too).
use crate::sampling::warp_weight;

/// What the native kernel needs to pick a negative among candidates (Copy, so rayon
/// workers share it).
#[derive(Clone, Copy)]
struct Chooser {
    rows: SharedRows,
    choice: Choice,
    n_items: usize,
}

impl Chooser {
    /// The negative to train on among a sample's candidates, and the weight of its loss
    /// (WARP's rank estimate); None when WARP found no violator (the sample is skipped).
    ///
    /// # Safety
    /// Indices in range of the parameter matrices behind `rows`.
    #[inline(always)]
    unsafe fn choose(self, u: usize, i: usize, cands: &[i64]) -> Option<(usize, f32)> {
        let rows = self.rows;
        match self.choice {
            Choice::Single => Some((cands[0] as usize, 1.0)),
            Choice::BestOfN => {
                let best = cands.iter().map(|&j| (rows.score(u, j as usize), j)).max_by(|a, b| a.0.total_cmp(&b.0));
                best.map(|(_, j)| (j as usize, 1.0))
            }
            Choice::Warp { margin } => {
                let xi = rows.score(u, i);
                cands.iter().enumerate().find(|&(_, &j)| rows.score(u, j as usize) > xi - margin).map(|(t, &j)| {
                    (j as usize, warp_weight(self.n_items, t + 1))
                })
            }
        }
    }
}

impl NativeSgd<'_> {
    /// WARP as LightFM runs it: candidates are drawn one at a time until one violates the
    /// margin (at most `max_sampled`), so an easy sample costs one draw. The same
    /// distribution as the batched path, not the same draws.
    fn warp_fused(&mut self, sampler: &TripleSampler<'_>, size: usize, seed: u64, batch_index: u64, margin: f32) -> Result<()> {
        let (rows, lr, reg, breg) = (self.rows, self.lr, self.cfg.reg as f32, self.cfg.bias_reg as f32);
        let (kernel, n_items, max_sampled) = (select_kernel(), self.n_items, sampler.n_candidates());
        let loss: f64 = TripleSampler::chunks(size)
            .map(|(chunk, len)| {
                let mut rng = sampler.chunk_rng(seed, batch_index, chunk);
                let mut loss = 0f64;
                for _ in 0..len {
                    let (u, i, row) = sampler.draw_positive(&mut rng);
                    // SAFETY: indices from the sampler over this model's shapes (see
                    // `sample_and_step`); j is never a positive of u, so never i.
                    unsafe {
                        let xi = rows.score(u, i);
                        for t in 1..=max_sampled {
                            let j = sampler.draw_negative(&mut rng, row, i) as usize;
                            if rows.score(u, j) > xi - margin {
                                loss += kernel(rows, u, i, j, lr, reg, breg, warp_weight(n_items, t));
                                break;
                            }
                        }
                    }
                }
                loss
            })
            .sum();
        self.loss += loss;
        Ok(())
    }
}

impl BatchStep<TripleSampler<'_>> for NativeSgd<'_> {
    fn begin_epoch(&mut self, epoch: usize, _epochs: usize) -> Result<()> {
        self.lr = self.cfg.lr_at(epoch) as f32;
        Ok(())
    }

    fn step(&mut self, batch: &TripleBatch) -> Result<()> {
        let (rows, lr, reg, breg) = (self.rows, self.lr, self.cfg.reg as f32, self.cfg.bias_reg as f32);
        let kernel = select_kernel();
        let width = batch.n_neg * batch.n_cand.max(1);
        let this = Chooser { rows, choice: self.choice, n_items: self.n_items };
        let loss: f64 = batch
            .users
            .par_chunks(NATIVE_CHUNK)
            .zip(batch.pos.par_chunks(NATIVE_CHUNK))
            .zip(batch.neg.par_chunks(NATIVE_CHUNK * width))
            .map(|((us, ps), ns)| {
                let mut loss = 0f64;
                for k in 0..us.len() {
                    let (u, i) = (us[k] as usize, ps[k] as usize);
                    // SAFETY: see `sample_and_step`.
                    unsafe {
                        if let Some((j, w)) = this.choose(u, i, &ns[k * width..(k + 1) * width]) {
                            loss += kernel(rows, u, i, j, lr, reg, breg, w);
                        }
                    }
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
        batch: &mut TripleBatch,
        size: usize,
        seed: u64,
        batch_index: u64,
    ) -> Result<()> {
        if let Choice::Warp { margin } = self.choice {
            return self.warp_fused(sampler, size, seed, batch_index, margin);
        }
        if sampler.n_candidates() > 1 {
            // Best of n: the model picks among candidates; no prefetch ring.
            sampler.fill(batch, size, seed, batch_index);
            return self.step(batch);
        }
        let (rows, lr, reg, breg) = (self.rows, self.lr, self.cfg.reg as f32, self.cfg.bias_reg as f32);
        let kernel = select_kernel();
        let loss: f64 = TripleSampler::chunks(size)
            .map(|(chunk, len)| {
                let mut rng = sampler.chunk_rng(seed, batch_index, chunk);
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
                    loss += unsafe { kernel(rows, u, i, j, lr, reg, breg, 1.0) };
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

type Kernel = unsafe fn(SharedRows, usize, usize, usize, f32, f32, f32, f32) -> f64;

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
#[allow(clippy::too_many_arguments)]
unsafe fn sgd_update_avx2(rows: SharedRows, u: usize, i: usize, j: usize, lr: f32, reg: f32, breg: f32, w: f32) -> f64 {
    sgd_update(rows, u, i, j, lr, reg, breg, w)
}

/// One BPR SGD update with the loss weighted by `w` (1, or WARP's rank weight); returns the
/// sample's weighted loss -w ln sigmoid(x).
///
/// # Safety
/// `u`, `i`, `j` must be in range of the parameter matrices behind `rows`, and `i != j`
/// (a negative is never a positive of the same user).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn sgd_update(rows: SharedRows, u: usize, i: usize, j: usize, lr: f32, reg: f32, breg: f32, w: f32) -> f64 {
    let d = rows.dim;
    // Distinct rows (users and items are different matrices, i != j), so these slices do not
    // overlap within a thread, which lets the compiler vectorise the loops below.
    let pu = std::slice::from_raw_parts_mut(rows.users.add(u * d), d);
    let qi = std::slice::from_raw_parts_mut(rows.items.add(i * d), d);
    let qj = std::slice::from_raw_parts_mut(rows.items.add(j * d), d);
    let (bi, bj) = (&mut *rows.bias.add(i), &mut *rows.bias.add(j));
    let x = *bi - *bj + dot_diff(pu, qi, qj);
    // z = sigmoid(-x) = d(-ln sigmoid(x))/d(-x)
    let z0 = 1.0 / (1.0 + x.exp());
    let z = w * z0;
    for ((uf, pf), qf) in pu.iter_mut().zip(qi.iter_mut()).zip(qj.iter_mut()) {
        let (u0, p0, q0) = (*uf, *pf, *qf);
        *uf = u0 + lr * (z * (p0 - q0) - reg * u0);
        *pf = p0 + lr * (z * u0 - reg * p0);
        *qf = q0 + lr * (-z * u0 - reg * q0);
    }
    *bi += lr * (z - breg * *bi);
    *bj += lr * (-z - breg * *bj);
    // -ln sigmoid(x) = ln(1 + e^x) - x = -ln(z) - x; past x = 30 it is e^-x, below f32 noise.
    (w * if x > 30.0 { 0.0 } else { -z0.ln() - x }) as f64
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
// libtorch backend: the shared step over the factors.
// ---------------------------------------------------------------------------------------------

/// Matrix factorisation as two towers: rows of the user and item matrices, the item bias, L2
/// on the rows a batch touches (the native kernel's regularisation, so both learn the same).
struct MfTowers {
    p: FactorHandles,
    reg: f64,
    bias_reg: f64,
}

impl TwoTower for MfTowers {
    fn user_vectors(&self, users: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.p.users.f_index_select(0, users)?)
    }

    fn item_vectors(&self, items: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.p.items.f_index_select(0, items)?)
    }

    fn item_bias(&self, items: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.p.item_bias.f_index_select(0, &items.f_flatten(0, -1)?)?.f_view_as(items)?))
    }

    fn penalty(&self, g: &Gathered<'_>) -> Result<Option<Tensor>> {
        let sq = |t: &Tensor| t.f_square().and_then(|s| s.f_sum(Kind::Float));
        let rows = sq(g.u)? + sq(g.i_pos)? + sq(g.i_neg)?;
        let bias = |i: &Tensor| -> Result<Tensor> { Ok(sq(&self.p.item_bias.f_index_select(0, &i.f_flatten(0, -1)?)?)?) };
        Ok(Some(rows * (0.5 * self.reg) + (bias(g.pos)? + bias(g.neg)?) * (0.5 * self.bias_reg)))
    }
}

/// BPR on libtorch: SGD (dense gradients are zero outside the touched rows, so this is the
/// per-sample sparse update of the native kernel on the summed loss) or Adam.
fn torch_step(p: &Factors, cfg: &BprConfig, n_items: usize) -> Result<TorchStep<MfTowers>> {
    let c = cfg.clone();
    let step_cfg = StepConfig {
        loss: Loss::Bpr,
        reduction: Reduction::Sum,
        optimizer: if cfg.optimizer == "sgd" { Optimizer::Sgd } else { Optimizer::Adam },
        lr: Box::new(move |e| c.lr_at(e)),
        choice: cfg.sampler.choice(),
        n_items,
        shared_negatives: false,
        log_q: None,
    };
    TorchStep::new(MfTowers { p: p.handles(), reg: cfg.reg, bias_reg: cfg.bias_reg }, &p.store.vs, step_cfg)
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
        let loss = unsafe { sgd_update(rows, 0, 0, 1, lr, reg, breg, 1.0) };
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
        let cfg = |json: &str| super::super::core::parse_config::<BprConfig>("bpr", json).unwrap();
        assert!(super::super::core::Model::<Bpr>::new(cfg(r#"{"lr": -1.0}"#)).is_err());
        assert!(BprConfig { optimizer: "rmsprop".into(), ..Default::default() }.validate().is_err());
        let e = BprConfig { backend: "native".into(), optimizer: "adam".into(), ..Default::default() }.validate();
        assert!(e.unwrap_err().to_string().contains("SGD only"));
        let c = cfg(r#"{"device": "cpu"}"#);
        assert_eq!(c.resolve().unwrap(), (Backend::Native, Device::Cpu));
        let c = cfg(r#"{"device": "cpu", "optimizer": "adam"}"#);
        assert_eq!(c.resolve().unwrap().0, Backend::Torch);
        let err = super::super::core::parse_config::<BprConfig>("bpr", r#"{"factorz": 3}"#).unwrap_err().to_string();
        assert!(err.contains("factorz"), "{err}");
    }

    #[test]
    fn fused_sampling_draws_the_triples_fill_draws() {
        use crate::data::synthetic::{synthetic, SyntheticConfig};
        let data = synthetic(&SyntheticConfig { n_users: 60, n_items: 50, ..Default::default() }).unwrap();
        let sampler = TripleSampler::new(&data, 1).unwrap();
        let cfg = BprConfig { factors: 8, ..Default::default() };
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
    fn device_top_k_matches_the_cpu_selection() {
        use crate::data::synthetic::{synthetic, SyntheticConfig};
        let data = synthetic(&SyntheticConfig { n_users: 30, n_items: 40, ..Default::default() }).unwrap();
        let p = Factors::random(30, 40, 8, 0.1, 3, Device::Cpu).unwrap();
        let users: Vec<i64> = (0..30).collect();
        let s = p.score_block(&Tensor::from_slice(&users)).unwrap();
        let cpu = crate::metrics::top_k_block(
            &crate::tensors::to_vec_f32(&s).unwrap(),
            40,
            &(0..30).collect::<Vec<u32>>(),
            35,
            Some(&data),
            None,
        )
        .unwrap();
        let dev = super::super::device_top_k(s.shallow_clone(), &users, 35, Some(&data), None).unwrap();
        assert_eq!(cpu, dev);
        // Only candidates (every third item): fewer than k remain, the rest is -1 / -inf.
        let cand: Vec<bool> = (0..40).map(|i| i % 3 == 0).collect();
        let idx: Vec<u32> = (0..30).collect();
        let cpu = crate::metrics::top_k_block(&crate::tensors::to_vec_f32(&s).unwrap(), 40, &idx, 20, Some(&data), Some(&cand)).unwrap();
        let dev = super::super::device_top_k(s, &users, 20, Some(&data), Some(&cand)).unwrap();
        assert_eq!(cpu, dev);
        assert!(cpu.0.iter().all(|&i| i == -1 || i % 3 == 0));
        assert!(cpu.0.iter().zip(&cpu.1).all(|(&i, &v)| (i == -1) == (v == f32::NEG_INFINITY)));
    }

    #[test]
    fn lr_decays_linearly() {
        let c = BprConfig { common: Common::new(5, 1.0, 16), lr_final: 0.2, ..Default::default() };
        assert!((c.lr_at(0) - 1.0).abs() < 1e-12 && (c.lr_at(4) - 0.2).abs() < 1e-12);
    }
}
