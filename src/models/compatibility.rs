//! Visual compatibility (McAuley et al. 2015, "Image-based recommendations on styles and
//! substitutes"): two style projections E1, E2 (feature_dim -> factors) of fixed item
//! features, and
//!
//!   p(i goes with j) = sigmoid(c - ||E1 x_i - E2 x_j||^2)   ("euclidean")
//!                    = sigmoid(c + <E1 x_i, E2 x_j>)         ("inner")
//!
//! trained with the log loss on positive pairs and sampled negatives (uniform, or from the
//! positive partner's category: the "difficult" negatives), mini-batch Adam on the device.
//! The seed notebook ran one pair per TensorFlow call; here a batch of pairs is one step.
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::core::{checked, Common, FitCtx, ModelConfig, ModelParams, ParamStore, SizesFrom, Spec};
use crate::data::{Interactions, Need, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::sampling::{SamplerConfig, TripleSampler};
use crate::train::torch_step::{Loss, Optimizer, Reduction, StepConfig, TorchStep, TwoTower};
use crate::train::FitReport;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompatibilityConfig {
    /// Dimension of the style space.
    pub factors: usize,
    /// "euclidean" or "inner".
    pub distance: String,
    /// Negatives: "uniform" (over items) or "category" (the positive partner's).
    pub sampler: SamplerConfig,
    /// Negatives per positive pair.
    pub n_negatives: usize,
    /// epochs, lr, batch_size (positive pairs per step, each with its negatives), seed,
    /// threads (sampling), device.
    #[serde(flatten)]
    pub common: Common,
    /// L2 weight on E1 and E2 (sum of squares), per pair.
    pub reg: f64,
}

impl Default for CompatibilityConfig {
    fn default() -> Self {
        CompatibilityConfig {
            factors: 5,
            distance: "euclidean".into(),
            sampler: SamplerConfig::default(),
            n_negatives: 1,
            common: Common::new(20, 1e-3, 256),
            reg: 0.0,
        }
    }
}

impl ModelConfig for CompatibilityConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        super::bpr::check_counts(&[("factors", self.factors), ("n_negatives", self.n_negatives)])?;
        super::bpr::check_weights(&[("reg", self.reg, false)])?;
        if !["euclidean", "inner"].contains(&self.distance.as_str()) {
            return bad(format!("distance must be 'euclidean' or 'inner', not {:?}", self.distance));
        }
        self.sampler.validate_kinds(&["uniform", "category"])?;
        Ok(())
    }

    fn needs(&self) -> SideNeeds {
        let categories = if self.sampler.needs_categories() { Need::Required } else { Need::Optional };
        SideNeeds { item_features: Need::Required, categories, ..Default::default() }
    }

    fn common(&self) -> Option<&Common> {
        Some(&self.common)
    }
}

/// The two style projections and the offset c (variables of the model's store).
pub struct StyleNet {
    pub e1: nn::Linear,
    pub e2: nn::Linear,
    pub c: Tensor,
    pub euclidean: bool,
}

pub const E1: &str = "e1.weight";
pub const E2: &str = "e2.weight";
pub const OFFSET: &str = "c";

impl StyleNet {
    /// E1, E2 ~ N(0, 1/feature_dim) (seeded), c = 0, under `root`.
    pub fn new(root: &nn::Path, feature_dim: usize, style_dim: usize, euclidean: bool, seed: u64) -> Result<Self> {
        if feature_dim == 0 {
            return Err(Error::invalid("item_features must have at least one column"));
        }
        crate::nets::random::reseed(seed);
        let init = nn::Init::Randn { mean: 0.0, stdev: 1.0 / (feature_dim as f64).sqrt() };
        let cfg = nn::LinearConfig { ws_init: init, bs_init: None, bias: false };
        let (d, k) = (feature_dim as i64, style_dim as i64);
        let e1 = crate::nets::random::linear(&(root / "e1"), d, k, cfg)?;
        let e2 = crate::nets::random::linear(&(root / "e2"), d, k, cfg)?;
        let c = root.zeros(OFFSET, &[]);
        Ok(StyleNet { e1, e2, c, euclidean })
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

/// The style net in its store, with the style embeddings of every item (E1 x, E2 x) and the
/// categories (when fit had them) as buffers, so a loaded model scores without features.
pub struct CompatParams {
    store: ParamStore,
    net: StyleNet,
    /// Item features on the device (during fit; a restored model has none).
    features: Option<Tensor>,
}

/// No learnt per-item table: an item's style comes from its features.
impl ModelParams for CompatParams {
    fn store(&self) -> &ParamStore {
        &self.store
    }
}

impl CompatParams {
    /// A StyleNet sharing the parameters (the step takes one, scoring keeps this one).
    fn net_view(&self) -> StyleNet {
        let n = &self.net;
        let lin = |l: &nn::Linear| nn::Linear { ws: l.ws.shallow_clone(), bs: None };
        StyleNet { e1: lin(&n.e1), e2: lin(&n.e2), c: n.c.shallow_clone(), euclidean: n.euclidean }
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

/// CompatibilityModel: item pairs as (query, partner) interactions.
pub struct Compatibility;

impl Compatibility {
    fn params(c: &CompatibilityConfig, device: Device, feature_dim: usize, n_items: usize) -> Result<CompatParams> {
        let mut store = ParamStore::new(device);
        let net = StyleNet::new(&store.vs.root(), feature_dim, c.factors, c.distance == "euclidean", c.common.seed)?;
        let zeros = || Tensor::f_zeros([n_items as i64, c.factors as i64], (Kind::Float, device));
        store.set_buffer(STYLE_QUERY, zeros()?);
        store.set_buffer(STYLE_PARTNER, zeros()?);
        Ok(CompatParams { store, net, features: None })
    }
}

impl Spec for Compatibility {
    type Config = CompatibilityConfig;
    type Params = CompatParams;

    fn build(c: &CompatibilityConfig, train: &Interactions, side: &SideInfo, device: Device) -> Result<CompatParams> {
        check_item_pairs(train)?;
        let table = side.item_features.as_ref().ok_or_else(|| Error::invalid("CompatibilityModel needs item_features="))?;
        let dense = table.continuous.as_ref().ok_or_else(|| {
            Error::invalid("item_features must be numeric (a float array, ImageFeatures or numeric columns)")
        })?;
        if !dense.data.iter().all(|x| x.is_finite()) {
            return Err(Error::invalid("item_features contain NaN or infinite values"));
        }
        let mut p = Self::params(c, device, dense.cols, train.n_items())?;
        p.features = Some(dense.to_tensor().f_to_device(device)?);
        if let Some(cats) = &side.categories {
            p.store.set_buffer(CATEGORIES, Tensor::from_slice(cats.as_slice()));
        }
        Ok(p)
    }

    fn train(c: &CompatibilityConfig, p: &CompatParams, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let features = p.features.as_ref().ok_or_else(|| Error::state("no item features"))?;
        let sampler = TripleSampler::with_config(train, c.n_negatives, &c.sampler, side)?;
        let net = &p.net;
        let towers = Towers {
            e1: net.e1.ws.shallow_clone(),
            e2: net.e2.ws.shallow_clone(),
            c: net.c.shallow_clone(),
            features: features.shallow_clone(),
            euclidean: net.euclidean,
        };
        let lr = c.common.lr;
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
        let mut step = TorchStep::new(towers, &p.store.vs, step_cfg)?;
        let view = p.net_view();
        ctx.run(&mut step, &sampler, &|q| {
            let (a, b) = view.embed(features);
            let idx = Tensor::from_slice(q).f_to_device(a.device())?;
            Ok(tch::no_grad(|| view.all_logits(&a.index_select(0, &idx), &b)))
        })
    }

    /// The style embeddings of every item, for scoring.
    fn finish(_: &CompatibilityConfig, p: &mut CompatParams, _: &Interactions, _: &SideInfo) -> Result<()> {
        let features = p.features.take().ok_or_else(|| Error::state("no item features"))?;
        let (query, partner) = p.net.embed(&features);
        p.store.set_buffer(STYLE_QUERY, query);
        p.store.set_buffer(STYLE_PARTNER, partner);
        Ok(())
    }

    /// E1, E2 (factors x feature columns) and c; the two style embeddings of every item (the
    /// categories are side data).
    fn param_count(c: &CompatibilityConfig, (_, n_items): (usize, usize), from: SizesFrom<'_>) -> Result<u128> {
        let n_feat = match from {
            SizesFrom::Fit(_, side) => side.item_features.as_ref().and_then(|t| t.continuous.as_ref()).map_or(0, |m| m.cols),
            SizesFrom::Saved(_) => from.saved_dim(E1, 1),
        };
        let (net, style) = (crate::limits::values(&[2, c.factors, n_feat]), crate::limits::values(&[2, n_items, c.factors]));
        Ok(crate::limits::total([net, 1, style]))
    }

    fn restore(c: &CompatibilityConfig, (_, n_items): (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<CompatParams> {
        let e1 = checked(state, E1, &[], Kind::Float)?;
        let n_features = match e1.size().as_slice() {
            &[factors, n_features] if factors == c.factors as i64 => n_features,
            _ => return Err(Error::state(format!("saved CompatibilityModel e1 has shape {:?}, not (factors={}, features)", e1.size(), c.factors))),
        };
        let mut p = Self::params(c, device, n_features as usize, n_items)?;
        if state.contains_key(CATEGORIES) {
            p.store.set_buffer(CATEGORIES, checked(state, CATEGORIES, &[n_items as i64], Kind::Int64)?.f_to_kind(Kind::Int64)?);
        }
        p.store.load(state)?;
        Ok(p)
    }

    fn score_block(_: &CompatibilityConfig, p: &CompatParams, queries: &Tensor) -> Result<Tensor> {
        let a = p.store.buffer(STYLE_QUERY)?.f_index_select(0, queries)?;
        Ok(p.net.all_logits(&a, p.store.buffer(STYLE_PARTNER)?))
    }

    fn item_vectors(_: &CompatibilityConfig, p: &CompatParams) -> Result<Tensor> {
        Ok(p.store.buffer(STYLE_QUERY)?.shallow_clone())
    }

    fn user_vectors(_: &CompatibilityConfig, p: &CompatParams) -> Result<Tensor> {
        Ok(p.store.buffer(STYLE_QUERY)?.shallow_clone())
    }
}

pub const STYLE_QUERY: &str = "style_query";
pub const STYLE_PARTNER: &str = "style_partner";
pub const CATEGORIES: &str = "categories";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_logits_match_pairwise_logits() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = StyleNet::new(&vs.root(), 6, 3, true, 1).unwrap();
        let x = Tensor::randn([5, 6], (Kind::Float, Device::Cpu));
        let (a, b) = net.embed(&x);
        let all = net.all_logits(&a, &b);
        for (i, j) in [(0i64, 1i64), (2, 2), (4, 0)] {
            let one = net.logits(&a.get(i).unsqueeze(0), &b.get(j).unsqueeze(0)).double_value(&[0]);
            assert!((all.double_value(&[i, j]) - one).abs() < 1e-4);
            let d: f64 = (&a.get(i) - &b.get(j)).square().sum(Kind::Float).double_value(&[]);
            assert!((one - (0.0 - d)).abs() < 1e-4, "c starts at 0");
        }
        let inner = StyleNet::new(&(vs.root() / "inner"), 6, 3, false, 1).unwrap();
        let (a, b) = inner.embed(&x);
        let all = inner.all_logits(&a, &b);
        let dot = (a.get(1) * b.get(3)).sum(Kind::Float).double_value(&[]);
        assert!((all.double_value(&[1, 3]) - dot).abs() < 1e-4);
    }

    #[test]
    fn config_is_checked() {
        assert!(CompatibilityConfig { distance: "cosine".into(), ..Default::default() }.validate().is_err());
        let sampler = |kind: &str| SamplerConfig { kind: kind.into(), ..Default::default() };
        assert!(CompatibilityConfig { sampler: sampler("warp"), ..Default::default() }.validate().is_err());
        assert!(CompatibilityConfig { sampler: sampler("category"), ..Default::default() }.validate().is_ok());
        assert!(CompatibilityConfig { factors: 0, ..Default::default() }.validate().is_err());
        let err = crate::models::create("compatibility", r#"{"styledim": 3}"#).err().unwrap().to_string();
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
        let json = r#"{"epochs": 60, "lr": 0.05, "batch_size": 32, "device": "cpu", "threads": 1}"#;
        let mut m = crate::models::create("compatibility", json).unwrap();
        m.fit(&pairs, &side, None, &mut |_| crate::train::Control::Continue, &Default::default()).unwrap();
        let s = m.score(&[0, 30]).unwrap();
        // Item 0 (group A) scores group A above group B on average, and item 30 the reverse.
        let mean = |r: i64, lo: i64, hi: i64| s.get(r).narrow(0, lo, hi - lo).mean(Kind::Float).double_value(&[]);
        assert!(mean(0, 0, 20) > mean(0, 20, 40));
        assert!(mean(1, 20, 40) > mean(1, 0, 20));
        assert!(m.history()[59].loss < m.history()[0].loss);
    }
}
