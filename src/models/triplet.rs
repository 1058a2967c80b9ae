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

/// Checks the settings both models share.
fn check_training(margin: f64, reg: f64, init_std: f64, sampler: &SamplerConfig) -> Result<()> {
    check_weights(&[("margin", margin, false), ("reg", reg, false), ("init_std", init_std, true)])?;
    sampler.validate()
}

/// The step's optimiser named by a config's `optimizer`.
fn optimizer(name: &str) -> Result<Optimizer> {
    match name {
        "adam" => Ok(Optimizer::Adam),
        "sparse_adam" => Ok(Optimizer::SparseAdam),
        other => Err(Error::invalid(format!("optimizer must be 'adam' or 'sparse_adam', not {other:?}"))),
    }
}

/// The step's settings for a margin loss trained with (dense or sparse) Adam, the mean over
/// the batch. `optimizer`: the config's, validated.
fn margin_step(margin: f64, common: &Common, sampler: &SamplerConfig, n_items: usize, optimizer: &str) -> Result<StepConfig> {
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
        check_training(c.margin, c.reg, c.init_std, &c.sampler)?;
        optimizer(&c.optimizer).map(|_| ())
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
        let mut step = TorchStep::new(towers, &p.store.vs, margin_step(c.margin, &c.common, &c.sampler, train.n_items(), &c.optimizer)?)?;
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

    fn row_tables(&mut self) -> Vec<(RowsBy, &mut Tensor)> {
        vec![(RowsBy::User, &mut self.users), (RowsBy::Item, &mut self.items)]
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
        check_training(c.margin, c.reg, c.init_std, &c.sampler)?;
        optimizer(&c.optimizer).map(|_| ())
    }

    fn needs(c: &DeepTripletConfig) -> SideNeeds {
        c.sampler.side_needs()
    }

    fn build(c: &DeepTripletConfig, train: &Interactions, _: &SideInfo, device: Device) -> Result<DeepParams> {
        DeepParams::new(c, train.n_users(), train.n_items(), device)
    }

    fn train(c: &DeepTripletConfig, p: &DeepParams, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let sampler = TripleSampler::with_config(train, 1, &c.sampler, side)?;
        let step_cfg = margin_step(c.margin, &c.common, &c.sampler, train.n_items(), &c.optimizer)?;
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

    /// FNV-1a over the bits of every score and loss of small CPU fits with the dense Adam
    /// (cosine, dot with bias and WARP, the deep model). Recorded before `TorchStep` gained
    /// the sparse optimiser and before the model core (commit 3fccf38), so its dense path and
    /// the core are shown unchanged; they hold for this libtorch build on x86_64 (rerun at
    /// that commit on another platform).
    #[test]
    fn dense_adam_fits_keep_their_bits() {
        use crate::train::{fit_loop, LoopConfig};
        let train = data();
        let fnv = |h: u64, bytes: &[u8]| bytes.iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        let hash = |json: &str| {
            let mut m = Model::<Triplet>::from_json(json).unwrap();
            let r = fit(&mut m, &train);
            let all: Vec<i64> = (0..80).collect();
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            for s in crate::tensors::to_vec_f32(&m.score(&all).unwrap()).unwrap() {
                h = fnv(h, &s.to_bits().to_le_bytes());
            }
            r.history.iter().fold(h, |h, e| fnv(h, &e.loss.to_bits().to_le_bytes()))
        };
        let base = r#"{"factors": 8, "epochs": 2, "batch_size": 64, "device": "cpu", "threads": 1}"#;
        let dot = r#"{"factors": 8, "epochs": 2, "batch_size": 64, "device": "cpu", "threads": 1, "similarity": "dot", "item_bias": true, "reg": 0.01, "sampler": {"kind": "warp"}}"#;
        // The deep model through its step directly, its MLP set without libtorch's global
        // generator (which tests running in parallel share, and which seeds dropout masks:
        // none here).
        let deep: DeepTripletConfig =
            crate::models::core::parse_config("deep_triplet", r#"{"epochs": 2, "batch_size": 64, "hidden": [16], "dropout": 0.0, "reg": 0.01, "device": "cpu", "threads": 1}"#).unwrap();
        let p = DeepParams::new(&deep, 80, 60, Device::Cpu).unwrap();
        tch::no_grad(|| {
            for (k, (_, mut v)) in p.store.vs.variables().into_iter().collect::<std::collections::BTreeMap<_, _>>().into_iter().enumerate() {
                let n = v.numel() as i64;
                let x: Vec<f32> = (0..n).map(|j| ((j * 7919 + k as i64 * 104_729) as f32 * 0.618).sin() * 0.2).collect();
                v.copy_(&Tensor::from_slice(&x).view_as(&v));
            }
        });
        let step_cfg = StepConfig {
            loss: Loss::Margin(1.0),
            reduction: Reduction::Mean,
            optimizer: Optimizer::Adam,
            lr: Box::new(|_| 0.003),
            choice: deep.sampler.choice(),
            n_items: 60,
            shared_negatives: false,
            log_q: None,
        };
        let mut step = TorchStep::new(p.towers(true, deep.reg), &p.store.vs, step_cfg).unwrap();
        let sampler = TripleSampler::with_config(&train, 1, &deep.sampler, &SideInfo::default()).unwrap();
        let loop_cfg = LoopConfig { epochs: 2, batch_size: 64, seed: 0, threads: 1, start_epoch: 0 };
        let r = fit_loop(&mut step, &sampler, &loop_cfg, &mut || Ok(Default::default()), &mut |_, _| Ok(()), &mut |_| Control::Continue).unwrap();
        drop(step);
        let mut h = r.history.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, e| fnv(h, &e.loss.to_bits().to_le_bytes()));
        for (_, v) in p.store.vs.variables().into_iter().collect::<std::collections::BTreeMap<_, _>>() {
            for x in crate::tensors::to_vec_f32(&v.detach().contiguous()).unwrap() {
                h = fnv(h, &x.to_bits().to_le_bytes());
            }
        }
        let got = [hash(base), hash(dot), h];
        assert_eq!(got, [0x0729_e00f_8449_db45, 0x4eef_9009_a622_68c6, 0xf1ec_4a5f_b9d9_06ea], "{got:#x?}");
    }

    /// With sparse_adam both models learn (the loss falls), a user no batch holds keeps its
    /// initial row (the sparse step never reads it), and the deep model's MLP still trains
    /// (its weights on the dense Adam). That the rows move as the optimiser says is
    /// `train::sparse_adam`'s tests.
    #[test]
    fn sparse_adam_fits_lower_the_loss_and_move_only_touched_rows() {
        // User 80 has no interactions: never in a batch.
        let base = data();
        let (mut us, mut is) = (Vec::new(), Vec::new());
        for u in 0..base.n_users() {
            for &i in base.user_items(u) {
                us.push(u as i64);
                is.push(i as i64);
            }
        }
        let train = Interactions::from_indices(&us, &is, None, Some(81), Some(60), crate::data::Duplicates::Sum, Default::default()).unwrap();
        let start = Factors::random(81, 60, 8, 0.05, 0, Device::Cpu).unwrap();
        for (similarity, bias, sampler) in [("cosine", false, "uniform"), ("dot", true, "warp")] {
            let json = format!(
                r#"{{"factors": 8, "epochs": 8, "lr": 0.05, "batch_size": 64, "similarity": "{similarity}", "item_bias": {bias}, "reg": 0.001,
                    "sampler": {{"kind": "{sampler}"}}, "optimizer": "sparse_adam", "device": "cpu", "threads": 1}}"#
            );
            let mut m = Model::<Triplet>::from_json(&json).unwrap();
            let losses: Vec<f64> = fit(&mut m, &train).history.iter().map(|h| h.loss).collect();
            assert!(losses.last().unwrap() < &(losses[0] * 0.9), "{similarity}: loss did not fall: {losses:?}");
            let f = m.params().unwrap();
            assert!(f.users.get(80).equal(&start.users.get(80)), "an untouched user row moved");
            assert!(!f.users.get(0).equal(&start.users.get(0)));
            assert_eq!(f.item_bias.abs().sum(Kind::Float).double_value(&[]) > 0.0, bias);
        }
        let json = r#"{"epochs": 6, "batch_size": 64, "hidden": [16], "lr": 0.01, "optimizer": "sparse_adam", "device": "cpu", "threads": 1}"#;
        let mut m = Model::<DeepTriplet>::from_json(json).unwrap();
        let losses: Vec<f64> = fit(&mut m, &train).history.iter().map(|h| h.loss).collect();
        assert!(losses.last().unwrap() < &(losses[0] * 0.9), "deep: loss did not fall: {losses:?}");
        let init = DeepParams::new(m.config(), 81, 60, Device::Cpu).unwrap();
        let p = m.params().unwrap();
        assert!(p.users.get(80).equal(&init.users.get(80)), "an untouched user row moved");
        let (w, w0) = (p.mlp.first_layer_split(32).unwrap().0, init.mlp.first_layer_split(32).unwrap().0);
        assert!(!w.equal(&w0), "the MLP did not train");
        assert_eq!(m.score(&[0, 80]).unwrap().size(), [2, 60]);
    }

    #[test]
    fn config_errors_name_the_parameter() {
        let err = |kind: &str, json: &str| crate::models::create(kind, json).err().unwrap().to_string();
        assert!(err("triplet", r#"{"similarity": "euclid"}"#).contains("similarity"));
        assert!(err("deep_triplet", r#"{"dropout": 1.0}"#).contains("dropout"));
        assert!(err("triplet", r#"{"margin": -1.0}"#).contains("margin"));
        let e = err("triplet", r#"{"sampler": {"kind": "warp", "typo": 1}}"#);
        assert!(e.contains("typo") && e.contains("sampler"), "{e}");
        assert!(err("deep_triplet", r#"{"optimizer": "adagrad"}"#).contains("optimizer"));
        let e = err("triplet", r#"{"epochs": 1.5}"#);
        assert!(e.starts_with("epochs: "), "{e}");
    }
}
