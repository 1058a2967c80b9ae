//! DeepTripletModel's `optimizer="sparse_adam"` step on the CPU without libtorch: the MLP's
//! forward and backward written as a few batch-sized matrix products (`matrixmultiply`'s
//! SGEMM), then the row-sparse Adam on the distinct users and items the batch gathered and
//! the dense Adam on the MLP's weights (the optimisers of the libtorch step, same names, so a
//! checkpoint of either step resumes the other). At the seed's batch of 64 a libtorch step is
//! some hundred small ops (forward, autograd, dropout) whose dispatch costs several times
//! the arithmetic; here it is nine products and a few passes over (2B x width) buffers.
//!
//! The maths of `TorchStep` over `DeepTowers` (the first layer split by input, ReLU and
//! inverted dropout between layers, the margin loss and the L2 penalty on the batch's raw
//! rows, means over the batch): `tests.rs` compares the two without dropout. Dropout masks
//! come from the fit's own streams (the batch's seed), not libtorch's generator.

#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "a kernel over sizes checked at its entry: `new` checks the layers' widths against the tables, `gradients` every sample's rows against the tables, `gemm` each product's extents; tensor arithmetic besides"
)]

use rand::RngCore;
use tch::{nn, Tensor};

use crate::error::{Error, Result};
use crate::nets::gemm::gemm;
use crate::nets::mlp::Mlp;
use crate::sampling::rng::{stream_rng, streams, sub_seed};
use crate::sampling::{TripleBatch, TripleSampler};
use crate::tensors::cpu_f32_slice;
use crate::train::adam::Adam;
use crate::train::sparse_adam::{unique_inverse, RowGrad, SparseAdam};
use crate::train::BatchStep;

/// One layer's parameters and the gradient buffers of a step.
struct Layer {
    weight: Tensor,
    bias: Tensor,
    /// Inputs and outputs (the weight is (outputs, inputs)).
    inputs: usize,
    outputs: usize,
    d_weight: Vec<f32>,
    d_bias: Vec<f32>,
}

pub(super) struct NativeDeepStep {
    users: Tensor,
    items: Tensor,
    layers: Vec<Layer>,
    /// User and item embedding widths (the first layer's inputs, in that order).
    du: usize,
    di: usize,
    dropout: f64,
    margin: f32,
    reg: f32,
    rows: SparseAdam,
    dense: Adam,
    /// For each of the dense Adam's parameters (in its order): (layer, is the bias).
    dense_at: Vec<(usize, bool)>,
    /// The current batch's seed for its dropout masks.
    batch_seed: u64,
    loss: f64,
}

/// Adds the columns of `g` (rows of `width`) into `out` (width).
fn add_column_sums(g: &[f32], width: usize, out: &mut [f32]) {
    out.iter_mut().for_each(|x| *x = 0.0);
    for row in g.chunks_exact(width) {
        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
    }
}

/// A bias's gradient from `g`'s rows (`b` positives then `b` negatives): the column sums of
/// each sample's two rows added first. The margin loss reads s(u, i) - s(u, j), so where a
/// sample's two rows keep the same units their terms cancel: added pairwise they are exactly
/// 0, where summed by halves they leave rounding noise that Adam's m / sqrt(v) turns into
/// steps of about lr (and ranks, summing in another order, into other steps).
fn add_pair_column_sums(g: &[f32], b: usize, width: usize, out: &mut [f32]) {
    let (pos, neg) = g.split_at(b * width);
    out.iter_mut().for_each(|x| *x = 0.0);
    for (p, n) in pos.chunks_exact(width).zip(neg.chunks_exact(width)) {
        out.iter_mut().zip(p.iter().zip(n)).for_each(|(o, (p, n))| *o += p + n);
    }
}

impl NativeDeepStep {
    /// `vs`: the model's store (its trainable variables named as the libtorch step names
    /// them); `users`, `items`: the embedding tables; `mlp`: the scoring network.
    #[allow(clippy::too_many_arguments, reason = "the model's parts and its loss settings")]
    pub(super) fn new(vs: &nn::VarStore, users: &Tensor, items: &Tensor, mlp: &Mlp, margin: f64, reg: f64, lr: f64) -> Result<Self> {
        let (du, di) = (users.size()[1] as usize, items.size()[1] as usize);
        let mut layers = Vec::new();
        for (weight, bias) in mlp.linears() {
            let bias = bias.ok_or_else(|| Error::state("deep triplet step: the MLP's layers need biases"))?;
            let (outputs, inputs) = (weight.size()[0] as usize, weight.size()[1] as usize);
            layers.push(Layer { weight, bias, inputs, outputs, d_weight: vec![0.0; outputs * inputs], d_bias: vec![0.0; outputs] });
        }
        if layers.first().map(|l| l.inputs) != Some(du + di) || layers.last().map(|l| l.outputs) != Some(1) {
            return Err(Error::state("deep triplet step: the MLP must read [user, item] and output one score"));
        }
        // The libtorch step's optimisers: tables to the row-sparse Adam, every other trainable
        // variable (sorted by name) to the dense one.
        let same = |a: &Tensor, b: &Tensor| a.data_ptr() == b.data_ptr() && a.size() == b.size();
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let name_of = |t: &Tensor| named.iter().find(|(_, p)| same(p, t)).map(|(n, _)| n.clone());
        let tables = [users, items].iter().enumerate().map(|(k, t)| (name_of(t).unwrap_or_else(|| format!("rows.{k}")), t.shallow_clone())).collect();
        let mut dense = Vec::new();
        let mut dense_at = Vec::new();
        for (name, t) in named.iter().filter(|(_, t)| !same(t, users) && !same(t, items)) {
            let at = layers.iter().enumerate().find_map(|(k, l)| {
                if same(&l.weight, t) {
                    Some((k, false))
                } else {
                    same(&l.bias, t).then_some((k, true))
                }
            });
            let at = at.ok_or_else(|| Error::state(format!("deep triplet step: trainable '{name}' is neither a table nor the MLP's")))?;
            dense.push((name.clone(), t.shallow_clone()));
            dense_at.push(at);
        }
        Ok(NativeDeepStep {
            users: users.shallow_clone(),
            items: items.shallow_clone(),
            layers,
            du,
            di,
            dropout: mlp.dropout(),
            margin: margin as f32,
            reg: reg as f32,
            rows: SparseAdam::new(tables, lr)?,
            dense: Adam::new(dense, lr)?,
            dense_at,
            batch_seed: 0,
            loss: 0.0,
        })
    }

    /// Layer `k`'s weight and bias gradients from the last [`Self::gradients`].
    #[cfg(test)]
    pub(super) fn layer_gradient(&self, k: usize) -> (&[f32], &[f32]) {
        (&self.layers[k].d_weight, &self.layers[k].d_bias)
    }

    /// ReLU then inverted dropout, in place, on the outputs of hidden layer `layer`.
    fn activate(&self, h: &mut [f32], layer: usize) {
        if self.dropout == 0.0 {
            h.iter_mut().for_each(|x| *x = x.max(0.0));
            return;
        }
        // Dropped where a uniform 32-bit draw is below p 2^32 (as `nets::random::dropout`).
        let threshold = (self.dropout * 4_294_967_296.0) as u64;
        let scale = (1.0 / (1.0 - self.dropout)) as f32;
        let mut rng = stream_rng(self.batch_seed, layer as u64, 0);
        for pair in h.chunks_mut(2) {
            let r = rng.next_u64();
            for (x, bits) in pair.iter_mut().zip([r & 0xFFFF_FFFF, r >> 32]) {
                *x = if bits < threshold { 0.0 } else { x.max(0.0) * scale };
            }
        }
    }

    /// The batch's gradient: forward over the 2B (user, positive) and (user, negative) rows,
    /// the margin loss, backward into the layers' buffers; returns the data loss, the users'
    /// and the items' input gradients (B x du, 2B x di) and the gathered rows.
    pub(super) fn gradients(&mut self, batch: &TripleBatch) -> Result<(f64, Vec<f32>, Vec<f32>)> {
        let b = batch.len();
        let (du, di) = (self.du, self.di);
        let (n_users, n_items) = (self.users.size()[0] as usize, self.items.size()[0] as usize);
        let neg = batch.neg.get(..b).ok_or_else(|| Error::state("deep triplet step: fewer negatives than samples"))?;
        if batch.users.iter().any(|&u| u < 0 || u as usize >= n_users) || batch.pos.iter().chain(neg).any(|&i| i < 0 || i as usize >= n_items) {
            return Err(Error::state("deep triplet step: a sample outside the embedding tables"));
        }
        // Gather: U (B x du); X = [positives; negatives] (2B x di).
        let (users, items) = (cpu_f32_slice(&self.users, "user embeddings")?, cpu_f32_slice(&self.items, "item embeddings")?);
        let mut u = Vec::with_capacity(b * du);
        batch.users.iter().for_each(|&r| u.extend_from_slice(&users[r as usize * du..(r as usize + 1) * du]));
        let mut x = Vec::with_capacity(2 * b * di);
        batch.pos.iter().chain(neg).for_each(|&r| x.extend_from_slice(&items[r as usize * di..(r as usize + 1) * di]));
        // Handles of their own, so the layers' gradient buffers can be written while read.
        let (weight_t, bias_t): (Vec<Tensor>, Vec<Tensor>) = self.layers.iter().map(|l| (l.weight.shallow_clone(), l.bias.shallow_clone())).unzip();
        let weights = weight_t.iter().map(|t| cpu_f32_slice(t, "MLP weight")).collect::<Result<Vec<_>>>()?;
        let biases = bias_t.iter().map(|t| cpu_f32_slice(t, "MLP bias")).collect::<Result<Vec<_>>>()?;

        // Forward. Layer 0 as U Wu^T (once per sample) + X Wi^T + bias.
        let n2 = 2 * b;
        let h0 = self.layers[0].outputs;
        let stride0 = du + di;
        let mut zu = vec![0f32; b * h0];
        gemm(b, du, h0, (&u, du, 1), (weights[0], 1, stride0), 0.0, &mut zu, h0)?;
        let mut act = vec![0f32; n2 * h0];
        gemm(n2, di, h0, (&x, di, 1), (&weights[0][du..], 1, stride0), 0.0, &mut act, h0)?;
        for (r, row) in act.chunks_exact_mut(h0).enumerate() {
            let zu_row = &zu[(r % b) * h0..(r % b + 1) * h0];
            row.iter_mut().zip(zu_row).zip(biases[0]).for_each(|((a, z), c)| *a += z + c);
        }
        let last = self.layers.len() - 1;
        // acts[k]: the input of layer k + 1 (after ReLU and dropout).
        let mut acts: Vec<Vec<f32>> = Vec::with_capacity(last);
        let mut out = act;
        for k in 0..last {
            self.activate(&mut out, k);
            let (inputs, outputs) = (self.layers[k + 1].inputs, self.layers[k + 1].outputs);
            let mut next = vec![0f32; n2 * outputs];
            next.chunks_exact_mut(outputs).for_each(|row| row.copy_from_slice(biases[k + 1]));
            gemm(n2, inputs, outputs, (&out, inputs, 1), (weights[k + 1], 1, inputs), 1.0, &mut next, outputs)?;
            acts.push(out);
            out = next;
        }
        // The margin loss, mean over the batch: d/ds_pos = -1/B, d/ds_neg = 1/B where active.
        let w = 1.0 / b as f32;
        let mut loss = 0f64;
        let mut active = Vec::with_capacity(b);
        for k in 0..b {
            let l = self.margin - out[k] + out[b + k];
            if l > 0.0 {
                loss += l as f64;
                active.push(k);
            }
        }
        let (d_u, d_x) = if active.is_empty() {
            self.layers.iter_mut().for_each(|l| {
                l.d_weight.iter_mut().for_each(|x| *x = 0.0);
                l.d_bias.iter_mut().for_each(|x| *x = 0.0);
            });
            (vec![0f32; b * du], vec![0f32; n2 * di])
        } else if active.len() == b {
            // Every sample has a loss: no rows to gather.
            self.backward(b, &acts, &x, &u, &weights, w)?
        } else {
            // Backward over the samples with a loss only (the others pass no gradient), their
            // rows gathered in the same layout: positives, then negatives.
            let keep: Vec<usize> = active.iter().copied().chain(active.iter().map(|k| b + k)).collect();
            let acts: Vec<Vec<f32>> = acts.iter().map(|a| rows_of(a, a.len() / n2, &keep)).collect();
            let (x_a, u_a) = (rows_of(&x, di, &keep), rows_of(&u, du, &active));
            let (d_u_a, d_x_a) = self.backward(active.len(), &acts, &x_a, &u_a, &weights, w)?;
            let (mut d_u, mut d_x) = (vec![0f32; b * du], vec![0f32; n2 * di]);
            for (j, &k) in active.iter().enumerate() {
                d_u[k * du..(k + 1) * du].copy_from_slice(&d_u_a[j * du..(j + 1) * du]);
            }
            for (j, &r) in keep.iter().enumerate() {
                d_x[r * di..(r + 1) * di].copy_from_slice(&d_x_a[j * di..(j + 1) * di]);
            }
            (d_u, d_x)
        };
        Ok(self.with_penalty(loss, d_u, d_x, &u, &x, w))
    }

    /// Adds the L2 penalty's gradient, reg / B (|u|^2 + |p|^2 + |n|^2) on every sample's raw
    /// rows (`w` = 1 / B), to the input gradients.
    fn with_penalty(&self, loss: f64, mut d_u: Vec<f32>, mut d_x: Vec<f32>, u: &[f32], x: &[f32], w: f32) -> (f64, Vec<f32>, Vec<f32>) {
        if self.reg != 0.0 {
            let r = 2.0 * self.reg * w;
            d_u.iter_mut().zip(u).for_each(|(d, v)| *d += r * v);
            d_x.iter_mut().zip(x).for_each(|(d, v)| *d += r * v);
        }
        (loss, d_u, d_x)
    }

    /// The backward pass over `b` samples with a loss (rows: `b` positives then `b`
    /// negatives): the layers' gradient buffers, and the gradients of the users' (b x du) and
    /// the items' (2b x di) input rows. `acts[k]`: layer k's output after ReLU and dropout;
    /// `w`: 1 / the whole batch.
    fn backward(&mut self, b: usize, acts: &[Vec<f32>], x: &[f32], u: &[f32], weights: &[&[f32]], w: f32) -> Result<(Vec<f32>, Vec<f32>)> {
        let (du, di, n2) = (self.du, self.di, 2 * b);
        let (h0, stride0) = (self.layers[0].outputs, du + di);
        let mut g: Vec<f32> = (0..n2).map(|r| if r < b { -w } else { w }).collect();
        // Layers last..1: dW = G^T A, db = column sums of G, dA = G W, then through dropout
        // and ReLU (a zero activation passes no gradient; a kept one its scale).
        let scale = (1.0 / (1.0 - self.dropout)) as f32;
        for k in (1..self.layers.len()).rev() {
            let (inputs, outputs) = (self.layers[k].inputs, self.layers[k].outputs);
            let a = &acts[k - 1];
            let layer = &mut self.layers[k];
            gemm(outputs, n2, inputs, (&g, 1, outputs), (a, inputs, 1), 0.0, &mut layer.d_weight, inputs)?;
            add_pair_column_sums(&g, b, outputs, &mut layer.d_bias);
            let mut da = vec![0f32; n2 * inputs];
            gemm(n2, outputs, inputs, (&g, outputs, 1), (weights[k], inputs, 1), 0.0, &mut da, inputs)?;
            da.iter_mut().zip(a).for_each(|(d, &x)| *d = if x > 0.0 { *d * scale } else { 0.0 });
            g = da;
        }
        // Layer 0: dWi = G^T X, dWu = (G_pos + G_neg)^T U, dX = G Wi, dU = (G_pos + G_neg) Wu.
        let gs: Vec<f32> = g[..b * h0].iter().zip(&g[b * h0..]).map(|(p, n)| p + n).collect();
        let first = &mut self.layers[0];
        gemm(h0, n2, di, (&g, 1, h0), (x, di, 1), 0.0, &mut first.d_weight[du..], stride0)?;
        gemm(h0, b, du, (&gs, 1, h0), (u, du, 1), 0.0, &mut first.d_weight, stride0)?;
        add_column_sums(&gs, h0, &mut first.d_bias);
        let mut d_x = vec![0f32; n2 * di];
        gemm(n2, h0, di, (&g, h0, 1), (&weights[0][du..], stride0, 1), 0.0, &mut d_x, di)?;
        let mut d_u = vec![0f32; b * du];
        gemm(b, h0, du, (&gs, h0, 1), (weights[0], stride0, 1), 0.0, &mut d_u, du)?;
        Ok((d_u, d_x))
    }
}

/// The rows `rows` of `m` (rows of `width`), in that order.
fn rows_of(m: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    rows.iter().for_each(|&r| out.extend_from_slice(&m[r * width..(r + 1) * width]));
    out
}

/// Sums the rows of `g` (one of `width` per sample) by the distinct row each sample reads.
fn by_row(g: &[f32], width: usize, at: &[i64], distinct: usize) -> Tensor {
    let mut out = vec![0f32; distinct * width];
    for (row, &k) in g.chunks_exact(width).zip(at) {
        out[k as usize * width..(k as usize + 1) * width].iter_mut().zip(row).for_each(|(o, v)| *o += v);
    }
    Tensor::from_slice(&out).view([distinct as i64, width as i64])
}

impl BatchStep<TripleSampler<'_>> for NativeDeepStep {
    fn begin_batch(&mut self, seed: u64, batch_index: u64) {
        self.batch_seed = sub_seed(seed, streams::MODEL, batch_index);
    }

    fn step(&mut self, batch: &TripleBatch) -> Result<()> {
        let b = batch.len();
        if b == 0 {
            // On several processes, an empty share still takes part in the sums.
            if self.rows.sync.is_some() {
                self.dense.step(&(0..self.dense.len()).map(|_| Tensor::new()).collect::<Vec<_>>())?;
                self.rows.step(&[None, None])?;
            }
            return Ok(());
        }
        let (loss, d_u, d_x) = self.gradients(batch)?;
        let (u_rows, u_at) = unique_inverse(&batch.users);
        let items: Vec<i64> = batch.pos.iter().chain(&batch.neg[..b]).copied().collect();
        let (i_rows, i_at) = unique_inverse(&items);
        let (gu, gi) = (by_row(&d_u, self.du, &u_at, u_rows.len()), by_row(&d_x, self.di, &i_at, i_rows.len()));
        let dense: Vec<Tensor> = self
            .dense_at
            .iter()
            .map(|&(k, is_bias)| {
                let l = &self.layers[k];
                if is_bias {
                    Tensor::from_slice(&l.d_bias)
                } else {
                    Tensor::from_slice(&l.d_weight).view([l.outputs as i64, l.inputs as i64])
                }
            })
            .collect();
        tch::no_grad(|| -> Result<()> {
            self.dense.step(&dense)?;
            self.rows.step(&[Some(RowGrad { rows: &u_rows, grad: &gu }), Some(RowGrad { rows: &i_rows, grad: &gi })])
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
        self.rows.sync = Some(sync.clone());
        self.dense.sync = Some(sync.clone());
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.rows.state().into_iter().chain(self.dense.state()).collect()
    }

    fn restore_state(&mut self, state: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        self.rows.restore(state)?;
        self.dense.restore(state)
    }
}

