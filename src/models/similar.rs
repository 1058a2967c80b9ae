//! Item-item similarity from any model's item vectors (cosine).

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::metrics::top_k;

/// Queries per matrix product, to bound memory on large catalogues.
const QUERY_BLOCK: usize = 1024;

/// The `k` items most cosine-similar to each query item (itself left out), best first;
/// padded with -1 / -inf when the catalogue is smaller than k + 1.
pub fn similar_items(vectors: &Tensor, queries: &[i64], k: usize) -> Result<(Vec<i64>, Vec<f32>)> {
    let size = vectors.size();
    if size.len() != 2 {
        return Err(Error::invalid(format!("item vectors must be 2-D, got shape {size:?}")));
    }
    let n = size[0];
    if let Some(&bad) = queries.iter().find(|&&q| q < 0 || q >= n) {
        return Err(Error::invalid(format!("item index {bad} out of range for {n} items")));
    }
    let v = vectors.to_device(Device::Cpu).to_kind(Kind::Float);
    let unit = &v / v.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    let mut items = vec![-1i64; queries.len() * k];
    let mut scores = vec![f32::NEG_INFINITY; queries.len() * k];
    if k == 0 {
        return Ok((items, scores));
    }
    for (b, block) in queries.chunks(QUERY_BLOCK).enumerate() {
        let sims = tch::no_grad(|| unit.index_select(0, &Tensor::from_slice(block)).matmul(&unit.tr()));
        let sims = Vec::<f32>::try_from(sims.contiguous().flatten(0, -1))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_by_angle_not_length() {
        let v = Tensor::from_slice(&[1.0f32, 0.0, 10.0, 0.5, 0.0, 1.0, 1.0, 0.0]).reshape([4, 2]);
        let (it, sc) = similar_items(&v, &[0], 2).unwrap();
        assert_eq!(it, vec![3, 1]);
        assert!((sc[0] - 1.0).abs() < 1e-6);
    }
}
