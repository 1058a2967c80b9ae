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
use tch::{nn, Device, Kind, Tensor};

use super::factors::{FactorHandles, Factors};
use super::{check_side, not_fitted, validator, Recommender};
use crate::data::{IdMaps, Interactions, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::metrics::Validation;
use crate::nets::mlp::Mlp;
use crate::sampling::{SamplerConfig, TripleSampler};
use crate::tensors::{device_name, parse_device};
use crate::train::torch_step::{Gathered, Loss, Optimizer, Reduction, RowsBy, StepConfig, TorchStep, TwoTower};
use crate::train::{fit_loop, Control, EpochLog, Event, FitReport, LoopConfig};

/// Settings shared by both triplet models' training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// "adam" (dense, as the seed notebook's Keras Adam: every embedding row moves at every
    /// step) or "sparse_adam" (a different optimiser, torch.optim.SparseAdam: only the rows a
    /// batch touches, and their moments, move; a step's cost no longer grows with the
    /// catalogue).
    pub optimizer: String,
    pub batch_size: usize,
    /// Standard deviation of the initial embeddings.
    pub init_std: f64,
    pub sampler: SamplerConfig,
    /// "auto", "cpu", "cuda" or "cuda:N".
    pub device: String,
    pub seed: u64,
    /// CPU threads for sampling; 0 uses every core.
    pub threads: usize,
}

impl Default for TripletConfig {
    fn default() -> Self {
        TripletConfig {
            factors: 64,
            similarity: "cosine".into(),
            item_bias: false,
            margin: 1.0,
            reg: 0.0,
            epochs: 20,
            lr: 0.01,
            optimizer: "adam".into(),
            batch_size: 1024,
            init_std: 0.05,
            sampler: SamplerConfig::default(),
            device: "auto".into(),
            seed: 0,
            threads: 0,
        }
    }
}

/// Checks the settings both models share.
fn check_training(margin: f64, reg: f64, lr: f64, batch_size: usize, init_std: f64, sampler: &SamplerConfig) -> Result<()> {
    for (name, v, strictly) in [("margin", margin, false), ("reg", reg, false), ("lr", lr, true), ("init_std", init_std, true)] {
        if !v.is_finite() || v < 0.0 || (strictly && v == 0.0) {
            return Err(Error::invalid(format!("{name} must be a finite number {} 0, got {v}", if strictly { ">" } else { ">=" })));
        }
    }
    if batch_size == 0 {
        return Err(Error::invalid("batch_size must be at least 1"));
    }
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

impl TripletConfig {
    pub fn validate(&self) -> Result<()> {
        if self.factors == 0 {
            return Err(Error::invalid("factors must be at least 1"));
        }
        if !["cosine", "dot"].contains(&self.similarity.as_str()) {
            return Err(Error::invalid(format!("similarity must be 'cosine' or 'dot', not {:?}", self.similarity)));
        }
        check_training(self.margin, self.reg, self.lr, self.batch_size, self.init_std, &self.sampler)?;
        optimizer(&self.optimizer)?;
        parse_device(&self.device).map(|_| ())
    }
}

/// The step's settings for a margin loss trained with (dense or sparse) Adam, the mean over
/// the batch. `optimizer`: the config's, validated.
fn margin_step(margin: f64, lr: f64, sampler: &SamplerConfig, n_items: usize, optimizer: &str) -> StepConfig {
    StepConfig {
        loss: Loss::Margin(margin),
        reduction: Reduction::Mean,
        optimizer: self::optimizer(optimizer).unwrap_or(Optimizer::Adam),
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

// ---------------------------------------------------------------------------------------------
// TripletModel
// ---------------------------------------------------------------------------------------------

pub struct Triplet {
    config: TripletConfig,
    params: Option<Factors>,
    ids: Option<IdMaps>,
    history: Vec<EpochLog>,
}

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

impl Triplet {
    pub fn new(config: TripletConfig) -> Result<Self> {
        config.validate()?;
        Ok(Triplet { config, params: None, ids: None, history: Vec::new() })
    }

    fn fitted(&self) -> Result<&Factors> {
        self.params.as_ref().ok_or_else(|| not_fitted("TripletModel"))
    }

    fn cosine(&self) -> bool {
        self.config.similarity == "cosine"
    }

    /// Users' vectors as scored (unit length for cosine), on the model's device.
    fn user_rows(&self, users: &[i64]) -> Result<Tensor> {
        let f = self.fitted()?;
        let n = f.n_users() as i64;
        if let Some(&bad) = users.iter().find(|&&u| u < 0 || u >= n) {
            return Err(Error::invalid(format!("user index {bad} out of range for {n} users")));
        }
        let idx = Tensor::from_slice(users).f_to_device(f.device())?;
        unit_rows(f.users.f_index_select(0, &idx)?, self.cosine())
    }

    fn all_items(&self) -> Result<Tensor> {
        unit_rows(self.fitted()?.items.shallow_clone(), self.cosine())
    }

    fn score_on_device(&self, users: &[i64]) -> Result<Tensor> {
        tch::no_grad(|| -> Result<Tensor> {
            let s = self.user_rows(users)?.f_matmul(&self.all_items()?.f_tr()?)?;
            Ok(if self.config.item_bias { s + self.fitted()?.item_bias.f_unsqueeze(0)? } else { s })
        })
    }
}

impl Recommender for Triplet {
    fn kind(&self) -> &'static str {
        "triplet"
    }

    fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap()
    }

    fn needs(&self) -> SideNeeds {
        self.config.sampler.side_needs()
    }

    fn fit(
        &mut self,
        train: &Interactions,
        side: &SideInfo,
        validation: Option<&Validation<'_>>,
        observer: &mut dyn FnMut(&Event<'_>) -> Control,
    ) -> Result<FitReport> {
        check_side(self, "TripletModel", train, side)?;
        let cfg = self.config.clone();
        let device = parse_device(&cfg.device)?;
        let sampler = TripleSampler::with_config(train, 1, &cfg.sampler, side)?;
        self.params = Some(Factors::random(train.n_users(), train.n_items(), cfg.factors, cfg.init_std, cfg.seed, device)?);
        self.ids = Some(train.ids().clone());
        self.history.clear();
        let p = self.params.as_ref().unwrap();
        // Without `item_bias` the factor layout's bias gets no gradient: Adam leaves it at 0.
        let towers = TripletTowers { p: p.handles(), cosine: cfg.similarity == "cosine", bias: cfg.item_bias, reg: cfg.reg };
        let mut step = TorchStep::new(towers, &p.vs, margin_step(cfg.margin, cfg.lr, &cfg.sampler, train.n_items(), &cfg.optimizer))?;
        let loop_cfg = LoopConfig { epochs: cfg.epochs, batch_size: cfg.batch_size, seed: cfg.seed, threads: cfg.threads };
        let this = &*self;
        let mut validate = validator(train, validation, |u| this.score(u))?;
        let report = fit_loop(&mut step, &sampler, &loop_cfg, &mut validate, observer)?;
        drop(validate);
        self.history = report.history.clone();
        Ok(report)
    }

    fn ids(&self) -> Option<&IdMaps> {
        self.ids.as_ref()
    }

    fn history(&self) -> &[EpochLog] {
        &self.history
    }

    fn score(&self, users: &[i64]) -> Result<Tensor> {
        Ok(self.score_on_device(users)?.f_to_device(Device::Cpu)?.f_contiguous()?)
    }

    /// On a GPU the scores stay there: top-k on the device.
    fn recommend(&self, users: &[i64], k: usize, exclude: Option<&Interactions>) -> Result<(Vec<i64>, Vec<f32>)> {
        let f = self.fitted()?;
        let n_items = f.n_items();
        if f.device() == Device::Cpu {
            return super::recommend_by_blocks(users, k, n_items, exclude, &|b| self.score(b), &|s, b, k, ex| {
                let idx: Vec<u32> = b.iter().map(|&u| u as u32).collect();
                crate::metrics::top_k_block(&crate::tensors::to_vec_f32(&s)?, n_items, &idx, k, ex)
            });
        }
        super::recommend_by_blocks(users, k, n_items, exclude, &|b| self.score_on_device(b), &super::device_top_k)
    }

    fn item_vectors(&self) -> Result<Tensor> {
        tch::no_grad(|| -> Result<Tensor> { Ok(self.all_items()?.f_detach()?.f_to_device(Device::Cpu)?) })
    }

    fn user_vectors(&self) -> Result<Tensor> {
        let f = self.fitted()?;
        tch::no_grad(|| -> Result<Tensor> { Ok(unit_rows(f.users.shallow_clone(), self.cosine())?.f_detach()?.f_to_device(Device::Cpu)?) })
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(self.fitted()?.named())
    }

    fn restore(&mut self, state: &HashMap<String, Tensor>, ids: IdMaps, history: Vec<EpochLog>, device: Option<&str>) -> Result<()> {
        let f = Factors::from_state(state, device.unwrap_or(&self.config.device))?;
        if f.n_users() != ids.users.len() || f.n_items() != ids.items.len() || f.dim() != self.config.factors {
            return Err(Error::state(format!(
                "saved embeddings ({} users x {} items x {}) do not match the saved ids ({} x {}) and factors={}",
                f.n_users(),
                f.n_items(),
                f.dim(),
                ids.users.len(),
                ids.items.len(),
                self.config.factors
            )));
        }
        self.params = Some(f);
        self.ids = Some(ids);
        self.history = history;
        Ok(())
    }

    fn device(&self) -> String {
        self.params.as_ref().map(|p| device_name(p.device())).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// DeepTripletModel
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeepTripletConfig {
    pub user_factors: usize,
    pub item_factors: usize,
    /// Hidden layer widths of the scoring MLP (then one linear output unit).
    pub hidden: Vec<usize>,
    pub dropout: f64,
    pub margin: f64,
    /// L2 weight on the embedding rows a batch touches (mean over the batch).
    pub reg: f64,
    pub epochs: usize,
    pub lr: f64,
    /// "adam" or "sparse_adam" (as TripletConfig's: the sparse one moves only the batch's
    /// embedding rows; the MLP's weights keep the dense Adam).
    pub optimizer: String,
    pub batch_size: usize,
    pub init_std: f64,
    pub sampler: SamplerConfig,
    pub device: String,
    pub seed: u64,
    pub threads: usize,
}

impl Default for DeepTripletConfig {
    fn default() -> Self {
        DeepTripletConfig {
            user_factors: 32,
            item_factors: 64,
            hidden: vec![128],
            dropout: 0.1,
            margin: 1.0,
            reg: 0.0,
            epochs: 20,
            lr: 0.003,
            optimizer: "adam".into(),
            batch_size: 1024,
            init_std: 0.05,
            sampler: SamplerConfig::default(),
            device: "auto".into(),
            seed: 0,
            threads: 0,
        }
    }
}

impl DeepTripletConfig {
    pub fn validate(&self) -> Result<()> {
        if self.user_factors == 0 || self.item_factors == 0 {
            return Err(Error::invalid("user_factors and item_factors must be at least 1"));
        }
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(Error::invalid(format!("hidden must list one or more layer widths >= 1, got {:?}", self.hidden)));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(format!("dropout must be in [0, 1), got {}", self.dropout)));
        }
        check_training(self.margin, self.reg, self.lr, self.batch_size, self.init_std, &self.sampler)?;
        optimizer(&self.optimizer)?;
        parse_device(&self.device).map(|_| ())
    }
}

/// The parameters: embeddings and the scoring MLP, in one VarStore.
struct DeepParams {
    vs: nn::VarStore,
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
        tch::manual_seed(cfg.seed as i64);
        let vs = nn::VarStore::new(device);
        let u = Factors::random(n_users, 0, cfg.user_factors, cfg.init_std, cfg.seed, Device::Cpu)?;
        let i = Factors::random(0, n_items, cfg.item_factors, cfg.init_std, cfg.seed, Device::Cpu)?;
        let users = vs.root().f_var_copy(USERS, &u.users)?;
        let items = vs.root().f_var_copy(ITEMS, &i.items)?;
        let widths: Vec<i64> = cfg.hidden.iter().map(|&h| h as i64).chain([1]).collect();
        let mlp = Mlp::new(&(vs.root() / "mlp"), (cfg.user_factors + cfg.item_factors) as i64, &widths, cfg.dropout, false)?;
        Ok(DeepParams { vs, users, items, mlp })
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

    /// The embeddings by row; the MLP keeps the dense Adam.
    fn row_tables(&mut self) -> Vec<(RowsBy, &mut Tensor)> {
        vec![(RowsBy::User, &mut self.users), (RowsBy::Item, &mut self.items)]
    }
}

/// (user, item) pairs per scoring block: bounds the (users, items, hidden) activations.
const PAIRS_PER_BLOCK: usize = 1 << 20;

pub struct DeepTriplet {
    config: DeepTripletConfig,
    params: Option<DeepParams>,
    ids: Option<IdMaps>,
    history: Vec<EpochLog>,
}

impl DeepTriplet {
    pub fn new(config: DeepTripletConfig) -> Result<Self> {
        config.validate()?;
        Ok(DeepTriplet { config, params: None, ids: None, history: Vec::new() })
    }

    fn fitted(&self) -> Result<&DeepParams> {
        self.params.as_ref().ok_or_else(|| not_fitted("DeepTripletModel"))
    }

    /// Scores (users, n_items) on the model's device, in blocks of users.
    fn score_on_device(&self, users: &[i64]) -> Result<Tensor> {
        let p = self.fitted()?;
        let (n_users, n_items) = (p.users.size()[0], p.items.size()[0]);
        if let Some(&bad) = users.iter().find(|&&u| u < 0 || u >= n_users) {
            return Err(Error::invalid(format!("user index {bad} out of range for {n_users} users")));
        }
        let towers = p.towers(false, 0.0);
        let device = p.vs.device();
        tch::no_grad(|| -> Result<Tensor> {
            let items = p.items.f_unsqueeze(0)?;
            let per_block = (PAIRS_PER_BLOCK / n_items.max(1) as usize).max(1);
            let mut parts = Vec::new();
            for block in users.chunks(per_block) {
                let u = p.users.f_index_select(0, &Tensor::from_slice(block).f_to_device(device)?)?;
                let i = items.f_expand([block.len() as i64, n_items, -1], false)?;
                parts.push(towers.match_scores(&u, &i)?);
            }
            if parts.is_empty() {
                return Ok(Tensor::f_zeros([0, n_items], (Kind::Float, device))?);
            }
            Ok(Tensor::f_cat(&parts, 0)?)
        })
    }
}

impl Recommender for DeepTriplet {
    fn kind(&self) -> &'static str {
        "deep_triplet"
    }

    fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap()
    }

    fn needs(&self) -> SideNeeds {
        self.config.sampler.side_needs()
    }

    fn fit(
        &mut self,
        train: &Interactions,
        side: &SideInfo,
        validation: Option<&Validation<'_>>,
        observer: &mut dyn FnMut(&Event<'_>) -> Control,
    ) -> Result<FitReport> {
        check_side(self, "DeepTripletModel", train, side)?;
        let cfg = self.config.clone();
        let device = parse_device(&cfg.device)?;
        let sampler = TripleSampler::with_config(train, 1, &cfg.sampler, side)?;
        self.params = Some(DeepParams::new(&cfg, train.n_users(), train.n_items(), device)?);
        self.ids = Some(train.ids().clone());
        self.history.clear();
        let p = self.params.as_ref().unwrap();
        let mut step = TorchStep::new(p.towers(true, cfg.reg), &p.vs, margin_step(cfg.margin, cfg.lr, &cfg.sampler, train.n_items(), &cfg.optimizer))?;
        let loop_cfg = LoopConfig { epochs: cfg.epochs, batch_size: cfg.batch_size, seed: cfg.seed, threads: cfg.threads };
        let this = &*self;
        let mut validate = validator(train, validation, |u| this.score(u))?;
        let report = fit_loop(&mut step, &sampler, &loop_cfg, &mut validate, observer)?;
        drop(validate);
        self.history = report.history.clone();
        Ok(report)
    }

    fn ids(&self) -> Option<&IdMaps> {
        self.ids.as_ref()
    }

    fn history(&self) -> &[EpochLog] {
        &self.history
    }

    fn score(&self, users: &[i64]) -> Result<Tensor> {
        Ok(self.score_on_device(users)?.f_to_device(Device::Cpu)?.f_contiguous()?)
    }

    fn recommend(&self, users: &[i64], k: usize, exclude: Option<&Interactions>) -> Result<(Vec<i64>, Vec<f32>)> {
        let p = self.fitted()?;
        let n_items = p.items.size()[0] as usize;
        if p.vs.device() == Device::Cpu {
            return super::recommend_by_blocks(users, k, n_items, exclude, &|b| self.score(b), &|s, b, k, ex| {
                let idx: Vec<u32> = b.iter().map(|&u| u as u32).collect();
                crate::metrics::top_k_block(&crate::tensors::to_vec_f32(&s)?, n_items, &idx, k, ex)
            });
        }
        super::recommend_by_blocks(users, k, n_items, exclude, &|b| self.score_on_device(b), &super::device_top_k)
    }

    /// The item embeddings (the MLP scores pairs; `similar_items` uses their cosine).
    fn item_vectors(&self) -> Result<Tensor> {
        Ok(self.fitted()?.items.detach().f_to_device(Device::Cpu)?)
    }

    fn user_vectors(&self) -> Result<Tensor> {
        Ok(self.fitted()?.users.detach().f_to_device(Device::Cpu)?)
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let p = self.fitted()?;
        let mut out: Vec<(String, Tensor)> = p.vs.variables().into_iter().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn restore(&mut self, state: &HashMap<String, Tensor>, ids: IdMaps, history: Vec<EpochLog>, device: Option<&str>) -> Result<()> {
        let device = parse_device(device.unwrap_or(&self.config.device))?;
        let p = DeepParams::new(&self.config, ids.users.len(), ids.items.len(), device)?;
        copy_state(&p.vs, state)?;
        self.params = Some(p);
        self.ids = Some(ids);
        self.history = history;
        Ok(())
    }

    fn device(&self) -> String {
        self.params.as_ref().map(|p| device_name(p.vs.device())).unwrap_or_default()
    }
}

/// Copies every variable of `vs` from `state` (same names and shapes, else an error naming
/// the tensor).
pub(crate) fn copy_state(vs: &nn::VarStore, state: &HashMap<String, Tensor>) -> Result<()> {
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vs.variables() {
            let saved = state.get(&name).ok_or_else(|| Error::state(format!("saved model has no tensor '{name}'")))?;
            if saved.size() != var.size() {
                return Err(Error::state(format!("saved tensor '{name}' has shape {:?}, the model {:?}", saved.size(), var.size())));
            }
            var.f_copy_(&saved.f_to_kind(var.kind())?.f_to_device(var.device())?)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{synthetic, SyntheticConfig};

    fn data() -> Interactions {
        synthetic(&SyntheticConfig { n_users: 80, n_items: 60, ..Default::default() }).unwrap()
    }

    fn fit(model: &mut dyn Recommender, train: &Interactions) -> FitReport {
        model.fit(train, &SideInfo::default(), None, &mut |_| Control::Continue).unwrap()
    }

    #[test]
    fn triplet_cosine_scores_are_cosines_and_training_lowers_the_loss() {
        let train = data();
        let cfg = TripletConfig { factors: 8, epochs: 8, lr: 0.05, batch_size: 256, device: "cpu".into(), threads: 1, ..Default::default() };
        let mut m = Triplet::new(cfg).unwrap();
        let report = fit(&mut m, &train);
        let losses: Vec<f64> = report.history.iter().map(|h| h.loss).collect();
        assert!(losses.last().unwrap() < &(losses[0] * 0.9), "loss did not fall: {losses:?}");
        let s = m.score(&[0, 1, 2]).unwrap();
        assert_eq!(s.size(), [3, 60]);
        let max = s.abs().max().double_value(&[]);
        assert!(max <= 1.0 + 1e-5, "a cosine above 1: {max}");
        // score = normalised user . normalised item, computed independently here.
        let f = m.fitted().unwrap();
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
        let cfg = TripletConfig { factors: 4, epochs: 2, device: "cpu".into(), threads: 1, similarity: "dot".into(), ..Default::default() };
        let run = || {
            let mut m = Triplet::new(cfg.clone()).unwrap();
            fit(&mut m, &train);
            m.score(&[3]).unwrap()
        };
        assert!(run().equal(&run()));
    }

    #[test]
    fn deep_block_scores_match_pairwise_mlp() {
        let train = data();
        let cfg = DeepTripletConfig { epochs: 2, hidden: vec![16, 8], device: "cpu".into(), threads: 1, ..Default::default() };
        let mut m = DeepTriplet::new(cfg).unwrap();
        let report = fit(&mut m, &train);
        assert_eq!(report.history.len(), 2);
        let s = m.score(&[0, 5]).unwrap();
        assert_eq!(s.size(), [2, 60]);
        // The split first layer equals the MLP on the concatenation, without dropout.
        let p = m.fitted().unwrap();
        let x = Tensor::cat(&[p.users.get(5), p.items.get(11)], 0).unsqueeze(0);
        let direct = tch::no_grad(|| p.mlp.try_forward(&x, false).unwrap()).double_value(&[0, 0]);
        assert!((s.double_value(&[1, 11]) - direct).abs() < 1e-4);
        // Blocks: the first block's scores do not depend on which users come after.
        assert!(m.score(&[0]).unwrap().allclose(&s.narrow(0, 0, 1), 1e-6, 1e-6, false));
    }

    #[test]
    fn deep_state_round_trips() {
        let train = data();
        let cfg = DeepTripletConfig { epochs: 1, device: "cpu".into(), threads: 1, ..Default::default() };
        let mut m = DeepTriplet::new(cfg.clone()).unwrap();
        fit(&mut m, &train);
        let state: HashMap<String, Tensor> = m.state().unwrap().into_iter().collect();
        assert!(state.contains_key("mlp.0.weight") && state.contains_key(USERS));
        let mut back = DeepTriplet::new(cfg).unwrap();
        back.restore(&state, train.ids().clone(), vec![], Some("cpu")).unwrap();
        assert!(back.score(&[0, 1]).unwrap().equal(&m.score(&[0, 1]).unwrap()));
        let mut short = state;
        short.remove("mlp.0.bias");
        assert!(DeepTriplet::new(DeepTripletConfig::default()).unwrap().restore(&short, train.ids().clone(), vec![], Some("cpu")).is_err());
    }

    /// FNV-1a over the bits of every score and loss of small CPU fits with the dense Adam
    /// (cosine, dot with bias and WARP, the deep model). Recorded before `TorchStep` gained
    /// the sparse optimiser, so its dense path is shown unchanged; they hold for this
    /// libtorch build on x86_64 (rerun at that commit on another platform).
    #[test]
    fn dense_adam_fits_keep_their_bits() {
        let train = data();
        let fnv = |h: u64, bytes: &[u8]| bytes.iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        let hash = |m: &mut dyn Recommender| {
            let r = fit(m, &train);
            let all: Vec<i64> = (0..80).collect();
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            for s in crate::tensors::to_vec_f32(&m.score(&all).unwrap()).unwrap() {
                h = fnv(h, &s.to_bits().to_le_bytes());
            }
            r.history.iter().fold(h, |h, e| fnv(h, &e.loss.to_bits().to_le_bytes()))
        };
        let base = TripletConfig { factors: 8, epochs: 2, batch_size: 64, device: "cpu".into(), threads: 1, ..Default::default() };
        let warp = SamplerConfig { kind: "warp".into(), ..Default::default() };
        let dot = TripletConfig { similarity: "dot".into(), item_bias: true, reg: 0.01, sampler: warp, ..base.clone() };
        // The deep model through its step directly, its MLP set without libtorch's global
        // generator (which tests running in parallel share, and which seeds dropout masks:
        // none here).
        let deep = DeepTripletConfig { epochs: 2, batch_size: 64, hidden: vec![16], dropout: 0.0, reg: 0.01, device: "cpu".into(), threads: 1, ..Default::default() };
        let p = DeepParams::new(&deep, 80, 60, Device::Cpu).unwrap();
        tch::no_grad(|| {
            for (k, (_, mut v)) in p.vs.variables().into_iter().collect::<std::collections::BTreeMap<_, _>>().into_iter().enumerate() {
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
        let mut step = TorchStep::new(p.towers(true, deep.reg), &p.vs, step_cfg).unwrap();
        let sampler = TripleSampler::with_config(&train, 1, &deep.sampler, &SideInfo::default()).unwrap();
        let loop_cfg = LoopConfig { epochs: 2, batch_size: 64, seed: 0, threads: 1 };
        let r = fit_loop(&mut step, &sampler, &loop_cfg, &mut || Ok(Default::default()), &mut |_| Control::Continue).unwrap();
        drop(step);
        let mut h = r.history.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, e| fnv(h, &e.loss.to_bits().to_le_bytes()));
        for (_, v) in p.vs.variables().into_iter().collect::<std::collections::BTreeMap<_, _>>() {
            for x in crate::tensors::to_vec_f32(&v.detach().contiguous()).unwrap() {
                h = fnv(h, &x.to_bits().to_le_bytes());
            }
        }
        let got = [hash(&mut Triplet::new(base).unwrap()), hash(&mut Triplet::new(dot).unwrap()), h];
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
            let sampler = SamplerConfig { kind: sampler.into(), ..Default::default() };
            let cfg = TripletConfig { factors: 8, epochs: 8, lr: 0.05, batch_size: 64, similarity: similarity.into(), item_bias: bias, reg: 0.001, sampler, optimizer: "sparse_adam".into(), device: "cpu".into(), threads: 1, ..Default::default() };
            let mut m = Triplet::new(cfg).unwrap();
            let losses: Vec<f64> = fit(&mut m, &train).history.iter().map(|h| h.loss).collect();
            assert!(losses.last().unwrap() < &(losses[0] * 0.9), "{similarity}: loss did not fall: {losses:?}");
            let f = m.fitted().unwrap();
            assert!(f.users.get(80).equal(&start.users.get(80)), "an untouched user row moved");
            assert!(!f.users.get(0).equal(&start.users.get(0)));
            assert_eq!(f.item_bias.abs().sum(Kind::Float).double_value(&[]) > 0.0, bias);
        }
        let cfg = DeepTripletConfig { epochs: 6, batch_size: 64, hidden: vec![16], lr: 0.01, optimizer: "sparse_adam".into(), device: "cpu".into(), threads: 1, ..Default::default() };
        let mut m = DeepTriplet::new(cfg.clone()).unwrap();
        let losses: Vec<f64> = fit(&mut m, &train).history.iter().map(|h| h.loss).collect();
        assert!(losses.last().unwrap() < &(losses[0] * 0.9), "deep: loss did not fall: {losses:?}");
        let init = DeepParams::new(&cfg, 81, 60, Device::Cpu).unwrap();
        let p = m.fitted().unwrap();
        assert!(p.users.get(80).equal(&init.users.get(80)), "an untouched user row moved");
        let (w, w0) = (p.mlp.first_layer_split(32).unwrap().0, init.mlp.first_layer_split(32).unwrap().0);
        assert!(!w.equal(&w0), "the MLP did not train");
        assert_eq!(m.score(&[0, 80]).unwrap().size(), [2, 60]);
    }

    #[test]
    fn config_errors_name_the_parameter() {
        let e = TripletConfig { similarity: "euclid".into(), ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("similarity"), "{e}");
        let e = DeepTripletConfig { dropout: 1.0, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("dropout"), "{e}");
        let e = TripletConfig { margin: -1.0, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("margin"), "{e}");
        let e = DeepTripletConfig { optimizer: "adagrad".into(), ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("optimizer"), "{e}");
        let e = serde_json::from_str::<TripletConfig>(r#"{"sampler": {"kind": "warp", "typo": 1}}"#).unwrap_err().to_string();
        assert!(e.contains("typo"), "{e}");
    }
}
