//! Uniform (user, positive, negative) sampling for pairwise losses.
//!
//! A positive is a uniformly drawn stored interaction (so users weigh by their activity, as in
//! BPR); each negative is a uniformly drawn item that is checked not to be a positive of that
//! user (binary search in the user's sorted row). Batches are filled in parallel, in chunks
//! that each own a generator derived from (seed, stream, chunk): the same seed gives the same
//! triples whatever the thread count.

use rayon::prelude::*;

use super::rng::{below, stream_rng, Rng};
use crate::data::Interactions;
use crate::error::{Error, Result};

/// Samples per generator; small enough to balance threads, large enough to amortise seeding.
const CHUNK: usize = 1024;

/// One batch: `users[b]`, `pos[b]`, and `neg[b * n_neg .. (b + 1) * n_neg]`.
/// Stored as i64 so libtorch can index with it in place (see `crate::tensors::view_i64`).
#[derive(Debug, Clone, Default)]
pub struct TripleBatch {
    pub users: Vec<i64>,
    pub pos: Vec<i64>,
    pub neg: Vec<i64>,
    pub n_neg: usize,
}

impl TripleBatch {
    pub fn len(&self) -> usize {
        self.users.len()
    }
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

pub struct TripleSampler<'a> {
    data: &'a Interactions,
    /// User of each stored interaction, so a positive is one draw.
    owner: Vec<u32>,
    n_neg: usize,
}

impl<'a> TripleSampler<'a> {
    pub fn new(data: &'a Interactions, n_negatives: usize) -> Result<Self> {
        if data.nnz() == 0 {
            return Err(Error::invalid("cannot sample from empty interactions"));
        }
        if n_negatives == 0 {
            return Err(Error::invalid("n_negatives must be at least 1"));
        }
        let n_items = data.n_items();
        if let Some(u) = (0..data.n_users()).find(|&u| data.user_items(u).len() >= n_items) {
            return Err(Error::invalid(format!(
                "user {} has interacted with all {n_items} items, so no negative item exists for it",
                data.ids().users.display(u)
            )));
        }
        Ok(TripleSampler { data, owner: data.by_user().row_of_entries(), n_neg: n_negatives })
    }

    pub fn n_negatives(&self) -> usize {
        self.n_neg
    }

    /// Number of positives in one epoch (one pass over the interactions, in expectation).
    pub fn epoch_len(&self) -> usize {
        self.owner.len()
    }

    /// Fill `batch` with `size` triples from stream `stream` of `seed`.
    pub fn fill(&self, batch: &mut TripleBatch, size: usize, seed: u64, stream: u64) {
        let n_neg = self.n_neg;
        batch.n_neg = n_neg;
        batch.users.resize(size, 0);
        batch.pos.resize(size, 0);
        batch.neg.resize(size * n_neg, 0);
        batch
            .users
            .par_chunks_mut(CHUNK)
            .zip(batch.pos.par_chunks_mut(CHUNK))
            .zip(batch.neg.par_chunks_mut(CHUNK * n_neg))
            .enumerate()
            .for_each(|(chunk, ((us, ps), ns))| {
                let mut rng = self.chunk_rng(seed, stream, chunk);
                for b in 0..us.len() {
                    let (u, i) = self.draw(&mut rng, &mut ns[b * n_neg..(b + 1) * n_neg]);
                    us[b] = u as i64;
                    ps[b] = i as i64;
                }
            });
    }

    /// Number of chunks (generators) a batch of `size` triples is drawn in; chunk c holds
    /// triples `c * CHUNK ..` of the batch. Kernels that sample inside their own parallel
    /// loop (without a batch buffer) use these with [`chunk_rng`] and [`draw`] to draw the
    /// very triples [`fill`] would.
    ///
    /// [`chunk_rng`]: Self::chunk_rng
    /// [`draw`]: Self::draw
    /// [`fill`]: Self::fill
    pub fn chunks(size: usize) -> impl IndexedParallelIterator<Item = (usize, usize)> {
        (0..size.div_ceil(CHUNK)).into_par_iter().map(move |c| (c, CHUNK.min(size - c * CHUNK)))
    }

    pub fn chunk_rng(&self, seed: u64, stream: u64, chunk: usize) -> Rng {
        stream_rng(seed, stream, chunk as u64)
    }

    /// One positive (user, item) and `negs.len()` negatives of that user.
    #[inline(always)]
    pub fn draw(&self, rng: &mut Rng, negs: &mut [i64]) -> (usize, usize) {
        let csr = self.data.by_user();
        let e = below(rng, self.owner.len() as u64) as usize;
        let u = self.owner[e] as usize;
        let row = csr.row(u);
        let n_items = self.data.n_items() as u64;
        for slot in negs.iter_mut() {
            *slot = loop {
                let j = below(rng, n_items) as u32;
                if row.binary_search(&j).is_err() {
                    break j as i64;
                }
            };
        }
        (u, csr.indices[e] as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Columns, Duplicates};

    fn data() -> Interactions {
        let users = [0, 0, 0, 1, 1, 2, 3, 3, 3, 3];
        let items = [0, 1, 2, 2, 3, 4, 0, 1, 3, 4];
        Interactions::from_indices(&users, &items, None, None, Some(6), Duplicates::Sum, Columns::default())
            .unwrap()
    }

    #[test]
    fn triples_are_valid_and_seeded() {
        let d = data();
        let s = TripleSampler::new(&d, 3).unwrap();
        let mut a = TripleBatch::default();
        s.fill(&mut a, 5000, 42, 0);
        assert_eq!((a.len(), a.neg.len()), (5000, 15000));
        for b in 0..a.len() {
            let row = d.user_items(a.users[b] as usize);
            assert!(row.contains(&(a.pos[b] as u32)));
            for &j in &a.neg[b * 3..b * 3 + 3] {
                assert!(!row.contains(&(j as u32)), "negative {j} is a positive of user {}", a.users[b]);
            }
        }
        let mut b = TripleBatch::default();
        s.fill(&mut b, 5000, 42, 0);
        assert_eq!((&a.users, &a.neg), (&b.users, &b.neg));
        s.fill(&mut b, 5000, 42, 1);
        assert_ne!(a.neg, b.neg);
    }

    #[test]
    fn same_triples_on_one_thread() {
        let d = data();
        let s = TripleSampler::new(&d, 1).unwrap();
        let mut a = TripleBatch::default();
        s.fill(&mut a, 3000, 9, 5);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let mut b = TripleBatch::default();
        pool.install(|| s.fill(&mut b, 3000, 9, 5));
        assert_eq!(a.neg, b.neg);
    }

    #[test]
    fn positives_follow_interaction_counts() {
        let d = data();
        let s = TripleSampler::new(&d, 1).unwrap();
        let mut a = TripleBatch::default();
        s.fill(&mut a, 100_000, 1, 0);
        // User 3 has 4 of the 10 interactions.
        let share = a.users.iter().filter(|&&u| u == 3).count() as f64 / 100_000.0;
        assert!((share - 0.4).abs() < 0.01, "{share}");
    }

    #[test]
    fn user_with_every_item_is_refused() {
        let d = Interactions::from_indices(&[0, 0], &[0, 1], None, None, None, Duplicates::Sum, Columns::default())
            .unwrap();
        let e = TripleSampler::new(&d, 1).err().unwrap().to_string();
        assert!(e.contains("user 0 has interacted with all 2 items"), "{e}");
    }
}
