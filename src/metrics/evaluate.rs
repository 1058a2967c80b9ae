//! Whole-data evaluation from any scoring function, in blocks of users: the one evaluation
//! loop, used by the training loop's per-epoch validation, by `fr.evaluate` on a model, and
//! by `fr.evaluate_scores` on any other library's scorer.

use std::collections::BTreeMap;

use tch::Tensor;

use super::ranking::{evaluate_block, EvalOptions};
use super::spec::Metric;
use crate::data::Interactions;
use crate::error::{Error, Result};
use crate::tensors::to_vec_f32;

/// Scores per block are kept under this many values.
pub const BLOCK_VALUES: usize = 1 << 24;

/// Held-out data to score during training.
pub struct Validation<'a> {
    /// The held-out positives.
    pub data: &'a Interactions,
    /// Items that are not candidates (the training set, at least).
    pub exclude: Vec<&'a Interactions>,
    pub metrics: Vec<Metric>,
    pub options: EvalOptions,
}

/// Per-user metric values: `values[m][r]` is metric m of `users[r]` (NaN: no positive).
pub struct PerUser {
    pub users: Vec<u32>,
    pub values: Vec<Vec<f64>>,
}

/// Metrics of each of `users` (default: every user of `test` with an interaction) scored by
/// `score` (user indices -> (users, items) f32 tensor), candidates restricted to `candidates`
/// when given. `on_block` is told the fraction done after each block (progress bars).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_users(
    score: &dyn Fn(&[i64]) -> Result<Tensor>,
    test: &Interactions,
    exclude: &[&Interactions],
    metrics: &[Metric],
    options: EvalOptions,
    users: Option<Vec<u32>>,
    candidates: Option<&[bool]>,
    on_block: &mut dyn FnMut(f64) -> Result<()>,
) -> Result<PerUser> {
    let users = users.unwrap_or_else(|| test.active_users());
    let n_items = test.n_items();
    let step = (BLOCK_VALUES / n_items.max(1)).max(1);
    let mut values = vec![Vec::with_capacity(users.len()); metrics.len()];
    for (b, block) in users.chunks(step).enumerate() {
        let idx: Vec<i64> = block.iter().map(|&u| u as i64).collect();
        let t = score(&idx)?;
        if t.size() != [block.len() as i64, n_items as i64] {
            return Err(Error::invalid(format!(
                "the scores have shape {:?}, expected [{}, {n_items}] (users x the test data's items)",
                t.size(),
                block.len()
            )));
        }
        let scores = to_vec_f32(&t)?;
        let block_values = evaluate_block(&scores, block, test, exclude, metrics, options, candidates)?;
        for (col, v) in values.iter_mut().zip(block_values) {
            col.extend(v);
        }
        on_block(((b + 1) * step).min(users.len()) as f64 / users.len().max(1) as f64)?;
    }
    Ok(PerUser { users, values })
}

/// Mean of each metric over the users with a positive.
pub fn means(metrics: &[Metric], per_user: &PerUser) -> BTreeMap<String, f64> {
    metrics
        .iter()
        .zip(&per_user.values)
        .map(|(m, v)| {
            let (sum, n) = v.iter().filter(|x| !x.is_nan()).fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
            (m.to_string(), if n > 0 { sum / n as f64 } else { f64::NAN })
        })
        .collect()
}

/// Mean of each metric over the users of `v.data` that have a positive; `score` maps user
/// indices to a (users, items) f32 tensor.
pub fn evaluate_with(score: &dyn Fn(&[i64]) -> Result<Tensor>, v: &Validation<'_>) -> Result<BTreeMap<String, f64>> {
    let per_user = evaluate_users(score, v.data, &v.exclude, &v.metrics, v.options, None, None, &mut |_| Ok(()))?;
    Ok(means(&v.metrics, &per_user))
}
