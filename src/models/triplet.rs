//! Triplet models (the anime triplet-loss notebook): user and item embeddings trained with
//! the margin loss max(0, margin + s(u, j) - s(u, i)) through the shared libtorch step.
//!
//! * [`Triplet`]: s = cosine or dot product of the embeddings.
//! * [`DeepTriplet`]: s = an MLP (with dropout) over the concatenated user and item
//!   embeddings. Every (user, item) pair goes through the network, so scores are computed in
//!   blocks of users on the device; the first layer is split by input (user part + item part,
//!   each computed once per block) so a block costs one broadcast add, not a concatenation.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::bpr::check_weights;
use super::core::{Common, FitCtx, ParamStore, Spec};
use super::factors::{FactorHandles, Factors};
use crate::data::{Interactions, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::nets::mlp::Mlp;
use crate::sampling::{SamplerConfig, TripleSampler};
use crate::train::torch_step::{Gathered, Loss, Optimizer, Reduction, StepConfig, TorchStep, TwoTower};
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
            init_std: 0.05,
            sampler: SamplerConfig::default(),
        }
    }
}

/// Checks the settings both models share.
fn check_training(margin: f64, reg: f64, init_std: f64, sampler: &SamplerConfig) -> Result<()> {
    check_weights(&[("margin", margin, false), ("reg", reg, false), ("init_std", init_std, true)])?;
    sampler.validate()
}

/// The step's settings for a margin loss trained with Adam (mean over the batch).
fn margin_step(margin: f64, common: &Common, sampler: &SamplerConfig, n_items: usize) -> StepConfig {
    let lr = common.lr;
    StepConfig {
        loss: Loss::Margin(margin),
        reduction: Reduction::Mean,
        optimizer: Optimizer::Adam,
        lr: Box::new(move |_| lr),
        choice: sampler.choice(),
        n_items,
        shared_negatives: false,
        log_q: None,
    }
}

fn sum_sq(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_square()?.f_sum(Kind::Float)?)
}

/// A scorer of user indices for validation during fit.
fn on_device<'a>(device: Device, score: impl Fn(&Tensor) -> Result<Tensor> + 'a) -> impl Fn(&[i64]) -> Result<Tensor> + 'a {
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
        Ok(Some(total * (self.reg / g.users.size()[0].max(1) as f64)))
    }
}

fn cosine(c: &TripletConfig) -> bool {
    c.similarity == "cosine"
}

impl Spec for Triplet {
    const KIND: &'static str = "triplet";
    const NAME: &'static str = "TripletModel";
    type Config = TripletConfig;
    type Params = Factors;

    fn common(c: &TripletConfig) -> Option<&Common> {
        Some(&c.common)
    }

    fn validate(c: &TripletConfig) -> Result<()> {
        if c.factors == 0 {
            return Err(Error::invalid("factors must be at least 1"));
        }
        if !["cosine", "dot"].contains(&c.similarity.as_str()) {
            return Err(Error::invalid(format!("similarity must be 'cosine' or 'dot', not {:?}", c.similarity)));
        }
        check_training(c.margin, c.reg, c.init_std, &c.sampler)
    }

    fn needs(c: &TripletConfig) -> SideNeeds {
        c.sampler.side_needs()
    }

    fn build(c: &TripletConfig, train: &Interactions, _: &SideInfo, device: Device) -> Result<Factors> {
        Factors::random(train.n_users(), train.n_items(), c.factors, c.init_std, c.common.seed, device)
    }

    fn train(c: &TripletConfig, p: &Factors, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let sampler = TripleSampler::with_config(train, 1, &c.sampler, side)?;
        // Without `item_bias` the factor layout's bias gets no gradient: Adam leaves it at 0.
        let towers = TripletTowers { p: p.handles(), cosine: cosine(c), bias: c.item_bias, reg: c.reg };
        let mut step = TorchStep::new(towers, &p.store.vs, margin_step(c.margin, &c.common, &c.sampler, train.n_items()))?;
        ctx.run(&mut step, &sampler, &on_device(p.device(), |u| Self::score_block(c, p, u)))
    }

    fn store(p: &Factors) -> &ParamStore {
        &p.store
    }

    fn restore(c: &TripletConfig, shape: (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<Factors> {
        Factors::from_state(state, shape, c.factors, device)
    }

    fn score_block(c: &TripletConfig, p: &Factors, users: &Tensor) -> Result<Tensor> {
        let items = unit_rows(p.items.shallow_clone(), cosine(c))?;
        let s = unit_rows(p.users.f_index_select(0, users)?, cosine(c))?.f_matmul(&items.f_tr()?)?;
        Ok(if c.item_bias { s + p.item_bias.f_unsqueeze(0)? } else { s })
    }

    /// As scored (unit length for cosine).
    fn item_vectors(c: &TripletConfig, p: &Factors) -> Result<Tensor> {
        unit_rows(p.items.shallow_clone(), cosine(c))
    }

    fn user_vectors(c: &TripletConfig, p: &Factors) -> Result<Tensor> {
        unit_rows(p.users.shallow_clone(), cosine(c))
    }
}

// ---------------------------------------------------------------------------------------------
// DeepTripletModel
// ---------------------------------------------------------------------------------------------

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
            init_std: 0.05,
            sampler: SamplerConfig::default(),
        }
    }
}

/// The parameters: embeddings and the scoring MLP, in one store.
pub struct DeepParams {
    store: ParamStore,
    users: Tensor,
    items: Tensor,
    mlp: Mlp,
}

const USERS: &str = "user_embeddings";
const ITEMS: &str = "item_embeddings";

impl DeepParams {
    fn new(cfg: &DeepTripletConfig, n_users: usize, n_items: usize, device: Device) -> Result<Self> {
        // libtorch's generator seeds the MLP's initial weights; the embeddings come from the
        // seeded per-row streams as in every factor model.
        tch::manual_seed(cfg.common.seed as i64);
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

    fn towers(&self, train: bool, reg: f64) -> DeepTowers {
        DeepTowers { users: self.users.shallow_clone(), items: self.items.shallow_clone(), mlp: self.mlp.shallow_clone(), train, reg }
    }
}

/// The deep model as the step sees it. `train` switches the MLP's dropout: the step's
/// `match_scores` has no training flag, so the towers given to the step carry `true` and the
/// model's own scoring uses towers with `false`.
struct DeepTowers {
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
        let (wu, wi, bias) = self.mlp.first_layer_split(u.size()[1])?;
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
        Ok(Some(total * (self.reg / g.users.size()[0].max(1) as f64)))
    }
}

/// (user, item) pairs per scoring block: bounds the (users, items, hidden) activations.
const PAIRS_PER_BLOCK: usize = 1 << 20;

/// DeepTripletModel: embeddings scored by an MLP.
pub struct DeepTriplet;

impl Spec for DeepTriplet {
    const KIND: &'static str = "deep_triplet";
    const NAME: &'static str = "DeepTripletModel";
    type Config = DeepTripletConfig;
    type Params = DeepParams;

    fn common(c: &DeepTripletConfig) -> Option<&Common> {
        Some(&c.common)
    }

    fn validate(c: &DeepTripletConfig) -> Result<()> {
        if c.user_factors == 0 || c.factors == 0 {
            return Err(Error::invalid("factors and user_factors must be at least 1"));
        }
        if c.hidden.is_empty() || c.hidden.contains(&0) {
            return Err(Error::invalid(format!("hidden must list one or more layer widths >= 1, got {:?}", c.hidden)));
        }
        if !(0.0..1.0).contains(&c.dropout) {
            return Err(Error::invalid(format!("dropout must be in [0, 1), got {}", c.dropout)));
        }
        check_training(c.margin, c.reg, c.init_std, &c.sampler)
    }

    fn needs(c: &DeepTripletConfig) -> SideNeeds {
        c.sampler.side_needs()
    }

    fn build(c: &DeepTripletConfig, train: &Interactions, _: &SideInfo, device: Device) -> Result<DeepParams> {
        DeepParams::new(c, train.n_users(), train.n_items(), device)
    }

    fn train(c: &DeepTripletConfig, p: &DeepParams, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let sampler = TripleSampler::with_config(train, 1, &c.sampler, side)?;
        let step_cfg = margin_step(c.margin, &c.common, &c.sampler, train.n_items());
        let mut step = TorchStep::new(p.towers(true, c.reg), &p.store.vs, step_cfg)?;
        ctx.run(&mut step, &sampler, &on_device(p.store.device(), |u| Self::score_block(c, p, u)))
    }

    fn store(p: &DeepParams) -> &ParamStore {
        &p.store
    }

    fn restore(c: &DeepTripletConfig, (n_users, n_items): (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<DeepParams> {
        let p = DeepParams::new(c, n_users, n_items, device)?;
        p.store.load(state)?;
        Ok(p)
    }

    /// In blocks of users, so the (users, items, hidden) activations stay bounded.
    fn score_block(_: &DeepTripletConfig, p: &DeepParams, users: &Tensor) -> Result<Tensor> {
        let n_items = p.items.size()[0];
        let towers = p.towers(false, 0.0);
        let items = p.items.f_unsqueeze(0)?;
        let per_block = (PAIRS_PER_BLOCK as i64 / n_items.max(1)).max(1);
        let parts = users
            .f_split(per_block, 0)?
            .iter()
            .map(|block| towers.match_scores(&p.users.f_index_select(0, block)?, &items.f_expand([block.size()[0], n_items, -1], false)?))
            .collect::<Result<Vec<_>>>()?;
        if parts.is_empty() {
            return Ok(Tensor::f_zeros([0, n_items], (Kind::Float, p.store.device()))?);
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    }

    /// The item embeddings (the MLP scores pairs; `similar_items` uses their cosine).
    fn item_vectors(_: &DeepTripletConfig, p: &DeepParams) -> Result<Tensor> {
        Ok(p.items.shallow_clone())
    }

    fn user_vectors(_: &DeepTripletConfig, p: &DeepParams) -> Result<Tensor> {
        Ok(p.users.shallow_clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{synthetic, SyntheticConfig};
    use crate::models::core::Model;
    use crate::models::Recommender;
    use crate::train::Control;

    fn data() -> Interactions {
        synthetic(&SyntheticConfig { n_users: 80, n_items: 60, ..Default::default() }).unwrap()
    }

    fn fit(model: &mut dyn Recommender, train: &Interactions) -> FitReport {
        model.fit(train, &SideInfo::default(), None, &mut |_| Control::Continue, &Default::default()).unwrap()
    }

    #[test]
    fn triplet_cosine_scores_are_cosines_and_training_lowers_the_loss() {
        let train = data();
        let mut m = Model::<Triplet>::from_json(r#"{"factors": 8, "epochs": 8, "lr": 0.05, "batch_size": 256, "device": "cpu", "threads": 1}"#).unwrap();
        let report = fit(&mut m, &train);
        let losses: Vec<f64> = report.history.iter().map(|h| h.loss).collect();
        assert!(losses.last().unwrap() < &(losses[0] * 0.9), "loss did not fall: {losses:?}");
        let s = m.score(&[0, 1, 2]).unwrap();
        assert_eq!(s.size(), [3, 60]);
        let max = s.abs().max().double_value(&[]);
        assert!(max <= 1.0 + 1e-5, "a cosine above 1: {max}");
        // score = normalised user . normalised item, computed independently here.
        let f = m.params().unwrap();
        let u = f.users.get(1);
        let i = f.items.get(7);
        let cos = (u.dot(&i) / (u.norm() * i.norm())).double_value(&[]);
        assert!((s.double_value(&[1, 7]) - cos).abs() < 1e-5);
        // The item bias of the factor layout stays zero.
        assert_eq!(f.item_bias.abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn triplet_is_reproducible_with_one_thread() {
        let train = data();
        let run = || {
            let mut m = Model::<Triplet>::from_json(r#"{"factors": 4, "epochs": 2, "device": "cpu", "threads": 1, "similarity": "dot"}"#).unwrap();
            fit(&mut m, &train);
            m.score(&[3]).unwrap()
        };
        assert!(run().equal(&run()));
    }

    #[test]
    fn deep_block_scores_match_pairwise_mlp() {
        let train = data();
        let mut m = Model::<DeepTriplet>::from_json(r#"{"epochs": 2, "hidden": [16, 8], "device": "cpu", "threads": 1}"#).unwrap();
        let report = fit(&mut m, &train);
        assert_eq!(report.history.len(), 2);
        let s = m.score(&[0, 5]).unwrap();
        assert_eq!(s.size(), [2, 60]);
        // The split first layer equals the MLP on the concatenation, without dropout.
        let p = m.params().unwrap();
        let x = Tensor::cat(&[p.users.get(5), p.items.get(11)], 0).unsqueeze(0);
        let direct = tch::no_grad(|| p.mlp.try_forward(&x, false).unwrap()).double_value(&[0, 0]);
        assert!((s.double_value(&[1, 11]) - direct).abs() < 1e-4);
        // Blocks: the first block's scores do not depend on which users come after.
        assert!(m.score(&[0]).unwrap().allclose(&s.narrow(0, 0, 1), 1e-6, 1e-6, false));
    }

    #[test]
    fn deep_state_round_trips() {
        let train = data();
        let json = r#"{"epochs": 1, "device": "cpu", "threads": 1}"#;
        let mut m = Model::<DeepTriplet>::from_json(json).unwrap();
        fit(&mut m, &train);
        let state: HashMap<String, Tensor> = m.state().unwrap().into_iter().collect();
        assert!(state.contains_key("mlp.0.weight") && state.contains_key(USERS));
        let mut back = Model::<DeepTriplet>::from_json(json).unwrap();
        back.restore(&state, train.ids().clone(), vec![], Some("cpu")).unwrap();
        assert!(back.score(&[0, 1]).unwrap().equal(&m.score(&[0, 1]).unwrap()));
        let mut short = state;
        short.remove("mlp.0.bias");
        assert!(Model::<DeepTriplet>::from_json(json).unwrap().restore(&short, train.ids().clone(), vec![], Some("cpu")).is_err());
    }

    #[test]
    fn config_errors_name_the_parameter() {
        let err = |kind: &str, json: &str| crate::models::create(kind, json).err().unwrap().to_string();
        assert!(err("triplet", r#"{"similarity": "euclid"}"#).contains("similarity"));
        assert!(err("deep_triplet", r#"{"dropout": 1.0}"#).contains("dropout"));
        assert!(err("triplet", r#"{"margin": -1.0}"#).contains("margin"));
        let e = err("triplet", r#"{"sampler": {"kind": "warp", "typo": 1}}"#);
        assert!(e.contains("typo") && e.contains("sampler"), "{e}");
        let e = err("triplet", r#"{"epochs": 1.5}"#);
        assert!(e.starts_with("epochs: "), "{e}");
    }
}
