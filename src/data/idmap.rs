//! Raw ids (integers or strings, as the user's data has them) <-> dense indices 0..n.
//!
//! Indices follow the sorted order of the raw ids, so the same data gives the same indices
//! whatever the row order. Train and test share one `IdMap` (behind an `Arc`) so their
//! indices mean the same thing and results can be mapped back to raw ids.

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{Error, Result};

/// Marks a raw id that is not in the map (see [`IdMap::lookup_int`]).
pub const UNKNOWN: u32 = u32::MAX;

/// Raw ids of one column, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub enum RawIds<'a> {
    Int(&'a [i64]),
    Str(&'a [&'a str]),
}

impl RawIds<'_> {
    pub fn len(&self) -> usize {
        match self {
            RawIds::Int(v) => v.len(),
            RawIds::Str(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Int,
    Str,
}

#[derive(Debug, Clone)]
pub enum IdMap {
    /// The ids are the indices themselves, 0..n (data given as indices).
    Range(usize),
    Int { ids: Vec<i64>, index: FxHashMap<i64, u32> },
    Str { ids: Vec<String>, index: FxHashMap<String, u32> },
}

impl PartialEq for IdMap {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (IdMap::Range(a), IdMap::Range(b)) => a == b,
            (IdMap::Int { ids: a, .. }, IdMap::Int { ids: b, .. }) => a == b,
            (IdMap::Str { ids: a, .. }, IdMap::Str { ids: b, .. }) => a == b,
            (IdMap::Range(n), IdMap::Int { ids, .. }) | (IdMap::Int { ids, .. }, IdMap::Range(n)) => {
                ids.len() == *n && ids.iter().enumerate().all(|(i, &v)| v == i as i64)
            }
            _ => false,
        }
    }
}

impl IdMap {
    pub fn len(&self) -> usize {
        match self {
            IdMap::Range(n) => *n,
            IdMap::Int { ids, .. } => ids.len(),
            IdMap::Str { ids, .. } => ids.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn kind(&self) -> IdKind {
        match self {
            IdMap::Str { .. } => IdKind::Str,
            _ => IdKind::Int,
        }
    }

    /// The map of the sorted distinct values of `raw`.
    pub fn build(raw: RawIds<'_>) -> Self {
        match raw {
            RawIds::Int(v) => {
                let mut ids = distinct(v);
                ids.par_sort_unstable();
                Self::from_unique_int(ids)
            }
            RawIds::Str(v) => {
                let mut ids = distinct(v);
                ids.par_sort_unstable();
                Self::from_unique_str(ids.into_iter().map(str::to_owned).collect())
            }
        }
    }

    /// A map keeping the given order; the ids must be distinct (used when loading a model).
    pub fn from_int_ids(ids: Vec<i64>, what: &str) -> Result<Self> {
        let map = Self::from_unique_int(ids);
        map.check_distinct(what)?;
        Ok(map)
    }

    /// A map keeping the given order; the ids must be distinct.
    pub fn from_str_ids(ids: Vec<String>, what: &str) -> Result<Self> {
        let map = Self::from_unique_str(ids);
        map.check_distinct(what)?;
        Ok(map)
    }

    fn check_distinct(&self, what: &str) -> Result<()> {
        let (n_index, n) = match self {
            IdMap::Range(_) => return Ok(()),
            IdMap::Int { ids, index } => (index.len(), ids.len()),
            IdMap::Str { ids, index } => (index.len(), ids.len()),
        };
        if n_index != n {
            return Err(Error::invalid(format!("{what}: ids are not distinct ({n} ids, {n_index} distinct)")));
        }
        Ok(())
    }

    fn from_unique_int(ids: Vec<i64>) -> Self {
        let index = ids.iter().enumerate().map(|(i, &v)| (v, i as u32)).collect();
        IdMap::Int { ids, index }
    }

    fn from_unique_str(ids: Vec<String>) -> Self {
        let index = ids.iter().enumerate().map(|(i, v)| (v.clone(), i as u32)).collect();
        IdMap::Str { ids, index }
    }

    /// Index of each raw id, [`UNKNOWN`] where it is not in the map.
    pub fn lookup(&self, raw: RawIds<'_>) -> Result<Vec<u32>> {
        match (self, raw) {
            (IdMap::Range(n), RawIds::Int(v)) => Ok(v
                .par_iter()
                .map(|&x| if x >= 0 && (x as u64) < *n as u64 { x as u32 } else { UNKNOWN })
                .collect()),
            (IdMap::Int { index, .. }, RawIds::Int(v)) => {
                Ok(v.par_iter().map(|x| index.get(x).copied().unwrap_or(UNKNOWN)).collect())
            }
            (IdMap::Str { index, .. }, RawIds::Str(v)) => {
                Ok(v.par_iter().map(|x| index.get(*x).copied().unwrap_or(UNKNOWN)).collect())
            }
            (IdMap::Str { .. }, RawIds::Int(_)) => {
                Err(Error::invalid("the ids are strings, but integers were given"))
            }
            (_, RawIds::Str(_)) => Err(Error::invalid("the ids are integers, but strings were given")),
        }
    }

    /// Index of each raw id; an unknown id is an error naming `column` and the row.
    pub fn index(&self, raw: RawIds<'_>, column: &str) -> Result<Vec<u32>> {
        let idx = self.lookup(raw).map_err(|e| Error::invalid(format!("column '{column}': {e}")))?;
        if let Some(row) = idx.iter().position(|&i| i == UNKNOWN) {
            return Err(Error::invalid(format!(
                "column '{column}', row {row}: unknown id {} (not among the {} known ids)",
                display_raw(raw, row),
                self.len()
            )));
        }
        Ok(idx)
    }

    /// Index of each raw id given to a call as the argument `arg` ("score(): users"): an
    /// unknown id is an error naming the argument and the position,
    /// "score(): users[0] = 'x' is not a known user id" (`what`: "user", "item").
    pub fn index_arg(&self, raw: RawIds<'_>, arg: &str, what: &str) -> Result<Vec<u32>> {
        let idx = self.lookup(raw).map_err(|e| Error::invalid(format!("{arg}: {e}")))?;
        if let Some(row) = idx.iter().position(|&i| i == UNKNOWN) {
            let shown = match raw {
                RawIds::Int(v) => v.get(row).map(i64::to_string),
                RawIds::Str(v) => v.get(row).map(|s| python_quote(s)),
            }
            .unwrap_or_default();
            return Err(Error::invalid(format!(
                "{arg}[{row}] = {shown} is not a known {what} id (not among the {} known {what} ids)",
                self.len()
            )));
        }
        Ok(idx)
    }

    /// The raw id at `index`, for messages.
    pub fn display(&self, index: usize) -> String {
        match self {
            IdMap::Range(_) => index.to_string(),
            IdMap::Int { ids, .. } => ids.get(index).map_or_else(|| index.to_string(), i64::to_string),
            IdMap::Str { ids, .. } => ids.get(index).map_or_else(|| index.to_string(), |s| format!("{s:?}")),
        }
    }

    /// Integer ids in index order (None for string ids).
    pub fn int_ids(&self) -> Option<Vec<i64>> {
        match self {
            IdMap::Range(n) => Some((0..*n as i64).collect()),
            IdMap::Int { ids, .. } => Some(ids.clone()),
            IdMap::Str { .. } => None,
        }
    }

    /// This map followed by the ids of `extra` it does not hold yet (in their order, each once):
    /// a catalogue grown by side data (items with images but no interaction). Existing ids
    /// keep their indices. A repeated extra id is kept once; a kind mismatch is an error.
    pub fn extended(&self, extra: RawIds<'_>, what: &str) -> Result<IdMap> {
        let known = self.lookup(extra).map_err(|e| Error::invalid(format!("{what}: {e}")))?;
        match (self, extra) {
            (IdMap::Str { ids, .. }, RawIds::Str(v)) => {
                let mut ids = ids.clone();
                let mut seen = FxHashSet::default();
                for (s, &k) in v.iter().zip(&known) {
                    if k == UNKNOWN && seen.insert(*s) {
                        ids.push(s.to_string());
                    }
                }
                Ok(Self::from_unique_str(ids))
            }
            (_, RawIds::Int(v)) => {
                let mut ids = self.int_ids().unwrap_or_default();
                let n = ids.len();
                let mut seen = FxHashSet::default();
                for (&x, &k) in v.iter().zip(&known) {
                    if k == UNKNOWN && seen.insert(x) {
                        ids.push(x);
                    }
                }
                // Still 0..n in order: stay a range.
                if matches!(self, IdMap::Range(_)) && ids.iter().skip(n).enumerate().all(|(k, &x)| x == n.saturating_add(k) as i64) {
                    return Ok(IdMap::Range(ids.len()));
                }
                Ok(Self::from_unique_int(ids))
            }
            _ => unreachable!("lookup refused the kind mismatch"),
        }
    }

    /// True when this map's ids are the first `self.len()` of `other`'s, in order.
    pub fn is_prefix_of(&self, other: &IdMap) -> bool {
        if self.len() > other.len() {
            return false;
        }
        match (self, other) {
            (IdMap::Range(_), IdMap::Range(_)) => true,
            (IdMap::Str { ids: a, .. }, IdMap::Str { ids: b, .. }) => b.starts_with(a),
            (IdMap::Str { .. }, _) | (_, IdMap::Str { .. }) => false,
            _ => match (self.int_ids(), other.int_ids()) {
                (Some(a), Some(b)) => b.starts_with(&a),
                _ => false,
            },
        }
    }

    /// String ids in index order (None for integer ids).
    pub fn str_ids(&self) -> Option<&[String]> {
        match self {
            IdMap::Str { ids, .. } => Some(ids),
            _ => None,
        }
    }
}

/// The distinct values of `v`, in no order. Interaction columns repeat each id many times:
/// hashing them first leaves only the distinct ids to sort.
fn distinct<T: Copy + Eq + std::hash::Hash + Send + Sync>(v: &[T]) -> Vec<T> {
    v.par_chunks(1 << 16)
        .fold(FxHashSet::default, |mut set, chunk| {
            set.extend(chunk.iter().copied());
            set
        })
        .reduce(FxHashSet::default, |mut a, mut b| {
            if a.len() < b.len() {
                std::mem::swap(&mut a, &mut b);
            }
            a.extend(b);
            a
        })
        .into_iter()
        .collect()
}

/// Rows (first, second) of the first id that `raw` holds twice, if any.
pub fn first_repeat(raw: RawIds<'_>) -> Option<(usize, usize)> {
    fn scan<T: std::hash::Hash + Eq>(v: impl Iterator<Item = T>) -> Option<(usize, usize)> {
        let mut seen = rustc_hash::FxHashMap::default();
        for (row, x) in v.enumerate() {
            if let Some(first) = seen.insert(x, row) {
                return Some((first, row));
            }
        }
        None
    }
    match raw {
        RawIds::Int(v) => scan(v.iter()),
        RawIds::Str(v) => scan(v.iter()),
    }
}

/// A raw id of a column, quoted when it is a string.
pub fn display_raw(raw: RawIds<'_>, row: usize) -> String {
    match raw {
        RawIds::Int(v) => v.get(row).map(i64::to_string),
        RawIds::Str(v) => v.get(row).map(|s| crate::error::quote(s)),
    }
    .unwrap_or_default()
}

/// A string id as Python's repr writes it ('x'), shortened as [`crate::error::quote`] does.
fn python_quote(text: &str) -> String {
    let quoted = crate::error::quote(text);
    if text.contains('\'') || text.contains('"') {
        return quoted;
    }
    match quoted.strip_prefix('"').and_then(|q| q.split_once('"')) {
        Some((inner, rest)) => format!("'{inner}'{rest}"),
        None => quoted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_argument_id_names_the_argument() {
        let m = IdMap::build(RawIds::Str(&["b", "a"]));
        let e = m.index_arg(RawIds::Str(&["a", "x"]), "score(): users", "user").unwrap_err().to_string();
        assert!(e.contains("score(): users[1] = 'x' is not a known user id (not among the 2 known user ids)"), "{e}");
        let m = IdMap::build(RawIds::Int(&[5]));
        let e = m.index_arg(RawIds::Int(&[5, 5, 7]), "similar_items(): items", "item").unwrap_err().to_string();
        assert!(e.contains("similar_items(): items[2] = 7 is not a known item id"), "{e}");
        let e = m.index_arg(RawIds::Str(&["5"]), "recommend(): users", "user").unwrap_err().to_string();
        assert!(e.starts_with("recommend(): users: the ids are integers"), "{e}");
    }

    #[test]
    fn int_ids_are_sorted_and_deduplicated() {
        let m = IdMap::build(RawIds::Int(&[30, 10, 20, 10]));
        assert_eq!(m.int_ids().unwrap(), vec![10, 20, 30]);
        assert_eq!(m.index(RawIds::Int(&[20, 30, 10]), "u").unwrap(), vec![1, 2, 0]);
    }

    #[test]
    fn unknown_id_names_column_and_row() {
        let m = IdMap::build(RawIds::Str(&["b", "a"]));
        let e = m.index(RawIds::Str(&["a", "zz", "b"]), "user_id").unwrap_err().to_string();
        assert!(e.contains("column 'user_id', row 1") && e.contains("\"zz\""), "{e}");
    }

    #[test]
    fn kind_mismatch_is_an_error() {
        let m = IdMap::build(RawIds::Str(&["a"]));
        assert!(m.index(RawIds::Int(&[1]), "item").is_err());
    }

    #[test]
    fn range_map_checks_bounds() {
        let m = IdMap::Range(3);
        assert_eq!(m.lookup(RawIds::Int(&[0, 2, 3, -1])).unwrap(), vec![0, 2, UNKNOWN, UNKNOWN]);
        assert_eq!(m, IdMap::build(RawIds::Int(&[2, 1, 0])));
    }

    #[test]
    fn extended_keeps_indices_and_appends_new_ids() {
        let m = IdMap::build(RawIds::Int(&[10, 20]));
        let e = m.extended(RawIds::Int(&[20, 5, 5, 30]), "images").unwrap();
        assert_eq!(e.int_ids().unwrap(), vec![10, 20, 5, 30]);
        assert!(m.is_prefix_of(&e) && !e.is_prefix_of(&m));
        assert_eq!(IdMap::Range(2).extended(RawIds::Int(&[2, 3]), "x").unwrap(), IdMap::Range(4));
        let s = IdMap::build(RawIds::Str(&["a"])).extended(RawIds::Str(&["b", "a"]), "x").unwrap();
        assert_eq!(s.str_ids().unwrap(), ["a", "b"]);
        assert!(IdMap::Range(2).extended(RawIds::Str(&["a"]), "images").is_err());
    }

    #[test]
    fn duplicate_ids_rejected_on_load() {
        assert!(IdMap::from_str_ids(vec!["a".into(), "a".into()], "items").is_err());
    }
}
