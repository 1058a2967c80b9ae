//! Train/validation/test splits. Every part keeps the id maps of the input, so indices agree.

use rand::Rng as _;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::interactions::{Csr, Interactions};
use crate::error::{Error, Result};
use crate::sampling::rng::{stream_rng, streams};

/// Leave-one-out per user (the DVBPR protocol): one random test item per user and, with
/// `validation`, one random validation item. Users with too few items to hold any out
/// (fewer than 2, or 3 with validation) keep all of them in train.
/// Returns `[train, test]` or `[train, validation, test]`.
pub fn leave_one_out(data: &Interactions, validation: bool, seed: u64) -> Result<Vec<Interactions>> {
    let held = if validation { 2 } else { 1 };
    let csr = data.by_user();
    // Positions (within the user's row) of the held-out items, chosen in parallel per user.
    let picks: Vec<Vec<usize>> = (0..data.n_users())
        .into_par_iter()
        .map(|u| {
            let n = csr.row(u).len();
            if n <= held {
                return Vec::new();
            }
            let mut rng = stream_rng(seed, streams::SPLIT, u as u64);
            let mut chosen: Vec<usize> = Vec::with_capacity(held);
            while chosen.len() < held {
                let p = rng.random_range(0..n);
                if !chosen.contains(&p) {
                    chosen.push(p);
                }
            }
            chosen
        })
        .collect();
    // part[k] = 0 train, 1.. held-out slot (test is the first pick, validation the second).
    let mut part = vec![0u8; csr.nnz()];
    for (u, chosen) in picks.iter().enumerate() {
        for (slot, &p) in chosen.iter().enumerate() {
            // p is below the user's row length (drawn in 0..n above).
            if let Some(x) = csr.indptr.get(u).and_then(|&start| start.checked_add(p).and_then(|at| part.get_mut(at))) {
                // At most two slots (test, validation).
                *x = (slot as u8).saturating_add(1);
            }
        }
    }
    if part.iter().all(|&p| p == 0) {
        return Err(Error::invalid(format!(
            "leave_one_out: no user of data has more than {held} interactions, so nothing can be held out"
        )));
    }
    let pieces = partition(csr, &part, held.saturating_add(1));
    let mut out = pieces.into_iter().map(|c| Interactions::from_csr(c, data.ids().clone()));
    let (Some(train), Some(test)) = (out.next(), out.next()) else {
        return Err(Error::state("leave_one_out: the partition gave fewer than two parts"));
    };
    let (train, test) = (train?, test?);
    Ok(match out.next() {
        Some(val) => vec![train, val?, test],
        None => vec![train, test],
    })
}

/// A random fraction of all interactions (exactly round(fraction * nnz)) goes to test.
pub fn random_split(data: &Interactions, test_fraction: f64, seed: u64) -> Result<Vec<Interactions>> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::invalid(format!("test_fraction must be in (0, 1), got {test_fraction}")));
    }
    let nnz = data.nnz();
    let n_test = (test_fraction * nnz as f64).round() as usize;
    if n_test == 0 || n_test == nnz {
        return Err(Error::invalid(format!(
            "test_fraction={test_fraction} of the {nnz} interactions of data leaves an empty train or test part"
        )));
    }
    let mut positions: Vec<usize> = (0..nnz).collect();
    positions.shuffle(&mut stream_rng(seed, streams::SPLIT, u64::MAX));
    let mut part = vec![0u8; nnz];
    for &p in positions.iter().take(n_test) {
        if let Some(x) = part.get_mut(p) {
            *x = 1;
        }
    }
    let pieces = partition(data.by_user(), &part, 2);
    pieces.into_iter().map(|c| Interactions::from_csr(c, data.ids().clone())).collect()
}

/// Split the entries of `csr` into `n_parts` CSRs by `part[entry]`; row order is kept.
fn partition(csr: &Csr, part: &[u8], n_parts: usize) -> Vec<Csr> {
    (0..n_parts)
        .map(|k| {
            let k = k as u8;
            let mut indptr = Vec::with_capacity(csr.n_rows().saturating_add(1));
            indptr.push(0);
            let mut indices = Vec::new();
            let mut values = csr.values.as_ref().map(|_| Vec::new());
            // Rows are consecutive runs of entries: row r ends at entry indptr[r + 1].
            let mut entries = csr.indices.iter().zip(part).enumerate();
            let mut start = 0;
            for &end in csr.indptr.iter().skip(1) {
                for (e, (&c, &p)) in entries.by_ref().take(end.saturating_sub(start)) {
                    if p == k {
                        indices.push(c);
                        if let (Some(out), Some(&v)) = (values.as_mut(), csr.values.as_ref().and_then(|vs| vs.get(e))) {
                            out.push(v);
                        }
                    }
                }
                start = end;
                indptr.push(indices.len());
            }
            Csr { indptr, indices, values }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::interactions::{Columns, Duplicates};

    fn data() -> Interactions {
        let mut u = Vec::new();
        let mut i = Vec::new();
        for user in 0..20i64 {
            for item in 0..(user % 6) {
                u.push(user);
                i.push((item * 3 + user) % 17);
            }
        }
        Interactions::from_indices(&u, &i, None, None, Some(17), Duplicates::Sum, Columns::default()).unwrap()
    }

    #[test]
    fn leave_one_out_holds_one_per_user_and_loses_nothing() {
        let d = data();
        let parts = leave_one_out(&d, true, 7).unwrap();
        let [train, val, test] = [&parts[0], &parts[1], &parts[2]];
        assert_eq!(train.nnz() + val.nnz() + test.nnz(), d.nnz());
        for u in 0..d.n_users() {
            let n = d.user_items(u).len();
            let expect = if n > 2 { 1 } else { 0 };
            assert_eq!(val.user_items(u).len(), expect);
            assert_eq!(test.user_items(u).len(), expect);
            assert!(test.user_items(u).iter().all(|i| !train.user_items(u).contains(i)));
            assert!(test.user_items(u).iter().all(|i| !val.user_items(u).contains(i)));
        }
        // Seeded: the same split again, another seed a different one.
        assert_eq!(leave_one_out(&d, true, 7).unwrap()[2].by_user(), test.by_user());
        assert_ne!(leave_one_out(&d, true, 8).unwrap()[2].by_user(), test.by_user());
    }

    #[test]
    fn random_split_exact_fraction() {
        let d = data();
        let parts = random_split(&d, 0.25, 1).unwrap();
        assert_eq!(parts[1].nnz(), (0.25 * d.nnz() as f64).round() as usize);
        assert_eq!(parts[0].nnz() + parts[1].nnz(), d.nnz());
        assert!(random_split(&d, 1.0, 1).is_err());
    }
}
