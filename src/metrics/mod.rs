//! Ranking metrics and top-k selection, in parallel over users.

pub mod evaluate;
pub mod ranking;
pub mod spec;
pub mod topk;

pub use evaluate::{evaluate_users, evaluate_with, means, PerUser, Rank, Validation};
pub use ranking::{evaluate_block, evaluate_ranked, EvalOptions};
pub use spec::Metric;
pub use topk::{top_k, top_k_block, Keep};
