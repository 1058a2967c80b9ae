//! One libtorch training step for every pairwise and sampled-softmax model: the model says
//! how it represents users and items ([`TwoTower`]) and the step does the rest (gathering the
//! batch on the device, picking negatives among candidates for WARP / best-of-n, the loss,
//! the optimiser, the loss accumulated on the device so a step never waits for it).
//! A model file is then a configuration and a choice of towers.
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use super::sparse_adam::{unique_inverse, RowGrad, SparseAdam};
use super::{BatchStep, GradSync};
use crate::error::{Error, Result};
use crate::sampling::{warp_weight, Choice, TripleBatch, TripleSampler};
use crate::tensors::{size_at, view_i64};

/// How a model turns users and items into scores. Index tensors are int64 on the model's
/// device; `train` is true inside a training step (dropout on).
pub trait TwoTower: Send {
    /// User representations (B, d) of the user indices `users` (B).
    fn user_vectors(&self, users: &Tensor, train: bool) -> Result<Tensor>;
    /// Item representations (M, d) of the item indices `items` (M).
    fn item_vectors(&self, items: &Tensor, train: bool) -> Result<Tensor>;
    /// Scores of each user against its items: `u` (B, d) and `i` (B, C, d) give (B, C).
    /// The default is the dot product; deep models (an MLP over both) override it.
    fn match_scores(&self, u: &Tensor, i: &Tensor) -> Result<Tensor> {
        // A few items per user: multiply and sum (one vectorised pass, forward and backward);
        // libtorch's batched matmul takes a per-element scalar loop for such tiny products.
        if i.size().get(1).is_some_and(|&c| c <= 8) {
            return Ok(i.f_mul(&u.f_unsqueeze(1)?)?.f_sum_dim_intlist([-1i64].as_slice(), false, None::<Kind>)?);
        }
        Ok(i.f_matmul(&u.f_unsqueeze(-1)?)?.f_squeeze_dim(-1)?)
    }
    /// An additive per-item score term (B, C) for the item indices (B, C), if the model has one.
    fn item_bias(&self, _items: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// A regulariser added to the batch's loss (L2 on the rows the batch touched, ...).
    fn penalty(&self, _batch: &Gathered<'_>) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// The parameter tables the towers read by row: embeddings and per-item terms, read by
    /// user index or by item index. Only `Optimizer::SparseAdam` asks: for each step it puts
    /// in each handle a leaf holding just the batch's rows (its users', or its positives' and
    /// negatives' items, each row once), and every index it then gives the towers (to the
    /// methods above and in [`Gathered`]) is a position among those rows; after the step the
    /// full tables are back. So a tower that declares tables must read users and items only
    /// through them (no table or feature lookup by index left undeclared). None (the
    /// default): the model trains with the dense optimisers only.
    fn row_tables(&mut self) -> Vec<(RowsBy, &mut Tensor)> {
        Vec::new()
    }
}

/// Which index selects the rows of a table (see [`TwoTower::row_tables`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsBy {
    User,
    Item,
}

/// The tensors of one batch, as the step gathered them (for [`TwoTower::penalty`]).
pub struct Gathered<'a> {
    /// User indices (B) and their vectors (B, d).
    pub users: &'a Tensor,
    pub u: &'a Tensor,
    /// Positive item indices (B) and vectors (B, d).
    pub pos: &'a Tensor,
    pub i_pos: &'a Tensor,
    /// The negatives trained on (B, n) and their vectors (B, n, d).
    pub neg: &'a Tensor,
    pub i_neg: &'a Tensor,
    /// This process's share of the global batch (1 in one process): a penalty that does not
    /// depend on the batch (an L2 on shared weights) is scaled by it, so it counts once in
    /// the sum over the processes (see `train::distributed`).
    pub fraction: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// -ln sigmoid(s(u, i) - s(u, j)), per negative.
    Bpr,
    /// max(0, margin - s(u, i) + s(u, j)), per negative.
    Margin(f64),
    /// -ln sigmoid(s(u, i)) - sum_j ln sigmoid(-s(u, j)): log loss on the pair labels.
    Bce,
    /// Cross-entropy of the positive among [positive, negatives]. `logq`: subtract the log
    /// sampling probability from each negative's logit (needed unless negatives are uniform).
    Softmax,
    /// Cross-entropy of the positive among every item of the catalogue (the full softmax:
    /// one (B, d) x (d, n_items) product per step, for catalogues of thousands of items).
    /// Needs the dot-product match score; the sampled negatives are not used.
    FullSoftmax,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Summed over the batch (per-sample learning rates, as SGD on triples).
    Sum,
    /// Mean over the batch (networks trained with Adam).
    Mean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimizer {
    Sgd,
    /// Dense Adam (`train::adam`): every row of every table moves at every step, as the seed
    /// notebooks' Keras Adam.
    Adam,
    /// A different optimiser, torch.optim.SparseAdam (`train::sparse_adam`) on the tables the
    /// towers read by row ([`TwoTower::row_tables`]): only the rows a batch touches are read,
    /// and only they and their moments move; the other parameters (an MLP's weights) keep the
    /// dense Adam. A step costs O(batch rows), not O(catalogue).
    SparseAdam,
}

pub struct StepConfig {
    pub loss: Loss,
    pub reduction: Reduction,
    pub optimizer: Optimizer,
    /// Learning rate of each 0-based epoch.
    pub lr: Box<dyn Fn(usize) -> f64 + Send>,
    /// How a slot's candidates become the negative (from the sampler configuration).
    pub choice: Choice,
    /// Items in the catalogue (WARP's rank estimate).
    pub n_items: usize,
    /// Softmax: the negatives of the batch's first sample serve every sample (one matrix
    /// product for the whole batch); a negative equal to a sample's positive is masked.
    pub shared_negatives: bool,
    /// Softmax: log sampling probability of each item (n_items), subtracted from the
    /// negatives' logits (the logQ correction); None for uniform negatives.
    pub log_q: Option<Tensor>,
}

/// SGD is libtorch's; Adam is the project's (one fused pass per parameter on the CPU,
/// gradients without `.grad` accumulation: see `train::adam`), the same algorithm.
enum Opt {
    Sgd(nn::Optimizer),
    Adam(super::adam::Adam),
    Sparse(Sparse),
}

/// `Optimizer::SparseAdam`: the row tables' optimiser (tables in `TwoTower::row_tables`'s
/// order, each read by `by[k]`) and the dense Adam of every other trainable parameter.
struct Sparse {
    rows: SparseAdam,
    by: Vec<RowsBy>,
    dense: super::adam::Adam,
    dense_params: Vec<Tensor>,
}

pub struct TorchStep<M: TwoTower> {
    pub model: M,
    cfg: StepConfig,
    opt: Opt,
    device: Device,
    loss: Tensor,
    /// WARP's weights by tries (`warp_table`).
    warp: std::cell::RefCell<Option<Tensor>>,
    /// The trainable parameters (SGD on several processes updates them itself).
    params: Vec<Tensor>,
    /// Training on several processes.
    sync: Option<GradSync>,
    /// The current epoch (0-based).
    epoch: usize,
    /// The fit's epochs (from `begin_epoch`).
    epochs: usize,
    /// Weight averaging over the last epochs ([`TorchStep::average_last_epochs`]).
    average: Option<Average>,
}

/// The running mean of the trainable parameters after each step of the last `epochs` epochs
/// (tail averaging: the mean of the final iterates, as in stochastic weight averaging); it
/// replaces the parameters at the end of the last epoch.
struct Average {
    epochs: usize,
    /// One mean per trainable parameter (empty until the first averaged step) and the steps
    /// averaged so far.
    means: Vec<Tensor>,
    steps: i64,
}

const AVERAGE_STEPS: &str = "average.steps";

impl<M: TwoTower> TorchStep<M> {
    /// A step training the trainable variables of `vs` (the model's parameters; frozen
    /// backbones live in a VarStore of their own, or are frozen in this one).
    pub fn new(mut model: M, vs: &nn::VarStore, cfg: StepConfig) -> Result<Self> {
        let lr = (cfg.lr)(0);
        let trainable = || {
            let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
            params.sort_by(|a, b| a.0.cmp(&b.0));
            params
        };
        let opt = match cfg.optimizer {
            Optimizer::Sgd => Opt::Sgd(nn::Sgd::default().build(vs, lr)?),
            Optimizer::Adam => Opt::Adam(super::adam::Adam::new(trainable(), lr)?),
            Optimizer::SparseAdam => Opt::Sparse(Self::sparse(&mut model, trainable(), &cfg, lr)?),
        };
        let device = vs.device();
        let log_q = cfg.log_q.as_ref().map(|t| t.to_device(device));
        let params = trainable().into_iter().map(|(_, t)| t).collect();
        Ok(TorchStep { model, cfg: StepConfig { log_q, ..cfg }, opt, device, loss: zero(device), warp: Default::default(), params, sync: None, epoch: 0, epochs: 0, average: None })
    }

    /// A step without samples: nothing in one process; on several, this process's share of
    /// the global batch is empty (a last batch smaller than the group) and it takes part in
    /// the step's collectives with nothing to add, then takes the same update.
    fn empty_share(&mut self) -> Result<()> {
        let Some(sync) = self.sync.clone() else { return Ok(()) };
        let none = |n: usize| -> Vec<Tensor> { (0..n).map(|_| Tensor::new()).collect() };
        match &mut self.opt {
            Opt::Sgd(_) => self.shared_sgd(None, &sync),
            Opt::Adam(a) => a.step(&none(self.params.len())),
            Opt::Sparse(s) => {
                s.dense.step(&none(s.dense_params.len()))?;
                s.rows.step(&(0..s.by.len()).map(|_| None).collect::<Vec<_>>())
            }
        }
    }

    /// This process's share of the global batch (1 in one process).
    fn fraction(&self) -> f64 {
        self.sync.as_ref().map_or(1.0, |s| s.fraction())
    }

    /// SGD on several processes: the gradients summed over the processes, then libtorch's
    /// SGD update (p <- p - lr g) written out. No loss: this process's share of the batch is
    /// empty, it adds nothing to the sum.
    fn shared_sgd(&self, total: Option<&Tensor>, sync: &GradSync) -> Result<()> {
        let lr = (self.cfg.lr)(self.epoch);
        let params: Vec<&Tensor> = self.params.iter().collect();
        let mut grads = match total {
            Some(t) => Tensor::f_run_backward(&[t], &params, false, false)?,
            None => params.iter().map(|_| Tensor::new()).collect(),
        };
        sync.reduce_dense(&params, &mut grads)?;
        let _guard = tch::no_grad_guard();
        for (p, g) in params.iter().zip(&grads) {
            if g.defined() {
                let _ = p.shallow_clone().f_sub_(&(g * lr))?;
            }
        }
        Ok(())
    }

    /// The optimisers of `Optimizer::SparseAdam`: the towers' row tables (named as in the
    /// VarStore) to the row-sparse Adam, the other trainable parameters to the dense one.
    fn sparse(model: &mut M, trainable: Vec<(String, Tensor)>, cfg: &StepConfig, lr: f64) -> Result<Sparse> {
        if cfg.loss == Loss::FullSoftmax {
            return Err(Error::invalid("optimizer 'sparse_adam' needs sampled negatives: the full softmax touches every item at every step"));
        }
        let tables: Vec<(RowsBy, Tensor)> = model.row_tables().into_iter().map(|(by, t)| (by, t.shallow_clone())).collect();
        if tables.is_empty() {
            return Err(Error::invalid("optimizer 'sparse_adam' needs embedding tables read by row; this model declares none"));
        }
        let is_table = |t: &Tensor| tables.iter().any(|(_, r)| r.data_ptr() == t.data_ptr() && r.size() == t.size());
        let named = tables
            .iter()
            .enumerate()
            .map(|(k, (_, t))| {
                let name = trainable.iter().find(|(_, p)| p.data_ptr() == t.data_ptr() && p.size() == t.size()).map(|(n, _)| n.clone());
                (name.unwrap_or_else(|| format!("rows.{k}")), t.shallow_clone())
            })
            .collect();
        let dense: Vec<(String, Tensor)> = trainable.into_iter().filter(|(_, t)| !is_table(t)).collect();
        let dense_params = dense.iter().map(|(_, t)| t.shallow_clone()).collect();
        Ok(Sparse {
            rows: SparseAdam::new(named, lr)?,
            by: tables.iter().map(|(by, _)| *by).collect(),
            dense: super::adam::Adam::new(dense, lr)?,
            dense_params,
        })
    }

    pub fn into_model(self) -> M {
        self.model
    }

    /// Return the mean of the parameters after each step of the last `epochs` epochs instead
    /// of the last step's (0: off). It smooths the final steps' noise (a single model then
    /// depends less on where its last batches left it); the mean replaces the parameters at
    /// the end of the fit's last epoch, before its validation. Resumed fits continue the mean
    /// (it is part of [`BatchStep::state`]).
    pub fn average_last_epochs(mut self, epochs: usize) -> Self {
        self.average = (epochs > 0).then(|| Average { epochs, means: Vec::new(), steps: 0 });
        self
    }

    /// The trainable variable `name` of the VarStore steps with `scale` times the learning
    /// rate (0: frozen at its start). Dense Adam only; an error for the other optimisers or a
    /// name that is not optimised.
    pub fn scale_lr(mut self, name: &str, scale: f64) -> Result<Self> {
        let Opt::Adam(a) = &mut self.opt else {
            return Err(Error::invalid("a per-variable learning rate needs the dense Adam optimiser"));
        };
        if !a.scale_lr(name, scale) {
            return Err(Error::state(format!("no trainable variable '{name}' to scale the learning rate of")));
        }
        Ok(self)
    }

    /// Whether this epoch's steps are averaged.
    fn averaging(&self) -> bool {
        self.average.as_ref().is_some_and(|a| self.epoch + a.epochs >= self.epochs)
    }

    /// Adds the parameters after a step to the running mean.
    fn accumulate(&mut self) -> Result<()> {
        if !self.averaging() {
            return Ok(());
        }
        let Some(a) = self.average.as_mut() else { return Ok(()) };
        let _guard = tch::no_grad_guard();
        if a.means.is_empty() {
            a.means = self.params.iter().map(|p| Ok(p.detach().copy())).collect::<Result<_>>()?;
            a.steps = 1;
            return Ok(());
        }
        a.steps += 1;
        let w = 1.0 / a.steps as f64;
        for (m, p) in a.means.iter_mut().zip(&self.params) {
            // m += (p - m) / steps
            let _ = m.f_add_(&(p.f_sub(m)? * w))?;
        }
        Ok(())
    }

    /// One `Optimizer::SparseAdam` step: the batch's distinct users and items gathered once
    /// from each row table as leaves, the loss over positions among them, gradients with
    /// respect to the leaves and the dense parameters, then each optimiser's update. Returns
    /// the data loss.
    fn sparse_step(&mut self, batch: &TripleBatch) -> Result<Tensor> {
        let dev = self.device;
        let b = batch.len();
        let negs = if self.cfg.shared_negatives { batch.shared_neg() } else { &batch.neg };
        let (u_rows, u_inv) = unique_inverse(&batch.users);
        let items: Vec<i64> = batch.pos.iter().chain(negs).copied().collect();
        let (i_rows, mut i_inv) = unique_inverse(&items);
        let neg = i_inv.split_off(b);
        let local = TripleBatch { users: u_inv, pos: i_inv, neg, n_neg: batch.n_neg, n_cand: batch.n_cand, first_neg: Vec::new() };
        let (u_idx, i_idx) = (Tensor::from_slice(&u_rows).f_to_device(dev)?, Tensor::from_slice(&i_rows).f_to_device(dev)?);
        let mut fulls = Vec::new();
        let mut leaves = Vec::new();
        tch::no_grad(|| -> Result<()> {
            for (by, table) in self.model.row_tables() {
                let leaf = table.f_index_select(0, if by == RowsBy::User { &u_idx } else { &i_idx })?.f_set_requires_grad(true)?;
                fulls.push(std::mem::replace(table, leaf.shallow_clone()));
                leaves.push(leaf);
            }
            Ok(())
        })?;
        // The log sampling probabilities by position too.
        let full_log_q = self.cfg.log_q.take();
        let gathered_log_q = full_log_q.as_ref().map(|lq| lq.f_index_select(0, &i_idx)).transpose();
        let losses = gathered_log_q.map_err(Error::from).and_then(|lq| {
            self.cfg.log_q = lq;
            self.losses(&local)
        });
        // The full tables are back before anything else can fail.
        self.cfg.log_q = full_log_q;
        for (table, full) in self.model.row_tables().into_iter().map(|(_, t)| t).zip(fulls) {
            *table = full;
        }
        let (data, total) = losses?;
        let Opt::Sparse(opt) = &mut self.opt else { unreachable!("sparse_step without the sparse optimiser") };
        let inputs: Vec<&Tensor> = opt.dense_params.iter().chain(&leaves).collect();
        let mut grads = Tensor::f_run_backward(&[&total], &inputs, false, false)?;
        let leaf_grads = grads.split_off(opt.dense_params.len());
        opt.dense.step(&grads)?;
        let row_grads: Vec<Option<RowGrad<'_>>> = leaf_grads
            .iter()
            .zip(&opt.by)
            .map(|(g, by)| g.defined().then(|| RowGrad { rows: if *by == RowsBy::User { &u_rows } else { &i_rows }, grad: g }))
            .collect();
        opt.rows.step(&row_grads)?;
        Ok(data)
    }

    /// The batch's data loss (summed over samples) and the total (reduced + penalty).
    pub fn losses(&self, batch: &TripleBatch) -> Result<(Tensor, Tensor)> {
        let dev = self.device;
        let b = batch.len() as i64;
        let (n_neg, n_cand) = (batch.n_neg as i64, batch.n_cand.max(1) as i64);
        // SAFETY: the views live only inside this call, while `batch` is borrowed unchanged;
        // `to_device` copies them (or is a no-op view on the CPU, used before returning).
        let negs = if self.cfg.shared_negatives { batch.shared_neg() } else { &batch.neg };
        let (users, pos, neg) = unsafe { (view_i64(&batch.users), view_i64(&batch.pos), view_i64(negs)) };
        let (users, pos, neg) = (users.f_to_device(dev)?, pos.f_to_device(dev)?, neg.f_to_device(dev)?);
        let u = self.model.user_vectors(&users, true)?;
        if self.cfg.loss == Loss::FullSoftmax {
            return self.full_softmax(&users, &u, &pos);
        }
        let all = Tensor::f_cat(&[&pos, &neg], 0)?;
        let vectors = self.model.item_vectors(&all, true)?;
        let d = size_at(&vectors, 1)?;
        let i_pos = vectors.f_narrow(0, 0, b)?;
        let i_cand = vectors.f_narrow(0, b, size_at(&vectors, 0)? - b)?;
        let s_pos = self.with_bias(self.model.match_scores(&u, &i_pos.f_unsqueeze(1)?)?, &pos.f_unsqueeze(1)?)?;

        if self.cfg.shared_negatives {
            // (B, N): every user against the same N negatives, in one product.
            let neg_rows = neg.f_view([1, -1])?.f_expand([b, -1], false)?;
            let i_neg = i_cand.f_unsqueeze(0)?.f_expand([b, -1, d], false)?;
            let mut s_neg = self.with_bias(self.model.match_scores(&u, &i_neg)?, &neg_rows)?;
            s_neg = s_neg.f_masked_fill(&neg_rows.f_eq_tensor(&pos.f_unsqueeze(1)?)?, f64::NEG_INFINITY)?;
            let data = self.data_loss(&s_pos, &s_neg, &neg_rows, None)?;
            let g = Gathered { users: &users, u: &u, pos: &pos, i_pos: &i_pos, neg: &neg_rows, i_neg: &i_neg, fraction: self.fraction() };
            return self.total(data, &g, b);
        }

        let cand = neg.f_view([b, n_neg, n_cand])?;
        let i_cand = i_cand.f_view([b, n_neg * n_cand, d])?;
        let s_cand = self.with_bias(self.model.match_scores(&u, &i_cand)?, &cand.f_view([b, -1])?)?.f_view([b, n_neg, n_cand])?;
        // Pick each slot's negative among its candidates (no gradient through the choice).
        let (pick, weight) = match self.cfg.choice {
            Choice::Single => (None, None),
            Choice::BestOfN => (Some(s_cand.detach().f_argmax(-1, true)?), None),
            Choice::Warp { margin } => {
                let violates = s_cand.detach().f_gt_tensor(&(s_pos.detach().f_unsqueeze(-1)? - margin as f64))?;
                // The first violator: argmax over a 0/1 tensor returns the first maximum.
                let first = violates.f_to_kind(Kind::Uint8)?.f_argmax(-1, true)?;
                let found = violates.f_any_dim(-1, false)?.f_to_kind(Kind::Float)?;
                // LightFM's rank estimate, `warp_weight` of the tries (first + 1), looked up
                // in its table; 0 when none violated.
                let table = self.warp_table(n_cand)?;
                let weight = table.f_index_select(0, &first.f_flatten(0, -1)?)?.f_view_as(&found)?;
                (Some(first), Some(weight * found))
            }
        };
        let (neg_idx, s_neg, i_neg) = match &pick {
            None => (cand.f_squeeze_dim(-1)?, s_cand.f_squeeze_dim(-1)?, i_cand),
            Some(p) => {
                let idx = cand.f_gather(-1, p, false)?.f_squeeze_dim(-1)?;
                let s = s_cand.f_gather(-1, p, false)?.f_squeeze_dim(-1)?;
                let v = i_cand
                    .f_view([b, n_neg, n_cand, d])?
                    .f_gather(2, &p.f_unsqueeze(-1)?.f_expand([b, n_neg, 1, d], false)?, false)?
                    .f_squeeze_dim(2)?;
                (idx, s, v)
            }
        };
        let data = self.data_loss(&s_pos, &s_neg, &neg_idx, weight.as_ref())?;
        let g = Gathered { users: &users, u: &u, pos: &pos, i_pos: &i_pos, neg: &neg_idx, i_neg: &i_neg, fraction: self.fraction() };
        self.total(data, &g, b)
    }

    /// The full-softmax loss of a batch: every item's vector once, the positive's log
    /// probability among all of them (gradient to every item each step).
    fn full_softmax(&self, users: &Tensor, u: &Tensor, pos: &Tensor) -> Result<(Tensor, Tensor)> {
        let b = size_at(u, 0)?;
        let all = Tensor::f_arange(self.cfg.n_items as i64, (Kind::Int64, self.device))?;
        let items = self.model.item_vectors(&all, true)?;
        let logits = self.with_bias(u.f_matmul(&items.f_tr()?)?, &all.f_unsqueeze(0)?)?;
        let nll = -logits.f_log_softmax(1, Kind::Float)?.f_gather(1, &pos.f_unsqueeze(1)?, false)?;
        let i_pos = items.f_index_select(0, pos)?;
        // No sampled negatives: the penalty sees none.
        let neg = Tensor::f_zeros([b, 0], (Kind::Int64, self.device))?;
        let i_neg = Tensor::f_zeros([b, 0, size_at(&items, 1)?], (items.kind(), self.device))?;
        let g = Gathered { users, u, pos, i_pos: &i_pos, neg: &neg, i_neg: &i_neg, fraction: self.fraction() };
        self.total(nll.f_sum(Kind::Float)?, &g, b)
    }

    /// `warp_weight(n_items, t)` for t = 1..=n_cand, on the device (made once per length).
    fn warp_table(&self, n_cand: i64) -> Result<Tensor> {
        let mut cached = self.warp.borrow_mut();
        if let Some(t) = cached.as_ref().filter(|t| t.size().first() == Some(&n_cand)) {
            return Ok(t.shallow_clone());
        }
        let w: Vec<f32> = (1..=n_cand as usize).map(|t| warp_weight(self.cfg.n_items, t)).collect();
        let t = Tensor::from_slice(&w).f_to_device(self.device)?;
        *cached = Some(t.shallow_clone());
        Ok(t)
    }

    fn with_bias(&self, scores: Tensor, items: &Tensor) -> Result<Tensor> {
        Ok(match self.model.item_bias(items)? {
            Some(bias) => scores + bias,
            None => scores,
        })
    }

    /// Summed data loss of (B, 1) positive and (B, n) negative scores; `weight` (B, n)
    /// scales each negative's term (WARP).
    fn data_loss(&self, s_pos: &Tensor, s_neg: &Tensor, neg: &Tensor, weight: Option<&Tensor>) -> Result<Tensor> {
        let weighted = |t: Tensor| -> Result<Tensor> {
            Ok(match weight {
                Some(w) => t * w,
                None => t,
            })
        };
        let per = match self.cfg.loss {
            Loss::Bpr => weighted((s_neg - s_pos).f_softplus()?)?,
            Loss::Margin(m) => weighted((s_neg - s_pos + m).f_relu()?)?,
            Loss::Bce => {
                let negs = weighted((s_neg.shallow_clone()).f_softplus()?)?;
                return Ok((-s_pos).f_softplus()?.f_sum(Kind::Float)? + negs.f_sum(Kind::Float)?);
            }
            Loss::FullSoftmax => return Err(crate::error::Error::state("the full softmax has no sampled negatives")),
            Loss::Softmax => {
                let s_neg = match &self.cfg.log_q {
                    Some(lq) => s_neg - lq.f_index_select(0, &neg.f_flatten(0, -1)?)?.f_view_as(neg)?,
                    None => s_neg.shallow_clone(),
                };
                let logits = Tensor::f_cat(&[s_pos, &s_neg], 1)?;
                let nll = -logits.f_log_softmax(1, Kind::Float)?.f_select(1, 0)?;
                return Ok(nll.f_sum(Kind::Float)?);
            }
        };
        Ok(per.f_sum(Kind::Float)?)
    }

    fn total(&self, data: Tensor, g: &Gathered<'_>, b: i64) -> Result<(Tensor, Tensor)> {
        let reduced = match self.cfg.reduction {
            Reduction::Sum => data.shallow_clone(),
            Reduction::Mean => &data / b as f64,
        };
        let total = match self.model.penalty(g)? {
            Some(p) => reduced + p,
            None => reduced,
        };
        Ok((data, total))
    }
}

fn zero(device: Device) -> Tensor {
    Tensor::zeros([], (Kind::Double, device))
}

impl<M: TwoTower> BatchStep<TripleSampler<'_>> for TorchStep<M> {
    fn begin_epoch(&mut self, epoch: usize, epochs: usize) -> Result<()> {
        self.epoch = epoch;
        self.epochs = epochs;
        let lr = (self.cfg.lr)(epoch);
        match &mut self.opt {
            Opt::Sgd(o) => o.set_lr(lr),
            Opt::Adam(a) => a.lr = lr,
            Opt::Sparse(s) => {
                s.rows.lr = lr;
                s.dense.lr = lr;
            }
        }
        Ok(())
    }

    fn step(&mut self, batch: &TripleBatch) -> Result<()> {
        if batch.is_empty() {
            self.empty_share()?;
            // On several processes an empty share still takes the group's update.
            return if self.sync.is_some() { self.accumulate() } else { Ok(()) };
        }
        let data = if let Opt::Sparse(_) = self.opt {
            self.sparse_step(batch)?
        } else {
            let (data, total) = self.losses(batch)?;
            match &mut self.opt {
                Opt::Sgd(_) if self.sync.is_some() => {
                    if let Some(sync) = self.sync.clone() {
                        self.shared_sgd(Some(&total), &sync)?;
                    }
                }
                Opt::Sgd(o) => {
                    o.zero_grad();
                    total.f_backward()?;
                    o.step();
                }
                Opt::Adam(a) => a.minimise(&total)?,
                Opt::Sparse(_) => unreachable!(),
            }
            data
        };
        self.accumulate()?;
        let acc = tch::no_grad(|| data.detach().f_to_kind(Kind::Double))?;
        self.loss = (&self.loss).f_add(&acc)?;
        Ok(())
    }

    /// After the last epoch, the averaged parameters (if averaging) replace the last step's.
    fn end_epoch(&mut self, epoch: usize) -> Result<()> {
        if epoch + 1 != self.epochs {
            return Ok(());
        }
        let Some(a) = &self.average else { return Ok(()) };
        let _guard = tch::no_grad_guard();
        for (p, m) in self.params.iter().zip(&a.means) {
            p.shallow_clone().f_copy_(m)?;
        }
        Ok(())
    }

    fn take_loss(&mut self) -> Result<f64> {
        let v = self.loss.f_double_value(&[])?;
        self.loss = zero(self.device);
        Ok(v)
    }

    fn intra_op_threads(&self) -> Option<i32> {
        (self.device == Device::Cpu).then_some(1)
    }

    fn distribute(&mut self, sync: &GradSync) -> Result<()> {
        sync.set_mean(self.cfg.reduction == Reduction::Mean);
        match &mut self.opt {
            Opt::Sgd(_) => {}
            Opt::Adam(a) => a.sync = Some(sync.clone()),
            Opt::Sparse(s) => {
                s.rows.sync = Some(sync.clone());
                s.dense.sync = Some(sync.clone());
            }
        }
        self.sync = Some(sync.clone());
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = match &self.opt {
            Opt::Adam(a) => a.state(),
            Opt::Sparse(s) => s.rows.state().into_iter().chain(s.dense.state()).collect(),
            // libtorch's SGD without momentum keeps nothing between steps.
            Opt::Sgd(_) => Vec::new(),
        };
        if let Some(a) = self.average.as_ref().filter(|a| a.steps > 0) {
            out.push((AVERAGE_STEPS.into(), Tensor::from_slice(&[a.steps])));
            out.extend(a.means.iter().enumerate().map(|(k, m)| (format!("average.{k}"), m.shallow_clone())));
        }
        out
    }

    fn restore_state(&mut self, state: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        match &mut self.opt {
            Opt::Adam(a) => a.restore(state)?,
            Opt::Sparse(s) => s.rows.restore(state).and_then(|_| s.dense.restore(state))?,
            Opt::Sgd(_) => {}
        }
        if let (Some(a), Some(steps)) = (self.average.as_mut(), state.get(AVERAGE_STEPS)) {
            a.steps = steps.f_int64_value(&[0])?;
            a.means = self.params.iter().enumerate()
                .map(|(k, p)| {
                    let m = state.get(&format!("average.{k}")).ok_or_else(|| Error::state(format!("checkpoint has no 'average.{k}'")))?;
                    Ok(m.f_to_device(self.device)?.f_to_kind(p.kind())?)
                })
                .collect::<Result<_>>()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WARP weight the step looks up (`warp_weight`, the native kernel's) is the tensor
    /// formula it replaced, ln(max(floor(n1 / tries), 1)) / ln(n1) with n1 = max(n_items - 1, 2),
    /// to float rounding: about 4 in 5 weights are the same bits, the others differ in the
    /// last bit or two (libtorch's vectorised logarithm, a product by 1 / ln(n1) where the
    /// kernel divides). Catalogues of 2 items or fewer weigh 0 either way.
    #[test]
    fn warp_table_is_the_former_tensor_formula() {
        let (mut same, mut all) = (0, 0);
        for n_items in [3usize, 10, 60, 1682, 30_000, 1 << 20] {
            let tries = Tensor::arange_start(1, 201, (Kind::Float, Device::Cpu));
            let n1 = n_items.saturating_sub(1).max(2) as f64;
            let rank = ((tries.reciprocal() * n1).floor()).clamp_min(1.0);
            let old: Vec<f32> = Vec::try_from(rank.log() * (Tensor::ones([200], (Kind::Float, Device::Cpu)) / n1.ln())).unwrap();
            for (t, o) in old.iter().enumerate() {
                let w = warp_weight(n_items, t + 1);
                assert!((w - o).abs() <= 2e-7 * o.abs().max(1e-3), "n_items {n_items}, tries {}: {w} vs {o}", t + 1);
                same += (w == *o) as usize;
                all += 1;
            }
        }
        assert!(same * 2 > all, "{same} of {all} weights the same bits");
    }
}
