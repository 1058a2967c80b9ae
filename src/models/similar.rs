//! Item-item similarity from any model's item vectors (cosine).

use tch::{Device, Kind, Tensor};

use super::dot::DotFactors;
use crate::error::{Error, Result};

/// The `k` items most cosine-similar to each query item (itself left out), best first.
/// `k` is at most `n_items - 1` (a larger k is taken as that, so a huge k never asks for a
/// huge buffer); rows are that long.
pub fn similar_items(vectors: &Tensor, queries: &[i64], k: usize) -> Result<(Vec<i64>, Vec<f32>)> {
    let size = vectors.size();
    let &[n, _] = size.as_slice() else {
        return Err(Error::invalid(format!("item vectors must be 2-D, got shape {size:?}")));
    };
    if let Some(&bad) = queries.iter().find(|&&q| q < 0 || q >= n) {
        return Err(Error::invalid(format!("item index {bad} out of range for {n} items")));
    }
    let k = effective_k(k, n as usize);
    let v = vectors.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?;
    let unit = tch::no_grad(|| -> Result<Tensor> { Ok(v.f_div(&v.f_norm_scalaropt_dim(2, [1], true)?.f_clamp_min(1e-12)?)?) })?;
    // The blocked dot-product top-k (every core, no (queries x items) block in memory), the
    // query itself left out.
    let keep = |r: usize, i: u32| queries.get(r) != Some(&(i as i64));
    DotFactors::new(&unit, &unit, None)?.top_k(queries, k, &keep)
}

/// The k of [`similar_items`] for a catalogue of `n_items`: at most every other item.
pub fn effective_k(k: usize, n_items: usize) -> usize {
    k.min(n_items.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_by_angle_not_length() {
        let v = Tensor::from_slice(&[1.0f32, 0.0, 10.0, 0.5, 0.0, 1.0, 1.0, 0.0]).reshape([4, 2]);
        let (it, sc) = similar_items(&v, &[0], 2).unwrap();
        assert_eq!(it, vec![3, 1]);
        assert!((sc[0] - 1.0).abs() < 1e-6);
        let (it, _) = similar_items(&v, &[0, 1], usize::MAX).unwrap();
        assert_eq!(it.len(), 2 * 3);
    }
}
