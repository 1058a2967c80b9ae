//! Explicit negatives (the hybrid notebook's): from ratings, positives are the items a user
//! rated >= `min_rating` and each negative is one of the items that user rated below it,
//! drawn uniformly; users who rated nothing below get the configured sampler's negative.
//!
//! A [`BatchSource`] wrapping the shared [`TripleSampler`] (over the positives only), and a
//! step adapter so the shared libtorch step trains on its batches. Kept in the model layer:
//! the samplers in `src/sampling` are model-free and know nothing of rating values.

use rayon::prelude::*;

use crate::data::{Csr, Duplicates, Interactions, SideInfo};
use crate::error::{Error, Result};
use crate::sampling::rng::{below, stream_rng, streams};
use crate::sampling::{SamplerConfig, TripleBatch, TripleSampler};
use crate::train::torch_step::{TorchStep, TwoTower};
use tch::Tensor;
use crate::train::{BatchSource, BatchStep};

pub struct RatedBelow<'a> {
    inner: TripleSampler<'a>,
    /// Per user index, the items rated below the threshold.
    below: Vec<Vec<u32>>,
}

/// Ratings split at `min_rating`: the positives (same ids) and each user's rated-below items.
pub fn split_ratings(ratings: &Interactions, min_rating: f64) -> Result<(Interactions, Vec<Vec<u32>>)> {
    let csr = ratings.by_user();
    if ratings.nnz() > 0 && csr.row_values(0).is_none() {
        return Err(Error::invalid(
            "sampler='rated_below' needs ratings as the interactions' values (e.g. movielens_100k(..., min_rating=None))",
        ));
    }
    let (mut rows, mut cols, mut below) = (Vec::new(), Vec::new(), vec![Vec::new(); ratings.n_users()]);
    for (u, negs) in below.iter_mut().enumerate() {
        let values = csr.row_values(u).unwrap_or(&[]);
        for (&i, &v) in csr.row(u).iter().zip(values) {
            if v as f64 >= min_rating {
                rows.push(u as u32);
                cols.push(i);
            } else {
                negs.push(i);
            }
        }
    }
    if rows.is_empty() {
        return Err(Error::invalid(format!("no rating is >= min_rating={min_rating}: there are no positives")));
    }
    let pos_csr = Csr::from_coo(ratings.n_users(), &rows, &cols, None, Duplicates::Error)?;
    Ok((Interactions::from_csr(pos_csr, ratings.ids().clone())?, below))
}

impl<'a> RatedBelow<'a> {
    /// Positives from `positives` (by `sampler` for users without low ratings), negatives
    /// from `below` (both from [`split_ratings`]).
    pub fn new(positives: &'a Interactions, below: Vec<Vec<u32>>, sampler: &SamplerConfig, side: &SideInfo) -> Result<Self> {
        if below.len() != positives.n_users() {
            return Err(Error::invalid(format!("{} rated-below lists for {} users", below.len(), positives.n_users())));
        }
        Ok(RatedBelow { inner: TripleSampler::with_config(positives, 1, sampler, side)?, below })
    }
}

impl BatchSource for RatedBelow<'_> {
    type Batch = TripleBatch;

    fn epoch_len(&self) -> usize {
        self.inner.epoch_len()
    }

    fn fill(&self, batch: &mut TripleBatch, size: usize, seed: u64, batch_index: u64) {
        self.inner.fill(batch, size, seed, batch_index);
        // One negative per sample (validated: bpr loss, one candidate): replace it by one of
        // the user's rated-below items where there are any, from this batch's own stream.
        batch.neg.par_chunks_mut(1024).zip(batch.users.par_chunks(1024)).enumerate().for_each(|(c, (negs, users))| {
            let mut rng = stream_rng(seed ^ batch_index.rotate_left(17), streams::MODEL, c as u64);
            for (j, &u) in negs.iter_mut().zip(users) {
                let pool = self.below.get(u as usize).map_or(&[][..], Vec::as_slice);
                if !pool.is_empty() {
                    if let Some(&item) = pool.get(below(&mut rng, pool.len() as u64) as usize) {
                        *j = item as i64;
                    }
                }
            }
        });
    }
}

/// The shared libtorch step, trained on [`RatedBelow`]'s batches (the same triple batches).
pub struct RatedBelowStep<M: TwoTower>(pub TorchStep<M>);

impl<M: TwoTower> BatchStep<RatedBelow<'_>> for RatedBelowStep<M> {
    fn begin_epoch(&mut self, epoch: usize, epochs: usize) -> Result<()> {
        BatchStep::<TripleSampler<'_>>::begin_epoch(&mut self.0, epoch, epochs)
    }

    fn step(&mut self, batch: &TripleBatch) -> Result<()> {
        BatchStep::<TripleSampler<'_>>::step(&mut self.0, batch)
    }

    fn take_loss(&mut self) -> Result<f64> {
        BatchStep::<TripleSampler<'_>>::take_loss(&mut self.0)
    }

    fn end_epoch(&mut self, epoch: usize) -> Result<()> {
        BatchStep::<TripleSampler<'_>>::end_epoch(&mut self.0, epoch)
    }

    fn intra_op_threads(&self) -> Option<i32> {
        BatchStep::<TripleSampler<'_>>::intra_op_threads(&self.0)
    }

    fn begin_batch(&mut self, seed: u64, batch_index: u64) {
        BatchStep::<TripleSampler<'_>>::begin_batch(&mut self.0, seed, batch_index)
    }

    fn distribute(&mut self, sync: &crate::train::GradSync) -> Result<()> {
        BatchStep::<TripleSampler<'_>>::distribute(&mut self.0, sync)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        BatchStep::<TripleSampler<'_>>::state(&self.0)
    }

    fn restore_state(&mut self, state: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        BatchStep::<TripleSampler<'_>>::restore_state(&mut self.0, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Columns;

    #[test]
    fn negatives_come_from_the_users_low_ratings() {
        // User 0 rated items 0..4: 5, 4, 2, 1 -> positives {0, 1}, negatives {2, 3}.
        // User 1 rated item 4 with 5 and nothing low -> sampled negatives.
        let users = [0i64, 0, 0, 0, 1];
        let items = [0i64, 1, 2, 3, 4];
        let values = [5f32, 4., 2., 1., 5.];
        let data = Interactions::from_indices(&users, &items, Some(&values), Some(2), Some(30), Duplicates::Error, Columns::default()).unwrap();
        let (pos, below) = split_ratings(&data, 4.0).unwrap();
        let src = RatedBelow::new(&pos, below, &SamplerConfig::default(), &SideInfo::default()).unwrap();
        assert_eq!(src.epoch_len(), 3);
        let mut batch = TripleBatch::default();
        src.fill(&mut batch, 2000, 1, 0);
        let mut seen = std::collections::BTreeSet::new();
        for b in 0..batch.len() {
            let (u, i, j) = (batch.users[b], batch.pos[b], batch.neg[b]);
            if u == 0 {
                assert!(i == 0 || i == 1, "positive {i} of user 0 is not rated >= 4");
                assert!(j == 2 || j == 3, "negative {j} of user 0 is not one of its low ratings");
                seen.insert(j);
            } else {
                assert_eq!(i, 4);
                assert!(j != 4 && (0..30).contains(&j));
            }
        }
        assert_eq!(seen.len(), 2, "both low-rated items should be drawn");
    }

    #[test]
    fn needs_values() {
        let data = Interactions::from_indices(&[0], &[1], None, Some(1), Some(3), Duplicates::Error, Columns::default()).unwrap();
        let e = split_ratings(&data, 4.0).err().unwrap().to_string();
        assert!(e.contains("rated_below"), "{e}");
    }
}
