//! Item-item similarity from any model's item vectors (cosine).

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::metrics::top_k;

/// Queries per matrix product, to bound memory on large catalogues.
const QUERY_BLOCK: usize = 1024;

/// The `k` items most cosine-similar to each query item (itself left out), best first.
/// `k` is at most `n_items - 1` (a larger k is taken as that, so a huge k never asks for a
/// huge buffer); rows are that long.
pub fn similar_items(vectors: &Tensor, queries: &[i64], k: usize) -> Result<(Vec<i64>, Vec<f32>)> {
    let size = vectors.size();
    if size.len() != 2 {
        return Err(Error::invalid(format!("item vectors must be 2-D, got shape {size:?}")));
    }
    let n = size[0];
    if let Some(&bad) = queries.iter().find(|&&q| q < 0 || q >= n) {
        return Err(Error::invalid(format!("item index {bad} out of range for {n} items")));
    }
    let k = effective_k(k, n as usize);
    let slots = crate::limits::mul("similar_items: queries x k", queries.len(), k)?;
    let mut items = crate::limits::try_filled("the similar-item lists", slots, -1i64)?;
    let mut scores = crate::limits::try_filled("the similarities", slots, f32::NEG_INFINITY)?;
    let v = vectors.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?;
    let unit = v.f_div(&v.f_norm_scalaropt_dim(2, [1], true)?.f_clamp_min(1e-12)?)?;
    if k == 0 {
        return Ok((items, scores));
    }
    for (b, block) in queries.chunks(QUERY_BLOCK).enumerate() {
        let sims = tch::no_grad(|| unit.f_index_select(0, &Tensor::from_slice(block))?.f_matmul(&unit.f_tr()?))?;
        let sims = Vec::<f32>::try_from(sims.f_contiguous()?.f_flatten(0, -1)?)?;
        let off = b * QUERY_BLOCK * k;
        items[off..off + block.len() * k]
            .par_chunks_mut(k)
            .zip(scores[off..off + block.len() * k].par_chunks_mut(k))
            .enumerate()
            .for_each_init(Vec::new, |buf, (r, (it, sc))| {
                let q = block[r] as usize;
                let row = &sims[r * n as usize..(r + 1) * n as usize];
                top_k(row, k, |i| i != q, buf);
                for (slot, &(s, i)) in buf.iter().enumerate() {
                    it[slot] = i as i64;
                    sc[slot] = s;
                }
            });
    }
    Ok((items, scores))
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
