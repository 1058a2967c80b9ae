//! Sampled softmax (the ASOS workshop model): user and item embeddings with an item bias;
//! each positive (user, item) is scored against N sampled negatives and trained with the
//! cross-entropy of the positive, first among the 1 + N logits.
//!
//! * Negatives are drawn from a proposal q (uniform, popularity^exponent, or log-uniform over
//!   popularity ranks), once per batch and shared by every row (a (B, d) x (d, N) product, the
//!   fast path on any device) or per row. A negative equal to the row's positive (an
//!   accidental hit) is masked out.
//! * With `logq_correction`, every logit has ln q(item) subtracted, so the sampled loss
//!   estimates the full softmax's (Bengio & Senecal 2008; Yi et al. 2019). Under a uniform q
//!   it is a constant and changes nothing.
//! * The update is the row-sparse Adam of `train::sparse_adam` (TF's lazy form, which is
//!   torch.optim.SparseAdam's): only the rows a batch touches move, and their
//!   moments; the per-batch cost is O((B + N) d + B N) whatever the catalogue size.
//! * The item bias starts at ln(1 + training count): the full-softmax optimum when the
//!   embeddings carry nothing, so a model starts from popularity and learns what users add.
//! * Users are a free embedding each (the workshop model) or, with `users = "item_average"`,
//!   the mean of a second ("context") embedding of the items in their training history, the
//!   positive left out (FISM, Kabbur et al. 2013). On very sparse data (ASOS: 3.8 rows a
//!   user) a free user vector is fitted to one or two items; the average shares what every
//!   user of an item taught it. The user table then holds the averages over the whole
//!   history, refreshed at each end of epoch, so scoring, recommending and saving are as for
//!   free embeddings.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

mod step;
#[cfg(test)]
mod tests;

pub use self::step::{ItemAverage, Proposal, SoftmaxStep};
use super::core::{Common, FitCtx, ModelConfig, SizesFrom, Spec};
use super::factors::Factors;
use crate::data::{Interactions, SideInfo};
use crate::error::{Error, Result};
use crate::sampling::{SamplerConfig, TripleSampler};
use crate::train::FitReport;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SampledSoftmaxConfig {
    /// Embedding dimension.
    pub factors: usize,
    /// "embedding" (a free vector per user) or "item_average" (the mean of the history's
    /// context embeddings).
    pub users: String,
    /// Negatives per positive (shared by the batch's rows, or per row).
    pub n_negatives: usize,
    /// Proposal of the negatives: "uniform", "popularity" ((count + 1)^exponent, the
    /// sampler's `exponent`) or "log_uniform" (Zipf over popularity ranks, as TensorFlow's
    /// log-uniform candidate sampler).
    pub sampler: SamplerConfig,
    /// Subtract ln q(item) from every logit.
    pub logq_correction: bool,
    /// A learnt per-item bias.
    pub item_bias: bool,
    /// One draw of negatives per batch, shared by its rows (else one per row).
    pub shared_negatives: bool,
    /// epochs, lr (row-sparse Adam), batch_size (positives per step), seed, threads
    /// (sampling), device.
    #[serde(flatten)]
    pub common: Common,
    /// L2 weight on the user and positive-item rows of each sample.
    pub reg: f64,
    /// Standard deviation of the initial embeddings.
    pub init_std: f64,
}

impl Default for SampledSoftmaxConfig {
    fn default() -> Self {
        SampledSoftmaxConfig {
            factors: 64,
            users: "item_average".into(),
            n_negatives: 100,
            // Chosen on a split carved from the ASOS train parquet (benches/tune_sampled_softmax.py).
            sampler: SamplerConfig { kind: "popularity".into(), exponent: 0.75, ..SamplerConfig::default() },
            logq_correction: true,
            item_bias: true,
            shared_negatives: true,
            common: Common::new(5, 0.003, 1024),
            reg: 0.0,
            init_std: 0.01,
        }
    }
}

impl ModelConfig for SampledSoftmaxConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        super::bpr::check_counts(&[("factors", self.factors), ("n_negatives", self.n_negatives)])?;
        if self.n_negatives > 1 << 20 {
            return bad(format!("n_negatives must be at most 2^20, got {}", self.n_negatives));
        }
        super::bpr::check_weights(&[("init_std", self.init_std, true), ("reg", self.reg, false)])?;
        if !["embedding", "item_average"].contains(&self.users.as_str()) {
            return bad(format!("users must be 'embedding' or 'item_average', not {:?}", self.users));
        }
        self.sampler.validate_kinds(&["uniform", "popularity", "log_uniform"])?;
        Ok(())
    }

    fn common(&self) -> Option<&Common> {
        Some(&self.common)
    }
}

/// Starting parameters: N(0, init_std^2) embeddings, bias ln(1 + count) (or 0 without bias).
pub fn initial_factors(train: &Interactions, cfg: &SampledSoftmaxConfig, device: Device) -> Result<Factors> {
    let f = Factors::random(train.n_users(), train.n_items(), cfg.factors, cfg.init_std, cfg.common.seed, device)?;
    if cfg.item_bias {
        super::factors::set_log_popularity(&f.item_bias, train)?;
    }
    Ok(f)
}


/// SampledSoftmax: factors trained by the sampled softmax and a row-sparse Adam.
pub struct SampledSoftmax;

impl Spec for SampledSoftmax {
    type Config = SampledSoftmaxConfig;
    type Params = Factors;

    fn build(c: &SampledSoftmaxConfig, train: &Interactions, _: &SideInfo, device: Device) -> Result<Factors> {
        initial_factors(train, c, device)
    }

    fn train(c: &SampledSoftmaxConfig, params: &Factors, train: &Interactions, _: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let device = params.device();
        // Positives only: the step draws the negatives (one uniform negative per positive is
        // drawn by the sampler and unused).
        let sampler = TripleSampler::new(train, 1)?;
        let proposal = Proposal::new(&c.sampler.kind, c.sampler.exponent, &train.item_counts(), device)?;
        let average = if c.users == "item_average" {
            // Drawn like the item factors (seeded, independent of the device).
            let ctx = Factors::random(1, train.n_items(), c.factors, c.init_std, c.common.seed ^ 0x5eed_c0de, device)?;
            Some(ItemAverage { train, context: ctx.items.detach() })
        } else {
            None
        };
        if let Some(a) = &average {
            // Validation before the first end of epoch never happens, but scoring a model
            // fitted for 0 steps must not see the random user table.
            a.write_users(&params.users)?;
        }
        let mut step = SoftmaxStep::new(params, c, proposal, average)?;
        ctx.run(&mut step, &sampler, &|u| params.score_block(&Tensor::from_slice(u).f_to_device(device)?))
    }

    fn param_count(c: &SampledSoftmaxConfig, (n_users, n_items): (usize, usize), _: SizesFrom<'_>) -> Result<u128> {
        Ok(super::factors::factor_values(n_users, n_items, c.factors))
    }

    fn restore(c: &SampledSoftmaxConfig, shape: (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<Factors> {
        Factors::from_state(state, shape, c.factors, device)
    }

    fn score_block(_: &SampledSoftmaxConfig, p: &Factors, users: &Tensor) -> Result<Tensor> {
        p.score_block(users)
    }

    fn dot_factors(_: &SampledSoftmaxConfig, p: &Factors, users: &Tensor) -> Result<Option<super::dot::DotFactors>> {
        Ok(Some(super::dot::DotFactors::of_factors(p, users)?))
    }

    fn item_vectors(_: &SampledSoftmaxConfig, p: &Factors) -> Result<Tensor> {
        Ok(p.items.shallow_clone())
    }

    fn user_vectors(_: &SampledSoftmaxConfig, p: &Factors) -> Result<Tensor> {
        Ok(p.users.shallow_clone())
    }
}
