//! The sampled softmax's step: the negatives' proposal (draws and ln q), item-average users,
//! and one row-sparse Adam step over the rows a batch touches.

#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use super::SampledSoftmaxConfig;
use crate::data::Interactions;
use crate::error::{Error, Result};
use crate::models::factors::{FactorHandles, Factors};
use crate::sampling::rng::{below, stream_rng, Rng};
use crate::sampling::{TripleBatch, TripleSampler};
use crate::train::sparse_adam::{unique_inverse, EpsAt, RowGrad, SparseAdam};
use crate::train::BatchStep;

/// The negatives' proposal distribution over items: draws and ln q.
///
/// Its CDF search is kept rather than the sampling module's `AliasTable` (the same
/// distribution, other draws): with the alias table, `benches/asos_softmax.py --no-implicit`
/// gave HitRate@10 0.0502 / NDCG@10 0.0202 / AUC 0.789 against README's 0.0513 / 0.0205 /
/// 0.790 (one run; no seed-to-seed noise measured to call that unchanged).
pub struct Proposal {
    /// Cumulative probabilities (None: uniform).
    cdf: Option<Vec<f64>>,
    /// ln q(item), as a tensor on the training device.
    pub log_q: Tensor,
    n_items: usize,
}

impl Proposal {
    pub fn new(kind: &str, exponent: f64, counts: &[u32], device: Device) -> Result<Self> {
        let n = counts.len();
        if n == 0 {
            return Err(Error::invalid("no items to sample negatives from"));
        }
        let weights: Option<Vec<f64>> = match kind {
            "uniform" => None,
            // +1 keeps never-seen items reachable.
            "popularity" => Some(counts.iter().map(|&c| (c as f64 + 1.0).powf(exponent)).collect()),
            "log_uniform" => {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by_key(|&i| (std::cmp::Reverse(counts.get(i).copied().unwrap_or(0)), i));
                let mut w = vec![0.0; n];
                for (rank, &i) in order.iter().enumerate() {
                    if let Some(w) = w.get_mut(i) {
                        *w = ((rank as f64 + 2.0) / (rank as f64 + 1.0)).ln();
                    }
                }
                Some(w)
            }
            other => return Err(Error::invalid(format!("unknown sampler {other:?}"))),
        };
        let (cdf, log_q) = match weights {
            None => (None, vec![-(n as f32).ln(); n]),
            Some(w) => {
                let total: f64 = w.iter().sum();
                let mut acc = 0.0;
                let cdf = w.iter().map(|x| { acc += x / total; acc }).collect();
                (Some(cdf), w.iter().map(|x| (x / total).ln() as f32).collect())
            }
        };
        Ok(Proposal { cdf, log_q: Tensor::from_slice(&log_q).to_device(device), n_items: n })
    }

    #[inline]
    pub fn draw(&self, rng: &mut Rng) -> i64 {
        match &self.cdf {
            None => below(rng, self.n_items as u64) as i64,
            Some(cdf) => {
                let u: f64 = rand::Rng::random(rng);
                cdf.partition_point(|&c| c < u).min(self.n_items - 1) as i64
            }
        }
    }
}

/// Users as the average of their history's context embeddings.
pub struct ItemAverage<'a> {
    pub train: &'a Interactions,
    /// (n_items, d) context embeddings.
    pub context: Tensor,
}

impl ItemAverage<'_> {
    /// Every user's vector: the mean context row of the whole history (zero when empty).
    pub fn all_users(&self) -> Result<Tensor> {
        let (mut items, mut offsets) = (Vec::with_capacity(self.train.nnz()), Vec::with_capacity(self.train.n_users()));
        for u in 0..self.train.n_users() {
            offsets.push(items.len() as i64);
            items.extend(self.train.user_items(u).iter().map(|&i| i as i64));
        }
        mean_bags(&self.context, &items, &offsets)
    }

    /// Writes every user's vector into `users` (the table scoring and saving read).
    pub(super) fn write_users(&self, users: &Tensor) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            users.shallow_clone().f_copy_(&self.all_users()?)?;
            Ok(())
        })
    }
}

/// The mean of `table`'s rows `items[offsets[b]..offsets[b + 1]]` for each bag b (zero for an
/// empty bag), as one `embedding_bag` (a gather-reduce kernel, where an `index_add` runs a
/// small op per row on the CPU).
fn mean_bags(table: &Tensor, items: &[i64], offsets: &[i64]) -> Result<Tensor> {
    let dev = table.device();
    let t = |v: &[i64]| Tensor::from_slice(v).f_to_device(dev);
    const MEAN: i64 = 1;
    let (out, ..) = Tensor::f_embedding_bag::<Tensor>(table, &t(items)?, &t(offsets)?, false, MEAN, false, None, false)?;
    Ok(out)
}

/// One training step's worth of state: parameters, moments, proposal, running loss.
pub struct SoftmaxStep<'a> {
    p: FactorHandles,
    cfg: &'a SampledSoftmaxConfig,
    proposal: Proposal,
    /// Row-sparse Adam over users (or the context rows), items and biases.
    adam: SparseAdam,
    average: Option<ItemAverage<'a>>,
    loss: Tensor,
    negs: Vec<i64>,
    /// The current batch's number (its negatives' stream).
    batch_index: u64,
    /// Training on several processes.
    sync: Option<crate::train::GradSync>,
}

impl<'a> SoftmaxStep<'a> {
    pub fn new(params: &Factors, cfg: &'a SampledSoftmaxConfig, proposal: Proposal, average: Option<ItemAverage<'a>>) -> Result<Self> {
        let p = params.handles();
        let first = match &average {
            Some(a) => ("context", a.context.shallow_clone()),
            None => ("users", p.users.shallow_clone()),
        };
        let tables = vec![(first.0.to_string(), first.1), ("items".into(), p.items.shallow_clone()), ("item_bias".into(), p.item_bias.shallow_clone())];
        // TensorFlow's lazy Adam, the form the workshop model was tuned with (it is also
        // torch.optim.SparseAdam's), named so the step's choice is explicit.
        let adam = SparseAdam::new(tables, cfg.common.lr)?.with_eps_at(EpsAt::Uncorrected);
        let loss = Tensor::zeros([], (Kind::Double, p.device));
        Ok(SoftmaxStep { p, cfg, proposal, adam, average, loss, negs: Vec::new(), batch_index: 0, sync: None })
    }

    /// The batch's user vectors (B, d), the leaf holding the rows they come from and those
    /// rows' indices in the table the leaf updates (users, or context items).
    pub(super) fn users(&self, users: &[i64], pos: &[i64]) -> Result<(Tensor, Tensor, Vec<i64>)> {
        let dev = self.p.device;
        let t = |v: &[i64]| Tensor::from_slice(v).to_device(dev);
        let leaf = |w: &Tensor, r: &Tensor| -> Result<Tensor> { Ok(w.f_index_select(0, r)?.detach().set_requires_grad(true)) };
        let Some(avg) = &self.average else {
            let (rows, inv) = unique_inverse(users);
            let w = leaf(&self.p.users, &t(&rows))?;
            return Ok((w.f_index_select(0, &t(&inv))?, w, rows));
        };
        // Each row's history without (one copy of) its positive, as bags.
        let (mut items, mut offsets) = (Vec::new(), Vec::with_capacity(users.len()));
        for (&u, &p) in users.iter().zip(pos) {
            offsets.push(items.len() as i64);
            let mut skipped = false;
            for &j in avg.train.user_items(u as usize) {
                if !skipped && j as i64 == p {
                    skipped = true;
                    continue;
                }
                items.push(j as i64);
            }
        }
        let (rows, inv) = unique_inverse(&items);
        let w = leaf(&avg.context, &t(&rows))?;
        Ok((mean_bags(&w, &inv, &offsets)?, w, rows))
    }

    /// Draw this batch's negatives from `rng`: N shared, or N per row. On several processes,
    /// the whole global batch's are drawn and this process keeps its rows'.
    fn draw_negatives(&mut self, rows: usize, rng: &mut Rng) {
        let (mine, global) = match &self.sync {
            Some(s) => s.current_share(),
            None => (0..rows, rows),
        };
        let per_row = self.cfg.n_negatives;
        let n = per_row * if self.cfg.shared_negatives { 1 } else { global };
        self.negs.clear();
        self.negs.extend((0..n).map(|_| self.proposal.draw(rng)));
        if !self.cfg.shared_negatives && global != rows {
            self.negs.drain(mine.end * per_row..);
            self.negs.drain(..mine.start * per_row);
        }
    }

    /// Train on positives (users[b], pos[b]); negatives from stream `stream` of the seed.
    pub fn train(&mut self, users: &[i64], pos: &[i64], stream: u64) -> Result<()> {
        let b = users.len();
        if b == 0 {
            // On several processes, an empty share still takes part in the row sums.
            if self.sync.is_some() {
                let none = Tensor::new();
                let empty = |learnt: bool| learnt.then_some(RowGrad { rows: &[], grad: &none });
                self.adam.step(&[empty(true), empty(true), empty(self.cfg.item_bias)])?;
            }
            return Ok(());
        }
        let mut rng = stream_rng(self.cfg.common.seed, stream, u64::MAX);
        self.draw_negatives(b, &mut rng);
        let dev = self.p.device;
        let n = self.cfg.n_negatives as i64;
        let items: Vec<i64> = pos.iter().chain(self.negs.iter()).copied().collect();
        let (i_host, i_inv) = unique_inverse(&items);
        let t = |v: &[i64]| Tensor::from_slice(v).to_device(dev);
        let (i_rows, i_inv) = (t(&i_host), t(&i_inv));
        let leaf = |w: &Tensor, r: &Tensor| -> Result<Tensor> { Ok(w.f_index_select(0, r)?.detach().set_requires_grad(true)) };
        let (u, uw, u_rows) = self.users(users, pos)?; // (B, d)
        let iw = leaf(&self.p.items, &i_rows)?;
        let bw = if self.cfg.item_bias { Some(leaf(&self.p.item_bias, &i_rows)?) } else { None };
        let pos_inv = i_inv.narrow(0, 0, b as i64);
        let neg_inv = i_inv.narrow(0, b as i64, i_inv.numel() as i64 - b as i64);
        let vp = iw.f_index_select(0, &pos_inv)?; // (B, d)
        let vn = iw.f_index_select(0, &neg_inv)?; // (N, d) or (B * N, d)
        let mut lp = (&u * &vp).sum_dim_intlist(1, false, Kind::Float); // (B,)
        let mut ln = if self.cfg.shared_negatives {
            u.f_matmul(&vn.tr())? // (B, N)
        } else {
            (u.unsqueeze(1) * vn.view([b as i64, n, -1])).sum_dim_intlist(2, false, Kind::Float)
        };
        let neg_items = t(&self.negs);
        let neg_items = if self.cfg.shared_negatives { neg_items.unsqueeze(0) } else { neg_items.view([b as i64, n]) };
        if let Some(bw) = &bw {
            lp = lp + bw.f_index_select(0, &pos_inv)?;
            ln = ln + bw.f_index_select(0, &neg_inv)?.view([-1, n]);
        }
        if self.cfg.logq_correction && self.cfg.sampler.kind != "uniform" {
            let lq = &self.proposal.log_q;
            lp = lp - lq.f_index_select(0, &t(pos))?;
            ln = ln - lq.f_index_select(0, &neg_items.flatten(0, -1))?.view([-1, n]);
        }
        let pos_t = t(pos).unsqueeze(1);
        let ln = ln.masked_fill(&neg_items.eq_tensor(&pos_t), f64::NEG_INFINITY);
        let logits = Tensor::cat(&[lp.unsqueeze(1), ln], 1);
        let data_loss = (logits.logsumexp([1], false) - logits.select(1, 0)).sum(Kind::Float);
        let mut total = data_loss.shallow_clone();
        if self.cfg.reg > 0.0 {
            total = total + (u.square().sum(Kind::Float) + vp.square().sum(Kind::Float)) * (0.5 * self.cfg.reg);
        }
        (total / b as f64).f_backward()?;
        tch::no_grad(|| -> Result<()> {
            // Every table counts the step (the user rows may be none: item-average users
            // whose history is only the positive); the bias only when it is learnt.
            let u_grad = if u_rows.is_empty() { Tensor::new() } else { uw.grad() };
            let (i_grad, b_grad) = (iw.grad(), bw.as_ref().map(|b| b.grad()));
            self.adam.step(&[
                Some(RowGrad { rows: &u_rows, grad: &u_grad }),
                Some(RowGrad { rows: &i_host, grad: &i_grad }),
                b_grad.as_ref().map(|grad| RowGrad { rows: &i_host, grad }),
            ])?;
            self.loss += data_loss.detach().to_kind(Kind::Double);
            Ok(())
        })
    }

}

/// The shared loop's sampler supplies the positives (a uniformly drawn stored interaction,
/// as for BPR); the step draws its own negatives from the proposal, on the batch's stream.
impl BatchStep<TripleSampler<'_>> for SoftmaxStep<'_> {
    fn step(&mut self, batch: &TripleBatch) -> Result<()> {
        self.train(&batch.users, &batch.pos, self.batch_index)
    }

    fn begin_batch(&mut self, _seed: u64, batch_index: u64) {
        self.batch_index = batch_index;
    }

    fn distribute(&mut self, sync: &crate::train::GradSync) -> Result<()> {
        sync.set_mean(true);
        self.adam.sync = Some(sync.clone());
        self.sync = Some(sync.clone());
        Ok(())
    }

    fn take_loss(&mut self) -> Result<f64> {
        let v = self.loss.f_double_value(&[])?;
        self.loss = Tensor::zeros([], (Kind::Double, self.p.device));
        Ok(v)
    }

    fn intra_op_threads(&self) -> Option<i32> {
        (self.p.device == Device::Cpu).then_some(1)
    }

    /// The row-sparse Adam's moments and step counts, and (item-average users) the context
    /// embeddings.
    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = self.adam.state();
        if let Some(avg) = &self.average {
            out.push(("context".to_string(), avg.context.shallow_clone()));
        }
        out
    }

    fn restore_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.adam.restore(state)?;
        if let Some(avg) = &self.average {
            let saved = state.get("context").ok_or_else(|| Error::state("checkpoint has no 'context'"))?;
            tch::no_grad(|| avg.context.shallow_clone().f_copy_(saved))?;
        }
        Ok(())
    }

    /// With item-average users, the user table becomes the averages (for validation and
    /// scoring).
    fn end_epoch(&mut self, _epoch: usize) -> Result<()> {
        match &self.average {
            Some(avg) => avg.write_users(&self.p.users),
            None => Ok(()),
        }
    }
}
