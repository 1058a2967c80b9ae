//! Ids as read: one parsed field ([`Id`], borrowing the file), and whole columns of them
//! ([`IdColumn`]: integers, or strings end to end in one buffer).

use crate::data::{IdKind, RawIds};

/// String ids stored end to end in one buffer (no allocation per id).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StrColumn {
    text: String,
    ends: Vec<usize>,
}

impl StrColumn {
    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len());
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    /// Id `i` (None past the last).
    pub fn get(&self, i: usize) -> Option<&str> {
        let start = match i.checked_sub(1) {
            None => 0,
            Some(before) => *self.ends.get(before)?,
        };
        self.text.get(start..*self.ends.get(i)?)
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        // Each id runs from the previous one's end to its own; ends are pushed at char boundaries.
        self.ends.iter().scan(0, |start, &end| Some(self.text.get(std::mem::replace(start, end)..end).unwrap_or_default()))
    }
    fn reserve_exact(&mut self, ids: usize, bytes: usize) {
        self.text.reserve_exact(bytes);
        self.ends.reserve_exact(ids);
    }
    fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
    fn append(&mut self, other: StrColumn) {
        let base = self.text.len();
        self.text.push_str(&other.text);
        self.ends.extend(other.ends.into_iter().map(|e| e.saturating_add(base)));
    }
}

/// One column of raw ids as read.
#[derive(Debug, Clone, PartialEq)]
pub enum IdColumn {
    Int(Vec<i64>),
    Str(StrColumn),
}

impl IdColumn {
    pub(super) fn empty(kind: IdKind) -> Self {
        match kind {
            IdKind::Int => IdColumn::Int(Vec::new()),
            IdKind::Str => IdColumn::Str(StrColumn::default()),
        }
    }
    pub fn len(&self) -> usize {
        match self {
            IdColumn::Int(v) => v.len(),
            IdColumn::Str(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn kind(&self) -> IdKind {
        match self {
            IdColumn::Int(_) => IdKind::Int,
            IdColumn::Str(_) => IdKind::Str,
        }
    }
    /// Borrowed view for the data model; `views` keeps the `&str` slices of string ids.
    pub fn raw<'a>(&'a self, views: &'a mut Vec<&'a str>) -> RawIds<'a> {
        match self {
            IdColumn::Int(v) => RawIds::Int(v),
            IdColumn::Str(s) => {
                views.extend(s.iter());
                RawIds::Str(views)
            }
        }
    }
    /// Id `i` (None past the last).
    pub(super) fn get(&self, i: usize) -> Option<Id<'_>> {
        match self {
            IdColumn::Int(v) => v.get(i).copied().map(Id::Int),
            IdColumn::Str(s) => s.get(i).map(Id::Str),
        }
    }
    pub(super) fn push(&mut self, id: &Id<'_>) {
        match (self, id) {
            (IdColumn::Int(v), Id::Int(x)) => v.push(*x),
            (IdColumn::Str(s), Id::Str(x)) => s.push(x),
            _ => unreachable!("id kind fixed before parsing"),
        }
    }
    /// Room for `ids` more ids (and `bytes` more text for string ids), exactly.
    pub(super) fn reserve_exact(&mut self, ids: usize, bytes: usize) {
        match self {
            IdColumn::Int(v) => v.reserve_exact(ids),
            IdColumn::Str(s) => s.reserve_exact(ids, bytes),
        }
    }
    pub(super) fn shrink_to_fit(&mut self) {
        match self {
            IdColumn::Int(v) => v.shrink_to_fit(),
            IdColumn::Str(s) => s.shrink_to_fit(),
        }
    }
    pub(super) fn text_len(&self) -> usize {
        match self {
            IdColumn::Int(_) => 0,
            IdColumn::Str(s) => s.text.len(),
        }
    }
    pub(super) fn append(&mut self, other: IdColumn) {
        match (self, other) {
            (IdColumn::Int(a), IdColumn::Int(b)) => a.extend(b),
            (IdColumn::Str(a), IdColumn::Str(b)) => a.append(b),
            _ => unreachable!("every chunk has the same kinds"),
        }
    }
    pub(super) fn retain(&mut self, keep: &[bool]) {
        match self {
            IdColumn::Int(v) => {
                let mut k = keep.iter();
                v.retain(|_| k.next().copied().unwrap_or(true));
            }
            IdColumn::Str(s) => {
                let mut out = StrColumn::default();
                for (id, &k) in s.iter().zip(keep) {
                    if k {
                        out.push(id);
                    }
                }
                *s = out;
            }
        }
    }
}

/// An id as parsed from one field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Id<'a> {
    Int(i64),
    Str(&'a str),
}

impl std::fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Int(x) => write!(f, "{x}"),
            Id::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl std::hash::Hash for Id<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Id::Int(x) => x.hash(state),
            Id::Str(s) => s.hash(state),
        }
    }
}

impl Eq for Id<'_> {}
