//! DeepTripletModel: user and item embeddings scored by an MLP over both (with dropout).

#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic; integer widths are the model's configuration, checked when it is built")]

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::deep_native::NativeDeepStep;
use super::{check_training, margin_step, on_device, sum_sq};
use crate::models::bpr::check_fractions;
use crate::data::{Interactions, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::models::core::{Common, FitCtx, ModelConfig, ModelParams, ParamStore, SizesFrom, Spec};
use crate::models::factors::Factors;
use crate::nets::mlp::Mlp;
use crate::sampling::{Choice, SamplerConfig, TripleSampler};
use crate::train::torch_step::{Gathered, RowsBy, TorchStep, TwoTower};
use crate::train::FitReport;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeepTripletConfig {
    /// Item embedding width.
    pub factors: usize,
    /// User embedding width (the MLP reads both, so they may differ).
    pub user_factors: usize,
    /// Hidden layer widths of the scoring MLP (then one linear output unit).
    pub hidden: Vec<usize>,
    pub dropout: f64,
    pub margin: f64,
    /// L2 weight on the embedding rows a batch touches (mean over the batch).
    pub reg: f64,
    /// epochs, lr (Adam), batch_size (triples per step), seed, threads (sampling), device.
    #[serde(flatten)]
    pub common: Common,
    /// "adam" or "sparse_adam" (as TripletConfig's: the sparse one moves only the batch's
    /// embedding rows; the MLP's weights keep the dense Adam).
    pub optimizer: String,
    pub init_std: f64,
    pub sampler: SamplerConfig,
}

impl Default for DeepTripletConfig {
    fn default() -> Self {
        DeepTripletConfig {
            factors: 64,
            user_factors: 32,
            hidden: vec![128],
            dropout: 0.1,
            margin: 1.0,
            reg: 0.0,
            common: Common::new(20, 0.003, 1024),
            optimizer: "adam".into(),
            init_std: 0.05,
            sampler: SamplerConfig::default(),
        }
    }
}

impl ModelConfig for DeepTripletConfig {
    fn validate(&self) -> Result<()> {
        if self.user_factors == 0 || self.factors == 0 {
            return Err(Error::invalid("factors and user_factors must be at least 1"));
        }
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(Error::invalid(format!("hidden must list one or more layer widths >= 1, got {:?}", self.hidden)));
        }
        check_fractions(&[("dropout", self.dropout)])?;
        check_training(self.margin, self.reg, self.init_std, &self.sampler, &self.optimizer)
    }

    fn needs(&self) -> SideNeeds {
        self.sampler.side_needs()
    }

    fn common(&self) -> Option<&Common> {
        Some(&self.common)
    }
}

/// The parameters: embeddings and the scoring MLP, in one store.
pub struct DeepParams {
    pub(super) store: ParamStore,
    pub(super) users: Tensor,
    pub(super) items: Tensor,
    pub(super) mlp: Mlp,
}

impl ModelParams for DeepParams {
    fn store(&self) -> &ParamStore {
        &self.store
    }

    /// The item embeddings (the MLP is shared by all items).
    fn item_tables(&self) -> Vec<Tensor> {
        vec![self.items.shallow_clone()]
    }
}

pub(super) const USERS: &str = "user_embeddings";
const ITEMS: &str = "item_embeddings";

impl DeepParams {
    pub(super) fn new(cfg: &DeepTripletConfig, n_users: usize, n_items: usize, device: Device) -> Result<Self> {
        // This thread's generator (`nets::random`) draws the MLP's initial weights; the
        // embeddings come from the seeded per-row streams as in every factor model.
        crate::nets::random::reseed(cfg.common.seed);
        let store = ParamStore::new(device);
        let seed = cfg.common.seed;
        let u = Factors::random(n_users, 0, cfg.user_factors, cfg.init_std, seed, Device::Cpu)?;
        let i = Factors::random(0, n_items, cfg.factors, cfg.init_std, seed, Device::Cpu)?;
        let users = store.vs.root().f_var_copy(USERS, &u.users)?;
        let items = store.vs.root().f_var_copy(ITEMS, &i.items)?;
        let widths: Vec<i64> = cfg.hidden.iter().map(|&h| h as i64).chain([1]).collect();
        let mlp = Mlp::new(&(store.vs.root() / "mlp"), (cfg.user_factors + cfg.factors) as i64, &widths, cfg.dropout, false)?;
        Ok(DeepParams { store, users, items, mlp })
    }

    pub(super) fn towers(&self, train: bool, reg: f64) -> DeepTowers {
        DeepTowers { users: self.users.shallow_clone(), items: self.items.shallow_clone(), mlp: self.mlp.shallow_clone(), train, reg }
    }
}

/// The deep model as the step sees it. `train` switches the MLP's dropout: the step's
/// `match_scores` has no training flag, so the towers given to the step carry `true` and the
/// model's own scoring uses towers with `false`.
pub(super) struct DeepTowers {
    users: Tensor,
    items: Tensor,
    mlp: Mlp,
    train: bool,
    reg: f64,
}

impl TwoTower for DeepTowers {
    fn user_vectors(&self, users: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.users.f_index_select(0, users)?)
    }

    fn item_vectors(&self, items: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.items.f_index_select(0, items)?)
    }

    /// MLP([u, i]) for u (B, du) and i (B, C, di): the first layer as u W_u^T + i W_i^T + b.
    fn match_scores(&self, u: &Tensor, i: &Tensor) -> Result<Tensor> {
        let (wu, wi, bias) = self.mlp.first_layer_split(crate::tensors::size_at(u, 1)?)?;
        let mut pre = i.f_matmul(&wi.f_tr()?)? + u.f_matmul(&wu.f_tr()?)?.f_unsqueeze(1)?;
        if let Some(b) = bias {
            pre = pre + b;
        }
        Ok(self.mlp.forward_after_first(&pre, self.train)?.f_squeeze_dim(-1)?)
    }

    fn penalty(&self, g: &Gathered<'_>) -> Result<Option<Tensor>> {
        if self.reg == 0.0 {
            return Ok(None);
        }
        let total = sum_sq(g.u)? + sum_sq(g.i_pos)? + sum_sq(g.i_neg)?;
        Ok(Some(total * (self.reg / g.users.numel().max(1) as f64)))
    }

    fn row_tables(&mut self) -> Vec<(RowsBy, &mut Tensor)> {
        vec![(RowsBy::User, &mut self.users), (RowsBy::Item, &mut self.items)]
    }
}

/// Bytes of the (users, items, layer) activations of one scoring block: blocks are sized by
/// bytes, not pairs, so wide layers get fewer users a block.
const BLOCK_BYTES: usize = 256 << 20;

/// Users per scoring block for `n_items` items: [`BLOCK_BYTES`] over the bytes one (user,
/// item) pair takes through the MLP (each layer's output, twice for the temporaries), at
/// least one.
pub(super) fn users_per_block(c: &DeepTripletConfig, n_items: usize) -> i64 {
    let widths: usize = c.user_factors + c.factors + c.hidden.iter().sum::<usize>() + 1;
    let pair_bytes = widths.saturating_mul(2 * std::mem::size_of::<f32>());
    (BLOCK_BYTES / pair_bytes.saturating_mul(n_items).max(1)).max(1) as i64
}

/// Scores `s` (users x items) with each cold item's (its embedding zeroed at the end of fit,
/// `core::zero_cold_items`: a trained item's is never all zeros) set 1 below the user's
/// lowest trained-item score. The MLP of a zero vector is no prediction: a cold item has
/// fewer interactions than any trained item, so it ranks last, as the factor models' floor
/// puts it (`core::floor_cold_bias`); all cold items tie.
fn below_trained_items(s: Tensor, items: &Tensor) -> Result<Tensor> {
    let cold = items.f_abs()?.f_amax([1i64].as_slice(), false)?.f_eq(0.0)?.f_unsqueeze(0)?;
    if crate::tensors::size_at(&s, 0)? == 0 || cold.f_any()?.f_int64_value(&[])? == 0 {
        return Ok(s);
    }
    let lowest = s.f_masked_fill(&cold, f64::INFINITY)?.f_amin([1i64].as_slice(), true)? - 1.0;
    Ok(s.f_where_self(&cold.f_logical_not()?, &lowest)?)
}

/// DeepTripletModel: embeddings scored by an MLP.
pub struct DeepTriplet;

impl Spec for DeepTriplet {
    type Config = DeepTripletConfig;
    type Params = DeepParams;

    fn build(c: &DeepTripletConfig, train: &Interactions, _: &SideInfo, device: Device) -> Result<DeepParams> {
        DeepParams::new(c, train.n_users(), train.n_items(), device)
    }

    fn train(c: &DeepTripletConfig, p: &DeepParams, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let sampler = TripleSampler::with_config(train, 1, &c.sampler, side)?;
        let score = on_device(p.store.device(), |u| Self::score_block(c, p, u));
        // The row-sparse Adam on the CPU with one negative per sample: the MLP's gradient
        // written out (deep_native.rs); else the shared libtorch step.
        if c.optimizer == "sparse_adam" && c.sampler.choice() == Choice::Single && !crate::tensors::gpu_path(p.store.device()) {
            let mut step = NativeDeepStep::new(&p.store.vs, &p.users, &p.items, &p.mlp, c.margin, c.reg, c.common.lr)?;
            return ctx.run(&mut step, &sampler, &score);
        }
        let step_cfg = margin_step(c.margin, &c.common, &c.sampler, train.n_items(), &c.optimizer)?;
        let mut step = TorchStep::new(p.towers(true, c.reg), &p.store.vs, step_cfg)?;
        ctx.run(&mut step, &sampler, &score)
    }

    /// Both embedding tables and the MLP over [user, item].
    fn param_count(c: &DeepTripletConfig, (n_users, n_items): (usize, usize), _: SizesFrom<'_>) -> Result<u128> {
        let widths: Vec<usize> = c.hidden.iter().copied().chain([1]).collect();
        let mlp = crate::nets::mlp::mlp_values(c.user_factors.saturating_add(c.factors), &widths);
        Ok(crate::limits::total([crate::limits::values(&[n_users, c.user_factors]), crate::limits::values(&[n_items, c.factors]), mlp]))
    }

    fn restore(c: &DeepTripletConfig, (n_users, n_items): (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<DeepParams> {
        let p = DeepParams::new(c, n_users, n_items, device)?;
        p.store.load(state)?;
        Ok(p)
    }

    /// In blocks of users, so the (users, items, hidden) activations stay bounded.
    fn score_block(c: &DeepTripletConfig, p: &DeepParams, users: &Tensor) -> Result<Tensor> {
        let n_items = crate::tensors::size_at(&p.items, 0)?;
        let towers = p.towers(false, 0.0);
        let items = p.items.f_unsqueeze(0)?;
        let per_block = users_per_block(c, n_items as usize);
        let parts = users
            .f_split(per_block, 0)?
            .iter()
            .map(|block| towers.match_scores(&p.users.f_index_select(0, block)?, &items.f_expand([block.numel() as i64, n_items, -1], false)?))
            .collect::<Result<Vec<_>>>()?;
        if parts.is_empty() {
            return Ok(Tensor::f_zeros([0, n_items], (Kind::Float, p.store.device()))?);
        }
        below_trained_items(Tensor::f_cat(&parts, 0)?, &p.items)
    }

    /// The item embeddings (the MLP scores pairs; `similar_items` uses their cosine).
    fn item_vectors(_: &DeepTripletConfig, p: &DeepParams) -> Result<Tensor> {
        Ok(p.items.shallow_clone())
    }

    fn user_vectors(_: &DeepTripletConfig, p: &DeepParams) -> Result<Tensor> {
        Ok(p.users.shallow_clone())
    }
}
