//! VBPR (He & McAuley 2016): BPR matrix factorisation plus a visual term from fixed item
//! features f_i (the 4096-d `.b` CNN features, or embeddings from an image tower):
//! score(u, i) = b_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i.
//! Trained with the shared libtorch step. Items without a training interaction (cold items)
//! are scored by their visual term alone: their gamma_i and b_i are zero.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::{check_side, not_fitted, validator, Recommender};
use crate::data::{IdMaps, Interactions, Need, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::metrics::Validation;
use crate::sampling::{SamplerConfig, TripleSampler};
use crate::tensors::{device_name, parse_device};
use crate::train::torch_step::{Gathered, Loss, Optimizer, Reduction, StepConfig, TorchStep, TwoTower};
use crate::train::{fit_loop, Control, EpochLog, Event, FitReport, LoopConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VbprConfig {
    /// Dimension of gamma_u, gamma_i (the collaborative part).
    pub factors: usize,
    /// Dimension of theta_u and E f_i (the visual part).
    pub visual_factors: usize,
    pub epochs: usize,
    pub lr: f64,
    /// L2 on the gathered gamma_u, gamma_i, theta_u rows.
    pub reg: f64,
    /// L2 on the item biases touched.
    pub bias_reg: f64,
    /// L2 on E and beta' (per step).
    pub visual_reg: f64,
    pub batch_size: usize,
    /// "adam" or "sgd".
    pub optimizer: String,
    pub init_std: f64,
    pub device: String,
    pub seed: u64,
    pub threads: usize,
    pub sampler: SamplerConfig,
}

impl Default for VbprConfig {
    fn default() -> Self {
        VbprConfig {
            factors: 32,
            visual_factors: 32,
            epochs: 30,
            lr: 0.005,
            reg: 1e-4,
            bias_reg: 1e-4,
            visual_reg: 1e-4,
            batch_size: 1024,
            optimizer: "adam".into(),
            init_std: 0.05,
            device: "auto".into(),
            seed: 0,
            threads: 0,
            sampler: SamplerConfig::default(),
        }
    }
}

impl VbprConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        for (name, v) in [("factors", self.factors), ("visual_factors", self.visual_factors), ("batch_size", self.batch_size)] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) || !(self.init_std.is_finite() && self.init_std > 0.0) {
            return bad(format!("lr and init_std must be finite numbers > 0, got {} and {}", self.lr, self.init_std));
        }
        for (name, v) in [("reg", self.reg), ("bias_reg", self.bias_reg), ("visual_reg", self.visual_reg)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be a finite number >= 0, got {v}"));
            }
        }
        if !["adam", "sgd"].contains(&self.optimizer.as_str()) {
            return bad(format!("optimizer must be 'adam' or 'sgd', not {:?}", self.optimizer));
        }
        self.sampler.validate()
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

    fn scores(&self, users: &[i64]) -> Result<Tensor> {
        let n = self.gamma_u.size()[0];
        if let Some(&bad) = users.iter().find(|&&u| u < 0 || u >= n) {
            return Err(Error::invalid(format!("user index {bad} out of range for {n} users")));
        }
        let _guard = tch::no_grad_guard();
        let idx = Tensor::from_slice(users).f_to_device(self.gamma_u.device())?;
        let (v, vb) = self.visual(None)?;
        let s = self.gamma_u.f_index_select(0, &idx)?.f_matmul(&self.gamma_i.f_tr()?)?
            + self.theta_u.f_index_select(0, &idx)?.f_matmul(&v.f_tr()?)?
            + (&self.bias + vb).f_unsqueeze(0)?;
        Ok(s.f_to_device(Device::Cpu)?.f_contiguous()?)
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
        let d = self.gamma_i.size()[1];
        let items = |t: &Tensor| t.f_narrow(-1, 0, d).and_then(|x| x.f_square()).and_then(|x| x.f_sum(Kind::Float));
        let rows = sq(g.u.shallow_clone())? + items(g.i_pos)? + items(g.i_neg)?;
        let bias = sq(self.bias.f_index_select(0, g.pos)?)? + sq(self.bias.f_index_select(0, &g.neg.f_flatten(0, -1)?)?)?;
        let visual = sq(self.e.shallow_clone())? + sq(self.beta.shallow_clone())?;
        Ok(Some(rows * self.reg + bias * self.bias_reg + visual * self.visual_reg))
    }
}

pub struct Vbpr {
    config: VbprConfig,
    vs: Option<nn::VarStore>,
    params: Option<Params>,
    ids: Option<IdMaps>,
    history: Vec<EpochLog>,
}

impl Vbpr {
    pub fn new(config: VbprConfig) -> Result<Self> {
        config.validate()?;
        Ok(Vbpr { config, vs: None, params: None, ids: None, history: Vec::new() })
    }

    fn build(&self, device: Device, n_users: usize, n_items: usize, features: Tensor) -> (nn::VarStore, Params) {
        let c = &self.config;
        tch::manual_seed((crate::sampling::rng::sub_seed(c.seed, crate::sampling::rng::streams::INIT, 11) >> 1) as i64);
        let vs = nn::VarStore::new(device);
        let r = vs.root();
        let init = nn::Init::Randn { mean: 0.0, stdev: c.init_std };
        let n_feat = features.size()[1];
        let (nu, ni, d, dv) = (n_users as i64, n_items as i64, c.factors as i64, c.visual_factors as i64);
        let params = Params {
            gamma_u: r.var("gamma_users", &[nu, d], init),
            theta_u: r.var("theta_users", &[nu, dv], init),
            gamma_i: r.var("gamma_items", &[ni, d], init),
            bias: r.var("item_bias", &[ni], nn::Init::Const(0.0)),
            e: r.var("visual_projection", &[n_feat, dv], nn::Init::Randn { mean: 0.0, stdev: c.init_std / (n_feat as f64).sqrt() }),
            beta: r.var("visual_bias", &[n_feat], nn::Init::Const(0.0)),
            features: features.to_device(device),
            reg: c.reg,
            bias_reg: c.bias_reg,
            visual_reg: c.visual_reg,
        };
        (vs, params)
    }

    fn fitted(&self) -> Result<&Params> {
        self.params.as_ref().ok_or_else(|| not_fitted("VBPR"))
    }
}

impl Recommender for Vbpr {
    fn kind(&self) -> &'static str {
        "vbpr"
    }

    fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap()
    }

    fn needs(&self) -> SideNeeds {
        SideNeeds { item_features: Need::Required, ..self.config.sampler.side_needs() }
    }

    fn fit(
        &mut self,
        train: &Interactions,
        side: &SideInfo,
        validation: Option<&Validation<'_>>,
        observer: &mut dyn FnMut(&Event<'_>) -> Control,
    ) -> Result<FitReport> {
        check_side(self, "VBPR", train, side)?;
        let table = side.item_features.as_ref().ok_or_else(|| Error::invalid("VBPR needs item_features="))?;
        let dense = table.continuous.as_ref().filter(|m| m.cols > 0).ok_or_else(|| {
            Error::invalid("VBPR needs numeric item features (a float matrix, image features or embeddings)")
        })?;
        let cfg = self.config.clone();
        let device = parse_device(&cfg.device)?;
        let sampler = TripleSampler::with_config(train, 1, &cfg.sampler, side)?;
        let (vs, params) = self.build(device, train.n_users(), train.n_items(), dense.to_tensor());
        self.vs = None;
        self.params = None;
        self.ids = Some(train.ids().clone());
        self.history.clear();
        let (lr, epochs) = (cfg.lr, cfg.epochs.max(1));
        let step_cfg = StepConfig {
            loss: Loss::Bpr,
            reduction: Reduction::Sum,
            optimizer: if cfg.optimizer == "sgd" { Optimizer::Sgd } else { Optimizer::Adam },
            lr: Box::new(move |_| lr),
            choice: cfg.sampler.choice(),
            n_items: train.n_items(),
            shared_negatives: false,
            log_q: None,
        };
        let _ = epochs;
        let mut step = TorchStep::new(params.handles(), &vs, step_cfg)?;
        let loop_cfg = LoopConfig { epochs: cfg.epochs, batch_size: cfg.batch_size, seed: cfg.seed, threads: cfg.threads };
        let view = params.handles();
        let cold = cold_mask(train, device)?;
        let mut validate = validator(train, validation, |u| {
            zero_cold(&view, &cold)?;
            view.scores(u)
        })?;
        let report = fit_loop(&mut step, &sampler, &loop_cfg, &mut *validate, observer);
        drop(validate);
        drop(step);
        let report = report?;
        // Cold items: no collaborative part (what training gave them as negatives is noise).
        zero_cold(&params, &cold)?;
        self.history = report.history.clone();
        self.vs = Some(vs);
        self.params = Some(params);
        Ok(report)
    }

    fn ids(&self) -> Option<&IdMaps> {
        self.ids.as_ref()
    }

    fn history(&self) -> &[EpochLog] {
        &self.history
    }

    fn score(&self, users: &[i64]) -> Result<Tensor> {
        self.fitted()?.scores(users)
    }

    /// [gamma_i, E f_i] per item.
    fn item_vectors(&self) -> Result<Tensor> {
        let p = self.fitted()?;
        let _guard = tch::no_grad_guard();
        let (v, _) = p.visual(None)?;
        Ok(Tensor::f_cat(&[p.gamma_i.shallow_clone(), v], 1)?.f_to_device(Device::Cpu)?)
    }

    fn user_vectors(&self) -> Result<Tensor> {
        let p = self.fitted()?;
        Ok(Tensor::f_cat(&[p.gamma_u.detach(), p.theta_u.detach()], 1)?.f_to_device(Device::Cpu)?)
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let p = self.fitted()?;
        let mut out: Vec<(String, Tensor)> = self.vs.as_ref().map(|vs| vs.variables().into_iter().collect()).unwrap_or_default();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(("item_features".into(), p.features.shallow_clone()));
        Ok(out)
    }

    fn restore(&mut self, state: &HashMap<String, Tensor>, ids: IdMaps, history: Vec<EpochLog>, device: Option<&str>) -> Result<()> {
        let device = parse_device(device.unwrap_or(&self.config.device))?;
        let features = state.get("item_features").ok_or_else(|| Error::state("saved VBPR has no item_features"))?;
        if features.size().len() != 2 || features.size()[0] != ids.items.len() as i64 {
            return Err(Error::state(format!("saved item features have shape {:?} for {} items", features.size(), ids.items.len())));
        }
        let (vs, params) = self.build(device, ids.users.len(), ids.items.len(), features.to_kind(Kind::Float));
        let _guard = tch::no_grad_guard();
        for (name, mut var) in vs.variables() {
            let saved = state.get(&name).ok_or_else(|| Error::state(format!("saved VBPR has no tensor '{name}'")))?;
            if saved.size() != var.size() {
                return Err(Error::state(format!("saved '{name}' has shape {:?}, the model {:?}", saved.size(), var.size())));
            }
            var.f_copy_(saved)?;
        }
        self.vs = Some(vs);
        self.params = Some(params);
        self.ids = Some(ids);
        self.history = history;
        Ok(())
    }

    fn device(&self) -> String {
        self.vs.as_ref().map(|vs| device_name(vs.device())).unwrap_or_default()
    }
}

/// 1.0 for items with a training interaction, 0.0 for cold items: (n_items, 1) on `device`.
fn cold_mask(train: &Interactions, device: Device) -> Result<Tensor> {
    let warm: Vec<f32> = train.item_counts().iter().map(|&c| if c > 0 { 1.0 } else { 0.0 }).collect();
    Ok(Tensor::from_slice(&warm).f_to_device(device)?)
}

/// Zero gamma_i and b_i of cold items (in place).
fn zero_cold(p: &Params, warm: &Tensor) -> Result<()> {
    let _guard = tch::no_grad_guard();
    let _ = p.gamma_i.shallow_clone().f_mul_(&warm.f_unsqueeze(1)?)?;
    let _ = p.bias.shallow_clone().f_mul_(warm)?;
    Ok(())
}
