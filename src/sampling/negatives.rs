//! Which negatives a pairwise model trains on: `sampler=` of every pairwise model.
//!
//! The sampler stays model-free, seeded and parallel: it draws candidates from a fixed
//! distribution (uniform, popularity, same category) and, for `"cosine"`, keeps the candidate
//! most similar to the positive by item features. The model-aware choices (`"warp"`,
//! `"best_of_n"`) need the current model's scores: the batch then carries every candidate and
//! the model's step picks among them on its device ([`Choice`]).

#![allow(clippy::indexing_slicing, reason = "sampling kernels: every draw is below its table's length (below), Distribution::categories checks one category per item, AliasTable::new sizes both tables by the weights")]
#![allow(clippy::arithmetic_side_effects, reason = "sampling kernels: draws are below their table's length, category ids below the number of categories (one per item, checked by Distribution::categories), tries below MAX_CANDIDATES")]

use serde::{Deserialize, Serialize};

use super::rng::{below, Rng};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplerConfig {
    /// "uniform", "popularity", "category", "cosine", "warp" or "best_of_n".
    pub kind: String,
    /// popularity: an item is drawn with weight count^exponent (0 = uniform over seen items).
    pub exponent: f64,
    /// cosine, best_of_n: candidates per negative.
    pub n_candidates: usize,
    /// warp: candidates drawn per negative before giving up on the sample (LightFM's name).
    pub max_sampled: usize,
    /// warp: a candidate j violates when score(u, j) > score(u, i) - margin.
    pub margin: f64,
    /// category: draws from the positive's category before falling back to uniform.
    pub tries: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            kind: "uniform".into(),
            exponent: 0.75,
            n_candidates: 10,
            max_sampled: 10,
            margin: 1.0,
            tries: 10,
        }
    }
}

pub const SAMPLERS: &[&str] = &["uniform", "popularity", "category", "cosine", "warp", "best_of_n"];

/// How the step turns a slot's candidates into the negative it trains on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Choice {
    /// One candidate per slot: train on it.
    Single,
    /// The highest-scoring candidate under the current model.
    BestOfN,
    /// The first candidate that violates the margin; the loss is weighted by
    /// ln(floor((n_items - 1) / tries)) ([`warp_weight`]), and a sample with no violator is
    /// skipped.
    Warp { margin: f32 },
}

/// WARP's rank weight for a violator found at draw `tries`: ln(floor((n_items - 1) / tries)),
/// divided by its largest value ln(n_items - 1) so a violator found at once weighs 1 (the
/// plain BPR step) and easier ones less. Unnormalised, the weight multiplies the learning
/// rate by up to ln(n_items) (7.4 on MovieLens), which diverges at BPR's learning rates.
/// The one definition: the native BPR kernel calls it per sample, `TorchStep` looks it up
/// in a table of it by tries.
pub fn warp_weight(n_items: usize, tries: usize) -> f32 {
    let top = (n_items.saturating_sub(1).max(2) as f32).ln();
    let rank = (n_items.saturating_sub(1) / tries.max(1)).max(1);
    (rank as f32).ln() / top
}

impl SamplerConfig {
    /// Checks the options, with `kind` one of the pairwise samplers ([`SAMPLERS`]).
    pub fn validate(&self) -> Result<()> {
        self.validate_kinds(SAMPLERS)
    }

    /// Checks the options, with `kind` one of `kinds` (a model that takes only some samplers,
    /// or one of its own as well).
    pub fn validate_kinds(&self, kinds: &[&str]) -> Result<()> {
        if !kinds.contains(&self.kind.as_str()) {
            return Err(Error::invalid(format!("sampler must be one of {}, not {:?}", kinds.join(", "), self.kind)));
        }
        if !(self.exponent.is_finite() && (0.0..=4.0).contains(&self.exponent)) {
            return Err(Error::invalid(format!("sampler exponent must be in [0, 4], got {}", self.exponent)));
        }
        for (name, v) in [("n_candidates", self.n_candidates), ("max_sampled", self.max_sampled), ("tries", self.tries)] {
            if !(1..=MAX_CANDIDATES).contains(&v) {
                return Err(Error::invalid(format!("sampler {name} must be in 1..={MAX_CANDIDATES}, got {v}")));
            }
        }
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return Err(Error::invalid(format!("sampler margin must be a finite number >= 0, got {}", self.margin)));
        }
        Ok(())
    }

    /// Candidates the batch carries per negative slot.
    pub fn candidates(&self) -> usize {
        match self.kind.as_str() {
            "warp" => self.max_sampled,
            "best_of_n" => self.n_candidates,
            _ => 1,
        }
    }

    pub fn choice(&self) -> Choice {
        match self.kind.as_str() {
            "warp" => Choice::Warp { margin: self.margin as f32 },
            "best_of_n" => Choice::BestOfN,
            _ => Choice::Single,
        }
    }

    pub fn needs_categories(&self) -> bool {
        self.kind == "category"
    }

    pub fn needs_item_features(&self) -> bool {
        self.kind == "cosine"
    }

    /// The side data this sampler needs (categories for "category", item features for
    /// "cosine"): the needs of a model that uses no side data itself.
    pub fn side_needs(&self) -> crate::data::SideNeeds {
        use crate::data::Need;
        let need = |yes: bool| if yes { Need::Required } else { Need::Unused };
        crate::data::SideNeeds {
            categories: need(self.needs_categories()),
            item_features: need(self.needs_item_features()),
            ..Default::default()
        }
    }
}

/// Candidates per slot are bounded so a batch's size is too.
pub const MAX_CANDIDATES: usize = 1000;

/// The fixed distribution candidates are drawn from (before the user's positives are rejected).
pub enum Distribution {
    Uniform { n_items: u64 },
    Popularity(AliasTable),
    /// Items grouped by category; `of_item[i]` is the group of item i (u32::MAX: none).
    Category { n_items: u64, of_item: Vec<u32>, members: Vec<Vec<u32>>, tries: usize },
}

impl Distribution {
    /// One draw for a negative of a sample whose positive is `pos`; `attempt` counts the
    /// draws already rejected for this slot (the category sampler falls back after `tries`).
    #[inline]
    pub fn draw(&self, rng: &mut Rng, pos: usize, attempt: usize) -> u32 {
        match self {
            Distribution::Uniform { n_items } => below(rng, *n_items) as u32,
            Distribution::Popularity(t) => t.draw(rng),
            Distribution::Category { n_items, of_item, members, tries } => {
                let c = of_item[pos];
                if attempt < *tries && c != u32::MAX {
                    let m = &members[c as usize];
                    m[below(rng, m.len() as u64) as usize]
                } else {
                    below(rng, *n_items) as u32
                }
            }
        }
    }

    /// Whether `attempt` rejected draws call for a uniform draw instead (a popularity table
    /// can hold only the user's own positives with weight; uniform always finds a negative,
    /// since users with every item are refused up front).
    #[inline]
    pub fn fallback(&self, attempt: usize) -> bool {
        attempt >= FALLBACK_AFTER && !matches!(self, Distribution::Uniform { .. })
    }

    pub fn categories(of_item: &[i64], n_items: usize, tries: usize) -> Result<Self> {
        if of_item.len() != n_items {
            return Err(Error::invalid(format!("categories has {} entries for {n_items} items", of_item.len())));
        }
        let mut codes = rustc_hash::FxHashMap::default();
        let mut members: Vec<Vec<u32>> = Vec::new();
        let ids = of_item
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if c < 0 {
                    return u32::MAX;
                }
                let g = *codes.entry(c).or_insert_with(|| {
                    members.push(Vec::new());
                    members.len() as u32 - 1
                });
                members[g as usize].push(i as u32);
                g
            })
            .collect();
        Ok(Distribution::Category { n_items: n_items as u64, of_item: ids, members, tries })
    }
}

/// Rejected draws after which a non-uniform distribution falls back to uniform draws.
pub const FALLBACK_AFTER: usize = 64;

/// Walker's alias table: O(1) draws from a discrete distribution.
pub struct AliasTable {
    prob: Vec<f32>,
    alias: Vec<u32>,
}

impl AliasTable {
    /// From non-negative, finite weights with a positive sum.
    pub fn new(weights: &[f64]) -> Result<Self> {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        if n == 0 || !(total.is_finite() && total > 0.0) || weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(Error::invalid("popularity sampler: the item weights must be finite, >= 0, with a positive sum"));
        }
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut prob = vec![1f32; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s] as f32;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Ok(AliasTable { prob, alias })
    }

    #[inline]
    pub fn draw(&self, rng: &mut Rng) -> u32 {
        use rand::Rng as _;
        let i = below(rng, self.prob.len() as u64) as usize;
        if rng.random::<f32>() < self.prob[i] { i as u32 } else { self.alias[i] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::rng::stream_rng;

    #[test]
    fn alias_table_follows_the_weights() {
        let t = AliasTable::new(&[1.0, 0.0, 3.0, 4.0]).unwrap();
        let mut rng = stream_rng(1, 2, 3);
        let mut counts = [0usize; 4];
        for _ in 0..200_000 {
            counts[t.draw(&mut rng) as usize] += 1;
        }
        assert_eq!(counts[1], 0);
        for (c, w) in [(counts[0], 0.125), (counts[2], 0.375), (counts[3], 0.5)] {
            assert!((c as f64 / 200_000.0 - w).abs() < 0.005, "{counts:?}");
        }
        assert!(AliasTable::new(&[0.0, 0.0]).is_err());
        assert!(AliasTable::new(&[1.0, f64::NAN]).is_err());
    }

    #[test]
    fn config_is_checked_by_name() {
        let bad = SamplerConfig { kind: "hardest".into(), ..Default::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("sampler must be one of"));
        let bad = SamplerConfig { max_sampled: 0, ..Default::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("max_sampled"));
        let warp = SamplerConfig { kind: "warp".into(), max_sampled: 7, ..Default::default() };
        assert_eq!((warp.candidates(), warp.choice()), (7, Choice::Warp { margin: 1.0 }));
    }
}
