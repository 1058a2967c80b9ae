//! BPR's native backend: Hogwild SGD over the CPU tensors' memory, sampling fused into the
//! update loop, one lock-free rayon kernel (no per-batch libtorch overhead).

use rayon::prelude::*;

use super::BprConfig;
use crate::error::Result;
use crate::models::factors::{FactorHandles, Factors};
use crate::sampling::ahead::{prefetch, RowPrefetch};
use crate::sampling::warp_weight;
use crate::sampling::pair_filter::PairFilter;
use crate::sampling::rng::Rng;
use crate::sampling::{Choice, TripleBatch, TripleSampler};
use crate::tensors::cpu_f32_ptr;
use crate::train::BatchStep;

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
}

impl RowPrefetch for SharedRows {
    #[inline(always)]
    fn user(&self, u: usize) {
        prefetch(self.users.wrapping_add(u * self.dim), self.dim * 4);
    }
    #[inline(always)]
    fn item(&self, i: usize) {
        prefetch(self.items.wrapping_add(i * self.dim), self.dim * 4);
        prefetch(self.bias.wrapping_add(i), 4);
    }
}

/// Samples per rayon task when training from a filled batch.
const NATIVE_CHUNK: usize = 1024;

pub(super) struct NativeSgd<'a> {
    rows: SharedRows,
    cfg: &'a BprConfig,
    lr: f32,
    loss: f64,
    choice: Choice,
    n_items: usize,
    /// The training pairs, for drawing ahead (see `crate::sampling::ahead`).
    filter: Option<PairFilter>,
    // Handles on the parameter tensors keep the memory behind `rows` alive.
    _params: FactorHandles,
}

impl<'a> NativeSgd<'a> {
    /// The step of a fit over `sampler`'s data (the one `sample_and_step` is given).
    pub(super) fn new(p: &Factors, cfg: &'a BprConfig, sampler: &TripleSampler<'_>) -> Result<Self> {
        let h = p.handles();
        let filter = if sampler.draws_ahead() { Some(sampler.pair_filter()?) } else { None };
        let rows = SharedRows {
            users: cpu_f32_ptr(&h.users, "user factors")?,
            items: cpu_f32_ptr(&h.items, "item factors")?,
            bias: cpu_f32_ptr(&h.item_bias, "item bias")?,
            dim: p.dim(),
        };
        Ok(NativeSgd { rows, cfg, lr: cfg.common.lr as f32, loss: 0.0, choice: cfg.sampler.choice(), n_items: p.n_items(), filter, _params: h })
    }
}


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

    /// Hogwild updates from every thread, lock-free: nothing a process group could sum.
    fn distribute(&mut self, _sync: &crate::train::GradSync) -> Result<()> {
        Err(crate::error::Error::invalid(
            "BPR's native kernel (backend='native') trains in one process only; distributed training needs backend='torch'",
        ))
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
        let Some(filter) = &self.filter else {
            // Best of n (the model picks among candidates) or negatives that depend on the
            // positive: a filled batch.
            sampler.fill(batch, size, seed, batch_index);
            return self.step(batch);
        };
        let update = Update { rows: self.rows, lr: self.lr, reg: self.cfg.reg as f32, breg: self.cfg.bias_reg as f32 };
        let chunk_loop = select_chunk_loop();
        let loss: f64 = TripleSampler::chunks(size)
            .map(|(chunk, len)| {
                let mut rng = sampler.chunk_rng(seed, batch_index, chunk);
                // SAFETY: see `train_drawn_ahead`.
                unsafe { chunk_loop(sampler, filter, &mut rng, len, update) }
            })
            .sum();
        self.loss += loss;
        Ok(())
    }

    fn take_loss(&mut self) -> Result<f64> {
        Ok(std::mem::take(&mut self.loss))
    }
}

/// The settings of one SGD update.
#[derive(Clone, Copy)]
struct Update {
    rows: SharedRows,
    lr: f32,
    reg: f32,
    breg: f32,
}

type ChunkLoop = unsafe fn(&TripleSampler<'_>, &PairFilter, &mut Rng, usize, Update) -> f64;

/// Trains `len` triples drawn ahead from `rng` (see `crate::sampling::ahead`); the chunk's loss.
///
/// # Safety
/// `update.rows` are the live parameters of a model over the sampler's data. Indices come from
/// the sampler over this model's shapes, with the negative never a positive of the user (so
/// never equal to i). Concurrent writes to one row from two threads are the Hogwild race,
/// accepted by design.
#[inline(always)]
unsafe fn train_drawn_ahead(sampler: &TripleSampler<'_>, filter: &PairFilter, rng: &mut Rng, len: usize, up: Update) -> f64 {
    let mut loss = 0f64;
    sampler.draw_ahead(filter, rng, len, &up.rows, |u, i, j| loss += unsafe { sgd_update(up.rows, u, i, j, up.lr, up.reg, up.breg, 1.0) });
    loss
}

/// The chunk loop compiled whole for AVX2+FMA: the update inlined into the sampling
/// pipeline, no call per sample.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn train_drawn_ahead_avx2(sampler: &TripleSampler<'_>, filter: &PairFilter, rng: &mut Rng, len: usize, up: Update) -> f64 {
    train_drawn_ahead(sampler, filter, rng, len, up)
}

fn select_chunk_loop() -> ChunkLoop {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return train_drawn_ahead_avx2;
        }
    }
    train_drawn_ahead
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

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

    /// The pipelined draws (see `crate::sampling::ahead`) are `fill`'s, rejections included:
    /// 50 items for users with up to ~20 of them reject many drawn negatives.
    #[test]
    fn fused_sampling_draws_the_triples_fill_draws() {
        use crate::data::synthetic::{synthetic, SyntheticConfig};
        use crate::sampling::SamplerConfig;
        let data = synthetic(&SyntheticConfig { n_users: 60, n_items: 50, ..Default::default() }).unwrap();
        // Dense enough that a first draw is rejected in about one sample in ten.
        assert!(data.nnz() as f64 / (60.0 * 50.0) > 0.1, "{}", data.nnz());
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        for kind in ["uniform", "popularity", "category"] {
            let sampler_cfg = SamplerConfig { kind: kind.into(), ..Default::default() };
            let side = crate::data::SideInfo {
                categories: Some(std::sync::Arc::new((0..50).map(|i| i % 3).collect())),
                ..Default::default()
            };
            let sampler = TripleSampler::with_config(&data, 1, &sampler_cfg, &side).unwrap();
            assert_eq!(sampler.draws_ahead(), kind != "category");
            let cfg = BprConfig { factors: 8, sampler: sampler_cfg, ..Default::default() };
            for size in [3000, 7] {
                let run = |fused: bool| {
                    let p = Factors::random(60, 50, 8, 0.1, 3, Device::Cpu).unwrap();
                    let mut step = NativeSgd::new(&p, &cfg, &sampler).unwrap();
                    let mut batch = TripleBatch::default();
                    pool.install(|| {
                        if fused {
                            step.sample_and_step(&sampler, &mut batch, size, 7, 2).unwrap();
                        } else {
                            sampler.fill(&mut batch, size, 7, 2);
                            step.step(&batch).unwrap();
                        }
                    });
                    (crate::tensors::to_vec_f32(&p.items).unwrap(), step.take_loss().unwrap())
                };
                let (a, la) = run(true);
                let (b, lb) = run(false);
                assert_eq!(a, b, "{kind}, {size} samples");
                assert_eq!(la, lb, "{kind}, {size} samples");
            }
        }
    }
}
