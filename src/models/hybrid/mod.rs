//! Hybrid BPR (the hybrid recommender notebook): users and items represented from their side
//! features (each a [`FeatureEmbedder`]: categorical columns embedded, continuous columns
//! standardised, dense layers into one latent space), optionally plus a per-id embedding, and
//! an item bias; score(u, i) = user(u) . item(i) + b_i, trained through the shared libtorch
//! step with the BPR loss (or a softmax over sampled negatives) and Adam. New users are scored
//! from their features alone ([`Recommender::score_new_users`]).
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use std::collections::HashMap;

use tch::{nn, Device, Kind, Tensor};

mod config;
mod features;

pub use self::config::HybridConfig;

use self::features::Features;
use super::core::{FitCtx, ModelParams, ParamStore, SizesFrom, Spec};
use crate::data::{FeatureTable, Interactions, SideInfo};
use crate::error::{Error, Result};
use crate::sampling::{SamplerConfig, TripleSampler};
use crate::tensors::size_at;
use crate::train::torch_step::{Gathered, Loss, Optimizer, Reduction, StepConfig, TorchStep, TwoTower};
use crate::train::FitReport;

use super::rated_below::{split_ratings, RatedBelow, RatedBelowStep};

/// One tower: features through the embedder, plus an id embedding, either or both.
struct Tower {
    features: Option<Features>,
    ids: Option<Tensor>,
    /// While training, the probability that a row's columns other than the last (the item-id
    /// column) are masked: codes to unknown (0), continuous values to NaN (scaled to 0, the
    /// mean). 0 on the user side.
    feature_dropout: f64,
}

impl Tower {
    fn vectors(&self, idx: &Tensor, train: bool) -> Result<Tensor> {
        let from_features = match &self.features {
            Some(f) => {
                let mut codes = f.codes.f_index_select(0, idx)?;
                let mut cont = f.cont.f_index_select(0, idx)?;
                if train && self.feature_dropout > 0.0 {
                    (codes, cont) = mask_rows(&codes, &cont, self.feature_dropout)?;
                }
                Some(f.embedder.embed(&codes, Some(&cont), train)?)
            }
            None => None,
        };
        let from_ids = match &self.ids {
            Some(e) => Some(e.f_index_select(0, idx)?),
            None => None,
        };
        match (from_features, from_ids) {
            (Some(a), Some(b)) => Ok(a + b),
            (Some(a), None) | (None, Some(a)) => Ok(a),
            (None, None) => Err(Error::state("a HybridBPR tower has neither features nor id embeddings")),
        }
    }

    fn shallow_clone(&self) -> Self {
        Tower {
            features: self.features.as_ref().map(Features::shallow_clone),
            ids: self.ids.as_ref().map(Tensor::shallow_clone),
            feature_dropout: self.feature_dropout,
        }
    }
}

/// `codes` (B, c) and `cont` (B, k) with each row's columns but the last code (the item-id
/// column) masked with probability `p`: codes to 0 (unknown), continuous values to NaN (the
/// embedder scales NaN to 0, the mean).
fn mask_rows(codes: &Tensor, cont: &Tensor, p: f64) -> Result<(Tensor, Tensor)> {
    let (b, c) = (size_at(codes, 0)?, size_at(codes, 1)?);
    let drop = crate::nets::random::uniform(&[b, 1], 0.0, 1.0, codes.device())?.f_lt(p)?;
    let mut keep_col = vec![true; c as usize];
    if let Some(last) = keep_col.last_mut() {
        *last = false;
    }
    // (1, c): the columns a dropped row loses (all but the id column).
    let masked_cols = Tensor::from_slice(&keep_col).f_to_device(codes.device())?.f_unsqueeze(0)?;
    let codes = codes.f_masked_fill(&drop.f_logical_and(&masked_cols)?, 0)?;
    let cont = if size_at(cont, 1)? > 0 { cont.f_masked_fill(&drop, f64::NAN)? } else { cont.shallow_clone() };
    Ok((codes, cont))
}

pub struct Params {
    /// The variables, and the feature encodings (vocabularies, statistics) as buffers.
    store: ParamStore,
    user: Tower,
    item: Tower,
    bias: Option<Tensor>,
    n_users: usize,
    n_items: usize,
    /// Every item's vector, computed once after fit / restore (scoring reuses it).
    item_cache: Option<Tensor>,
}

impl ModelParams for Params {
    fn store(&self) -> &ParamStore {
        &self.store
    }

    /// The item id embeddings and the item bias (the feature tower is shared by all items).
    fn item_tables(&self) -> Vec<Tensor> {
        self.item.ids.iter().chain(&self.bias).map(Tensor::shallow_clone).collect()
    }
}

/// The item bias's name in the VarStore.
const ITEM_BIAS: &str = "item_bias";

const ID_INIT: nn::Init = nn::Init::Randn { mean: 0.0, stdev: 0.05 };

impl Params {
    /// `item_counts`: each item's training interactions (`item_id_column` codes the items
    /// with at least one).
    fn new(cfg: &HybridConfig, n_users: usize, item_counts: &[u32], side: &SideInfo, device: Device) -> Result<Self> {
        crate::nets::random::reseed(cfg.common.seed);
        let n_items = item_counts.len();
        let store = ParamStore::new(device);
        let root = store.vs.root();
        let user_f = side.user_features.as_ref().map(|t| Features::fit(&(&root / "user"), t, cfg, None)).transpose()?;
        let trained: Vec<bool> = item_counts.iter().map(|&c| c > 0).collect();
        let ids_only = FeatureTable { n_rows: n_items, ..Default::default() };
        let item_f = match (side.item_features.as_ref(), cfg.item_id_column) {
            (Some(t), ids) => Some(Features::fit(&(&root / "item"), t, cfg, ids.then_some(trained.as_slice()))?),
            // The item tower on the id column alone.
            (None, true) => Some(Features::fit(&(&root / "item"), &ids_only, cfg, Some(&trained))?),
            (None, false) => None,
        };
        drop(root);
        Self::assemble(store, cfg, n_users, n_items, user_f, item_f)
    }

    fn assemble(mut store: ParamStore, cfg: &HybridConfig, n_users: usize, n_items: usize, user_f: Option<Features>, item_f: Option<Features>) -> Result<Self> {
        for (side, f) in [("user", &user_f), ("item", &item_f)] {
            for (name, t) in f.iter().flat_map(|f| f.state(side)) {
                store.set_buffer(&name, t);
            }
        }
        let root = store.vs.root();
        let d = cfg.factors as i64;
        let ids = |name: &str, n: usize| -> Result<Option<Tensor>> {
            Ok(if cfg.id_embeddings { Some(crate::nets::random::var(&root, name, &[n as i64, d], ID_INIT)?) } else { None })
        };
        let user = Tower { features: user_f, ids: ids("user_ids", n_users)?, feature_dropout: 0.0 };
        let item = Tower { features: item_f, ids: ids("item_ids", n_items)?, feature_dropout: cfg.item_feature_dropout };
        let bias = if cfg.item_bias { Some(root.f_zeros(ITEM_BIAS, &[n_items as i64])?) } else { None };
        drop(root);
        Ok(Params { store, user, item, bias, n_users, n_items, item_cache: None })
    }

    fn towers(&self, reg: f64) -> HybridTowers {
        HybridTowers { user: self.user.shallow_clone(), item: self.item.shallow_clone(), bias: self.bias.as_ref().map(Tensor::shallow_clone), reg }
    }

    /// Every item's vector (eval mode), on the device.
    fn all_items(&self) -> Result<Tensor> {
        let idx = Tensor::f_arange(self.n_items as i64, (Kind::Int64, self.store.device()))?;
        tch::no_grad(|| self.item.vectors(&idx, false))
    }

    fn items(&self) -> Result<Tensor> {
        match &self.item_cache {
            Some(t) => Ok(t.shallow_clone()),
            None => self.all_items(),
        }
    }

    /// Scores of user vectors `u` (B, d) against every item.
    fn scores_of(&self, u: &Tensor, items: &Tensor) -> Result<Tensor> {
        let s = u.f_matmul(&items.f_tr()?)?;
        Ok(match &self.bias {
            Some(b) => s + b.f_unsqueeze(0)?,
            None => s,
        })
    }
}

struct HybridTowers {
    user: Tower,
    item: Tower,
    bias: Option<Tensor>,
    reg: f64,
}

impl TwoTower for HybridTowers {
    fn user_vectors(&self, users: &Tensor, train: bool) -> Result<Tensor> {
        self.user.vectors(users, train)
    }

    fn item_vectors(&self, items: &Tensor, train: bool) -> Result<Tensor> {
        self.item.vectors(items, train)
    }

    fn item_bias(&self, items: &Tensor) -> Result<Option<Tensor>> {
        match &self.bias {
            Some(b) => Ok(Some(b.f_index_select(0, &items.f_flatten(0, -1)?)?.f_view_as(items)?)),
            None => Ok(None),
        }
    }

    fn penalty(&self, g: &Gathered<'_>) -> Result<Option<Tensor>> {
        if self.reg == 0.0 {
            return Ok(None);
        }
        let sq = |t: &Tensor| -> Result<Tensor> { Ok(t.f_square()?.f_sum(Kind::Float)?) };
        let total = sq(g.u)? + sq(g.i_pos)? + sq(g.i_neg)?;
        Ok(Some(total * (self.reg / g.users.numel().max(1) as f64)))
    }
}

/// HybridBPR: feature towers (and id embeddings) scored by a dot product.
pub struct HybridBpr;

impl Spec for HybridBpr {
    type Config = HybridConfig;
    type Params = Params;

    fn build(c: &HybridConfig, train: &Interactions, side: &SideInfo, device: Device) -> Result<Params> {
        let p = Params::new(c, train.n_users(), &train.item_counts(), side, device)?;
        if let (Some(bias), "log_popularity") = (&p.bias, c.item_bias_init.as_str()) {
            super::factors::set_log_popularity(bias, train)?;
        }
        Ok(p)
    }

    fn train(c: &HybridConfig, p: &Params, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let cfg = c.clone();
        let step_cfg = StepConfig {
            loss: match c.loss.as_str() {
                "softmax" => Loss::Softmax,
                "full_softmax" => Loss::FullSoftmax,
                _ => Loss::Bpr,
            },
            reduction: Reduction::Mean,
            optimizer: Optimizer::Adam,
            lr: Box::new(move |e| cfg.lr_at(e)),
            choice: c.sampler.choice(),
            n_items: train.n_items(),
            shared_negatives: c.loss == "softmax",
            log_q: None,
        };
        let mut step = TorchStep::new(p.towers(c.reg), &p.store.vs, step_cfg)?.average_last_epochs(c.average_epochs);
        if p.bias.is_some() && c.item_bias_lr != 1.0 {
            step = step.scale_lr(ITEM_BIAS, c.item_bias_lr)?;
        }
        let device = p.store.device();
        let score = |u: &[i64]| tch::no_grad(|| Self::score_block(c, p, &Tensor::from_slice(u).f_to_device(device)?));
        if c.rated_below() {
            let (positives, below) = split_ratings(train, c.min_rating)?;
            let uniform = SamplerConfig { kind: "uniform".into(), ..c.sampler.clone() };
            let source = RatedBelow::new(&positives, below, &uniform, side)?;
            ctx.run(&mut RatedBelowStep(step), &source, &score)
        } else {
            let sampler = TripleSampler::with_config(train, c.n_negatives, &c.sampler, side)?;
            ctx.run(&mut { step }, &sampler, &score)
        }
    }

    fn finish(_: &HybridConfig, p: &mut Params, _: &Interactions, _: &SideInfo) -> Result<()> {
        p.item_cache = Some(p.all_items()?);
        Ok(())
    }

    /// Each tower (a side with features, or the item-id column): an embedding table per
    /// categorical column, the continuous columns' mean and std, the dense layers; the id
    /// embeddings and the item bias. (The encoded rows and the vocabularies are side data.)
    fn param_count(c: &HybridConfig, (n_users, n_items): (usize, usize), from: SizesFrom<'_>) -> Result<u128> {
        use crate::limits::{total, values};
        let towers = match from {
            SizesFrom::Fit(train, side) => {
                let trained = train.item_counts().iter().filter(|&&n| n > 0).count();
                let item = match (side.item_features.as_deref(), c.item_id_column) {
                    (Some(t), ids) => Some(features::Columns::of_table(t, ids.then_some(trained), c.continuous_bins)),
                    (None, true) => Some(features::Columns { categorical: 1, codes: trained + 1, continuous: 0 }),
                    (None, false) => None,
                };
                [side.user_features.as_deref().map(|t| features::Columns::of_table(t, None, c.continuous_bins)), item]
            }
            SizesFrom::Saved(_) => ["user", "item"].map(|side| features::Columns::saved(side, from)),
        };
        let widths: Vec<usize> = c.hidden.iter().copied().chain([c.factors]).collect();
        let tower = |t: &features::Columns| {
            let concat = t.categorical.saturating_mul(c.embed_dim).saturating_add(t.continuous);
            total([values(&[t.codes, c.embed_dim]), values(&[2, t.continuous]), crate::nets::mlp::mlp_values(concat, &widths)])
        };
        let ids = if c.id_embeddings { values(&[n_users.saturating_add(n_items), c.factors]) } else { 0 };
        let bias = if c.item_bias { n_items as u128 } else { 0 };
        Ok(total(towers.iter().flatten().map(tower).chain([ids, bias])))
    }

    fn restore(c: &HybridConfig, (n_users, n_items): (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<Params> {
        let store = ParamStore::new(device);
        let root = store.vs.root();
        let user_f = Features::from_state(&(&root / "user"), "user", state, c)?;
        let item_f = Features::from_state(&(&root / "item"), "item", state, c)?;
        drop(root);
        for (side, f, n) in [("user", &user_f, n_users), ("item", &item_f, n_items)] {
            if let Some(f) = f {
                let rows = size_at(&f.codes, 0)?;
                if rows != n as i64 {
                    return Err(Error::state(format!("saved {side} features have {rows} rows for {n} saved ids")));
                }
            }
        }
        let mut p = Params::assemble(store, c, n_users, n_items, user_f, item_f)?;
        p.store.load(state)?;
        p.item_cache = Some(p.all_items()?);
        Ok(p)
    }

    fn score_block(_: &HybridConfig, p: &Params, users: &Tensor) -> Result<Tensor> {
        p.scores_of(&p.user.vectors(users, false)?, &p.items()?)
    }

    fn dot_factors(_: &HybridConfig, p: &Params, users: &Tensor) -> Result<Option<super::dot::DotFactors>> {
        Ok(Some(super::dot::DotFactors::new(&p.user.vectors(users, false)?, &p.items()?, p.bias.as_ref())?))
    }

    fn score_new_users(_: &HybridConfig, p: &Params, users: &FeatureTable) -> Result<Tensor> {
        let f = p.user.features.as_ref().ok_or_else(|| {
            Error::invalid("this HybridBPR was fitted without user_features, so it cannot score users from features")
        })?;
        p.scores_of(&f.embed_table(users, "user_features", false)?, &p.items()?)
    }

    fn embed_new_items(_: &HybridConfig, p: &Params, side: &SideInfo) -> Result<Tensor> {
        let f = p.item.features.as_ref().ok_or_else(|| {
            Error::invalid("this HybridBPR was fitted without item_features, so it cannot embed items from features")
        })?;
        let table = side.item_features.as_ref().ok_or_else(|| Error::invalid("embedding new items needs item_features"))?;
        f.embed_table(table, "item_features", false)
    }

    fn item_vectors(_: &HybridConfig, p: &Params) -> Result<Tensor> {
        p.items()
    }

    fn user_vectors(_: &HybridConfig, p: &Params) -> Result<Tensor> {
        let idx = Tensor::f_arange(p.n_users as i64, (Kind::Int64, p.store.device()))?;
        p.user.vectors(&idx, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::core::ModelConfig;

    #[test]
    fn item_feature_dropout_masks_whole_rows_but_the_id_column() {
        tch::manual_seed(0);
        let codes = Tensor::from_slice(&[3i64, 4, 7]).f_unsqueeze(0).unwrap().f_repeat([2000, 1]).unwrap();
        let cont = Tensor::from_slice(&[1.5f32, -2.0]).f_unsqueeze(0).unwrap().f_repeat([2000, 1]).unwrap();
        let (c, x) = mask_rows(&codes, &cont, 0.3).unwrap();
        let c = Vec::<i64>::try_from(c.f_flatten(0, -1).unwrap()).unwrap();
        let x = Vec::<f32>::try_from(x.f_flatten(0, -1).unwrap()).unwrap();
        let mut dropped = 0;
        for r in 0..2000 {
            let (row, vals) = (&c[r * 3..r * 3 + 3], &x[r * 2..r * 2 + 2]);
            assert_eq!(row[2], 7, "the id column is never masked");
            if row[0] == 0 {
                // A dropped row loses every other column, categorical and continuous.
                assert_eq!(row[1], 0);
                assert!(vals.iter().all(|v| v.is_nan()));
                dropped += 1;
            } else {
                assert_eq!((row[0], row[1]), (3, 4));
                assert_eq!(vals, &[1.5, -2.0]);
            }
        }
        assert!((450..750).contains(&dropped), "{dropped} of 2000 rows dropped at p = 0.3");
    }

    #[test]
    fn item_feature_dropout_is_checked() {
        let ok = HybridConfig { item_feature_dropout: 0.5, ..Default::default() };
        assert!(ok.validate().is_ok());
        assert!(HybridConfig { item_feature_dropout: 1.0, ..Default::default() }.validate().is_err());
        assert!(HybridConfig { item_feature_dropout: -0.1, ..Default::default() }.validate().is_err());
        assert!(HybridConfig { item_feature_dropout: 0.5, item_id_column: false, ..Default::default() }.validate().is_err());
    }

    #[test]
    fn lr_decays_linearly_and_the_new_fractions_are_checked() {
        let c = HybridConfig { common: crate::models::core::Common::new(5, 1.0, 16), lr_final: 0.2, ..Default::default() };
        assert!((c.lr_at(0) - 1.0).abs() < 1e-12 && (c.lr_at(2) - 0.6).abs() < 1e-12 && (c.lr_at(4) - 0.2).abs() < 1e-12);
        assert_eq!(HybridConfig::default().lr_at(23), HybridConfig::default().common.lr);
        for bad in [HybridConfig { lr_final: 0.0, ..Default::default() }, HybridConfig { lr_final: 1.5, ..Default::default() }, HybridConfig { item_bias_lr: -0.5, ..Default::default() }, HybridConfig { item_bias_lr: f64::NAN, ..Default::default() }] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(HybridConfig { item_bias_lr: 0.0, lr_final: 0.1, ..Default::default() }.validate().is_ok());
    }

    /// A saved config without the new fields (an older model's) reads as constant lr and a
    /// bias trained as the towers.
    #[test]
    fn old_configs_read_without_the_new_fields() {
        let mut old = serde_json::to_value(HybridConfig { factors: 16, ..Default::default() }).unwrap();
        for new in ["lr_final", "item_bias_lr"] {
            assert!(old.as_object_mut().unwrap().remove(new).is_some(), "{new}");
        }
        let c: HybridConfig = serde_json::from_value(old).unwrap();
        assert_eq!((c.lr_final, c.item_bias_lr, c.factors), (1.0, 1.0, 16));
        // `continuous_bins` changes the towers: a file without it reads as 0 (off), through
        // `checkpoint::ADDED_SINCE`, not as today's default.
    }

    #[test]
    fn continuous_bins_are_checked() {
        for ok in [0, 2, 6, 1 << 16] {
            assert!(HybridConfig { continuous_bins: ok, ..Default::default() }.validate().is_ok(), "{ok}");
        }
        for bad in [1, (1 << 16) + 1] {
            let e = HybridConfig { continuous_bins: bad, ..Default::default() }.validate().unwrap_err().to_string();
            assert!(e.contains("continuous_bins"), "{e}");
        }
    }
}
