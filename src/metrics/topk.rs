//! Top-k selection: highest score first, ties broken by the lower item index, so results are
//! deterministic. NaN scores are an error, never silently ranked.

#![allow(clippy::indexing_slicing, reason = "top-k loops: top_k_block checks the score block's length, the restriction's length and the users' range on entry; Selector::cut runs with more than k > 0 entries buffered")]
#![allow(clippy::arithmetic_side_effects, reason = "top-k loops: offsets are products of the lengths top_k_block checks on entry (score block, restriction, users' range)")]

use rayon::prelude::*;

use crate::data::Interactions;
use crate::error::{Error, Result};

/// Which items of row `r` (the r-th user asked for) may be chosen: `keep(r, item)`.
pub type Keep<'a> = dyn Fn(usize, u32) -> bool + Sync + 'a;

#[inline]
pub(crate) fn by_rank(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// The best k (score, item) pairs of a stream of items in increasing index order: candidates
/// are buffered while they beat the k-th best so far, and the buffer is cut back to k when
/// it fills, so most scores cost one comparison.
pub(crate) struct Selector {
    k: usize,
    buf: Vec<(f32, u32)>,
    /// The k-th best so far, once k were seen.
    worst: Option<(f32, u32)>,
    /// Its score, or -inf: anything below it cannot enter.
    floor: f32,
}

impl Selector {
    /// `k` > 0.
    pub(crate) fn new(k: usize) -> Self {
        debug_assert!(k > 0);
        Selector { k, buf: Vec::with_capacity(2 * k + 32), worst: None, floor: f32::NEG_INFINITY }
    }

    /// Scores of items `first..first + s.len()`; Err(item) at a NaN.
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // !(x < floor) is meant: true for NaN
    pub(crate) fn feed(&mut self, s: &[f32], first: u32, keep: impl Fn(u32) -> bool) -> std::result::Result<(), u32> {
        let mut chunks = s.chunks_exact(16);
        let mut base = 0usize;
        for c in &mut chunks {
            // Not (s < floor): at or above the floor, or NaN. Branch-free so it vectorises.
            let floor = self.floor;
            if c.iter().fold(false, |a, &x| a | !(x < floor)) {
                self.slow(c, first + base as u32, &keep)?;
            }
            base += 16;
        }
        self.slow(chunks.remainder(), first + base as u32, &keep)
    }

    fn slow(&mut self, s: &[f32], first: u32, keep: &impl Fn(u32) -> bool) -> std::result::Result<(), u32> {
        for (j, &x) in s.iter().enumerate() {
            let i = first + j as u32;
            if x.is_nan() {
                return Err(i);
            }
            if x < self.floor {
                continue;
            }
            if let Some(w) = self.worst {
                if by_rank(&(x, i), &w) != std::cmp::Ordering::Less {
                    continue;
                }
            }
            if !keep(i) {
                continue;
            }
            self.buf.push((x, i));
            if self.buf.len() >= 2 * self.k + 32 {
                self.cut();
            }
        }
        Ok(())
    }

    fn cut(&mut self) {
        let k = self.k;
        self.buf.select_nth_unstable_by(k - 1, by_rank);
        self.buf.truncate(k);
        let w = self.buf[k - 1];
        self.worst = Some(w);
        self.floor = w.0;
    }

    pub(crate) fn finish(&mut self) -> &[(f32, u32)] {
        if self.buf.len() > self.k {
            self.cut();
        }
        self.buf.sort_unstable_by(by_rank);
        &self.buf
    }
}

/// The best `k` of `scores` whose index passes `keep`, best first, into `buf`.
pub fn top_k(scores: &[f32], k: usize, keep: impl Fn(usize) -> bool, buf: &mut Vec<(f32, u32)>) {
    buf.clear();
    if k == 0 {
        return;
    }
    let mut sel = Selector { k, buf: std::mem::take(buf), worst: None, floor: f32::NEG_INFINITY };
    if sel.feed(scores, 0, |i| keep(i as usize)).is_ok() {
        sel.finish();
        *buf = sel.buf;
        return;
    }
    // A NaN (callers check for them first): every kept score ranked by the total order.
    *buf = sel.buf;
    buf.clear();
    buf.extend(scores.iter().enumerate().filter(|&(i, _)| keep(i)).map(|(i, &s)| (s, i as u32)));
    if buf.len() > k {
        buf.select_nth_unstable_by(k - 1, by_rank);
    }
    buf.truncate(k);
    buf.sort_unstable_by(by_rank);
}

/// Error naming the first NaN among a user's scores.
pub fn check_scores(scores: &[f32], user: u32) -> Result<()> {
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(Error::invalid(format!("the model's score for user index {user}, item index {i} is NaN")));
    }
    Ok(())
}

/// Top-k items for each row of a (users.len(), n_items) score block, skipping the user's items
/// in `exclude` and, with `candidates` (one flag per item), the items not flagged. Rows with
/// fewer than k candidates are padded with item -1 and score -inf.
/// `k` above `n_items` is taken as `n_items` (rows are `min(k, n_items)` long), so a huge k
/// never asks for a huge buffer.
pub fn top_k_block(
    scores: &[f32],
    n_items: usize,
    users: &[u32],
    k: usize,
    exclude: Option<&Interactions>,
    candidates: Option<&[bool]>,
) -> Result<(Vec<i64>, Vec<f32>)> {
    if candidates.is_some_and(|c| c.len() != n_items) {
        return Err(Error::invalid(format!("candidates has {} flags for {n_items} items", candidates.map_or(0, |c| c.len()))));
    }
    if scores.len() != users.len() * n_items {
        return Err(Error::invalid(format!(
            "score block has {} values for {} users x {n_items} items",
            scores.len(),
            users.len()
        )));
    }
    if let Some(x) = exclude {
        if let Some(&u) = users.iter().find(|&&u| u as usize >= x.n_users()) {
            return Err(Error::invalid(format!("user index {u} out of range for {} users", x.n_users())));
        }
    }
    let k = k.min(n_items);
    let slots = users.len() * k; // <= scores.len()
    let mut items = crate::limits::try_filled("the top-k item lists", slots, -1i64)?;
    let mut best = crate::limits::try_filled("the top-k scores", slots, f32::NEG_INFINITY)?;
    if k == 0 {
        return Ok((items, best));
    }
    items
        .par_chunks_mut(k)
        .zip(best.par_chunks_mut(k))
        .enumerate()
        .try_for_each(|(r, (it, sc))| -> Result<()> {
            let row = &scores[r * n_items..(r + 1) * n_items];
            let seen: &[u32] = exclude.map_or(&[], |x| x.user_items(users[r] as usize));
            let mut sel = Selector::new(k);
            sel.feed(row, 0, |i| candidates.is_none_or(|c| c[i as usize]) && seen.binary_search(&i).is_err())
                .map_err(|i| Error::invalid(format!("the model's score for user index {}, item index {i} is NaN", users[r])))?;
            for (slot, &(s, i)) in sel.finish().iter().enumerate() {
                it[slot] = i as i64;
                sc[slot] = s;
            }
            Ok(())
        })?;
    Ok((items, best))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_and_exclusion() {
        let mut buf = Vec::new();
        top_k(&[0.5, 0.9, 0.9, 0.1], 3, |i| i != 2, &mut buf);
        assert_eq!(buf, vec![(0.9, 1), (0.5, 0), (0.1, 3)]);
        top_k(&[0.5, 0.9, 0.9, 0.1], 2, |_| true, &mut buf);
        assert_eq!(buf, vec![(0.9, 1), (0.9, 2)]);
    }

    #[test]
    fn block_pads_when_few_candidates() {
        let seen = Interactions::from_indices(&[0], &[1], None, None, Some(3), crate::data::Duplicates::Sum, Default::default()).unwrap();
        let (it, sc) = top_k_block(&[1.0, 2.0, 0.5], 3, &[0], 3, Some(&seen), None).unwrap();
        assert_eq!(it, vec![0, 2, -1]);
        assert_eq!(sc[2], f32::NEG_INFINITY);
        assert!(top_k_block(&[1.0, f32::NAN], 2, &[0], 1, None, None).unwrap_err().to_string().contains("NaN"));
    }

    #[test]
    fn huge_k_is_the_whole_catalogue() {
        let (it, sc) = top_k_block(&[1.0, 2.0, 0.5, 0.0], 2, &[0, 1], usize::MAX, None, None).unwrap();
        assert_eq!(it, vec![1, 0, 0, 1]);
        assert_eq!(sc, vec![2.0, 1.0, 0.5, 0.0]);
    }
}
