//! The model core: what every model shares, written once.
//!
//! A model is a [`Spec`]: its configuration (the [`Common`] fields flattened into it), its
//! parameters (held in a [`ParamStore`]), how to build and train them, and how to score a
//! block of users. [`Model`] makes any `Spec` a [`Recommender`]: kind, configuration, ids,
//! history, the fit wrapper (side-data checks, validation, checkpoints and resume through a
//! [`FitCtx`]), scores with their range check, recommend on the model's device, state and
//! restore.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{nn, Device, Kind, Tensor};

use super::{cpu_top_k, device_top_k, not_fitted, recommend_by_blocks, validator, Recommender};
use crate::data::{FeatureTable, IdMaps, Interactions, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::metrics::Validation;
use crate::tensors::{device_name, parse_device};
use crate::train::{fit_loop, BatchSource, BatchStep, Control, EpochLog, Event, FitReport, LoopConfig};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The fields every trained model's configuration has, flattened into it (the JSON stays flat:
/// `{"factors": 64, "epochs": 20, ...}`), validated here once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Common {
    /// Passes over the training data.
    pub epochs: usize,
    /// Learning rate.
    pub lr: f64,
    /// Samples per step.
    pub batch_size: usize,
    /// Seeds the initial parameters and every sampled batch.
    pub seed: u64,
    /// CPU threads for sampling and parallel steps; 0 uses every core.
    pub threads: usize,
    /// "auto", "cpu", "cuda" or "cuda:N".
    pub device: String,
}

impl Common {
    /// The usual settings with this model's `epochs`, `lr` and `batch_size`.
    pub fn new(epochs: usize, lr: f64, batch_size: usize) -> Self {
        Common { epochs, lr, batch_size, seed: 0, threads: 0, device: "auto".into() }
    }

    pub fn validate(&self) -> Result<()> {
        // f32 is what the kernels compute in: a finite f64 beyond it would become inf there.
        if !self.lr.is_finite() || self.lr <= 0.0 || self.lr > f32::MAX as f64 {
            return Err(Error::invalid(format!("lr must be a finite number > 0, got {}", self.lr)));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size must be at least 1"));
        }
        crate::limits::check_threads("threads", self.threads)?;
        crate::tensors::check_device_name(&self.device)
    }

    pub fn device(&self) -> Result<Device> {
        parse_device(&self.device)
    }

    pub fn loop_config(&self) -> LoopConfig {
        LoopConfig { epochs: self.epochs, batch_size: self.batch_size, seed: self.seed, threads: self.threads, start_epoch: 0 }
    }
}

/// Characters of a configuration error's reason kept at most.
const QUOTE_CHARS: usize = 300;

/// A configuration of model `kind` from JSON: keys not given take the model's defaults, an
/// unknown key is an error listing the known ones, and a bad value names its field's path
/// ("epochs", "sampler.kind"). Nested objects (`sampler`) are taken whole: their own missing
/// keys take their type's defaults.
pub fn parse_config<C: Serialize + DeserializeOwned + Default>(kind: &str, json: &str) -> Result<C> {
    let given: Value =
        serde_json::from_str(json).map_err(|e| Error::invalid(format!("{kind} configuration is not JSON: {e}")))?;
    let Value::Object(given) = given else {
        return Err(Error::invalid(format!("{kind} configuration must be a JSON object, not {given}")));
    };
    let Ok(Value::Object(mut merged)) = serde_json::to_value(C::default()) else {
        return Err(Error::state(format!("{kind}: the default configuration is not an object")));
    };
    for (key, value) in given {
        if !merged.contains_key(&key) {
            let known: Vec<&str> = merged.keys().map(String::as_str).collect();
            return Err(Error::invalid(format!("unknown parameter {key:?} for {kind} (known: {})", known.join(", "))));
        }
        merged.insert(key, value);
    }
    let named = |e: serde_path_to_error::Error<serde_json::Error>| {
        let reason = e.inner().to_string();
        let reason = reason.trim_end_matches(" at line 0 column 0");
        // A wrong-typed value is quoted in the reason: a huge one is cut.
        let reason = match reason.char_indices().nth(QUOTE_CHARS) {
            Some((cut, _)) => format!("{}... ({} characters in all)", &reason[..cut], reason.chars().count()),
            None => reason.to_string(),
        };
        Error::invalid(format!("{}: {reason}", e.path()))
    };
    // Serde reports no path inside a flattened struct: the common fields are read on their
    // own first, so their errors name them too.
    if merged.contains_key("epochs") && merged.contains_key("device") {
        serde_path_to_error::deserialize::<_, Common>(Value::Object(merged.clone())).map_err(named)?;
    }
    serde_path_to_error::deserialize(Value::Object(merged)).map_err(named)
}

/// The configuration as JSON (every field).
pub fn config_json<C: Serialize>(config: &C) -> String {
    serde_json::to_string(config).expect("a configuration serialises to JSON")
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// A model's tensors: trained variables in a `VarStore`, and buffers saved beside them (item
/// features, vocabularies, counts, embeddings derived after training). State and restore check
/// names, shapes and dtypes here, for every model.
pub struct ParamStore {
    pub vs: nn::VarStore,
    pub buffers: Vec<(String, Tensor)>,
}

impl ParamStore {
    pub fn new(device: Device) -> Self {
        ParamStore { vs: nn::VarStore::new(device), buffers: Vec::new() }
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// A buffer by name.
    pub fn buffer(&self, name: &str) -> Result<&Tensor> {
        self.buffers.iter().find(|(n, _)| n == name).map(|(_, t)| t).ok_or_else(|| Error::state(format!("no buffer '{name}'")))
    }

    /// Sets (or replaces) a buffer.
    pub fn set_buffer(&mut self, name: &str, t: Tensor) {
        match self.buffers.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = t,
            None => self.buffers.push((name.to_string(), t)),
        }
    }

    /// Variables (by name) then buffers: what a model file and a checkpoint hold.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars.extend(self.buffers.iter().map(|(n, t)| (n.clone(), t.shallow_clone())));
        vars
    }

    /// Copies every variable and buffer from `saved` (each must be there with the same shape
    /// and a float or integer dtype as the model's; float values finite).
    pub fn load(&self, saved: &HashMap<String, Tensor>) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let vars = self.vs.variables();
        let all = vars.iter().map(|(n, t)| (n.as_str(), t)).chain(self.buffers.iter().map(|(n, t)| (n.as_str(), t)));
        for (name, own) in all {
            let t = checked(saved, name, own.size().as_slice(), own.kind())?;
            own.shallow_clone().f_copy_(&t.f_to_device(own.device())?)?;
        }
        Ok(())
    }
}

/// `saved[name]`, checked to have `shape` (empty: any) and to convert to `kind` without loss
/// of meaning (float to float, integer to integer), float values finite.
pub fn checked<'a>(saved: &'a HashMap<String, Tensor>, name: &str, shape: &[i64], kind: Kind) -> Result<&'a Tensor> {
    let t = saved.get(name).ok_or_else(|| Error::state(format!("saved model has no tensor '{name}'")))?;
    if !shape.is_empty() && t.size() != shape {
        return Err(Error::state(format!("saved tensor '{name}' has shape {:?}, the model {shape:?}", t.size())));
    }
    let float = |k: Kind| matches!(k, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16);
    if float(t.kind()) != float(kind) {
        return Err(Error::state(format!("saved tensor '{name}' holds {} values, not {}", kind_name(t.kind()), kind_name(kind))));
    }
    if float(kind) && t.numel() > 0 && t.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
        return Err(Error::state(format!("saved tensor '{name}' holds NaN or infinite values")));
    }
    Ok(t)
}

/// numpy's name of a dtype, for messages.
fn kind_name(k: Kind) -> String {
    match k {
        Kind::Float => "float32".into(),
        Kind::Double => "float64".into(),
        Kind::Half => "float16".into(),
        Kind::Int64 => "int64".into(),
        Kind::Int => "int32".into(),
        Kind::Uint8 => "uint8".into(),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// A model
// ---------------------------------------------------------------------------------------------

/// What a model is: a configuration, parameters, how to train and score them. Everything
/// else ([`Recommender`]) is [`Model`]'s.
pub trait Spec: Sized + 'static {
    /// The registry name ("bpr").
    const KIND: &'static str;
    /// The name users know ("BPR", "TripletModel"), in messages.
    const NAME: &'static str;
    type Config: Serialize + DeserializeOwned + Default + Clone + Send + Sync;
    type Params: Send;

    /// The common fields (None: a model without training, as popularity).
    fn common(cfg: &Self::Config) -> Option<&Common>;
    /// Checks the model's own fields (the common ones are checked by the core).
    fn validate(_cfg: &Self::Config) -> Result<()> {
        Ok(())
    }
    fn needs(_cfg: &Self::Config) -> SideNeeds {
        SideNeeds::default()
    }
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
    fn store(params: &Self::Params) -> &ParamStore;
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
    fn embed_new_items(_cfg: &Self::Config, _params: &Self::Params, _side: &SideInfo) -> Result<Tensor> {
        Err(Error::invalid(format!("the {} model cannot embed new items from side data", Self::NAME)))
    }
}

/// Where a fit keeps its checkpoints: `fit(..., checkpoint_dir=..., resume=True)`.
#[derive(Debug, Clone, Default)]
pub struct FitOptions {
    /// A checkpoint is written here after every epoch ("<kind>-checkpoint.safetensors").
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in `checkpoint_dir` when there is one.
    pub resume: bool,
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
        if let Some(c) = S::common(&cfg) {
            c.validate()?;
        }
        S::validate(&cfg)?;
        self.cfg = cfg;
        Ok(())
    }

    /// The fitted parameters.
    pub fn params(&self) -> Result<&S::Params> {
        self.params.as_ref().ok_or_else(|| not_fitted(S::NAME))
    }

    /// Scores of `users` on the parameters' device, after the range check.
    fn scores_on_device(&self, users: &[i64]) -> Result<Tensor> {
        let p = self.params()?;
        let n = self.ids.as_ref().map_or(0, |i| i.users.len()) as i64;
        if let Some(&bad) = users.iter().find(|&&u| u < 0 || u >= n) {
            return Err(Error::invalid(format!("user index {bad} out of range for {n} users")));
        }
        let idx = Tensor::from_slice(users).f_to_device(S::store(p).device())?;
        tch::no_grad(|| S::score_block(&self.cfg, p, &idx))
    }
}

/// A CPU copy of `t`, contiguous and detached.
fn to_cpu(t: Tensor) -> Result<Tensor> {
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
        S::needs(&self.cfg)
    }

    fn fit(
        &mut self,
        train: &Interactions,
        side: &SideInfo,
        validation: Option<&Validation<'_>>,
        observer: &mut dyn FnMut(&Event<'_>) -> Control,
        options: &FitOptions,
    ) -> Result<FitReport> {
        S::needs(&self.cfg).check(S::NAME, side)?;
        side.check_rows(train.n_users(), train.n_items())?;
        let device = match S::common(&self.cfg) {
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
        let mut params = S::build_fit(&self.cfg, train, side, device, start)?;
        let loop_cfg = S::common(&self.cfg).map(Common::loop_config).unwrap_or_default();
        let ctx = FitCtx { loop_cfg, train, validation, observer, store: S::store(&params), checkpoint, resumed };
        let report = S::train(&self.cfg, &params, train, side, ctx)?;
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
        to_cpu(self.scores_on_device(users)?)
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

    /// Top-k where the scores are: with rayon on the CPU, or on the device (only (users, k)
    /// comes back).
    fn recommend(&self, users: &[i64], k: usize, exclude: Option<&Interactions>, candidates: Option<&[bool]>) -> Result<(Vec<i64>, Vec<f32>)> {
        let p = self.params()?;
        let n_items = self.ids.as_ref().map_or(0, |i| i.items.len());
        let score = |b: &[i64]| self.scores_on_device(b);
        if crate::tensors::gpu_path(S::store(p).device()) {
            return recommend_by_blocks(users, k, n_items, exclude, candidates, &score, &device_top_k);
        }
        recommend_by_blocks(users, k, n_items, exclude, candidates, &score, &cpu_top_k(n_items))
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(S::store(self.params()?).state())
    }

    fn restore(&mut self, state: &HashMap<String, Tensor>, ids: IdMaps, history: Vec<EpochLog>, device: Option<&str>) -> Result<()> {
        let device = match (device, S::common(&self.cfg)) {
            (Some(d), _) => parse_device(d)?,
            (None, Some(c)) => c.device()?,
            (None, None) => Device::Cpu,
        };
        let params = S::restore(&self.cfg, (ids.users.len(), ids.items.len()), state, device)?;
        self.params = Some(params);
        self.ids = Some(ids);
        self.history = history;
        Ok(())
    }

    fn device(&self) -> String {
        self.params.as_ref().map(|p| device_name(S::store(p).device())).unwrap_or_default()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Fitting
// ---------------------------------------------------------------------------------------------

/// What a model's `train` runs its step through: the loop's settings, validation, the
/// observer, and the checkpoints (resume). Later also the place of the collective for
/// training on several processes.
pub struct FitCtx<'a> {
    pub loop_cfg: LoopConfig,
    train: &'a Interactions,
    validation: Option<&'a Validation<'a>>,
    observer: &'a mut dyn FnMut(&Event<'_>) -> Control,
    store: &'a ParamStore,
    checkpoint: Option<Checkpoint>,
    /// The checkpoint's tensors when the fit is resumed.
    resumed: Option<HashMap<String, Tensor>>,
}

impl FitCtx<'_> {
    /// Whether scores are read after every epoch (validation data was given).
    pub fn validates(&self) -> bool {
        self.validation.is_some()
    }

    /// Runs `step` over `source` for the configured epochs; `score` gives the validation
    /// scores (a CPU or device tensor). With a checkpoint to resume from, the parameters and
    /// the step's state are put back first and the fit continues at the next epoch, drawing
    /// the batches the uninterrupted fit would have drawn.
    pub fn run<B: BatchSource>(
        self,
        step: &mut dyn BatchStep<B>,
        source: &B,
        score: &dyn Fn(&[i64]) -> Result<Tensor>,
    ) -> Result<FitReport> {
        let FitCtx { mut loop_cfg, train, validation, observer, store, checkpoint, resumed } = self;
        let mut history = Vec::new();
        if let (Some(ck), Some(state)) = (&checkpoint, resumed) {
            let bad = |e: Error| Error::file(&ck.path, e.to_string());
            store.load(&state).map_err(bad)?;
            step.restore_state(&state).map_err(bad)?;
            (loop_cfg.start_epoch, history) = ck.progress(&state)?;
        }
        let score = |u: &[i64]| -> Result<Tensor> { to_cpu(score(u)?) };
        let mut validate = validator(train, validation, score)?;
        let mut after_epoch = |step: &dyn BatchStep<B>, log: &EpochLog| -> Result<()> {
            history.push(log.clone());
            match &checkpoint {
                Some(ck) => ck.write(store, step, &history),
                None => Ok(()),
            }
        };
        let mut report = if loop_cfg.start_epoch < loop_cfg.epochs {
            fit_loop(step, source, &loop_cfg, &mut validate, &mut after_epoch, observer)?
        } else {
            FitReport::default()
        };
        drop(validate);
        report.history = history;
        Ok(report)
    }
}

/// The checkpoint of one fit: its file, and what it must match to be resumed from.
struct Checkpoint {
    path: PathBuf,
    /// The configuration without the fields a resumed fit may change (epochs, threads, device).
    config: String,
    /// Users, items and interactions of the training data.
    data: [i64; 3],
}

const CKPT_EPOCH: &str = "ckpt.epoch";
const CKPT_HISTORY: &str = "ckpt.history";
const CKPT_CONFIG: &str = "ckpt.config";
const CKPT_DATA: &str = "ckpt.data";

impl Checkpoint {
    fn new<C: Serialize>(kind: &str, dir: &Path, cfg: &C, train: &Interactions) -> Result<Self> {
        let mut config = serde_json::to_value(cfg).map_err(|e| Error::state(e.to_string()))?;
        if let Value::Object(map) = &mut config {
            for key in ["epochs", "threads", "device"] {
                map.remove(key);
            }
        }
        let path = dir.join(format!("{kind}-checkpoint.safetensors"));
        let data = [train.n_users() as i64, train.n_items() as i64, train.nnz() as i64];
        Ok(Checkpoint { path, config: config.to_string(), data })
    }

    /// Parameters, the step's state (optimiser moments), the epochs done and their history,
    /// through a temporary file.
    fn write<B: BatchSource>(&self, store: &ParamStore, step: &dyn BatchStep<B>, history: &[EpochLog]) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
        }
        let text = |s: &str| Tensor::from_slice(s.as_bytes());
        let mut all: Vec<(String, Tensor)> = store.state().into_iter().chain(step.state()).collect();
        for (_, t) in all.iter_mut() {
            *t = t.f_detach()?.f_to_device(Device::Cpu)?;
        }
        all.push((CKPT_EPOCH.into(), Tensor::from_slice(&[history.last().map_or(0, |h| h.epoch) as i64])));
        all.push((CKPT_HISTORY.into(), text(&serde_json::to_string(history).expect("history serialises"))));
        all.push((CKPT_CONFIG.into(), text(&self.config)));
        all.push((CKPT_DATA.into(), Tensor::from_slice(&self.data)));
        let tmp = self.path.with_extension("partial");
        Tensor::write_safetensors(&all, &tmp).map_err(|e| Error::file(&tmp, format!("cannot write the checkpoint: {e}")))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, &e))
    }

    /// The checkpoint's tensors, checked to be one of a model with these settings trained on
    /// this data.
    fn open(&self) -> Result<HashMap<String, Tensor>> {
        let bad = |m: String| Error::file(&self.path, m);
        let state: HashMap<String, Tensor> =
            Tensor::read_safetensors(&self.path).map_err(|e| bad(format!("not a checkpoint: {e}")))?.into_iter().collect();
        if ckpt_text(&state, CKPT_CONFIG).map_err(bad)? != self.config {
            return Err(bad("the checkpoint was written with other settings than this model's; use another checkpoint_dir or resume=False".into()));
        }
        let data = state.get(CKPT_DATA).and_then(|t| Vec::<i64>::try_from(t).ok());
        if data.as_deref() != Some(self.data.as_slice()) {
            return Err(bad("the checkpoint was trained on other data (users, items or interactions differ)".into()));
        }
        Ok(state)
    }

    /// Epochs done and their history.
    fn progress(&self, state: &HashMap<String, Tensor>) -> Result<(usize, Vec<EpochLog>)> {
        let bad = |m: String| Error::file(&self.path, m);
        let epoch = state.get(CKPT_EPOCH).ok_or_else(|| bad(format!("not a checkpoint (no '{CKPT_EPOCH}')")))?;
        let epoch = epoch.f_int64_value(&[0])?;
        let history: Vec<EpochLog> = serde_json::from_str(&ckpt_text(state, CKPT_HISTORY).map_err(bad)?)
            .map_err(|e| bad(format!("bad history: {e}")))?;
        if epoch < 0 || history.len() != epoch as usize {
            return Err(bad(format!("the checkpoint's history ({} epochs) does not match its epoch {epoch}", history.len())));
        }
        Ok((epoch as usize, history))
    }
}

fn ckpt_text(state: &HashMap<String, Tensor>, key: &str) -> std::result::Result<String, String> {
    let t = state.get(key).ok_or_else(|| format!("not a checkpoint (no '{key}')"))?;
    let bytes = Vec::<u8>::try_from(t.f_to_kind(Kind::Uint8).and_then(|t| t.f_flatten(0, -1)).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| format!("checkpoint: {key} is not UTF-8"))
}
