//! The model core: what every model shares, written once.
//!
//! A model is a [`Spec`]: its configuration (the [`Common`] fields flattened into it), its
//! parameters (held in a [`ParamStore`]), how to build and train them, and how to score a
//! block of users. [`Model`] makes any `Spec` a [`Recommender`]: kind, configuration, ids,
//! history, the fit wrapper (side-data checks, validation, checkpoints and resume through a
//! [`FitCtx`]), scores with their range check, recommend on the model's device, state and
//! restore.


mod cold;
mod config;
mod fit;
#[cfg(test)]
pub(crate) mod count_tests;
#[cfg(test)]
mod distributed_tests;
mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{Device, Tensor};

pub use self::cold::{floor_cold_bias, zero_cold_items};
pub use self::config::{config_json, parse_config, Common, ModelConfig};
pub use self::fit::FitCtx;
use self::fit::Checkpoint;
pub use self::store::{checked, ModelParams, ParamStore};
use super::dot::DotFactors;
use super::{cpu_top_k, device_top_k, dot_recommend, not_fitted, recommend_by_blocks, Recommender};
use crate::data::{FeatureTable, IdMaps, Interactions, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::limits;
use crate::metrics::{Keep, Validation};
use crate::tensors::{device_name, parse_device};
use crate::train::distributed::ProcessGroup;
use crate::train::{Control, EpochLog, Event, FitReport, GradSync};

/// A model's names, given by its line in the registry (`registry!` in models/mod.rs, where
/// every model is listed once with them).
pub trait Named {
    /// The registry name ("bpr"), in model files and checkpoints.
    const KIND: &'static str;
    /// The name users know ("BPR", "TripletModel"), in messages.
    const NAME: &'static str;
}

/// What a model is: a configuration, parameters, how to train and score them. Everything
/// else ([`Recommender`]) is [`Model`]'s.
pub trait Spec: Named + Sized + 'static {
    /// Whether the saved state holds at least one value per user (false: nothing per user,
    /// as popularity), for the check of a file's claims before loading.
    const PER_USER_STATE: bool = true;
    /// Its fields, their check and the side data it uses: [`ModelConfig`].
    type Config: ModelConfig;
    /// Its store and its per-item tables: [`ModelParams`].
    type Params: ModelParams;

    /// Fresh, seeded parameters for `train` and its side data, on `device`.
    fn build(cfg: &Self::Config, train: &Interactions, side: &SideInfo, device: Device) -> Result<Self::Params>;
    /// The parameters of a fit: [`Spec::build`], unless building needs what only a fit has
    /// (see [`FitStart`]: the checkpoint being resumed, the observer).
    fn build_fit(cfg: &Self::Config, train: &Interactions, side: &SideInfo, device: Device, _start: FitStart<'_>) -> Result<Self::Params> {
        Self::build(cfg, train, side, device)
    }
    /// Trains `params`: makes the batch source and the step and runs them through `ctx`.
    fn train(cfg: &Self::Config, params: &Self::Params, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport>;
    /// After training (also when stopped early): derive what scoring reads (item embeddings).
    fn finish(_cfg: &Self::Config, _params: &mut Self::Params, _train: &Interactions, _side: &SideInfo) -> Result<()> {
        Ok(())
    }
    /// How many parameter values [`Spec::build`] and [`Spec::restore`] make for `shape`
    /// (n_users, n_items): the store's variables and the buffers the model sizes itself
    /// (embeddings derived after training, a frozen backbone, counts), not the side data kept
    /// beside them (item features, codes and vocabularies: their size is the data's). In
    /// closed form, allocating nothing: the core compares it with the values a saved file
    /// holds before restoring, and with the memory this process may use before a fit builds
    /// anything. Widths set by side data (feature columns, vocabularies) are read from `from`.
    /// Saturating ([`crate::limits::values`]): a count past u128 is more than any memory.
    fn param_count(cfg: &Self::Config, shape: (usize, usize), from: SizesFrom<'_>) -> Result<u128>;
    /// Parameters from a saved state (for `n_users` x `n_items`), on `device`.
    fn restore(cfg: &Self::Config, shape: (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<Self::Params>;
    /// Scores (B, n_items) of the user indices `users` (B, int64, on the parameters' device,
    /// checked in range), left on that device.
    fn score_block(cfg: &Self::Config, params: &Self::Params, users: &Tensor) -> Result<Tensor>;
    /// One vector per item (n_items, d), on any device.
    fn item_vectors(_cfg: &Self::Config, _params: &Self::Params) -> Result<Tensor> {
        Err(Error::invalid(format!("the {} model has no item vectors, so it cannot find similar items", Self::NAME)))
    }
    fn user_vectors(_cfg: &Self::Config, _params: &Self::Params) -> Result<Tensor> {
        Err(Error::invalid(format!("the {} model has no user vectors", Self::NAME)))
    }
    fn score_new_users(_cfg: &Self::Config, _params: &Self::Params, _users: &FeatureTable) -> Result<Tensor> {
        Err(Error::invalid(format!("the {} model cannot score new users from features", Self::NAME)))
    }
    /// For a model whose scores are `user_u . item_i + bias_i`: the vectors of the user
    /// indices `users` (B rows, in order; int64, checked in range), every item's, and the
    /// bias (as scored, e.g. unit rows for cosine), so that on the CPU `score`, `recommend` and
    /// `evaluate` run the blocked kernel of [`DotFactors`] instead of `score_block`. None (the
    /// default): the scores are something else (an MLP over pairs): `score_block`.
    fn dot_factors(_cfg: &Self::Config, _params: &Self::Params, _users: &Tensor) -> Result<Option<DotFactors>> {
        Ok(None)
    }
    fn embed_new_items(_cfg: &Self::Config, _params: &Self::Params, _side: &SideInfo) -> Result<Tensor> {
        Err(Error::invalid(format!("the {} model cannot embed new items from side data", Self::NAME)))
    }
}

/// The counts of users and items a saved model claims, and the parameters its configuration
/// makes for them, checked against the values it holds before anything is sized by them: a
/// file's checksum proves no claim (a forger recomputes it), and restoring allocates
/// parameters by these counts and by the configuration's sizes (`factors`, widths). Every
/// model keeps at least one value per item, and one per user unless [`Spec::PER_USER_STATE`]
/// is false, and all of [`Spec::param_count`]'s, so a claim beyond the values held is a
/// damaged or forged file, refused before it costs memory.
fn check_claims<S: Spec>(cfg: &S::Config, state: &HashMap<String, Tensor>, n_users: usize, n_items: usize) -> Result<()> {
    let held: usize = state.values().map(|t| t.numel()).sum();
    if n_items > held || (S::PER_USER_STATE && n_users > held) {
        return Err(Error::state(format!(
            "the saved {} claims {n_users} users and {n_items} items but holds only {held} values: the file is damaged or forged",
            S::NAME
        )));
    }
    let count = |c: &S::Config| S::param_count(c, (n_users, n_items), SizesFrom::Saved(state));
    let implied = count(cfg)?;
    if implied > held as u128 {
        let settings = config::sizing_settings(cfg, count);
        let settings = if settings.is_empty() { String::new() } else { format!("{settings} for ") };
        return Err(Error::state(format!(
            "the saved {} claims {settings}{n_users} users and {n_items} items, {implied} parameter values, but holds only {held} values: the file is damaged or forged",
            S::NAME
        )));
    }
    Ok(())
}

/// Bytes a fit keeps per parameter value: the value (f32), its gradient and the optimiser's
/// state, taken as Adam's two moments (the most any model's optimiser keeps; SGD keeps
/// none, buffers and frozen weights get neither, so this is an upper bound).
const FIT_BYTES_PER_VALUE: usize = 4 * std::mem::size_of::<f32>();

/// The memory of a fit's parameters ([`Spec::param_count`] of its data, x
/// [`FIT_BYTES_PER_VALUE`]) checked against [`limits::budget`] before anything is built: each
/// setting may be in range and each table fit, and yet their product not (`factors` x
/// items, hidden widths x inputs). An [`Error::Memory`] naming the settings that multiply.
fn check_fit_memory<S: Spec>(cfg: &S::Config, train: &Interactions, side: &SideInfo) -> Result<()> {
    let (n_users, n_items) = (train.n_users(), train.n_items());
    let count = |c: &S::Config| S::param_count(c, (n_users, n_items), SizesFrom::Fit(train, side));
    let values = count(cfg)?;
    let need = |what: &str| limits::bytes_for(what, usize::try_from(values).unwrap_or(usize::MAX), FIT_BYTES_PER_VALUE);
    if need("").is_ok() {
        return Ok(());
    }
    let settings = config::sizing_settings(cfg, count);
    let settings = if settings.is_empty() { String::new() } else { format!(" with {settings}") };
    need(&format!(
        "fitting {}{settings} on {n_users} users and {n_items} items ({values} parameter values, each with a gradient and Adam's two moments)",
        S::NAME
    ))
    .map(|_| ())
}

/// Where [`Spec::param_count`] reads the widths a model takes from its side data (feature
/// columns, vocabularies).
#[derive(Clone, Copy)]
pub enum SizesFrom<'a> {
    /// A fit's training data and side data.
    Fit(&'a Interactions, &'a SideInfo),
    /// A saved state: the shapes of its tensors (no value is read).
    Saved(&'a HashMap<String, Tensor>),
}

impl SizesFrom<'_> {
    /// The shape of the saved tensor `name`: None at fit, or when the state lacks it (a
    /// count then takes nothing for it; restoring refuses the file).
    pub fn saved_shape(&self, name: &str) -> Option<Vec<usize>> {
        match self {
            SizesFrom::Saved(state) => state.get(name).map(|t| t.size().iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect()),
            SizesFrom::Fit(..) => None,
        }
    }

    /// Dimension `dim` of the saved tensor `name` (0 as [`Self::saved_shape`]'s None, or
    /// when it has fewer dimensions).
    pub fn saved_dim(&self, name: &str, dim: usize) -> usize {
        self.saved_shape(name).and_then(|s| s.get(dim).copied()).unwrap_or(0)
    }

    /// The number of values of the saved tensor `name` (0 as [`Self::saved_dim`]).
    pub fn saved_numel(&self, name: &str) -> usize {
        self.saved_shape(name).map_or(0, |s| s.iter().fold(1usize, |n, &d| n.saturating_mul(d)))
    }
}

/// Where a fit keeps its checkpoints: `fit(..., checkpoint_dir=..., resume=True)`.
#[derive(Debug, Clone, Default)]
pub struct FitOptions {
    /// A checkpoint is written here after every epoch ("<kind>-checkpoint.safetensors").
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in `checkpoint_dir` when there is one.
    pub resume: bool,
    /// Train on several processes: this process's group (every rank calls `fit` with the
    /// same data and settings; see `train::distributed`).
    pub group: Option<ProcessGroup>,
}

/// What [`Spec::build_fit`] may use besides the data and the configuration.
pub struct FitStart<'a> {
    /// The checkpoint a resumed fit continues from (its file, its tensors), already checked
    /// against the settings and the data; the core loads it into the store after building.
    /// Its tensors may stand in for what building would read or compute (a pretrained
    /// backbone saved as buffers).
    pub resumed: Option<(&'a Path, &'a HashMap<String, Tensor>)>,
    /// The fit's observer, for work before the first epoch (a pretraining): progress, and
    /// Stop, which stops the fit.
    pub observer: &'a mut dyn FnMut(&Event<'_>) -> Control,
}

/// Any [`Spec`] as a [`Recommender`].
pub struct Model<S: Spec> {
    cfg: S::Config,
    params: Option<S::Params>,
    ids: Option<IdMaps>,
    history: Vec<EpochLog>,
}

impl<S: Spec> Model<S> {
    pub fn new(cfg: S::Config) -> Result<Self> {
        let mut model = Model { cfg: S::Config::default(), params: None, ids: None, history: Vec::new() };
        model.set_config(cfg)?;
        Ok(model)
    }

    /// From JSON (see [`parse_config`]).
    pub fn from_json(json: &str) -> Result<Self> {
        Self::new(parse_config(S::KIND, json)?)
    }

    pub fn config(&self) -> &S::Config {
        &self.cfg
    }

    /// Replaces the configuration (checked as in [`Model::new`]); a fitted model keeps its
    /// parameters until the next fit.
    pub fn set_config(&mut self, cfg: S::Config) -> Result<()> {
        if let Some(c) = cfg.common() {
            c.validate()?;
        }
        cfg.validate()?;
        self.cfg = cfg;
        Ok(())
    }

    /// The fitted parameters.
    pub fn params(&self) -> Result<&S::Params> {
        self.params.as_ref().ok_or_else(|| not_fitted(S::NAME))
    }

    /// `users` as an index tensor on the parameters' device, after the range check.
    fn user_index(&self, users: &[i64]) -> Result<Tensor> {
        let p = self.params()?;
        let n = self.ids.as_ref().map_or(0, |i| i.users.len()) as i64;
        if let Some(&bad) = users.iter().find(|&&u| u < 0 || u >= n) {
            return Err(Error::invalid(format!("user index {bad} out of range for {n} users")));
        }
        Ok(Tensor::from_slice(users).f_to_device(p.store().device())?)
    }

    /// Scores of `users` on the parameters' device, after the range check.
    fn scores_on_device(&self, users: &[i64]) -> Result<Tensor> {
        let idx = self.user_index(users)?;
        tch::no_grad(|| S::score_block(&self.cfg, self.params()?, &idx))
    }

    /// The dot-product factors of `users` (rows 0..B of the result) when the CPU scores this
    /// model through [`DotFactors`] (not on the GPU paths, which keep `score_block` and the
    /// device's top-k).
    fn dot(&self, users: &[i64]) -> Result<Option<(DotFactors, Vec<i64>)>> {
        let p = self.params()?;
        if crate::tensors::gpu_path(p.store().device()) {
            return Ok(None);
        }
        let idx = self.user_index(users)?;
        let rows = (0..users.len() as i64).collect();
        Ok(tch::no_grad(|| S::dot_factors(&self.cfg, p, &idx))?.map(|f| (f, rows)))
    }
}

/// A CPU copy of `t`, contiguous and detached.
pub(super) fn to_cpu(t: Tensor) -> Result<Tensor> {
    Ok(t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?)
}

impl<S: Spec> Recommender for Model<S> {
    fn kind(&self) -> &'static str {
        S::KIND
    }

    fn config_json(&self) -> String {
        config_json(&self.cfg)
    }

    fn needs(&self) -> SideNeeds {
        self.cfg.needs()
    }

    fn fit(
        &mut self,
        train: &Interactions,
        side: &SideInfo,
        validation: Option<&Validation<'_>>,
        observer: &mut dyn FnMut(&Event<'_>) -> Control,
        options: &FitOptions,
    ) -> Result<FitReport> {
        self.cfg.needs().check(S::NAME, side)?;
        side.check_rows(train.n_users(), train.n_items())?;
        check_fit_memory::<S>(&self.cfg, train, side)?;
        let device = match self.cfg.common() {
            Some(c) => c.device()?,
            None => Device::Cpu,
        };
        self.params = None;
        self.ids = None;
        self.history.clear();
        let checkpoint = match &options.checkpoint_dir {
            Some(dir) => Some(Checkpoint::new(S::KIND, dir, &self.cfg, train)?),
            None if options.resume => return Err(Error::invalid("resume=True needs checkpoint_dir=")),
            None => None,
        };
        // Read (and checked) before building, which may take from it.
        let resumed = match &checkpoint {
            Some(ck) if options.resume && ck.path.exists() => Some(ck.open()?),
            _ => None,
        };
        let start = FitStart { resumed: checkpoint.as_ref().zip(resumed.as_ref()).map(|(c, s)| (c.path.as_path(), s)), observer: &mut *observer };
        let sized = |e: Error| config::with_sizes(e, S::NAME, &self.cfg);
        let mut params = crate::error::guarded(|| S::build_fit(&self.cfg, train, side, device, start)).map_err(sized)?;
        let mut loop_cfg = self.cfg.common().map(Common::loop_config).unwrap_or_default();
        if let Some(group) = &options.group {
            let sync = GradSync::new(group.0.clone())?;
            sync.check_same("the training data or side data", fit::fingerprint(train, side))?;
            loop_cfg.sync = Some(sync);
        }
        let ctx = FitCtx { loop_cfg, train, validation, observer, store: params.store(), checkpoint, resumed };
        let report = S::train(&self.cfg, &params, train, side, ctx).map_err(sized)?;
        zero_cold_items(&params.item_tables(), train)?;
        if let Some(bias) = params.item_bias() {
            let reach = cold::largest_norm(&S::user_vectors(&self.cfg, &params)?)? * cold::largest_norm(&S::item_vectors(&self.cfg, &params)?)?;
            floor_cold_bias(&bias, train, reach)?;
        }
        S::finish(&self.cfg, &mut params, train, side)?;
        self.params = Some(params);
        self.ids = Some(train.ids().clone());
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
        if let Some((f, rows)) = self.dot(users)? {
            return f.scores(&rows);
        }
        to_cpu(self.scores_on_device(users)?)
    }

    fn score_into(&self, users: &[i64], out: &mut [f32]) -> Result<bool> {
        match self.dot(users)? {
            Some((f, rows)) => f.scores_into(&rows, out).map(|_| true),
            None => Ok(false),
        }
    }

    fn rank(&self, users: &[i64], k: usize, keep: &Keep<'_>) -> Result<Option<(Vec<i64>, Vec<f32>)>> {
        match self.dot(users)? {
            Some((f, rows)) => Ok(Some(f.top_k(&rows, k, keep)?)),
            None => Ok(None),
        }
    }

    fn score_new_users(&self, users: &FeatureTable) -> Result<Tensor> {
        to_cpu(tch::no_grad(|| S::score_new_users(&self.cfg, self.params()?, users))?)
    }

    fn embed_new_items(&self, side: &SideInfo) -> Result<Tensor> {
        to_cpu(tch::no_grad(|| S::embed_new_items(&self.cfg, self.params()?, side))?)
    }

    fn item_vectors(&self) -> Result<Tensor> {
        to_cpu(tch::no_grad(|| S::item_vectors(&self.cfg, self.params()?))?)
    }

    fn user_vectors(&self) -> Result<Tensor> {
        to_cpu(tch::no_grad(|| S::user_vectors(&self.cfg, self.params()?))?)
    }

    /// Top-k where the scores are: blocked dot products on the CPU (never the full scores),
    /// other models' score blocks with rayon on the CPU, or on the device (only (users, k)
    /// comes back).
    fn recommend(&self, users: &[i64], k: usize, exclude: Option<&Interactions>, candidates: Option<&[bool]>) -> Result<(Vec<i64>, Vec<f32>)> {
        let p = self.params()?;
        let n_items = self.ids.as_ref().map_or(0, |i| i.items.len());
        if let Some((f, rows)) = self.dot(users)? {
            return dot_recommend(&f, &rows, users, k, exclude, candidates);
        }
        let score = |b: &[i64]| self.scores_on_device(b);
        if crate::tensors::gpu_path(p.store().device()) {
            return recommend_by_blocks(users, k, n_items, exclude, candidates, &score, &device_top_k);
        }
        recommend_by_blocks(users, k, n_items, exclude, candidates, &score, &cpu_top_k(n_items))
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(self.params()?.store().state())
    }

    fn restore(&mut self, state: &HashMap<String, Tensor>, ids: IdMaps, history: Vec<EpochLog>, device: Option<&str>) -> Result<()> {
        let device = match (device, self.cfg.common()) {
            (Some(d), _) => parse_device(d)?,
            (None, Some(c)) => c.device()?,
            (None, None) => Device::Cpu,
        };
        check_claims::<S>(&self.cfg, state, ids.users.len(), ids.items.len())?;
        let params = S::restore(&self.cfg, (ids.users.len(), ids.items.len()), state, device)?;
        self.params = Some(params);
        self.ids = Some(ids);
        self.history = history;
        Ok(())
    }

    fn device(&self) -> String {
        self.params.as_ref().map(|p| device_name(p.store().device())).unwrap_or_default()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}
