//! TripletModel's `optimizer="sparse_adam"` step on the CPU without libtorch's autograd: the
//! margin loss's gradient written out for the batch's rows, then the same row-sparse Adam
//! (`train::sparse_adam`, torch.optim.SparseAdam's form) on the distinct users and items the
//! batch gathered. At the seed's batch of 64 a libtorch step is some thirty small ops whose
//! dispatch costs more than the arithmetic (a few thousand multiply-adds); here a step is
//! two passes over 3 x 64 rows.
//!
//! The same maths as `TorchStep` over `TripletTowers` (cosine or dot, item bias, L2 on the
//! raw rows, mean over the batch): `tests.rs` compares the two.

#![allow(clippy::indexing_slicing, reason = "the native step's kernel: the batch's rows are TripleSampler's draws from the training data that sized the factor tables, the gradient buffers are sized by unique_inverse of those rows")]
#![allow(clippy::arithmetic_side_effects, reason = "the native step's kernel: offsets are rows of the factor tables (TripleSampler's draws from the training data that sized them) times their width, checked against the tables on entry; tensor arithmetic besides")]

use tch::{Kind, Tensor};

use super::TripletConfig;
use crate::error::Result;
use crate::models::factors::FactorHandles;
use crate::sampling::{TripleBatch, TripleSampler};
use crate::tensors::cpu_f32_slice;
use crate::train::sparse_adam::{unique_inverse, RowGrad, SparseAdam};
use crate::train::BatchStep;

pub(super) struct NativeSparseStep {
    p: FactorHandles,
    cosine: bool,
    bias: bool,
    margin: f32,
    reg: f32,
    adam: SparseAdam,
    loss: f64,
}

impl NativeSparseStep {
    pub(super) fn new(p: FactorHandles, cfg: &TripletConfig) -> Result<Self> {
        let mut tables = vec![("user_factors".to_string(), p.users.shallow_clone()), ("item_factors".to_string(), p.items.shallow_clone())];
        if cfg.item_bias {
            tables.push(("item_bias".to_string(), p.item_bias.shallow_clone()));
        }
        let adam = SparseAdam::new(tables, cfg.common.lr)?;
        let (cosine, bias) = (cfg.similarity == "cosine", cfg.item_bias);
        Ok(NativeSparseStep { p, cosine, bias, margin: cfg.margin as f32, reg: cfg.reg as f32, adam, loss: 0.0 })
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// x / max(|x|, 1e-8) and that norm (torch.nn.functional.normalize).
fn unit(x: &[f32], out: &mut [f32]) -> f32 {
    let n = dot(x, x).sqrt().max(1e-8);
    out.iter_mut().zip(x).for_each(|(o, v)| *o = v / n);
    n
}

/// Adds to `g` the gradient of cos(x, y) = x_hat . y_hat with respect to x, times `w`:
/// w (y_hat - cos x_hat) / |x|.
fn add_cos_grad(g: &mut [f32], x_hat: &[f32], y_hat: &[f32], cos: f32, norm_x: f32, w: f32) {
    for ((g, xh), yh) in g.iter_mut().zip(x_hat).zip(y_hat) {
        *g += w * (yh - cos * xh) / norm_x;
    }
}

impl BatchStep<TripleSampler<'_>> for NativeSparseStep {
    fn step(&mut self, batch: &TripleBatch) -> Result<()> {
        let b = batch.len();
        if b == 0 {
            // On several processes, an empty share still takes part in the row sums.
            if self.adam.sync.is_some() {
                let none: Vec<_> = (0..self.adam.len()).map(|_| None).collect();
                self.adam.step(&none)?;
            }
            return Ok(());
        }
        let d = self.p.users.size()[1] as usize;
        // One negative per sample (the one-candidate samplers; WARP and best-of-n take the
        // libtorch step).
        let neg = &batch.neg[..b];
        let (u_rows, u_at) = unique_inverse(&batch.users);
        let items: Vec<i64> = batch.pos.iter().chain(neg).copied().collect();
        let (i_rows, i_at) = unique_inverse(&items);
        // Only read here, before the Adam update writes them.
        let (users, item_m, bias) = (
            cpu_f32_slice(&self.p.users, "user factors")?,
            cpu_f32_slice(&self.p.items, "item factors")?,
            cpu_f32_slice(&self.p.item_bias, "item bias")?,
        );
        let row = |r: i64| -> std::ops::Range<usize> { r as usize * d..(r as usize + 1) * d };
        let (mut gu, mut gi, mut gb) = (vec![0f32; u_rows.len() * d], vec![0f32; i_rows.len() * d], vec![0f32; i_rows.len()]);
        let w = 1.0 / b as f32;
        let (mut uh, mut ph, mut nh) = (vec![0f32; d], vec![0f32; d], vec![0f32; d]);
        let mut loss = 0f64;
        for k in 0..b {
            let (ku, kp, kn) = (u_at[k] as usize, i_at[k] as usize, i_at[b + k] as usize);
            let u = &users[row(batch.users[k])];
            let p = &item_m[row(batch.pos[k])];
            let n = &item_m[row(neg[k])];
            let (bp, bn) = if self.bias { (bias[batch.pos[k] as usize], bias[neg[k] as usize]) } else { (0.0, 0.0) };
            let (s_pos, s_neg, norms) = if self.cosine {
                let (nu, np, nn) = (unit(u, &mut uh), unit(p, &mut ph), unit(n, &mut nh));
                (dot(&uh, &ph), dot(&uh, &nh), (nu, np, nn))
            } else {
                (dot(u, p), dot(u, n), (1.0, 1.0, 1.0))
            };
            let l = self.margin - (s_pos + bp) + (s_neg + bn);
            if l > 0.0 {
                loss += l as f64;
                // d/d(vectors) of (s_neg - s_pos) / B.
                let (gu_k, gp, gn) = (ku * d..(ku + 1) * d, kp * d..(kp + 1) * d, kn * d..(kn + 1) * d);
                if self.cosine {
                    let (nu, np, nn) = norms;
                    add_cos_grad(&mut gu[gu_k.clone()], &uh, &nh, s_neg, nu, w);
                    add_cos_grad(&mut gu[gu_k], &uh, &ph, s_pos, nu, -w);
                    add_cos_grad(&mut gi[gp], &ph, &uh, s_pos, np, -w);
                    add_cos_grad(&mut gi[gn], &nh, &uh, s_neg, nn, w);
                } else {
                    for j in 0..d {
                        gu[ku * d + j] += w * (n[j] - p[j]);
                        gi[kp * d + j] -= w * u[j];
                        gi[kn * d + j] += w * u[j];
                    }
                }
                if self.bias {
                    gb[kp] -= w;
                    gb[kn] += w;
                }
            }
            if self.reg != 0.0 {
                // reg / B * (|u|^2 + |p|^2 + |n|^2) on the raw rows.
                let r = 2.0 * self.reg * w;
                for j in 0..d {
                    gu[ku * d + j] += r * u[j];
                    gi[kp * d + j] += r * p[j];
                    gi[kn * d + j] += r * n[j];
                }
            }
        }
        let as_rows = |g: Vec<f32>, n: usize, width: usize| Tensor::from_slice(&g).view([n as i64, width as i64]);
        tch::no_grad(|| -> Result<()> {
            let (gu, gi) = (as_rows(gu, u_rows.len(), d), as_rows(gi, i_rows.len(), d));
            let gb = Tensor::from_slice(&gb).f_to_kind(Kind::Float)?;
            let mut grads = vec![Some(RowGrad { rows: &u_rows, grad: &gu }), Some(RowGrad { rows: &i_rows, grad: &gi })];
            if self.bias {
                grads.push(Some(RowGrad { rows: &i_rows, grad: &gb }));
            }
            self.adam.step(&grads)?;
            Ok(())
        })?;
        self.loss += loss;
        Ok(())
    }

    fn take_loss(&mut self) -> Result<f64> {
        Ok(std::mem::take(&mut self.loss))
    }

    fn intra_op_threads(&self) -> Option<i32> {
        Some(1)
    }

    fn distribute(&mut self, sync: &crate::train::GradSync) -> Result<()> {
        sync.set_mean(true);
        self.adam.sync = Some(sync.clone());
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.adam.state()
    }

    fn restore_state(&mut self, state: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        self.adam.restore(state)
    }
}
