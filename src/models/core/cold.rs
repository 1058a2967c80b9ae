//! What a fit leaves in the per-item parameters of cold items (no training interaction): the
//! one rule of every model (docs/guide/side-data.md).

use tch::Tensor;

use crate::data::Interactions;
use crate::error::{Error, Result};

/// Zeroes, in place, the rows of `tables` (each indexed by item in its first dimension) of
/// the items with no interaction in `train`: what training gave them (as negatives, or
/// nothing: their random start) is not learnt from data about them.
pub fn zero_cold_items(tables: &[Tensor], train: &Interactions) -> Result<()> {
    let cold: Vec<i64> = train.item_counts().iter().enumerate().filter(|(_, &c)| c == 0).map(|(i, _)| i as i64).collect();
    if cold.is_empty() {
        return Ok(());
    }
    let _guard = tch::no_grad_guard();
    for t in tables {
        if t.size().first().copied() != Some(train.n_items() as i64) {
            return Err(Error::state(format!("an item table has shape {:?} for {} items", t.size(), train.n_items())));
        }
        let rows = Tensor::from_slice(&cold).f_to_device(t.device())?;
        let _ = t.shallow_clone().f_index_fill_(0, &rows, 0.0)?;
    }
    Ok(())
}

/// Sets, in place, the `bias` of the items with no interaction in `train` below the lowest
/// score any trained item can have: the lowest trained bias, less `reach` (a bound on the
/// product of the model's user and item vectors, |u| |v| at most), less 1. A cold item has
/// fewer interactions than any trained item, so it ranks below every trained item for every
/// user (all cold items tie). A zero bias ranked cold items above most trained items, whose
/// biases training pushes below zero (BPR on MovieLens u1: AUC 0.923), and the lowest trained
/// bias alone still above every trained item of negative taste for the user (0.931).
pub fn floor_cold_bias(bias: &Tensor, train: &Interactions, reach: f64) -> Result<()> {
    let counts = train.item_counts();
    if bias.size() != [counts.len() as i64] {
        return Err(Error::state(format!("an item bias has shape {:?} for {} items", bias.size(), counts.len())));
    }
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for (i, &c) in (0i64..).zip(&counts) {
        if c == 0 { cold.push(i) } else { warm.push(i) }
    }
    if cold.is_empty() || warm.is_empty() {
        return Ok(());
    }
    let _guard = tch::no_grad_guard();
    let rows = |r: &[i64]| Tensor::from_slice(r).f_to_device(bias.device());
    if !reach.is_finite() {
        return Err(Error::state(format!("the cold items' floor: the vectors' reach is {reach}")));
    }
    let floor = bias.f_index_select(0, &rows(&warm)?)?.f_min()?.f_sub_scalar(reach + 1.0)?;
    let _ = bias.shallow_clone().f_index_fill_int_tensor_(0, &rows(&cold)?, &floor)?;
    Ok(())
}

/// The largest row norm of `vectors` (0 without rows): with [`floor_cold_bias`], |u . v| is
/// at most the users' largest norm times the items'.
pub fn largest_norm(vectors: &Tensor) -> Result<f64> {
    if vectors.numel() == 0 {
        return Ok(0.0);
    }
    Ok(vectors.f_to_kind(tch::Kind::Float)?.f_norm_scalaropt_dim(2, [-1i64].as_slice(), false)?.f_max()?.f_double_value(&[])?)
}
