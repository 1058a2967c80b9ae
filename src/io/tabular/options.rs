//! What to read and which rows to keep ([`CsvOptions`]), and what a read did ([`CsvReport`]).

use rustc_hash::FxHashSet;

use super::columns::Id;
use crate::data::{IdKind, RawIds};
use crate::error::{Error, Result};

/// How the ids of a column are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdType {
    /// Integers when every id of the column is one, else strings (the text as it is).
    Auto,
    Int,
    Str,
}

impl std::str::FromStr for IdType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(IdType::Auto),
            "int" => Ok(IdType::Int),
            "str" => Ok(IdType::Str),
            _ => Err(Error::invalid(format!("id type must be 'auto', 'int' or 'str', not {}", crate::error::quote(s)))),
        }
    }
}

/// A column, by header name or by 0-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Col {
    Name(String),
    Pos(usize),
}

/// Raw item ids for the keep / drop filters.
#[derive(Debug, Clone)]
pub enum IdSet {
    Int(FxHashSet<i64>),
    Str(FxHashSet<String>),
}

impl IdSet {
    pub fn new(raw: RawIds<'_>) -> Self {
        match raw {
            RawIds::Int(v) => IdSet::Int(v.iter().copied().collect()),
            RawIds::Str(v) => IdSet::Str(v.iter().map(|s| s.to_string()).collect()),
        }
    }

    pub(super) fn kind(&self) -> IdKind {
        match self {
            IdSet::Int(_) => IdKind::Int,
            IdSet::Str(_) => IdKind::Str,
        }
    }

    pub(super) fn contains(&self, id: &Id<'_>) -> bool {
        match (self, id) {
            (IdSet::Int(s), Id::Int(x)) => s.contains(x),
            (IdSet::Str(s), Id::Str(x)) => s.contains(*x),
            _ => false,
        }
    }
}

/// What to read and which rows to keep.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    pub delimiter: u8,
    /// The first line names the columns.
    pub header: bool,
    pub user: Col,
    pub item: Col,
    /// A numeric column (rating, count); `None` for implicit feedback.
    pub value: Option<Col>,
    pub user_type: IdType,
    pub item_type: IdType,
    /// Keep rows whose value is >= this.
    pub min_value: Option<f64>,
    /// Drop rows whose value is one of these (e.g. -1, "watched but not rated").
    pub drop_values: Vec<f64>,
    /// Keep only rows whose item is in this set.
    pub keep_items: Option<IdSet>,
    /// Drop rows whose item is in this set.
    pub drop_items: Option<IdSet>,
    /// After the filters above, drop the rows of items with fewer rows than this.
    pub min_item_rows: Option<usize>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            header: true,
            user: Col::Name("user_id".into()),
            item: Col::Name("item_id".into()),
            value: None,
            user_type: IdType::Auto,
            item_type: IdType::Auto,
            min_value: None,
            drop_values: Vec::new(),
            keep_items: None,
            drop_items: None,
            min_item_rows: None,
        }
    }
}

/// What a read did: rows seen, rows each filter dropped (each row counted once, by the first
/// filter that drops it, in the order below), rows kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsvReport {
    /// Data records in the file (blank lines not included).
    pub rows: usize,
    /// Empty lines, skipped.
    pub blank_lines: usize,
    pub dropped_min_value: usize,
    pub dropped_values: usize,
    /// Rows dropped by `keep_items` / `drop_items`.
    pub dropped_items: usize,
    /// Rows dropped by `min_item_rows`, and how many items that removed.
    pub dropped_min_item_rows: usize,
    pub items_below_min_rows: usize,
    /// Rows whose id the given id maps do not know (with `unknown = drop`).
    pub dropped_unknown: usize,
    /// Rows that went into the interactions.
    pub kept: usize,
    /// Distinct (user, item) pairs after duplicates were merged.
    pub pairs: usize,
    pub user_kind: Option<IdKind>,
    pub item_kind: Option<IdKind>,
    /// The parallel (quote-free) path was used.
    pub parallel: bool,
}

impl CsvReport {
    pub(super) fn dropped_summary(&self) -> String {
        format!(
            "{} rows read; dropped: {} below min_value, {} with a value in drop_values, {} by the item \
             filters, {} of items below min_item_rows",
            self.rows, self.dropped_min_value, self.dropped_values, self.dropped_items, self.dropped_min_item_rows
        )
    }
}
