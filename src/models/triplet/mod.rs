//! Triplet models (the anime triplet-loss notebook): user and item embeddings trained with
//! the margin loss max(0, margin + s(u, j) - s(u, i)) through the shared libtorch step.
//!
//! * [`Triplet`]: s = cosine or dot product of the embeddings.
//! * [`DeepTriplet`]: s = an MLP (with dropout) over the concatenated user and item
//!   embeddings. Every (user, item) pair goes through the network, so scores are computed in
//!   blocks of users on the device; the first layer is split by input (user part + item part,
//!   each computed once per block) so a block costs one broadcast add, not a concatenation.
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

mod deep;
mod deep_native;
mod native;
#[cfg(test)]
mod tests;

pub use self::deep::{DeepParams, DeepTriplet, DeepTripletConfig};
use super::bpr::{check_counts, check_weights};
use super::core::{Common, FitCtx, ModelConfig, SizesFrom, Spec};
use super::factors::{FactorHandles, Factors};
use crate::data::{Interactions, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::sampling::{Choice, SamplerConfig, TripleSampler};
use crate::train::torch_step::{Gathered, Loss, Optimizer, Reduction, RowsBy, StepConfig, TorchStep, TwoTower};
use crate::train::FitReport;

/// Settings shared by both triplet models' training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TripletConfig {
    /// Embedding width (users and items).
    pub factors: usize,
    /// "cosine" or "dot".
    pub similarity: String,
    /// A learnt per-item bias added to the similarity (item popularity, which a cosine or a
    /// dot product of regularised embeddings learns only slowly).
    pub item_bias: bool,
    pub margin: f64,
    /// L2 weight on the embedding rows a batch touches (mean over the batch).
    pub reg: f64,
    /// epochs, lr (Adam), batch_size (triples per step), seed, threads (sampling), device.
    #[serde(flatten)]
    pub common: Common,
    /// "adam" (dense, as the seed notebook's Keras Adam: every embedding row moves at every
    /// step) or "sparse_adam" (a different optimiser, torch.optim.SparseAdam: only the rows a
    /// batch touches, and their moments, move; a step's cost no longer grows with the
    /// catalogue).
    pub optimizer: String,
    /// Standard deviation of the initial embeddings.
    pub init_std: f64,
    pub sampler: SamplerConfig,
}

impl Default for TripletConfig {
    fn default() -> Self {
        TripletConfig {
            factors: 64,
            similarity: "cosine".into(),
            item_bias: false,
            margin: 1.0,
            reg: 0.0,
            common: Common::new(20, 0.01, 1024),
            optimizer: "adam".into(),
            init_std: 0.05,
            sampler: SamplerConfig::default(),
        }
    }
}

impl ModelConfig for TripletConfig {
    fn validate(&self) -> Result<()> {
        check_counts(&[("factors", self.factors)])?;
        if !["cosine", "dot"].contains(&self.similarity.as_str()) {
            return Err(Error::invalid(format!("similarity must be 'cosine' or 'dot', not {:?}", self.similarity)));
        }
        check_training(self.margin, self.reg, self.init_std, &self.sampler, &self.optimizer)
    }

    fn needs(&self) -> SideNeeds {
        self.sampler.side_needs()
    }

    fn common(&self) -> Option<&Common> {
        Some(&self.common)
    }
}

/// Checks the settings both models share.
pub(super) fn check_training(margin: f64, reg: f64, init_std: f64, sampler: &SamplerConfig, optimizer: &str) -> Result<()> {
    check_weights(&[("margin", margin, false), ("reg", reg, false), ("init_std", init_std, true)])?;
    sampler.validate()?;
    self::optimizer(optimizer).map(|_| ())
}

/// The step's optimiser named by a config's `optimizer`.
pub(super) fn optimizer(name: &str) -> Result<Optimizer> {
    match name {
        "adam" => Ok(Optimizer::Adam),
        "sparse_adam" => Ok(Optimizer::SparseAdam),
        other => Err(Error::invalid(format!("optimizer must be 'adam' or 'sparse_adam', not {other:?}"))),
    }
}

/// The step's settings for a margin loss trained with (dense or sparse) Adam, the mean over
/// the batch. `optimizer`: the config's, validated.
pub(super) fn margin_step(margin: f64, common: &Common, sampler: &SamplerConfig, n_items: usize, optimizer: &str) -> Result<StepConfig> {
    let lr = common.lr;
    Ok(StepConfig {
        loss: Loss::Margin(margin),
        reduction: Reduction::Mean,
        optimizer: self::optimizer(optimizer)?,
        lr: Box::new(move |_| lr),
        choice: sampler.choice(),
        n_items,
        shared_negatives: false,
        log_q: None,
    })
}

pub(super) fn sum_sq(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_square()?.f_sum(Kind::Float)?)
}

/// A scorer of user indices for validation during fit.
pub(super) fn on_device<'a>(device: Device, score: impl Fn(&Tensor) -> Result<Tensor> + 'a) -> impl Fn(&[i64]) -> Result<Tensor> + 'a {
    move |u: &[i64]| tch::no_grad(|| score(&Tensor::from_slice(u).f_to_device(device)?))
}

// ---------------------------------------------------------------------------------------------
// TripletModel
// ---------------------------------------------------------------------------------------------

/// TripletModel: factors (users, items, an item bias used when `item_bias`).
pub struct Triplet;

/// Rows of the embedding matrices, unit length for cosine similarity (so the step's dot
/// product is the cosine).
struct TripletTowers {
    p: FactorHandles,
    cosine: bool,
    bias: bool,
    reg: f64,
}

fn unit_rows(t: Tensor, cosine: bool) -> Result<Tensor> {
    if !cosine {
        return Ok(t);
    }
    // x / max(|x|, eps), as torch.nn.functional.normalize.
    let norm = t.f_norm_scalaropt_dim(2, [-1i64].as_slice(), true)?.f_clamp_min(1e-8)?;
    Ok(t.f_div(&norm)?)
}

impl TwoTower for TripletTowers {
    fn user_vectors(&self, users: &Tensor, _train: bool) -> Result<Tensor> {
        unit_rows(self.p.users.f_index_select(0, users)?, self.cosine)
    }

    fn item_vectors(&self, items: &Tensor, _train: bool) -> Result<Tensor> {
        unit_rows(self.p.items.f_index_select(0, items)?, self.cosine)
    }

    fn item_bias(&self, items: &Tensor) -> Result<Option<Tensor>> {
        if !self.bias {
            return Ok(None);
        }
        Ok(Some(self.p.item_bias.f_index_select(0, &items.f_flatten(0, -1)?)?.f_view_as(items)?))
    }

    fn penalty(&self, g: &Gathered<'_>) -> Result<Option<Tensor>> {
        if self.reg == 0.0 {
            return Ok(None);
        }
        // On the raw rows (the unit-length ones have a constant norm).
        let rows = |w: &Tensor, i: &Tensor| -> Result<Tensor> { sum_sq(&w.f_index_select(0, &i.f_flatten(0, -1)?)?) };
        let total = rows(&self.p.users, g.users)? + rows(&self.p.items, g.pos)? + rows(&self.p.items, g.neg)?;
        Ok(Some(total * (self.reg / g.users.numel().max(1) as f64)))
    }

    fn row_tables(&mut self) -> Vec<(RowsBy, &mut Tensor)> {
        let p = &mut self.p;
        let mut out = vec![(RowsBy::User, &mut p.users), (RowsBy::Item, &mut p.items)];
        if self.bias {
            out.push((RowsBy::Item, &mut p.item_bias));
        }
        out
    }
}

fn cosine(c: &TripletConfig) -> bool {
    c.similarity == "cosine"
}

impl Spec for Triplet {
    type Config = TripletConfig;
    type Params = Factors;

    fn build(c: &TripletConfig, train: &Interactions, _: &SideInfo, device: Device) -> Result<Factors> {
        Factors::random(train.n_users(), train.n_items(), c.factors, c.init_std, c.common.seed, device)
    }

    fn train(c: &TripletConfig, p: &Factors, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let sampler = TripleSampler::with_config(train, 1, &c.sampler, side)?;
        let score = on_device(p.device(), |u| Self::score_block(c, p, u));
        // The row-sparse Adam on the CPU with one negative per sample: the gradient written
        // out (native.rs); else the shared libtorch step.
        if c.optimizer == "sparse_adam" && c.sampler.choice() == Choice::Single && !crate::tensors::gpu_path(p.device()) {
            return ctx.run(&mut native::NativeSparseStep::new(p.handles(), c)?, &sampler, &score);
        }
        // Without `item_bias` the factor layout's bias gets no gradient: Adam leaves it at 0.
        let towers = TripletTowers { p: p.handles(), cosine: cosine(c), bias: c.item_bias, reg: c.reg };
        let mut step = TorchStep::new(towers, &p.store.vs, margin_step(c.margin, &c.common, &c.sampler, train.n_items(), &c.optimizer)?)?;
        ctx.run(&mut step, &sampler, &score)
    }

    fn param_count(c: &TripletConfig, (n_users, n_items): (usize, usize), _: SizesFrom<'_>) -> Result<u128> {
        Ok(super::factors::factor_values(n_users, n_items, c.factors))
    }

    fn restore(c: &TripletConfig, shape: (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<Factors> {
        Factors::from_state(state, shape, c.factors, device)
    }

    fn score_block(c: &TripletConfig, p: &Factors, users: &Tensor) -> Result<Tensor> {
        let items = unit_rows(p.items.shallow_clone(), cosine(c))?;
        // The bias always: zero for trained items without `item_bias` (it gets no gradient),
        // the floor for cold ones (they rank last, `core::floor_cold_bias`).
        let s = unit_rows(p.users.f_index_select(0, users)?, cosine(c))?.f_matmul(&items.f_tr()?)?;
        Ok(s + p.item_bias.f_unsqueeze(0)?)
    }

    fn dot_factors(c: &TripletConfig, p: &Factors, users: &Tensor) -> Result<Option<super::dot::DotFactors>> {
        let (users, items) = (unit_rows(p.users.f_index_select(0, users)?, cosine(c))?, unit_rows(p.items.shallow_clone(), cosine(c))?);
        Ok(Some(super::dot::DotFactors::new(&users, &items, Some(&p.item_bias))?))
    }

    /// As scored (unit length for cosine).
    fn item_vectors(c: &TripletConfig, p: &Factors) -> Result<Tensor> {
        unit_rows(p.items.shallow_clone(), cosine(c))
    }

    fn user_vectors(c: &TripletConfig, p: &Factors) -> Result<Tensor> {
        unit_rows(p.users.shallow_clone(), cosine(c))
    }
}
