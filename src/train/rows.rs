//! Plain row batches: every row of 0..n once per epoch, in a seeded random order. The source
//! for training that is not pairwise (autoencoder pretraining on item images, item batches).

use std::sync::Mutex;

use rand::seq::SliceRandom;

use super::BatchSource;
use crate::sampling::rng::{stream_rng, streams};

pub struct RowBatches {
    n: usize,
    seed: u64,
    /// This epoch's order; batch b is the rows order[b * size ..].
    order: Mutex<Vec<i64>>,
}

/// One batch of row indices.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub rows: Vec<i64>,
}

impl super::Shard for Rows {
    fn samples(&self) -> usize {
        self.rows.len()
    }
    fn keep(&mut self, range: std::ops::Range<usize>) {
        self.rows = self.rows.get(range).map(<[i64]>::to_vec).unwrap_or_default();
    }
}

impl RowBatches {
    pub fn new(n: usize, seed: u64) -> Self {
        RowBatches { n, seed, order: Mutex::new((0..n as i64).collect()) }
    }
}

impl BatchSource for RowBatches {
    type Batch = Rows;

    fn epoch_len(&self) -> usize {
        self.n
    }

    fn begin_epoch(&self, epoch: usize) {
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        order.iter_mut().enumerate().for_each(|(i, r)| *r = i as i64);
        order.shuffle(&mut stream_rng(self.seed, streams::MODEL, epoch as u64));
    }

    /// Batches are taken in order within the epoch: batch `batch_index` of an epoch of
    /// `ceil(n / size)` batches covers the next `size` rows.
    fn fill(&self, batch: &mut Rows, size: usize, _seed: u64, batch_index: u64) {
        let order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        let per_epoch = self.n.div_ceil(size.max(1)).max(1);
        // Every batch but an epoch's last has `size` rows, so the start follows from the index.
        // per_epoch >= 1, and the start is below n (every batch but the last has `size` rows).
        let start = (batch_index as usize).checked_rem(per_epoch).unwrap_or(0).saturating_mul(size);
        batch.rows.clear();
        batch.rows.extend(order.iter().skip(start).take(size));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_once_per_epoch_in_a_seeded_order() {
        let src = RowBatches::new(10, 3);
        src.begin_epoch(0);
        let mut seen = Vec::new();
        let mut b = Rows::default();
        for i in 0..3 {
            src.fill(&mut b, 4, 3, i);
            seen.extend(b.rows.iter().copied());
        }
        let first = seen.clone();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        src.begin_epoch(1);
        let mut again = Vec::new();
        for i in 3..6 {
            src.fill(&mut b, 4, 3, i);
            again.extend(b.rows.iter().copied());
        }
        assert_ne!(first, again, "each epoch has its own order");
    }
}
