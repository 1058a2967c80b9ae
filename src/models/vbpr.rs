//! VBPR (He & McAuley 2016): BPR matrix factorisation plus a visual term from fixed item
//! features f_i (the 4096-d `.b` CNN features, or embeddings from an image tower):
//! score(u, i) = b_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i.
//! Trained with the shared libtorch step. Items without a training interaction (cold items)
//! are scored by their visual term alone: their gamma_i and b_i are zero (the core's rule,
//! `Spec::item_tables`), and so are new items embedded after fit (`embed_new_items`).
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::core::{checked, zero_cold_items, Common, FitCtx, ModelConfig, ModelParams, ParamStore, SizesFrom, Spec};
use crate::data::{Interactions, Need, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::nets::random::var;
use crate::sampling::{SamplerConfig, TripleSampler};
use crate::train::torch_step::{Gathered, Loss, Optimizer, Reduction, StepConfig, TorchStep, TwoTower};
use crate::train::FitReport;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VbprConfig {
    /// Dimension of gamma_u, gamma_i (the collaborative part).
    pub factors: usize,
    /// Dimension of theta_u and E f_i (the visual part).
    pub visual_factors: usize,
    /// epochs, lr, batch_size, seed, threads, device.
    #[serde(flatten)]
    pub common: Common,
    /// L2 on the gathered gamma_u, gamma_i, theta_u rows.
    pub reg: f64,
    /// L2 on the item biases touched.
    pub bias_reg: f64,
    /// L2 on E and beta' (per step).
    pub visual_reg: f64,
    /// "adam" or "sgd".
    pub optimizer: String,
    pub init_std: f64,
    pub sampler: SamplerConfig,
}

impl Default for VbprConfig {
    fn default() -> Self {
        VbprConfig {
            factors: 32,
            visual_factors: 32,
            common: Common::new(30, 0.005, 1024),
            reg: 1e-4,
            bias_reg: 1e-4,
            visual_reg: 1e-4,
            optimizer: "adam".into(),
            init_std: 0.05,
            sampler: SamplerConfig::default(),
        }
    }
}

impl ModelConfig for VbprConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        super::bpr::check_counts(&[("factors", self.factors), ("visual_factors", self.visual_factors)])?;
        super::bpr::check_weights(&[
            ("init_std", self.init_std, true),
            ("reg", self.reg, false),
            ("bias_reg", self.bias_reg, false),
            ("visual_reg", self.visual_reg, false),
        ])?;
        if !["adam", "sgd"].contains(&self.optimizer.as_str()) {
            return bad(format!("optimizer must be 'adam' or 'sgd', not {:?}", self.optimizer));
        }
        self.sampler.validate()
    }

    fn needs(&self) -> SideNeeds {
        SideNeeds { item_features: Need::Required, ..self.sampler.side_needs() }
    }

    fn common(&self) -> Option<&Common> {
        Some(&self.common)
    }
}

/// Shallow handles on the parameters (the step owns these; the model keeps the VarStore).
struct Params {
    gamma_u: Tensor,
    theta_u: Tensor,
    gamma_i: Tensor,
    bias: Tensor,
    e: Tensor,
    beta: Tensor,
    /// Item features (n_items, F) on the device (not trained).
    features: Tensor,
    reg: f64,
    bias_reg: f64,
    visual_reg: f64,
}

impl Params {
    fn handles(&self) -> Params {
        Params {
            gamma_u: self.gamma_u.shallow_clone(),
            theta_u: self.theta_u.shallow_clone(),
            gamma_i: self.gamma_i.shallow_clone(),
            bias: self.bias.shallow_clone(),
            e: self.e.shallow_clone(),
            beta: self.beta.shallow_clone(),
            features: self.features.shallow_clone(),
            ..*self
        }
    }

    /// (n_items or M, visual_factors) visual item vectors E f_i and the visual bias beta'.f_i.
    fn visual(&self, items: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let f = match items {
            Some(i) => self.features.f_index_select(0, i)?,
            None => self.features.shallow_clone(),
        };
        Ok((f.f_matmul(&self.e)?, f.f_matmul(&self.beta)?))
    }

    /// Scores (B, n_items) of the user indices `users`, on the device.
    fn scores(&self, idx: &Tensor) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let (v, vb) = self.visual(None)?;
        Ok(self.gamma_u.f_index_select(0, idx)?.f_matmul(&self.gamma_i.f_tr()?)?
            + self.theta_u.f_index_select(0, idx)?.f_matmul(&v.f_tr()?)?
            + (&self.bias + vb).f_unsqueeze(0)?)
    }
}

impl TwoTower for Params {
    fn user_vectors(&self, users: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(Tensor::f_cat(&[self.gamma_u.f_index_select(0, users)?, self.theta_u.f_index_select(0, users)?], 1)?)
    }
    fn item_vectors(&self, items: &Tensor, _train: bool) -> Result<Tensor> {
        let (v, _) = self.visual(Some(items))?;
        Ok(Tensor::f_cat(&[self.gamma_i.f_index_select(0, items)?, v], 1)?)
    }
    fn item_bias(&self, items: &Tensor) -> Result<Option<Tensor>> {
        let flat = items.f_flatten(0, -1)?;
        let (_, vb) = self.visual(Some(&flat))?;
        Ok(Some((self.bias.f_index_select(0, &flat)? + vb).f_view_as(items)?))
    }
    fn penalty(&self, g: &Gathered<'_>) -> Result<Option<Tensor>> {
        let sq = |t: Tensor| t.f_square().and_then(|s| s.f_sum(Kind::Float));
        let d = crate::tensors::size_at(&self.gamma_i, 1)?;
        let items = |t: &Tensor| t.f_narrow(-1, 0, d).and_then(|x| x.f_square()).and_then(|x| x.f_sum(Kind::Float));
        let rows = sq(g.u.shallow_clone())? + items(g.i_pos)? + items(g.i_neg)?;
        let bias = sq(self.bias.f_index_select(0, g.pos)?)? + sq(self.bias.f_index_select(0, &g.neg.f_flatten(0, -1)?)?)?;
        let visual = sq(self.e.shallow_clone())? + sq(self.beta.shallow_clone())?;
        Ok(Some(rows * self.reg + bias * self.bias_reg + visual * (self.visual_reg * g.fraction)))
    }
}

/// The store (variables, and the item features as a buffer) and handles on its tensors.
pub struct VbprParams {
    store: ParamStore,
    p: Params,
}

impl ModelParams for VbprParams {
    fn store(&self) -> &ParamStore {
        &self.store
    }

    /// gamma_i and b_i: a cold item has no collaborative part.
    fn item_tables(&self) -> Vec<Tensor> {
        vec![self.p.gamma_i.shallow_clone(), self.p.bias.shallow_clone()]
    }
}

const FEATURES: &str = "item_features";

/// VBPR: the model.
pub struct Vbpr;

impl Vbpr {
    /// Seeded parameters for `n_users` x `n_items` with item `features` (n_items, F).
    fn build(c: &VbprConfig, device: Device, n_users: usize, n_items: usize, features: Tensor) -> Result<VbprParams> {
        crate::nets::random::reseed(crate::sampling::rng::sub_seed(c.common.seed, crate::sampling::rng::streams::INIT, 11));
        let mut store = ParamStore::new(device);
        let r = store.vs.root();
        let init = nn::Init::Randn { mean: 0.0, stdev: c.init_std };
        // 2-D: fit builds it from a feature matrix, restore checks the saved one.
        let n_feat = features.size().get(1).copied().unwrap_or(0);
        let (nu, ni, d, dv) = (n_users as i64, n_items as i64, c.factors as i64, c.visual_factors as i64);
        let features = features.to_device(device);
        let p = Params {
            gamma_u: var(&r, "gamma_users", &[nu, d], init)?,
            theta_u: var(&r, "theta_users", &[nu, dv], init)?,
            gamma_i: var(&r, "gamma_items", &[ni, d], init)?,
            bias: var(&r, "item_bias", &[ni], nn::Init::Const(0.0))?,
            e: var(&r, "visual_projection", &[n_feat, dv], nn::Init::Randn { mean: 0.0, stdev: c.init_std / (n_feat as f64).sqrt() })?,
            beta: var(&r, "visual_bias", &[n_feat], nn::Init::Const(0.0))?,
            features: features.shallow_clone(),
            reg: c.reg,
            bias_reg: c.bias_reg,
            visual_reg: c.visual_reg,
        };
        store.set_buffer(FEATURES, features);
        Ok(VbprParams { store, p })
    }
}

impl Spec for Vbpr {
    type Config = VbprConfig;
    type Params = VbprParams;

    fn build(c: &VbprConfig, train: &Interactions, side: &SideInfo, device: Device) -> Result<VbprParams> {
        let table = side.item_features.as_ref().ok_or_else(|| Error::invalid("VBPR needs item_features="))?;
        let dense = table.continuous.as_ref().filter(|m| m.cols > 0).ok_or_else(|| {
            Error::invalid("VBPR needs numeric item features (a float matrix, image features or embeddings)")
        })?;
        Self::build(c, device, train.n_users(), train.n_items(), dense.to_tensor())
    }

    fn train(c: &VbprConfig, params: &VbprParams, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let sampler = TripleSampler::with_config(train, 1, &c.sampler, side)?;
        let lr = c.common.lr;
        let step_cfg = StepConfig {
            loss: Loss::Bpr,
            reduction: Reduction::Sum,
            optimizer: if c.optimizer == "sgd" { Optimizer::Sgd } else { Optimizer::Adam },
            lr: Box::new(move |_| lr),
            choice: c.sampler.choice(),
            n_items: train.n_items(),
            shared_negatives: false,
            log_q: None,
        };
        let mut step = TorchStep::new(params.p.handles(), &params.store.vs, step_cfg)?;
        let view = params.p.handles();
        let device = params.store.device();
        // Validation scores cold items as the fitted model will (the core zeroes them at the end).
        ctx.run(&mut step, &sampler, &|u| {
            zero_cold_items(&params.item_tables(), train)?;
            view.scores(&Tensor::from_slice(u).f_to_device(device)?)
        })
    }

    /// gamma and theta per user, gamma and a bias per item, E and beta' per feature column
    /// (the features themselves are side data).
    fn param_count(c: &VbprConfig, (n_users, n_items): (usize, usize), from: SizesFrom<'_>) -> Result<u128> {
        let n_feat = match from {
            SizesFrom::Fit(_, side) => side.item_features.as_ref().and_then(|t| t.continuous.as_ref()).map_or(0, |m| m.cols),
            SizesFrom::Saved(_) => from.saved_dim(FEATURES, 1),
        };
        let v = crate::limits::values;
        Ok(crate::limits::total([
            v(&[n_users, c.factors]),
            v(&[n_users, c.visual_factors]),
            v(&[n_items, c.factors]),
            n_items as u128,
            v(&[n_feat, c.visual_factors]),
            n_feat as u128,
        ]))
    }

    fn restore(c: &VbprConfig, (n_users, n_items): (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<VbprParams> {
        let features = checked(state, FEATURES, &[], Kind::Float)?;
        if !matches!(features.size().as_slice(), &[rows, _] if rows == n_items as i64) {
            return Err(Error::state(format!("saved item features have shape {:?} for {n_items} items", features.size())));
        }
        let params = Self::build(c, device, n_users, n_items, features.to_kind(Kind::Float))?;
        params.store.load(state)?;
        Ok(params)
    }

    fn score_block(_: &VbprConfig, params: &VbprParams, users: &Tensor) -> Result<Tensor> {
        params.p.scores(users)
    }

    /// [gamma_u, theta_u] . [gamma_i, E f_i] + beta_i + beta' f_i.
    fn dot_factors(_: &VbprConfig, params: &VbprParams, users: &Tensor) -> Result<Option<super::dot::DotFactors>> {
        let p = &params.p;
        let (v, vb) = p.visual(None)?;
        let users = Tensor::f_cat(&[p.gamma_u.f_index_select(0, users)?, p.theta_u.f_index_select(0, users)?], 1)?;
        let items = Tensor::f_cat(&[p.gamma_i.shallow_clone(), v], 1)?;
        let bias = (&p.bias + vb).f_flatten(0, -1)?;
        Ok(Some(super::dot::DotFactors::new(&users, &items, Some(&bias))?))
    }

    /// [gamma_i, E f_i] per item.
    fn item_vectors(_: &VbprConfig, params: &VbprParams) -> Result<Tensor> {
        let (v, _) = params.p.visual(None)?;
        Ok(Tensor::f_cat(&[params.p.gamma_i.shallow_clone(), v], 1)?)
    }

    fn user_vectors(_: &VbprConfig, params: &VbprParams) -> Result<Tensor> {
        Ok(Tensor::f_cat(&[params.p.gamma_u.shallow_clone(), params.p.theta_u.shallow_clone()], 1)?)
    }

    /// New items from their features (M, F), as a cold item is scored: (M, factors +
    /// visual_factors + 1), the item vector [0, E f] (the space of `item_vectors`) then the
    /// bias beta' . f, so score(u, new) = [gamma_u, theta_u] . [0, E f] + beta' . f.
    fn embed_new_items(_: &VbprConfig, params: &VbprParams, side: &SideInfo) -> Result<Tensor> {
        let p = &params.p;
        let table = side.item_features.as_ref().ok_or_else(|| Error::invalid("VBPR embeds new items from their features: pass features"))?;
        let want = crate::tensors::size_at(&p.features, 1)?;
        let dense = table.continuous.as_ref().filter(|m| m.cols > 0).ok_or_else(|| {
            Error::invalid(format!("VBPR embeds numeric item features ({want} columns, as in fit)"))
        })?;
        if !table.categorical.is_empty() || dense.cols as i64 != want {
            return Err(Error::invalid(format!(
                "the features have {} numeric column(s){}, this model was fitted on {want}",
                dense.cols,
                if table.categorical.is_empty() { "" } else { " and categorical ones" }
            )));
        }
        let f = dense.to_tensor().f_to_device(params.store.device())?;
        let zeros = Tensor::f_zeros([crate::tensors::size_at(&f, 0)?, crate::tensors::size_at(&p.gamma_i, 1)?], (Kind::Float, params.store.device()))?;
        Ok(Tensor::f_cat(&[zeros, f.f_matmul(&p.e)?, f.f_matmul(&p.beta)?.f_unsqueeze(1)?], 1)?)
    }
}
