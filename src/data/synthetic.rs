//! A seeded synthetic implicit-feedback data set, so the demo and the tests run with no
//! download. Users and items get latent taste vectors plus a long-tailed item popularity;
//! each user picks items by the Gumbel-top-k trick on `taste . item + popularity`, which is
//! sampling without replacement in proportion to exp(logit).

use rand::Rng as _;
use rand_distr::{Distribution, Gumbel, LogNormal, StandardNormal};
use rayon::prelude::*;

use super::idmap::IdMap;
use super::interactions::{Csr, IdMaps, Interactions};
use crate::error::{Error, Result};
use crate::sampling::rng::{stream_rng, streams};

#[derive(Debug, Clone)]
pub struct SyntheticConfig {
    pub n_users: usize,
    pub n_items: usize,
    /// Mean interactions per user (log-normally spread, at least 5).
    pub mean_items_per_user: f64,
    /// Dimension of the hidden tastes.
    pub factors: usize,
    /// Weight of taste against popularity in the choice logits.
    pub taste: f64,
    /// Popularity logit of the item of popularity rank r is -popularity * ln(r + 1).
    pub popularity: f64,
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            n_users: 2000,
            n_items: 1500,
            mean_items_per_user: 30.0,
            factors: 8,
            taste: 3.0,
            popularity: 0.7,
            seed: 0,
        }
    }
}

pub fn synthetic(cfg: &SyntheticConfig) -> Result<Interactions> {
    if cfg.n_users == 0 || cfg.n_items < 10 || cfg.factors == 0 {
        return Err(Error::invalid("synthetic data needs n_users >= 1, n_items >= 10 and factors >= 1"));
    }
    if cfg.mean_items_per_user.is_nan() || cfg.mean_items_per_user < 1.0 || !cfg.taste.is_finite() || !cfg.popularity.is_finite() {
        return Err(Error::invalid("synthetic data needs mean_items_per_user >= 1 and finite weights"));
    }
    if cfg.n_users > u32::MAX as usize || cfg.n_items > u32::MAX as usize {
        return Err(Error::invalid("synthetic data needs n_users and n_items below 2^32 (32-bit indices)"));
    }
    let d = cfg.factors;
    // Before anything is drawn: the item vectors, and each user's row (at least 5 items).
    let what = format!("synthetic data with n_items={} and factors={d}", cfg.n_items);
    crate::limits::bytes_for(&what, crate::limits::mul(&what, cfg.n_items, d)?, std::mem::size_of::<f64>())?;
    let per_user = std::mem::size_of::<(Vec<u32>, [u32; 5], usize)>();
    crate::limits::bytes_for(&format!("synthetic data with n_users={}", cfg.n_users), cfg.n_users, per_user)?;
    let scale = cfg.taste / (d as f64).sqrt();
    let mut rng = stream_rng(cfg.seed, streams::SYNTHETIC, u64::MAX);
    let item_vecs: Vec<f64> = (0..cfg.n_items.saturating_mul(d)).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
    // Popularity ranks are a random permutation, so item index says nothing about popularity.
    let mut rank: Vec<usize> = (0..cfg.n_items).collect();
    rand::seq::SliceRandom::shuffle(&mut rank[..], &mut rng);
    let pop: Vec<f64> = rank.iter().map(|&r| -cfg.popularity * (r as f64 + 1.0).ln()).collect();

    let sigma = 0.6f64;
    let mu = cfg.mean_items_per_user.ln() - sigma * sigma / 2.0;
    let counts = LogNormal::new(mu, sigma).map_err(|e| Error::invalid(e.to_string()))?;
    let max_items = (cfg.n_items / 2).max(5);
    let gumbel = Gumbel::new(0.0, 1.0).map_err(|e| Error::state(format!("Gumbel(0, 1): {e}")))?;
    let rows: Vec<Vec<u32>> = (0..cfg.n_users)
        .into_par_iter()
        .map(|u| {
            let mut rng = stream_rng(cfg.seed, streams::SYNTHETIC, u as u64);
            let taste: Vec<f64> = (0..d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
            let m = (counts.sample(&mut rng).round() as usize).clamp(5, max_items);
            let mut keyed: Vec<(f64, u32)> = item_vecs
                .chunks_exact(d)
                .zip(&pop)
                .zip(0u32..)
                .map(|((v, p), i)| {
                    let dot: f64 = taste.iter().zip(v).map(|(a, b)| a * b).sum();
                    (scale * dot + p + gumbel.sample(&mut rng), i)
                })
                .collect();
            keyed.select_nth_unstable_by(m.saturating_sub(1), |a, b| b.0.total_cmp(&a.0));
            let mut items: Vec<u32> = keyed.iter().take(m).map(|&(_, i)| i).collect();
            items.sort_unstable();
            items
        })
        .collect();
    let mut indptr = Vec::with_capacity(cfg.n_users.saturating_add(1));
    indptr.push(0);
    let mut indices = Vec::new();
    for r in rows {
        indices.extend_from_slice(&r);
        indptr.push(indices.len());
    }
    Interactions::from_csr(
        Csr { indptr, indices, values: None },
        IdMaps::new(IdMap::Range(cfg.n_users), IdMap::Range(cfg.n_items)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_shaped() {
        let cfg = SyntheticConfig { n_users: 100, n_items: 200, ..Default::default() };
        let a = synthetic(&cfg).unwrap();
        let b = synthetic(&cfg).unwrap();
        assert_eq!(a.by_user(), b.by_user());
        assert_eq!((a.n_users(), a.n_items()), (100, 200));
        assert!((0..100).all(|u| a.user_items(u).len() >= 5));
        let c = synthetic(&SyntheticConfig { seed: 1, ..cfg }).unwrap();
        assert_ne!(a.by_user(), c.by_user());
    }
}
