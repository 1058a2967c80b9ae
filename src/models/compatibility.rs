//! Visual compatibility (McAuley et al. 2015, "Image-based recommendations on styles and
//! substitutes"): two style projections E1, E2 (feature_dim -> style_dim) of fixed item
//! features, and
//!
//!   p(i goes with j) = sigmoid(c - ||E1 x_i - E2 x_j||^2)   ("euclidean")
//!                    = sigmoid(c + <E1 x_i, E2 x_j>)         ("inner")
//!
//! trained with the log loss on positive pairs and sampled negatives (uniform, or from the
//! positive partner's category: the "difficult" negatives), mini-batch Adam on the device.
//! The seed notebook ran one pair per TensorFlow call; here a batch of pairs is one step.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::{check_side, not_fitted, validator, Recommender};
use crate::data::{IdMaps, Interactions, Need, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::metrics::Validation;
use crate::sampling::{SamplerConfig, TripleSampler};
use crate::tensors::{device_name, parse_device};
use crate::train::torch_step::{Loss, Optimizer, Reduction, StepConfig, TorchStep, TwoTower};
use crate::train::{fit_loop, Control, EpochLog, Event, FitReport, LoopConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompatibilityConfig {
    /// Dimension of the style space.
    pub style_dim: usize,
    /// "euclidean" or "inner".
    pub distance: String,
    /// Negatives: "random" (uniform over items) or "category" (the positive partner's).
    pub negatives: String,
    /// Negatives per positive pair.
    pub n_negatives: usize,
    pub lr: f64,
    pub epochs: usize,
    /// Positive pairs per step (each with its negatives).
    pub batch_size: usize,
    /// L2 weight on E1 and E2 (sum of squares), per pair.
    pub reg: f64,
    /// "auto", "cpu", "cuda" or "cuda:N".
    pub device: String,
    pub seed: u64,
    /// CPU threads for sampling; 0 uses every core.
    pub threads: usize,
}

impl Default for CompatibilityConfig {
    fn default() -> Self {
        CompatibilityConfig {
            style_dim: 5,
            distance: "euclidean".into(),
            negatives: "random".into(),
            n_negatives: 1,
            lr: 1e-3,
            epochs: 20,
            batch_size: 256,
            reg: 0.0,
            device: "auto".into(),
            seed: 0,
            threads: 0,
        }
    }
}

impl CompatibilityConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        for (name, v) in [("style_dim", self.style_dim), ("n_negatives", self.n_negatives), ("batch_size", self.batch_size)] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if !self.lr.is_finite() || self.lr <= 0.0 {
            return bad(format!("lr must be a finite number > 0, got {}", self.lr));
        }
        if !self.reg.is_finite() || self.reg < 0.0 {
            return bad(format!("reg must be a finite number >= 0, got {}", self.reg));
        }
        if !["euclidean", "inner"].contains(&self.distance.as_str()) {
            return bad(format!("distance must be 'euclidean' or 'inner', not {:?}", self.distance));
        }
        if !["random", "category"].contains(&self.negatives.as_str()) {
            return bad(format!("negatives must be 'random' or 'category', not {:?}", self.negatives));
        }
        Ok(())
    }
}

/// The two style projections and the offset c, under one `VarStore`.
pub struct StyleNet {
    pub vs: nn::VarStore,
    pub e1: nn::Linear,
    pub e2: nn::Linear,
    pub c: Tensor,
    pub euclidean: bool,
}

pub const E1: &str = "e1.weight";
pub const E2: &str = "e2.weight";
pub const OFFSET: &str = "c";

impl StyleNet {
    /// E1, E2 ~ N(0, 1/feature_dim) (seeded), c = 0.
    pub fn new(feature_dim: usize, style_dim: usize, euclidean: bool, seed: u64, device: Device) -> Result<Self> {
        if feature_dim == 0 {
            return Err(Error::invalid("item_features must have at least one column"));
        }
        tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let init = nn::Init::Randn { mean: 0.0, stdev: 1.0 / (feature_dim as f64).sqrt() };
        let cfg = nn::LinearConfig { ws_init: init, bs_init: None, bias: false };
        let (d, k) = (feature_dim as i64, style_dim as i64);
        let e1 = nn::linear(&root / "e1", d, k, cfg);
        let e2 = nn::linear(&root / "e2", d, k, cfg);
        let c = root.zeros(OFFSET, &[]);
        Ok(StyleNet { vs, e1, e2, c, euclidean })
    }

    /// Logits of pairs whose projected features are `a` = E1 x_i (P, k) and `b` = E2 x_j
    /// (P, k), or (P, 1, k) against (P, M, k).
    pub fn logits(&self, a: &Tensor, b: &Tensor) -> Tensor {
        if self.euclidean {
            &self.c - (a - b).square().sum_dim_intlist(-1, false, Kind::Float)
        } else {
            &self.c + (a * b).sum_dim_intlist(-1, false, Kind::Float)
        }
    }

    /// Logits of every query row of `a` (Q, k) against every row of `b` (M, k): (Q, M).
    pub fn all_logits(&self, a: &Tensor, b: &Tensor) -> Tensor {
        let dot = a.matmul(&b.tr());
        if self.euclidean {
            let na = a.square().sum_dim_intlist(1, true, Kind::Float);
            let nb = b.square().sum_dim_intlist(1, false, Kind::Float).unsqueeze(0);
            &self.c - na - nb + dot * 2.0
        } else {
            &self.c + dot
        }
    }

    /// (E1 X, E2 X) for a (n, feature_dim) feature matrix, computed in blocks.
    pub fn embed(&self, features: &Tensor) -> (Tensor, Tensor) {
        tch::no_grad(|| (self.e1.forward(features), self.e2.forward(features)))
    }
}

/// The towers of the shared libtorch step: queries through E1, partners through E2, the
/// offset c as an item bias; match score -||a - b||^2 or <a, b>.
struct Towers {
    e1: Tensor,
    e2: Tensor,
    c: Tensor,
    features: Tensor,
    euclidean: bool,
}

impl TwoTower for Towers {
    fn user_vectors(&self, users: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.features.f_index_select(0, users)?.f_matmul(&self.e1.tr())?)
    }
    fn item_vectors(&self, items: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.features.f_index_select(0, items)?.f_matmul(&self.e2.tr())?)
    }
    fn match_scores(&self, u: &Tensor, i: &Tensor) -> Result<Tensor> {
        // u (B, k), i (B, C, k) -> (B, C)
        if self.euclidean {
            Ok(-(i - u.f_unsqueeze(1)?).f_square()?.f_sum_dim_intlist(-1, false, Kind::Float)?)
        } else {
            Ok(i.f_matmul(&u.f_unsqueeze(-1)?)?.f_squeeze_dim(-1)?)
        }
    }
    fn item_bias(&self, items: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.c.f_expand(items.size(), false)?))
    }
}

/// Style embeddings of every item, kept after fit so a loaded model scores without features.
struct Fitted {
    net: StyleNet,
    /// E1 x and E2 x, (n_items, style_dim), on the device.
    query: Tensor,
    partner: Tensor,
    /// Category code per item (-1: none), when fit had categories.
    categories: Option<Tensor>,
}

impl Fitted {
    fn score(&self, queries: &[i64]) -> Result<Tensor> {
        let n = self.query.size()[0];
        if let Some(&bad) = queries.iter().find(|&&q| q < 0 || q >= n) {
            return Err(Error::invalid(format!("item index {bad} out of range for {n} items")));
        }
        tch::no_grad(|| {
            let idx = Tensor::from_slice(queries).f_to_device(self.query.device())?;
            let a = self.query.f_index_select(0, &idx)?;
            Ok(self.net.all_logits(&a, &self.partner).f_to_device(Device::Cpu)?.f_contiguous()?)
        })
    }
}

pub struct Compatibility {
    config: CompatibilityConfig,
    fitted: Option<Fitted>,
    ids: Option<IdMaps>,
    history: Vec<EpochLog>,
}

impl Compatibility {
    pub fn new(config: CompatibilityConfig) -> Result<Self> {
        config.validate()?;
        Ok(Compatibility { config, fitted: None, ids: None, history: Vec::new() })
    }

    fn fitted(&self) -> Result<&Fitted> {
        self.fitted.as_ref().ok_or_else(|| not_fitted("CompatibilityModel"))
    }

    fn sampler(&self) -> SamplerConfig {
        let kind = if self.config.negatives == "category" { "category" } else { "uniform" };
        SamplerConfig { kind: kind.into(), ..Default::default() }
    }
}

/// Pairs must have the item catalogue on both sides (the query item is the "user").
fn check_item_pairs(train: &Interactions) -> Result<()> {
    let ids = train.ids();
    if ids.users != ids.items {
        return Err(Error::invalid(format!(
            "pairs must have the same ids on both sides (an item x item Interactions); got {} query ids and {} item ids",
            ids.users.len(),
            ids.items.len()
        )));
    }
    Ok(())
}

impl Recommender for Compatibility {
    fn kind(&self) -> &'static str {
        "compatibility"
    }

    fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap()
    }

    fn needs(&self) -> SideNeeds {
        let categories = if self.config.negatives == "category" { Need::Required } else { Need::Optional };
        SideNeeds { item_features: Need::Required, categories, ..Default::default() }
    }

    fn fit(
        &mut self,
        train: &Interactions,
        side: &SideInfo,
        validation: Option<&Validation<'_>>,
        observer: &mut dyn FnMut(&Event<'_>) -> Control,
    ) -> Result<FitReport> {
        check_side(self, "CompatibilityModel", train, side)?;
        check_item_pairs(train)?;
        let cfg = self.config.clone();
        let device = parse_device(&cfg.device)?;
        let table = side.item_features.as_ref().ok_or_else(|| Error::invalid("CompatibilityModel needs item_features="))?;
        let dense = table.continuous.as_ref().ok_or_else(|| {
            Error::invalid("item_features must be numeric (a float array, ImageFeatures or numeric columns)")
        })?;
        if !dense.data.iter().all(|x| x.is_finite()) {
            return Err(Error::invalid("item_features contain NaN or infinite values"));
        }
        let features = dense.to_tensor().f_to_device(device)?;
        let sampler = TripleSampler::with_config(train, cfg.n_negatives, &self.sampler(), side)?;
        let net = StyleNet::new(dense.cols, cfg.style_dim, cfg.distance == "euclidean", cfg.seed, device)?;
        self.fitted = None;
        self.ids = Some(train.ids().clone());
        self.history.clear();
        let towers = Towers {
            e1: net.e1.ws.shallow_clone(),
            e2: net.e2.ws.shallow_clone(),
            c: net.c.shallow_clone(),
            features: features.shallow_clone(),
            euclidean: net.euclidean,
        };
        let lr = cfg.lr;
        let step_cfg = StepConfig {
            loss: Loss::Bce,
            reduction: Reduction::Mean,
            optimizer: Optimizer::Adam,
            lr: Box::new(move |_| lr),
            choice: crate::sampling::Choice::Single,
            n_items: train.n_items(),
            shared_negatives: false,
            log_q: None,
        };
        let mut step = TorchStep::new(towers, &net.vs, step_cfg)?;
        let loop_cfg = LoopConfig { epochs: cfg.epochs, batch_size: cfg.batch_size, seed: cfg.seed, threads: cfg.threads };
        let score = |q: &[i64]| -> Result<Tensor> {
            let (a, b) = net.embed(&features);
            let fitted = Fitted { net: net_view(&net)?, query: a, partner: b, categories: None };
            fitted.score(q)
        };
        let mut validate = validator(train, validation, score)?;
        let report = fit_loop(&mut step, &sampler, &loop_cfg, &mut validate, observer);
        drop(validate);
        drop(step);
        let (query, partner) = net.embed(&features);
        let categories = side.categories.as_ref().map(|c| Tensor::from_slice(c.as_slice()));
        self.fitted = Some(Fitted { net, query, partner, categories });
        let report = report?;
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
        self.fitted()?.score(users)
    }

    fn item_vectors(&self) -> Result<Tensor> {
        Ok(self.fitted()?.query.f_to_device(Device::Cpu)?)
    }

    fn user_vectors(&self) -> Result<Tensor> {
        self.item_vectors()
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let f = self.fitted()?;
        let mut out = vec![
            (E1.to_string(), f.net.e1.ws.shallow_clone()),
            (E2.to_string(), f.net.e2.ws.shallow_clone()),
            (OFFSET.to_string(), f.net.c.shallow_clone()),
            (STYLE_QUERY.to_string(), f.query.shallow_clone()),
            (STYLE_PARTNER.to_string(), f.partner.shallow_clone()),
        ];
        if let Some(c) = &f.categories {
            out.push((CATEGORIES.to_string(), c.shallow_clone()));
        }
        Ok(out)
    }

    fn restore(
        &mut self,
        state: &HashMap<String, Tensor>,
        ids: IdMaps,
        history: Vec<EpochLog>,
        device: Option<&str>,
    ) -> Result<()> {
        let device = parse_device(device.unwrap_or(&self.config.device))?;
        let get = |name: &str| {
            state.get(name).ok_or_else(|| Error::state(format!("saved CompatibilityModel has no tensor '{name}'")))
        };
        let (e1, e2, c, q, p) = (get(E1)?, get(E2)?, get(OFFSET)?, get(STYLE_QUERY)?, get(STYLE_PARTNER)?);
        let k = self.config.style_dim as i64;
        let n = ids.items.len() as i64;
        let (s1, s2) = (e1.size(), e2.size());
        if s1.len() != 2 || s1[0] != k || s1 != s2 || q.size() != [n, k] || p.size() != [n, k] || c.numel() != 1 {
            return Err(Error::state(format!(
                "saved CompatibilityModel tensors do not fit style_dim={k} and {n} items: e1 {s1:?}, e2 {s2:?}, style {:?}",
                q.size()
            )));
        }
        let net = StyleNet::new(s1[1] as usize, k as usize, self.config.distance == "euclidean", self.config.seed, device)?;
        tch::no_grad(|| -> Result<()> {
            net.e1.ws.shallow_clone().f_copy_(e1)?;
            net.e2.ws.shallow_clone().f_copy_(e2)?;
            net.c.shallow_clone().f_copy_(&c.f_reshape([])?)?;
            Ok(())
        })?;
        let categories = state.get(CATEGORIES).map(|t| t.shallow_clone());
        let to = |t: &Tensor| t.f_to_kind(Kind::Float)?.f_to_device(device);
        self.fitted = Some(Fitted { net, query: to(q)?, partner: to(p)?, categories });
        self.ids = Some(ids);
        self.history = history;
        Ok(())
    }

    fn device(&self) -> String {
        self.fitted.as_ref().map(|f| device_name(f.query.device())).unwrap_or_default()
    }
}

pub const STYLE_QUERY: &str = "style_query";
pub const STYLE_PARTNER: &str = "style_partner";
pub const CATEGORIES: &str = "categories";

/// A StyleNet sharing `net`'s parameters (for scoring during fit, while the step holds it).
fn net_view(net: &StyleNet) -> Result<StyleNet> {
    let vs = nn::VarStore::new(net.vs.device());
    let e1 = nn::Linear { ws: net.e1.ws.shallow_clone(), bs: None };
    let e2 = nn::Linear { ws: net.e2.ws.shallow_clone(), bs: None };
    Ok(StyleNet { vs, e1, e2, c: net.c.shallow_clone(), euclidean: net.euclidean })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_logits_match_pairwise_logits() {
        let net = StyleNet::new(6, 3, true, 1, Device::Cpu).unwrap();
        let x = Tensor::randn([5, 6], (Kind::Float, Device::Cpu));
        let (a, b) = net.embed(&x);
        let all = net.all_logits(&a, &b);
        for (i, j) in [(0i64, 1i64), (2, 2), (4, 0)] {
            let one = net.logits(&a.get(i).unsqueeze(0), &b.get(j).unsqueeze(0)).double_value(&[0]);
            assert!((all.double_value(&[i, j]) - one).abs() < 1e-4);
            let d: f64 = (&a.get(i) - &b.get(j)).square().sum(Kind::Float).double_value(&[]);
            assert!((one - (0.0 - d)).abs() < 1e-4, "c starts at 0");
        }
        let inner = StyleNet::new(6, 3, false, 1, Device::Cpu).unwrap();
        let (a, b) = inner.embed(&x);
        let all = inner.all_logits(&a, &b);
        let dot = (a.get(1) * b.get(3)).sum(Kind::Float).double_value(&[]);
        assert!((all.double_value(&[1, 3]) - dot).abs() < 1e-4);
    }

    #[test]
    fn config_is_checked() {
        assert!(CompatibilityConfig { distance: "cosine".into(), ..Default::default() }.validate().is_err());
        assert!(CompatibilityConfig { negatives: "hard".into(), ..Default::default() }.validate().is_err());
        assert!(CompatibilityConfig { style_dim: 0, ..Default::default() }.validate().is_err());
        let err = serde_json::from_str::<CompatibilityConfig>(r#"{"styledim": 3}"#).unwrap_err().to_string();
        assert!(err.contains("styledim"));
    }

    #[test]
    fn learns_a_planted_relation() {
        use crate::data::{Columns, DenseMatrix, Duplicates, FeatureTable};
        use std::sync::Arc;
        // 40 items in two groups by feature sign; pairs only within a group.
        let n = 40usize;
        let mut feats = vec![0f32; n * 4];
        for i in 0..n {
            let s = if i < n / 2 { 1.0 } else { -1.0 };
            for f in 0..4 {
                feats[i * 4 + f] = s * (1.0 + 0.1 * ((i * 7 + f * 3) % 5) as f32);
            }
        }
        let (mut q, mut p) = (Vec::new(), Vec::new());
        for i in 0..n as i64 {
            for d in [1i64, 2, 3] {
                let half = (n / 2) as i64;
                let j = (i / half) * half + (i % half + d) % half;
                q.push(i);
                p.push(j);
            }
        }
        let pairs =
            Interactions::from_indices(&q, &p, None, Some(n), Some(n), Duplicates::Sum, Columns::default()).unwrap();
        let side = SideInfo {
            item_features: Some(Arc::new(FeatureTable::dense(DenseMatrix::new(n, 4, feats, vec![]).unwrap()))),
            ..Default::default()
        };
        let cfg = CompatibilityConfig { epochs: 60, lr: 0.05, batch_size: 32, device: "cpu".into(), threads: 1, ..Default::default() };
        let mut m = Compatibility::new(cfg).unwrap();
        m.fit(&pairs, &side, None, &mut |_| Control::Continue).unwrap();
        let s = m.score(&[0, 30]).unwrap();
        // Item 0 (group A) scores group A above group B on average, and item 30 the reverse.
        let mean = |r: i64, lo: i64, hi: i64| s.get(r).narrow(0, lo, hi - lo).mean(Kind::Float).double_value(&[]);
        assert!(mean(0, 0, 20) > mean(0, 20, 40));
        assert!(mean(1, 20, 40) > mean(1, 0, 20));
        assert!(m.history()[59].loss < m.history()[0].loss);
    }
}
