//! Metric names as users write them: "auc", "sampled_auc", "ndcg@10", "precision@10", ...

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Per-user ROC AUC over the whole catalogue minus excluded items (ties count 1/2).
    Auc,
    /// DVBPR's AUC: each held-out item against sampled unobserved items.
    SampledAuc,
    Precision(usize),
    Recall(usize),
    Ndcg(usize),
    Map(usize),
    HitRate(usize),
}

pub const METRIC_HELP: &str =
    "auc, sampled_auc, precision@k, recall@k, ndcg@k, map@k, hitrate@k (k a positive integer)";

impl Metric {
    /// The ranking cut-off, for metrics that have one.
    pub fn k(&self) -> Option<usize> {
        match *self {
            Metric::Precision(k) | Metric::Recall(k) | Metric::Ndcg(k) | Metric::Map(k) | Metric::HitRate(k) => Some(k),
            _ => None,
        }
    }
}

impl FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let name = s.trim().to_ascii_lowercase();
        let unknown = || Error::invalid(format!("unknown metric {}; known: {METRIC_HELP}", crate::error::quote(s)));
        match name.as_str() {
            "auc" | "roc_auc" => return Ok(Metric::Auc),
            "sampled_auc" => return Ok(Metric::SampledAuc),
            _ => {}
        }
        let (base, k) = name.split_once('@').ok_or_else(unknown)?;
        let k: usize = k.parse().ok().filter(|&k| k > 0).ok_or_else(unknown)?;
        Ok(match base {
            "precision" | "p" => Metric::Precision(k),
            "recall" | "r" => Metric::Recall(k),
            "ndcg" => Metric::Ndcg(k),
            "map" => Metric::Map(k),
            "hitrate" | "hit_rate" | "hr" => Metric::HitRate(k),
            _ => return Err(unknown()),
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Auc => f.write_str("auc"),
            Metric::SampledAuc => f.write_str("sampled_auc"),
            Metric::Precision(k) => write!(f, "precision@{k}"),
            Metric::Recall(k) => write!(f, "recall@{k}"),
            Metric::Ndcg(k) => write!(f, "ndcg@{k}"),
            Metric::Map(k) => write!(f, "map@{k}"),
            Metric::HitRate(k) => write!(f, "hitrate@{k}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for s in ["auc", "sampled_auc", "precision@10", "recall@5", "ndcg@10", "map@20", "hitrate@1"] {
            assert_eq!(s.parse::<Metric>().unwrap().to_string(), s);
        }
        assert_eq!("P@3".parse::<Metric>().unwrap(), Metric::Precision(3));
        assert_eq!("HR@3".parse::<Metric>().unwrap(), Metric::HitRate(3));
        for bad in ["ndcg", "ndcg@0", "ndcg@x", "mrr@10", ""] {
            assert!(bad.parse::<Metric>().is_err(), "{bad}");
        }
    }
}
