//! Whole-data evaluation from any scoring function, in blocks of users: the one evaluation
//! loop, used by the training loop's per-epoch validation, by `fr.evaluate` on a model, and
//! by `fr.evaluate_scores` on any other library's scorer.

use std::collections::BTreeMap;

use tch::Tensor;

use super::ranking::{evaluate_block, evaluate_ranked, only_cutoffs, EvalOptions};
use super::topk::Keep;
use super::spec::Metric;
use crate::data::Interactions;
use crate::error::{Error, Result};
use crate::tensors::to_vec_f32;

/// Scores per block are kept under this many values.
pub const BLOCK_VALUES: usize = 1 << 24;

/// Users per block when a model ranks without the scores ([`Rank`]): only (users, k) is kept.
const RANKED_BLOCK: usize = 8192;

/// A model's top-k without its scores (`Recommender::rank`): the best `k` of each user's items
/// that `keep(row, item)` allows; Ok(None) when the model cannot.
pub type Rank<'a> = dyn Fn(&[i64], usize, &Keep<'_>) -> Result<Option<(Vec<i64>, Vec<f32>)>> + Sync + 'a;

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
/// when given. `on_block` is told the fraction done after each block (progress bars). With
/// `rank` and only cut-off metrics (ndcg@k, ...), each block is ranked by `rank` instead of
/// scored (when the model can), with the same results.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_users(
    score: &dyn Fn(&[i64]) -> Result<Tensor>,
    rank: Option<&Rank<'_>>,
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
    if let (Some(rank), true) = (rank, only_cutoffs(metrics)) {
        if let Some(out) = evaluate_ranked_users(rank, test, exclude, metrics, &users, candidates, on_block)? {
            return Ok(PerUser { users, values: out });
        }
    }
    let step = BLOCK_VALUES.checked_div(n_items).unwrap_or(BLOCK_VALUES).max(1);
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
        on_block(b.saturating_add(1).saturating_mul(step).min(users.len()) as f64 / users.len().max(1) as f64)?;
    }
    Ok(PerUser { users, values })
}

/// [`evaluate_users`] through `rank`; None when the model cannot rank (nothing done then).
fn evaluate_ranked_users(
    rank: &Rank<'_>,
    test: &Interactions,
    exclude: &[&Interactions],
    metrics: &[Metric],
    users: &[u32],
    candidates: Option<&[bool]>,
    on_block: &mut dyn FnMut(f64) -> Result<()>,
) -> Result<Option<Vec<Vec<f64>>>> {
    let n_items = test.n_items();
    if let Some(c) = candidates {
        if c.len() != n_items {
            return Err(Error::invalid(format!("the item restriction has {} entries for {n_items} items", c.len())));
        }
    }
    for x in exclude {
        test.check_same_ids(x, "an excluded interaction set")?;
    }
    if let Some(&u) = users.iter().find(|&&u| u as usize >= test.n_users()) {
        return Err(Error::invalid(format!("user index {u} out of range for {} users", test.n_users())));
    }
    let k = metrics.iter().filter_map(Metric::k).max().unwrap_or(0).min(n_items);
    let mut values = vec![Vec::with_capacity(users.len()); metrics.len()];
    for (b, block) in users.chunks(RANKED_BLOCK).enumerate() {
        let idx: Vec<i64> = block.iter().map(|&u| u as i64).collect();
        let keep = |r: usize, i: u32| {
            (i as usize) < n_items
                && candidates.is_none_or(|c| c.get(i as usize) == Some(&true))
                && block.get(r).is_some_and(|&u| exclude.iter().all(|x| x.user_items(u as usize).binary_search(&i).is_err()))
        };
        let Some((items, scores)) = rank(&idx, k, &keep)? else {
            return Ok(None);
        };
        if block.len().checked_mul(k) != Some(items.len()) {
            return Err(Error::invalid(format!("the model ranked {} items for {} users x {k} (its items are not the test data's?)", items.len(), block.len())));
        }
        let block_values = evaluate_ranked(&items, &scores, k, block, test, exclude, metrics, candidates)?;
        for (col, v) in values.iter_mut().zip(block_values) {
            col.extend(v);
        }
        on_block(b.saturating_add(1).saturating_mul(RANKED_BLOCK).min(users.len()) as f64 / users.len().max(1) as f64)?;
    }
    Ok(Some(values))
}

/// Mean of each metric over the users with a positive.
pub fn means(metrics: &[Metric], per_user: &PerUser) -> BTreeMap<String, f64> {
    metrics
        .iter()
        .zip(&per_user.values)
        .map(|(m, v)| {
            let (sum, n) = v.iter().filter(|x| !x.is_nan()).fold((0.0, 0usize), |(s, n), x| (s + x, n.saturating_add(1)));
            (m.to_string(), if n > 0 { sum / n as f64 } else { f64::NAN })
        })
        .collect()
}

/// Mean of each metric over the users of `v.data` that have a positive; `score` maps user
/// indices to a (users, items) f32 tensor.
pub fn evaluate_with(score: &dyn Fn(&[i64]) -> Result<Tensor>, v: &Validation<'_>) -> Result<BTreeMap<String, f64>> {
    let per_user = evaluate_users(score, None, v.data, &v.exclude, &v.metrics, v.options, None, None, &mut |_| Ok(()))?;
    Ok(means(&v.metrics, &per_user))
}
