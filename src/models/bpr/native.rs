//! BPR's native backend: Hogwild SGD over the CPU tensors' memory, sampling fused into the
//! update loop, one lock-free rayon kernel (no per-batch libtorch overhead).

#![allow(clippy::arithmetic_side_effects, reason = "the native BPR step's batch loop: widths are n_negatives x candidates, at most MAX_CANDIDATES each (TripleSampler::new), tries below MAX_CANDIDATES, batch offsets below the batch's length")]

use rayon::prelude::*;

use super::kernel::{select_chunk_loop, select_kernel, SharedRows, Update};
use super::BprConfig;
use crate::error::Result;
use crate::models::factors::{FactorHandles, Factors};
use crate::sampling::pair_filter::PairFilter;
use crate::sampling::warp_weight;
use crate::sampling::{Choice, TripleBatch, TripleSampler};
use crate::tensors::cpu_f32_ptr;
use crate::train::BatchStep;

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
            Choice::Single => cands.first().map(|&j| (j as usize, 1.0)),
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
                for (k, (&u, &i)) in us.iter().zip(ps).enumerate() {
                    let (u, i) = (u as usize, i as usize);
                    // The batch holds `width` candidates a sample (TripleBatch's layout).
                    let cands = ns.get(k * width..(k + 1) * width).unwrap_or_default();
                    // SAFETY: see `sample_and_step`.
                    unsafe {
                        if let Some((j, w)) = this.choose(u, i, cands) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

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
