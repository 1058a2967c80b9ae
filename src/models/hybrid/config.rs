//! HybridBPR's settings: towers, loss, negatives, the item bias and its start, averaging.

use serde::{Deserialize, Serialize};

use crate::data::{Need, SideNeeds};
use crate::error::{Error, Result};
use crate::models::core::{Common, ModelConfig};
use crate::sampling::SamplerConfig;

/// `sampler=` of the negatives a user rated below `min_rating`.
const RATED_BELOW: &str = "rated_below";

/// The most quantile buckets `continuous_bins` cuts a column into.
const MAX_BINS: usize = 1 << 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HybridConfig {
    /// Latent dimension (the towers' output).
    pub factors: usize,
    /// Width of each categorical column's embedding.
    pub embed_dim: usize,
    /// Hidden dense layers of both towers.
    pub hidden: Vec<usize>,
    pub dropout: f64,
    /// A per-id embedding added to the feature tower for users and items seen in training.
    pub id_embeddings: bool,
    /// The item id as one more categorical column of the item tower (embedded and through
    /// its dense layers with the item features; the item tower alone without item features),
    /// for items with a training interaction; cold items get the unknown code.
    pub item_id_column: bool,
    /// With `item_id_column`: the probability that a training row of the item tower has its
    /// other columns masked (categorical ones to the unknown code, continuous ones to their
    /// mean), so the id column learns to carry the item alone and the features add to it.
    /// Never while scoring.
    pub item_feature_dropout: f64,
    /// A learnt per-item bias.
    pub item_bias: bool,
    /// Its start: "zero", or "log_popularity" (ln(1 + training count): the full softmax's
    /// optimum when the towers carry nothing, so training starts from popularity).
    pub item_bias_init: String,
    /// "bpr" (one negative per positive), "softmax" (cross-entropy of the positive among
    /// `n_negatives` negatives shared by the batch) or "full_softmax" (among every item).
    pub loss: String,
    /// Negatives per positive ("softmax": the batch's shared negatives).
    pub n_negatives: usize,
    /// sampler="rated_below": ratings >= `min_rating` are the positives.
    pub min_rating: f64,
    /// Which negatives: a pairwise sampler (`crate::sampling::negatives`), or "rated_below"
    /// (one of the user's items rated < `min_rating`; uniform for users without one).
    pub sampler: SamplerConfig,
    /// L2 weight on the user and item vectors of each batch (mean over the batch); 0.01 by
    /// default (chosen on the warm users of `benches/hybrid_cold_users.py`).
    pub reg: f64,
    /// The parameters returned are the mean of those after each step of the last
    /// `average_epochs` epochs (0: the last step's); 12 of 24 epochs at batch 4096 by default
    /// (chosen on the warm users of `benches/hybrid_cold_users.py`).
    pub average_epochs: usize,
    /// The learning rate at the last epoch as a fraction of `lr`: it falls linearly over the
    /// epochs from `lr` to `lr * lr_final` (as BPR's; 1: constant).
    pub lr_final: f64,
    /// The item bias's learning rate as a fraction of the towers' (0: frozen at its start,
    /// e.g. log-popularity; 1: as the towers).
    pub item_bias_lr: f64,
    /// Each continuous column also as a categorical column of its bucket among this many
    /// quantile buckets of the fit's rows (the edges saved with the model, as the mean and
    /// std), embedded as the other categorical columns: an effect of the value that is not
    /// monotone (e.g. of age) gets an embedding per bucket. A column of two distinct values
    /// or fewer (a 0/1 flag) gets none. 0: off; 4 by default (chosen on the warm users of
    /// `benches/hybrid_cold_users.py`; saved models from before it read as 0).
    pub continuous_bins: usize,
    /// epochs, lr (Adam), batch_size, seed, threads (sampling), device.
    #[serde(flatten)]
    pub common: Common,
}

impl Default for HybridConfig {
    fn default() -> Self {
        HybridConfig {
            factors: 32,
            embed_dim: 32,
            hidden: vec![64, 32],
            dropout: 0.0,
            id_embeddings: false,
            item_id_column: true,
            item_feature_dropout: 0.0,
            item_bias: true,
            item_bias_init: "log_popularity".into(),
            loss: "full_softmax".into(),
            n_negatives: 1,
            min_rating: 4.0,
            sampler: SamplerConfig::default(),
            common: Common::new(24, 0.001, 4096),
            reg: 0.01,
            average_epochs: 12,
            lr_final: 1.0,
            item_bias_lr: 1.0,
            continuous_bins: 4,
        }
    }
}

impl ModelConfig for HybridConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        if self.factors == 0 || self.embed_dim == 0 || self.hidden.contains(&0) {
            return bad(format!("factors, embed_dim and hidden widths must be >= 1 (got {}, {}, {:?})", self.factors, self.embed_dim, self.hidden));
        }
        crate::models::bpr::check_fractions(&[("dropout", self.dropout), ("item_feature_dropout", self.item_feature_dropout)])?;
        if self.item_feature_dropout > 0.0 && !self.item_id_column {
            return bad("item_feature_dropout masks the item features beside the item-id column: it needs item_id_column=True".into());
        }
        if !["bpr", "softmax", "full_softmax"].contains(&self.loss.as_str()) {
            return bad(format!("loss must be 'bpr', 'softmax' or 'full_softmax', not {:?}", self.loss));
        }
        if !["zero", "log_popularity"].contains(&self.item_bias_init.as_str()) {
            return bad(format!("item_bias_init must be 'zero' or 'log_popularity', not {:?}", self.item_bias_init));
        }
        if self.n_negatives == 0 || self.n_negatives > crate::sampling::negatives::MAX_CANDIDATES {
            return bad(format!("n_negatives must be in 1..={}, got {}", crate::sampling::negatives::MAX_CANDIDATES, self.n_negatives));
        }
        if self.loss != "softmax" && self.n_negatives != 1 {
            return bad(format!("loss={:?} trains on one negative per positive (or on every item): set n_negatives=1 or loss='softmax'", self.loss));
        }
        if self.rated_below() && self.loss != "bpr" {
            return bad("sampler='rated_below' works with loss='bpr'".into());
        }
        crate::models::bpr::check_weights(&[("reg", self.reg, false)])?;
        if !(self.lr_final > 0.0 && self.lr_final <= 1.0) {
            return bad(format!("lr_final must be in (0, 1], got {}", self.lr_final));
        }
        if !(self.item_bias_lr.is_finite() && self.item_bias_lr >= 0.0) {
            return bad(format!("item_bias_lr must be a finite number >= 0, got {}", self.item_bias_lr));
        }
        if self.continuous_bins == 1 || self.continuous_bins > MAX_BINS {
            return bad(format!("continuous_bins must be 0 (off) or in 2..={MAX_BINS}, got {}", self.continuous_bins));
        }
        if !self.min_rating.is_finite() {
            return bad(format!("min_rating must be finite, got {}", self.min_rating));
        }
        self.sampler.validate_kinds(&[crate::sampling::negatives::SAMPLERS, &[RATED_BELOW]].concat())
    }

    fn needs(&self) -> SideNeeds {
        // Features are optional with id embeddings (each side needs one or the other; fit says
        // which is missing); the cosine sampler reads the item features too.
        // With the item-id column the item tower needs no item features either.
        let features = if self.id_embeddings { Need::Optional } else { Need::Required };
        let items = if self.item_id_column { Need::Optional } else { features };
        SideNeeds {
            user_features: features,
            item_features: if self.sampler.needs_item_features() { Need::Required } else { items },
            categories: if self.sampler.needs_categories() { Need::Required } else { Need::Unused },
            categorical_features: true,
            ..Default::default()
        }
    }

    fn common(&self) -> Option<&Common> {
        Some(&self.common)
    }
}

impl HybridConfig {
    /// Learning rate of 0-based `epoch`: linear from `lr` to `lr * lr_final`.
    pub(super) fn lr_at(&self, epoch: usize) -> f64 {
        let epochs = self.common.epochs;
        let t = if epochs > 1 { epoch as f64 / epochs.saturating_sub(1) as f64 } else { 0.0 };
        self.common.lr * (1.0 - t * (1.0 - self.lr_final))
    }

    /// Negatives from the user's low ratings.
    pub(super) fn rated_below(&self) -> bool {
        self.sampler.kind == RATED_BELOW
    }
}
