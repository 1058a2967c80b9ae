//! Whole-data evaluation from any scoring function, in blocks of users (used for the
//! per-epoch validation metrics of the training loop).

use std::collections::BTreeMap;

use tch::Tensor;

use super::ranking::{evaluate_block, EvalOptions};
use super::spec::Metric;
use crate::data::Interactions;
use crate::error::Result;
use crate::tensors::to_vec_f32;

/// Scores per block are kept under this many values.
const BLOCK_VALUES: usize = 1 << 24;

/// Held-out data to score during training.
pub struct Validation<'a> {
    /// The held-out positives.
    pub data: &'a Interactions,
    /// Items that are not candidates (the training set, at least).
    pub exclude: Vec<&'a Interactions>,
    pub metrics: Vec<Metric>,
    pub options: EvalOptions,
}

/// Mean of each metric over the users of `v.data` that have a positive; `score` maps user
/// indices to a (users, items) f32 tensor.
pub fn evaluate_with(score: &dyn Fn(&[i64]) -> Result<Tensor>, v: &Validation<'_>) -> Result<BTreeMap<String, f64>> {
    let users = v.data.active_users();
    let step = (BLOCK_VALUES / v.data.n_items().max(1)).max(1);
    let mut sums = vec![0f64; v.metrics.len()];
    let mut counts = vec![0usize; v.metrics.len()];
    for block in users.chunks(step) {
        let idx: Vec<i64> = block.iter().map(|&u| u as i64).collect();
        let scores = to_vec_f32(&score(&idx)?)?;
        let values = evaluate_block(&scores, block, v.data, &v.exclude, &v.metrics, v.options)?;
        for (m, per_user) in values.iter().enumerate() {
            for x in per_user.iter().filter(|x| !x.is_nan()) {
                sums[m] += x;
                counts[m] += 1;
            }
        }
    }
    Ok(v.metrics
        .iter()
        .enumerate()
        .map(|(m, metric)| (metric.to_string(), if counts[m] > 0 { sums[m] / counts[m] as f64 } else { f64::NAN }))
        .collect())
}
