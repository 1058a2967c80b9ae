//! Per-user accuracy metrics from a block of scores, parallel over users.
//!
//! For user u: excluded items E (e.g. the training positives) are not candidates; the
//! positives P are u's test items outside E; every other candidate is a negative. Users with
//! no positive get NaN (the caller averages over the users that have one).

#![allow(clippy::indexing_slicing, reason = "metric loops: evaluate_block and evaluate_ranked check the scores' or ranked lists' length, the restriction's length and the users' range on entry; masks hold one entry per item")]
#![allow(clippy::arithmetic_side_effects, reason = "metric loops: offsets are products of the lengths evaluate_block and evaluate_ranked check on entry (scores, ranked lists, restriction, users' range)")]

use rand::Rng as _;
use rayon::prelude::*;

use super::spec::Metric;
use super::topk::{check_scores, top_k};
use crate::data::Interactions;
use crate::error::{Error, Result};
use crate::sampling::rng::{stream_rng, streams};

#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    /// Unobserved items drawn per held-out item for `sampled_auc` (DVBPR uses 100).
    pub sampled_negatives: usize,
    pub seed: u64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { sampled_negatives: 100, seed: 0 }
    }
}

const NEGATIVE: u8 = 0;
const EXCLUDED: u8 = 1;
const POSITIVE: u8 = 2;

/// Metric values per user: `out[m][r]` is metric `metrics[m]` of user `users[r]`.
/// `scores` is row-major (users.len(), n_items).
pub fn evaluate_block(
    scores: &[f32],
    users: &[u32],
    test: &Interactions,
    exclude: &[&Interactions],
    metrics: &[Metric],
    opts: EvalOptions,
    candidates: Option<&[bool]>,
) -> Result<Vec<Vec<f64>>> {
    let n_items = test.n_items();
    if let Some(c) = candidates {
        if c.len() != n_items {
            return Err(Error::invalid(format!("the item restriction has {} entries for {n_items} items", c.len())));
        }
    }
    // Items outside the restriction (e.g. only cold items) are never candidates.
    let base: Vec<u8> = match candidates {
        Some(c) => c.iter().map(|&keep| if keep { NEGATIVE } else { EXCLUDED }).collect(),
        None => vec![NEGATIVE; n_items],
    };
    if scores.len() != users.len() * n_items {
        return Err(Error::invalid(format!(
            "score block has {} values for {} users x {n_items} items",
            scores.len(),
            users.len()
        )));
    }
    for x in exclude {
        test.check_same_ids(x, "an excluded interaction set")?;
    }
    if let Some(&u) = users.iter().find(|&&u| u as usize >= test.n_users()) {
        return Err(Error::invalid(format!("user index {u} out of range for {} users", test.n_users())));
    }
    let max_k = metrics.iter().filter_map(Metric::k).max().unwrap_or(0);
    let per_user: Vec<Vec<f64>> = users
        .par_iter()
        .enumerate()
        .map_init(
            || (base.clone(), Vec::new(), Vec::new()),
            |(mask, buf, pos_scores), (r, &u)| {
                let row = &scores[r * n_items..(r + 1) * n_items];
                let out = user_metrics(row, u, test, exclude, metrics, max_k, opts, mask, buf, pos_scores);
                mask.copy_from_slice(&base);
                out
            },
        )
        .collect::<Result<_>>()?;
    Ok((0..metrics.len()).map(|m| per_user.iter().map(|v| v[m]).collect()).collect())
}

#[allow(clippy::too_many_arguments)]
fn user_metrics(
    row: &[f32],
    u: u32,
    test: &Interactions,
    exclude: &[&Interactions],
    metrics: &[Metric],
    max_k: usize,
    opts: EvalOptions,
    mask: &mut [u8],
    buf: &mut Vec<(f32, u32)>,
    pos_scores: &mut Vec<f32>,
) -> Result<Vec<f64>> {
    check_scores(row, u)?;
    for x in exclude {
        for &i in x.user_items(u as usize) {
            mask[i as usize] = EXCLUDED;
        }
    }
    let mut n_pos = 0usize;
    for &i in test.user_items(u as usize) {
        if mask[i as usize] == NEGATIVE {
            mask[i as usize] = POSITIVE;
            n_pos += 1;
        }
    }
    if n_pos == 0 {
        return Ok(vec![f64::NAN; metrics.len()]);
    }
    let n_neg = mask.iter().filter(|&&m| m == NEGATIVE).count();

    if max_k > 0 {
        top_k(row, max_k, |i| mask[i] != EXCLUDED, buf);
    }
    let mut out = Vec::with_capacity(metrics.len());
    for m in metrics {
        let v = match *m {
            Metric::Auc => full_auc(row, mask, n_pos, n_neg, pos_scores),
            Metric::SampledAuc => sampled_auc(row, mask, u, opts),
            _ => at_k(*m, buf, n_pos, |i| mask[i as usize] == POSITIVE),
        };
        out.push(v);
    }
    Ok(out)
}

/// A cut-off metric of a ranked list `top` (best first) with `n_pos` positives, `is_pos`
/// telling which items are.
fn at_k(m: Metric, top: &[(f32, u32)], n_pos: usize, is_pos: impl Fn(u32) -> bool) -> f64 {
    let hits_at = |k: usize| top.iter().take(k).filter(|&&(_, i)| is_pos(i)).count();
    match m {
        Metric::Auc | Metric::SampledAuc => f64::NAN,
        Metric::Precision(k) => hits_at(k) as f64 / k as f64,
        Metric::Recall(k) => hits_at(k) as f64 / n_pos as f64,
        Metric::HitRate(k) => (hits_at(k) > 0) as u8 as f64,
        Metric::Ndcg(k) => {
            let dcg: f64 = top
                .iter()
                .take(k)
                .enumerate()
                .filter(|(_, &(_, i))| is_pos(i))
                .map(|(r, _)| 1.0 / ((r + 2) as f64).log2())
                .sum();
            let idcg: f64 = (0..k.min(n_pos)).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
            dcg / idcg
        }
        Metric::Map(k) => {
            let (mut hits, mut sum) = (0usize, 0f64);
            for (r, &(_, i)) in top.iter().take(k).enumerate() {
                if is_pos(i) {
                    hits += 1;
                    sum += hits as f64 / (r + 1) as f64;
                }
            }
            sum / k.min(n_pos) as f64
        }
    }
}

/// Whether every metric of `metrics` is a cut-off metric (so a top-k list is all it needs).
pub fn only_cutoffs(metrics: &[Metric]) -> bool {
    !metrics.is_empty() && metrics.iter().all(|m| m.k().is_some())
}

/// [`evaluate_block`] for cut-off metrics from each user's ranked list instead of scores:
/// `items` / `scores` row-major (users.len(), k) as [`crate::models::Recommender::rank`]
/// gives them (the best k of the candidates, excluded items left out, -1 padding), k at
/// least every metric's cut-off. The same values as [`evaluate_block`] on the scores.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_ranked(
    items: &[i64],
    scores: &[f32],
    k: usize,
    users: &[u32],
    test: &Interactions,
    exclude: &[&Interactions],
    metrics: &[Metric],
    candidates: Option<&[bool]>,
) -> Result<Vec<Vec<f64>>> {
    if items.len() != users.len() * k || scores.len() != items.len() {
        return Err(Error::invalid(format!("{} ranked items for {} users x {k}", items.len(), users.len())));
    }
    if let Some(c) = candidates.filter(|c| c.len() != test.n_items()) {
        return Err(Error::invalid(format!("the item restriction has {} entries for {} items", c.len(), test.n_items())));
    }
    for x in exclude {
        test.check_same_ids(x, "an excluded interaction set")?;
    }
    if let Some(&u) = users.iter().find(|&&u| u as usize >= test.n_users()) {
        return Err(Error::invalid(format!("user index {u} out of range for {} users", test.n_users())));
    }
    let per_user: Vec<Vec<f64>> = users
        .par_iter()
        .enumerate()
        .map_init(Vec::new, |top, (r, &u)| {
            let keep = |i: u32| candidates.is_none_or(|c| c[i as usize]) && exclude.iter().all(|x| x.user_items(u as usize).binary_search(&i).is_err());
            let pos = test.user_items(u as usize);
            let n_pos = pos.iter().filter(|&&i| keep(i)).count();
            if n_pos == 0 {
                return vec![f64::NAN; metrics.len()];
            }
            top.clear();
            top.extend((r * k..(r + 1) * k).filter(|&s| items[s] >= 0).map(|s| (scores[s], items[s] as u32)));
            metrics.iter().map(|&m| at_k(m, top, n_pos, |i| pos.binary_search(&i).is_ok())).collect()
        })
        .collect();
    Ok((0..metrics.len()).map(|m| per_user.iter().map(|v| v[m]).collect()).collect())
}

/// Probability that a random positive outscores a random negative (ties 1/2), counted
/// exactly in O(n log |P|) by binary search among the sorted positive scores.
fn full_auc(row: &[f32], mask: &[u8], n_pos: usize, n_neg: usize, pos_scores: &mut Vec<f32>) -> f64 {
    if n_neg == 0 {
        return f64::NAN;
    }
    pos_scores.clear();
    pos_scores.extend(row.iter().zip(mask).filter(|(_, &m)| m == POSITIVE).map(|(&s, _)| s));
    pos_scores.sort_unstable_by(f32::total_cmp);
    let mut wins = 0f64;
    for (&s, _) in row.iter().zip(mask).filter(|(_, &m)| m == NEGATIVE) {
        let below_or_eq = pos_scores.partition_point(|&p| p <= s);
        let below = pos_scores.partition_point(|&p| p < s);
        wins += (n_pos - below_or_eq) as f64 + 0.5 * (below_or_eq - below) as f64;
    }
    wins / (n_pos as f64 * n_neg as f64)
}

/// DVBPR's AUC: each positive against `sampled_negatives` unobserved items drawn uniformly
/// (with replacement) from the user's own seeded stream.
fn sampled_auc(row: &[f32], mask: &[u8], u: u32, opts: EvalOptions) -> f64 {
    let unobserved = mask.iter().filter(|&&m| m == NEGATIVE).count();
    if unobserved == 0 || opts.sampled_negatives == 0 {
        return f64::NAN;
    }
    let mut rng = stream_rng(opts.seed, streams::EVAL, u as u64);
    let negs: Vec<f32> = (0..opts.sampled_negatives)
        .map(|_| loop {
            let j = rng.random_range(0..row.len());
            if mask[j] == NEGATIVE {
                break row[j];
            }
        })
        .collect();
    let (mut total, mut n) = (0f64, 0usize);
    for (&s, _) in row.iter().zip(mask).filter(|(_, &m)| m == POSITIVE) {
        for &t in &negs {
            total += if s > t { 1.0 } else if s == t { 0.5 } else { 0.0 };
        }
        n += negs.len();
    }
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Columns, Duplicates};

    fn inter(users: &[i64], items: &[i64], n_users: usize, n_items: usize) -> Interactions {
        Interactions::from_indices(users, items, None, Some(n_users), Some(n_items), Duplicates::Sum, Columns::default())
            .unwrap()
    }

    #[test]
    fn hand_computed_user() {
        // 6 items; train has item 0; test positives 2 and 4.
        let train = inter(&[0], &[0], 1, 6);
        let test = Interactions::from_csr(
            crate::data::Csr { indptr: vec![0, 2], indices: vec![2, 4], values: None },
            train.ids().clone(),
        )
        .unwrap();
        // ranking of candidates (item 0 excluded): 1 (0.9), 2 (0.8), 3 (0.7), 4 (0.6), 5 (0.1)
        let scores = [5.0, 0.9, 0.8, 0.7, 0.6, 0.1];
        let metrics: Vec<Metric> =
            ["auc", "precision@2", "recall@2", "ndcg@3", "map@3", "hitrate@1"].iter().map(|s| s.parse().unwrap()).collect();
        let out = evaluate_block(&scores, &[0], &test, &[&train], &metrics, EvalOptions::default(), None).unwrap();
        let v: Vec<f64> = out.iter().map(|m| m[0]).collect();
        // AUC: negatives 1, 3, 5. pos 2 beats 3 and 5; pos 4 beats 5 -> 3 of 6.
        assert!((v[0] - 0.5).abs() < 1e-12);
        assert!((v[1] - 0.5).abs() < 1e-12); // top2 = {1, 2}: one hit
        assert!((v[2] - 0.5).abs() < 1e-12);
        let ndcg = (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((v[3] - ndcg).abs() < 1e-12);
        assert!((v[4] - 0.5 / 2.0).abs() < 1e-12); // one hit at rank 2: (1/2) / min(2, 3)
        assert_eq!(v[5], 0.0);
    }

    #[test]
    fn ties_count_half_and_empty_users_are_nan() {
        let test = inter(&[0, 0], &[0, 1], 2, 3);
        let scores = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        let out = evaluate_block(&scores, &[0, 1], &test, &[], &[Metric::Auc, Metric::SampledAuc], EvalOptions::default(), None)
            .unwrap();
        assert_eq!(out[0][0], 0.5);
        assert_eq!(out[1][0], 0.5);
        assert!(out[0][1].is_nan());
    }

    #[test]
    fn auc_matches_brute_force() {
        let n = 200;
        let mut rng = stream_rng(3, 0, 0);
        let scores: Vec<f32> = (0..n).map(|_| (rng.random_range(0..50) as f32) / 10.0).collect();
        let pos: Vec<i64> = (0..n as i64).filter(|i| i % 7 == 0).collect();
        let test = inter(&vec![0; pos.len()], &pos, 1, n);
        let out = evaluate_block(&scores, &[0], &test, &[], &[Metric::Auc], EvalOptions::default(), None).unwrap();
        let (mut w, mut c) = (0.0, 0.0);
        for &p in &pos {
            for j in 0..n {
                if j % 7 != 0 {
                    let (a, b) = (scores[p as usize], scores[j]);
                    w += if a > b { 1.0 } else if a == b { 0.5 } else { 0.0 };
                    c += 1.0;
                }
            }
        }
        assert!((out[0][0] - w / c).abs() < 1e-12);
    }

    #[test]
    fn ranked_lists_give_the_values_of_the_scores() {
        let (n_users, n_items) = (40, 300);
        let mut rng = stream_rng(5, 0, 0);
        // Coarse scores: many ties, decided by the item index in both paths.
        let scores: Vec<f32> = (0..n_users * n_items).map(|_| rng.random_range(0..20) as f32).collect();
        fn pick(rng: &mut impl rand::Rng, n: usize, n_users: usize, n_items: usize) -> (Vec<i64>, Vec<i64>) {
            (0..n).map(|_| (rng.random_range(0..n_users as i64), rng.random_range(0..n_items as i64))).unzip()
        }
        let (tu, ti) = pick(&mut rng, 2000, n_users, n_items);
        let (xu, xi) = pick(&mut rng, 3000, n_users, n_items);
        let test = inter(&tu, &ti, n_users, n_items);
        let train = inter(&xu, &xi, n_users, n_items);
        let cands: Vec<bool> = (0..n_items).map(|i| i % 7 != 3).collect();
        let metrics: Vec<Metric> = ["ndcg@10", "precision@5", "recall@20", "map@10", "hitrate@3"].iter().map(|s| s.parse().unwrap()).collect();
        let users: Vec<u32> = (0..n_users as u32).collect();
        for c in [None, Some(cands.as_slice())] {
            let want = evaluate_block(&scores, &users, &test, &[&train], &metrics, EvalOptions::default(), c).unwrap();
            let (items, best) = crate::metrics::top_k_block(&scores, n_items, &users, 20, Some(&train), c).unwrap();
            let got = evaluate_ranked(&items, &best, 20, &users, &test, &[&train], &metrics, c).unwrap();
            for (a, b) in want.iter().zip(&got) {
                for (x, y) in a.iter().zip(b) {
                    assert!(x.to_bits() == y.to_bits(), "{x} {y}");
                }
            }
        }
    }

    #[test]
    fn nan_scores_are_an_error() {
        let test = inter(&[0], &[0], 1, 2);
        let e = evaluate_block(&[f32::NAN, 0.0], &[0], &test, &[], &[Metric::Auc], EvalOptions::default(), None).unwrap_err();
        assert!(e.to_string().contains("NaN"));
    }
}
