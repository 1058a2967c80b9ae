//! Implicit feedback as a users x items sparse matrix.
//!
//! Held as CSR by user (rows sorted by item, no duplicate pairs), with the by-item transpose
//! built on first use. Optional `values` keep a rating or weight per pair. Raw ids live in
//! shared [`IdMaps`], so a split or a test set built `like` a train set speaks the same indices.

use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use super::idmap::{display_raw, IdMap, RawIds, UNKNOWN};
use crate::error::{Error, Result};

/// The user and item id maps of a data set; shared by its splits and by models fitted on it.
#[derive(Debug, Clone)]
pub struct IdMaps {
    pub users: Arc<IdMap>,
    pub items: Arc<IdMap>,
}

impl IdMaps {
    pub fn new(users: IdMap, items: IdMap) -> Self {
        IdMaps { users: Arc::new(users), items: Arc::new(items) }
    }

    /// Same id spaces (cheap when shared, else compares the ids).
    pub fn same_as(&self, other: &IdMaps) -> bool {
        let same = |a: &Arc<IdMap>, b: &Arc<IdMap>| Arc::ptr_eq(a, b) || **a == **b;
        same(&self.users, &other.users) && same(&self.items, &other.items)
    }
}

/// What to do with a (user, item) pair that occurs more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// Keep one pair; its value is the sum (a count for transaction logs).
    Sum,
    /// Keep one pair with the largest value.
    Max,
    /// Keep one pair with the value of the last occurrence.
    Last,
    /// Refuse the input, naming both rows.
    Error,
}

impl std::str::FromStr for Duplicates {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sum" => Ok(Duplicates::Sum),
            "max" => Ok(Duplicates::Max),
            "last" => Ok(Duplicates::Last),
            "error" => Ok(Duplicates::Error),
            _ => Err(Error::invalid(format!(
                "duplicates must be one of 'sum', 'max', 'last', 'error', not {}",
                crate::error::quote(s)
            ))),
        }
    }
}

/// What to do with an id that the reference id maps do not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    Error,
    /// Drop the row; the number dropped is returned so the caller can report it.
    Drop,
}

impl std::str::FromStr for Unknown {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "error" => Ok(Unknown::Error),
            "drop" => Ok(Unknown::Drop),
            _ => Err(Error::invalid(format!("unknown must be 'error' or 'drop', not {}", crate::error::quote(s)))),
        }
    }
}

/// Column names, used in error messages only.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    pub user: &'a str,
    pub item: &'a str,
    pub value: &'a str,
}

impl Default for Columns<'_> {
    fn default() -> Self {
        Columns { user: "user", item: "item", value: "value" }
    }
}

/// Compressed sparse rows: `indices[indptr[r]..indptr[r + 1]]` are the sorted columns of row r.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Option<Vec<f32>>,
}

#[allow(clippy::indexing_slicing, reason = "CSR kernels: from_coo's rows are below n_rows (checked_indices or IdMap::lookup in the Interactions constructors), offsets are monotone by construction (from_coo, transpose), row(r) is asked for r < n_rows")]
#[allow(clippy::arithmetic_side_effects, reason = "CSR kernels' counting sorts: n_rows + 1 and n_cols + 1 are checked below, counts and offsets are at most the number of entries (a Vec's length), r + 1 <= n_rows")]
impl Csr {
    pub fn n_rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn row(&self, r: usize) -> &[u32] {
        &self.indices[self.indptr[r]..self.indptr[r + 1]]
    }

    pub fn row_values(&self, r: usize) -> Option<&[f32]> {
        self.values.as_ref().map(|v| &v[self.indptr[r]..self.indptr[r + 1]])
    }

    pub fn contains(&self, r: usize, c: u32) -> bool {
        self.row(r).binary_search(&c).is_ok()
    }

    /// Build from coordinates; every row must be < n_rows. Duplicates are merged as `dup` says.
    pub fn from_coo(
        n_rows: usize,
        rows: &[u32],
        cols: &[u32],
        values: Option<&[f32]>,
        dup: Duplicates,
    ) -> Result<Csr> {
        // Counting sort by row keeps input order inside a row (for `Last` and error rows).
        let n_offsets = n_rows.checked_add(1).ok_or_else(|| Error::invalid(format!("{n_rows} rows are too many")))?;
        let mut indptr = crate::limits::try_filled("the row offsets", n_offsets, 0usize)?;
        for &r in rows {
            indptr[r as usize + 1] += 1;
        }
        for r in 0..n_rows {
            indptr[r + 1] += indptr[r];
        }
        let mut next = indptr.clone();
        let mut order = vec![0usize; rows.len()];
        for (pos, &r) in rows.iter().enumerate() {
            order[next[r as usize]] = pos;
            next[r as usize] += 1;
        }
        split_rows_mut(&mut order, &indptr)
            .into_par_iter()
            .for_each(|row| row.sort_unstable_by_key(|&p| (cols[p], p)));

        let mut out_ptr = Vec::with_capacity(n_offsets);
        out_ptr.push(0usize);
        let mut out_idx = Vec::with_capacity(rows.len());
        let mut out_val = values.map(|_| Vec::with_capacity(rows.len()));
        for r in 0..n_rows {
            let seg = &order[indptr[r]..indptr[r + 1]];
            let mut k = 0;
            while k < seg.len() {
                let first = seg[k];
                let c = cols[first];
                let mut v = values.map(|vs| vs[first]);
                let mut m = k + 1;
                while m < seg.len() && cols[seg[m]] == c {
                    let p = seg[m];
                    match dup {
                        Duplicates::Error => {
                            return Err(Error::invalid(format!(
                                "rows {first} and {p} hold the same (user, item) pair; \
                                 pass duplicates='sum', 'max' or 'last' to merge them"
                            )))
                        }
                        Duplicates::Sum => {
                            let sum = v.zip(values).map(|(a, vs)| a + vs[p]);
                            if let Some(x) = sum.filter(|x| !x.is_finite()) {
                                return Err(Error::invalid(format!(
                                    "rows {first} and {p} hold the same (user, item) pair and their values sum \
                                     to {x} (beyond float32); pass duplicates='max' or 'last', or scale the values"
                                )));
                            }
                            v = sum
                        }
                        Duplicates::Max => v = v.zip(values).map(|(a, vs)| a.max(vs[p])),
                        Duplicates::Last => v = values.map(|vs| vs[p]),
                    }
                    m += 1;
                }
                out_idx.push(c);
                if let (Some(ov), Some(v)) = (out_val.as_mut(), v) {
                    ov.push(v);
                }
                k = m;
            }
            out_ptr.push(out_idx.len());
        }
        out_idx.shrink_to_fit();
        Ok(Csr { indptr: out_ptr, indices: out_idx, values: out_val })
    }

    /// The transpose (n_cols rows), built in one counting pass; rows come out sorted.
    pub fn transpose(&self, n_cols: usize) -> Csr {
        // A column count past usize is refused by the allocation.
        let mut indptr = vec![0usize; n_cols.saturating_add(1)];
        for &c in &self.indices {
            indptr[c as usize + 1] += 1;
        }
        for c in 0..n_cols {
            indptr[c + 1] += indptr[c];
        }
        let mut next = indptr.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut values = self.values.as_ref().map(|_| vec![0f32; self.nnz()]);
        for r in 0..self.n_rows() {
            for k in self.indptr[r]..self.indptr[r + 1] {
                let c = self.indices[k] as usize;
                indices[next[c]] = r as u32;
                if let (Some(out), Some(vs)) = (values.as_mut(), self.values.as_ref()) {
                    out[next[c]] = vs[k];
                }
                next[c] += 1;
            }
        }
        Csr { indptr, indices, values }
    }

    /// Row of each stored entry (the COO row array).
    pub fn row_of_entries(&self) -> Vec<u32> {
        let mut out = vec![0u32; self.nnz()];
        split_rows_mut(&mut out, &self.indptr)
            .into_par_iter()
            .enumerate()
            .for_each(|(r, seg)| seg.fill(r as u32));
        out
    }
}

/// Split `data` into the row segments given by `indptr`, for parallel per-row work.
pub(crate) fn split_rows_mut<'a, T>(mut data: &'a mut [T], indptr: &[usize]) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(indptr.len().saturating_sub(1));
    for (start, end) in indptr.iter().zip(indptr.iter().skip(1)) {
        let (head, tail) = data.split_at_mut(end.saturating_sub(*start));
        out.push(head);
        data = tail;
    }
    out
}

/// Users x items implicit feedback.
#[derive(Debug)]
pub struct Interactions {
    by_user: Csr,
    by_item: OnceLock<Csr>,
    ids: IdMaps,
}

impl Clone for Interactions {
    fn clone(&self) -> Self {
        Interactions { by_user: self.by_user.clone(), by_item: OnceLock::new(), ids: self.ids.clone() }
    }
}

impl Interactions {
    /// From a CSR by user over the given id maps (rows must match the users).
    pub fn from_csr(by_user: Csr, ids: IdMaps) -> Result<Self> {
        if by_user.n_rows() != ids.users.len() {
            return Err(Error::invalid(format!(
                "CSR has {} rows for {} users",
                by_user.n_rows(),
                ids.users.len()
            )));
        }
        if let Some(&bad) = by_user.indices.iter().find(|&&c| c as usize >= ids.items.len()) {
            return Err(Error::invalid(format!("item index {bad} out of range for {} items", ids.items.len())));
        }
        Ok(Interactions { by_user, by_item: OnceLock::new(), ids })
    }

    /// The same interactions over larger id maps that extend this one's (users or items with
    /// no interaction appended: a catalogue that side data makes larger).
    pub fn with_ids(&self, ids: IdMaps) -> Result<Self> {
        if !self.ids.users.is_prefix_of(&ids.users) || !self.ids.items.is_prefix_of(&ids.items) {
            return Err(Error::invalid("the new id maps must extend the interactions' own (same ids first, same order)"));
        }
        let mut csr = self.by_user.clone();
        let last = csr.indptr.last().copied().unwrap_or(0);
        csr.indptr.resize(ids.users.len().saturating_add(1), last);
        Self::from_csr(csr, ids)
    }

    /// From 0-based indices. `n_users`/`n_items` default to the largest index + 1.
    pub fn from_indices(
        users: &[i64],
        items: &[i64],
        values: Option<&[f32]>,
        n_users: Option<usize>,
        n_items: Option<usize>,
        dup: Duplicates,
        cols: Columns<'_>,
    ) -> Result<Self> {
        check_lengths(users.len(), items.len(), values.map(<[f32]>::len), cols)?;
        let u = checked_indices(users, n_users, cols.user, "n_users")?;
        let i = checked_indices(items, n_items, cols.item, "n_items")?;
        if let Some(v) = values {
            check_finite(v, cols.value)?;
        }
        let n_users = n_users.unwrap_or_else(|| max_plus_one(&u));
        let n_items = n_items.unwrap_or_else(|| max_plus_one(&i));
        // The CSR by user and its transpose hold one offset per user and per item.
        crate::limits::bytes_for(&format!("n_users={n_users}"), n_users.saturating_add(1), std::mem::size_of::<usize>())?;
        crate::limits::bytes_for(&format!("n_items={n_items}"), n_items.saturating_add(1), std::mem::size_of::<usize>())?;
        let csr = Csr::from_coo(n_users, &u, &i, values, dup)?;
        Self::from_csr(csr, IdMaps::new(IdMap::Range(n_users), IdMap::Range(n_items)))
    }

    /// From raw ids. Each side's id map is the given one (`user_map`, `item_map`: the ids of
    /// a training set, or a full catalogue), or else the sorted distinct ids of the input.
    /// Ids a given map does not know are handled as `unknown` says. Returns the
    /// interactions and the number of rows dropped as unknown.
    #[allow(clippy::too_many_arguments)]
    pub fn from_raw(
        users: RawIds<'_>,
        items: RawIds<'_>,
        values: Option<&[f32]>,
        user_map: Option<Arc<IdMap>>,
        item_map: Option<Arc<IdMap>>,
        unknown: Unknown,
        dup: Duplicates,
        cols: Columns<'_>,
    ) -> Result<(Self, usize)> {
        check_lengths(users.len(), items.len(), values.map(<[f32]>::len), cols)?;
        if let Some(v) = values {
            check_finite(v, cols.value)?;
        }
        let ids = IdMaps {
            users: user_map.unwrap_or_else(|| Arc::new(IdMap::build(users))),
            items: item_map.unwrap_or_else(|| Arc::new(IdMap::build(items))),
        };
        let u = ids.users.lookup(users).map_err(|e| Error::invalid(format!("column '{}': {e}", cols.user)))?;
        let i = ids.items.lookup(items).map_err(|e| Error::invalid(format!("column '{}': {e}", cols.item)))?;
        let bad = |idx: &[u32]| idx.iter().position(|&x| x == UNKNOWN);
        let (u, i, vals, dropped) = match unknown {
            Unknown::Error => {
                for (idx, raw, col, map) in [(&u, users, cols.user, &ids.users), (&i, items, cols.item, &ids.items)] {
                    if let Some(row) = bad(idx) {
                        return Err(Error::invalid(format!(
                            "column '{col}', row {row}: unknown id {} (not among the {} known ids; \
                             pass unknown='drop' to drop such rows)",
                            display_raw(raw, row),
                            map.len()
                        )));
                    }
                }
                (u, i, values.map(<[f32]>::to_vec), 0)
            }
            Unknown::Drop => {
                let known: Vec<bool> = u.iter().zip(&i).map(|(&a, &b)| a != UNKNOWN && b != UNKNOWN).collect();
                let (u2, i2) = (kept(&u, &known), kept(&i, &known));
                let dropped = u.len().saturating_sub(u2.len());
                (u2, i2, values.map(|v| kept(v, &known)), dropped)
            }
        };
        if u.is_empty() {
            return Err(Error::invalid("no interactions left: every row has an unknown id"));
        }
        let csr = Csr::from_coo(ids.users.len(), &u, &i, vals.as_deref(), dup)?;
        Ok((Self::from_csr(csr, ids)?, dropped))
    }

    pub fn n_users(&self) -> usize {
        self.ids.users.len()
    }

    pub fn n_items(&self) -> usize {
        self.ids.items.len()
    }

    /// Number of distinct (user, item) pairs.
    pub fn nnz(&self) -> usize {
        self.by_user.nnz()
    }

    pub fn ids(&self) -> &IdMaps {
        &self.ids
    }

    pub fn by_user(&self) -> &Csr {
        &self.by_user
    }

    /// The by-item transpose, built once on first use.
    pub fn by_item(&self) -> &Csr {
        self.by_item.get_or_init(|| self.by_user.transpose(self.n_items()))
    }

    pub fn user_items(&self, user: usize) -> &[u32] {
        self.by_user.row(user)
    }

    /// Interactions per item.
    pub fn item_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.n_items()];
        for &i in &self.by_user.indices {
            // Below n_items: from_csr checked every item index.
            if let Some(c) = counts.get_mut(i as usize) {
                *c = c.saturating_add(1);
            }
        }
        counts
    }

    /// Users with at least one interaction, in index order.
    pub fn active_users(&self) -> Vec<u32> {
        (0..self.n_users()).filter(|&u| !self.by_user.row(u).is_empty()).map(|u| u as u32).collect()
    }

    /// (users, items, values) coordinate arrays, sorted by user then item.
    pub fn to_coo(&self) -> (Vec<u32>, Vec<u32>, Option<Vec<f32>>) {
        (self.by_user.row_of_entries(), self.by_user.indices.clone(), self.by_user.values.clone())
    }

    /// Error unless `other` uses the same user and item ids.
    pub fn check_same_ids(&self, other: &Interactions, what: &str) -> Result<()> {
        if self.ids.same_as(&other.ids) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "{what} uses other user/item ids ({} x {} vs {} x {}); build it with like= the training \
                 data, or take both from one split",
                other.n_users(),
                other.n_items(),
                self.n_users(),
                self.n_items()
            )))
        }
    }
}

fn check_lengths(n_users: usize, n_items: usize, n_values: Option<usize>, cols: Columns<'_>) -> Result<()> {
    if n_users != n_items || n_values.is_some_and(|n| n != n_users) {
        let v = n_values.map(|n| format!(", '{}' has {n}", cols.value)).unwrap_or_default();
        return Err(Error::invalid(format!(
            "columns differ in length: '{}' has {n_users} rows, '{}' has {n_items}{v}",
            cols.user, cols.item
        )));
    }
    if n_users == 0 {
        return Err(Error::invalid("no interactions: the input has no rows"));
    }
    Ok(())
}

fn check_finite(values: &[f32], column: &str) -> Result<()> {
    if let Some((row, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::invalid(format!("column '{column}', row {row}: value {v} is not finite")));
    }
    Ok(())
}

fn checked_indices(idx: &[i64], bound: Option<usize>, column: &str, bound_name: &str) -> Result<Vec<u32>> {
    // Indices are u32: a larger count could never be indexed, and would be truncated.
    if let Some(b) = bound.filter(|&b| b > u32::MAX as usize) {
        return Err(Error::invalid(format!(
            "{bound_name}={b} is more than the {} {bound_name} supported (indices are 32-bit)",
            u32::MAX
        )));
    }
    let limit = bound.map(|b| b as i64).unwrap_or(u32::MAX as i64);
    if let Some((row, &x)) = idx.iter().enumerate().find(|(_, &x)| x < 0 || x >= limit) {
        let why = if x < 0 {
            "negative index".to_string()
        } else if let Some(b) = bound {
            format!("index out of range for {bound_name}={b}")
        } else {
            "index too large".to_string()
        };
        return Err(Error::invalid(format!("column '{column}', row {row}: {why} ({x})")));
    }
    Ok(idx.iter().map(|&x| x as u32).collect())
}

/// The entries of `col` whose flag in `keep` is set, in order.
fn kept<T: Copy>(col: &[T], keep: &[bool]) -> Vec<T> {
    col.iter().zip(keep).filter(|(_, &k)| k).map(|(&x, _)| x).collect()
}

fn max_plus_one(idx: &[u32]) -> usize {
    idx.iter().copied().max().map_or(0, |m| (m as usize).saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Columns<'static> {
        Columns::default()
    }

    #[test]
    fn counts_beyond_indices_or_memory_are_refused() {
        let e = Interactions::from_indices(&[0], &[0], None, Some(10_000_000_000_000), None, Duplicates::Sum, cols());
        assert!(e.unwrap_err().to_string().contains("n_users=10000000000000"));
        // Within 32-bit indices but not within memory: 2^32 offsets of 8 bytes need 32 GiB.
        let e = Interactions::from_indices(&[0], &[0], None, None, Some(u32::MAX as usize), Duplicates::Sum, cols());
        if crate::limits::budget() < 32 << 30 {
            let e = e.unwrap_err();
            assert!(matches!(e, Error::Memory(_)) && e.to_string().contains("n_items=4294967295"), "{e}");
        }
    }

    #[test]
    fn summed_duplicates_must_stay_finite() {
        let e = Interactions::from_indices(&[0, 0], &[1, 1], Some(&[3e38, 3e38]), None, None, Duplicates::Sum, cols());
        assert!(e.unwrap_err().to_string().contains("sum to inf"));
    }

    #[test]
    fn csr_rows_sorted_and_merged() {
        let x = Interactions::from_indices(
            &[1, 0, 1, 1],
            &[2, 1, 0, 2],
            Some(&[1.0, 2.0, 3.0, 4.0]),
            None,
            None,
            Duplicates::Sum,
            cols(),
        )
        .unwrap();
        assert_eq!((x.n_users(), x.n_items(), x.nnz()), (2, 3, 3));
        assert_eq!(x.user_items(1), &[0, 2]);
        assert_eq!(x.by_user().row_values(1).unwrap(), &[3.0, 5.0]);
        assert_eq!(x.by_item().row(2), &[1]);
        let (u, i, _) = x.to_coo();
        assert_eq!((u, i), (vec![0, 1, 1], vec![1, 0, 2]));
    }

    #[test]
    fn duplicate_policies() {
        let run = |d| {
            Interactions::from_indices(&[0, 0], &[1, 1], Some(&[2.0, 1.0]), None, None, d, cols())
                .map(|x| x.by_user().values.clone().unwrap())
        };
        assert_eq!(run(Duplicates::Max).unwrap(), vec![2.0]);
        assert_eq!(run(Duplicates::Last).unwrap(), vec![1.0]);
        let e = run(Duplicates::Error).unwrap_err().to_string();
        assert!(e.contains("rows 0 and 1"), "{e}");
    }

    #[test]
    fn bad_indices_are_named() {
        let e = Interactions::from_indices(&[0, -1], &[0, 0], None, None, None, Duplicates::Sum, cols())
            .unwrap_err()
            .to_string();
        assert!(e.contains("column 'user', row 1: negative index"), "{e}");
        let e = Interactions::from_indices(&[0, 5], &[0, 0], None, Some(3), None, Duplicates::Sum, cols())
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 1") && e.contains("n_users=3"), "{e}");
        let e = Interactions::from_indices(&[], &[], None, None, None, Duplicates::Sum, cols()).unwrap_err();
        assert!(e.to_string().contains("no rows"));
        let e = Interactions::from_indices(&[0], &[0], Some(&[f32::NAN]), None, None, Duplicates::Sum, cols())
            .unwrap_err()
            .to_string();
        assert!(e.contains("column 'value', row 0") && e.contains("NaN"), "{e}");
    }

    #[test]
    fn like_shares_ids_and_reports_unknown() {
        let (train, _) = Interactions::from_raw(
            RawIds::Str(&["a", "b"]),
            RawIds::Int(&[10, 20]),
            None,
            None,
            None,
            Unknown::Error,
            Duplicates::Sum,
            cols(),
        )
        .unwrap();
        let like = || (Some(train.ids().users.clone()), Some(train.ids().items.clone()));
        let e = Interactions::from_raw(
            RawIds::Str(&["a", "c"]),
            RawIds::Int(&[20, 10]),
            None,
            like().0,
            like().1,
            Unknown::Error,
            Duplicates::Sum,
            cols(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("column 'user', row 1: unknown id \"c\""), "{e}");
        let (test, dropped) = Interactions::from_raw(
            RawIds::Str(&["a", "c"]),
            RawIds::Int(&[20, 10]),
            None,
            like().0,
            like().1,
            Unknown::Drop,
            Duplicates::Sum,
            cols(),
        )
        .unwrap();
        assert_eq!((dropped, test.nnz()), (1, 1));
        assert!(test.check_same_ids(&train, "test").is_ok());
        assert_eq!(test.user_items(0), &[1]);
    }
}
