//! One record: its fields parsed and the filters applied ([`Rules`]), the rows of a chunk
//! gathered ([`Part`]), and why a record could not be read.

use std::path::Path;

use super::columns::{Id, IdColumn};
use super::layout::Layout;
use super::options::CsvOptions;
use super::text::{parse_i64, show, trim};
use crate::data::IdKind;
use crate::error::Error;

/// Why a record could not be read.
pub(super) enum RowErr {
    /// Malformed: the message names the column and the value (the caller adds the line).
    Bad(String),
    /// An auto-typed id column met a non-integer: the column is read again as strings.
    NotInt(usize),
    /// The record has this many fields.
    Fields(usize),
}

pub(super) fn row_error(path: &Path, layout: &Layout, line: u64, e: RowErr) -> Error {
    let msg = match e {
        RowErr::Bad(m) => m,
        RowErr::Fields(n) => {
            let hint = if n < layout.n_fields { " (a truncated line?)" } else { "" };
            format!("expected {} fields, found {n}{hint}", layout.n_fields)
        }
        RowErr::NotInt(c) => format!("{}: not an integer id", layout.label(c)),
    };
    Error::file(path, format!("line {line}, {msg}"))
}

/// A record kept, or the filter that dropped it.
pub(super) enum Outcome<'a> {
    Keep(Id<'a>, Id<'a>, f32),
    MinValue,
    Value,
    Item,
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    pub(super) rows: usize,
    pub(super) blank: usize,
    pub(super) min_value: usize,
    pub(super) values: usize,
    pub(super) items: usize,
}

impl Counts {
    pub(super) fn add(&mut self, o: &Counts) {
        self.rows = self.rows.saturating_add(o.rows);
        self.blank = self.blank.saturating_add(o.blank);
        self.min_value = self.min_value.saturating_add(o.min_value);
        self.values = self.values.saturating_add(o.values);
        self.items = self.items.saturating_add(o.items);
    }
}

/// The per-record rules: parse the fields, apply the filters.
pub(super) struct Rules<'o> {
    pub(super) layout: &'o Layout,
    pub(super) opts: &'o CsvOptions,
}

impl Rules<'_> {
    fn id<'a>(&self, c: usize, field: &'a [u8]) -> std::result::Result<Id<'a>, RowErr> {
        if field.is_empty() {
            return Err(RowErr::Bad(format!("{}: the id is empty", self.layout.label(c))));
        }
        // c is 0 (user) or 1 (item), the id columns.
        match self.layout.kinds.get(c) {
            Some(IdKind::Int) => match parse_i64(trim(field)) {
                Some(x) => Ok(Id::Int(x)),
                None if self.layout.auto.get(c) == Some(&true) => Err(RowErr::NotInt(c)),
                None => Err(RowErr::Bad(format!("{}: {} is not an integer id", self.layout.label(c), show(field)))),
            },
            Some(IdKind::Str) => match std::str::from_utf8(field) {
                Ok(s) => Ok(Id::Str(s)),
                Err(_) => Err(RowErr::Bad(format!("{}: {} is not valid UTF-8", self.layout.label(c), show(field)))),
            },
            None => Err(RowErr::Bad(format!("{}: not an id column", self.layout.label(c)))),
        }
    }

    fn value(&self, field: &[u8]) -> std::result::Result<f64, RowErr> {
        let t = trim(field);
        let label = || self.layout.label(2);
        if t.is_empty() {
            return Err(RowErr::Bad(format!("{}: the value is empty", label())));
        }
        // Most values (ratings, counts) are integers: a fast path before the float parser.
        let v: f64 = match parse_i64(t) {
            Some(x) if x.unsigned_abs() < 1 << 53 => x as f64,
            _ => std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| RowErr::Bad(format!("{}: {} is not a number", label(), show(field))))?,
        };
        if !v.is_finite() || !(v as f32).is_finite() {
            return Err(RowErr::Bad(format!("{}: {} is not a finite float32 number", label(), show(field))));
        }
        Ok(v)
    }

    pub(super) fn row<'a>(&self, f: &[&'a [u8]; 3]) -> std::result::Result<Outcome<'a>, RowErr> {
        let user = self.id(0, f[0])?;
        let item = self.id(1, f[1])?;
        let mut value = 1.0;
        if self.layout.pos[2] != usize::MAX {
            value = self.value(f[2])?;
            if self.opts.min_value.is_some_and(|m| value < m) {
                return Ok(Outcome::MinValue);
            }
            if self.opts.drop_values.contains(&value) {
                return Ok(Outcome::Value);
            }
        }
        if self.opts.keep_items.as_ref().is_some_and(|s| !s.contains(&item))
            || self.opts.drop_items.as_ref().is_some_and(|s| s.contains(&item))
        {
            return Ok(Outcome::Item);
        }
        Ok(Outcome::Keep(user, item, value as f32))
    }
}

/// Rows of one chunk.
pub(super) struct Part {
    pub(super) users: IdColumn,
    pub(super) items: IdColumn,
    pub(super) values: Vec<f32>,
    pub(super) counts: Counts,
    /// '\n' bytes in the chunk (its line count, for the line numbers of later chunks).
    pub(super) newlines: u64,
    /// First error: (line relative to the chunk's first line, error).
    pub(super) error: Option<(u64, RowErr)>,
}

impl Part {
    pub(super) fn new(layout: &Layout) -> Self {
        Part {
            users: IdColumn::empty(layout.kinds[0]),
            items: IdColumn::empty(layout.kinds[1]),
            values: Vec::new(),
            counts: Counts::default(),
            newlines: 0,
            error: None,
        }
    }

    /// Applies one record; false (with `error` set) on a bad record.
    pub(super) fn take(&mut self, rules: &Rules<'_>, fields: &[&[u8]; 3], rel_line: u64) -> bool {
        self.counts.rows = self.counts.rows.saturating_add(1);
        match rules.row(fields) {
            Ok(Outcome::Keep(u, i, v)) => {
                self.users.push(&u);
                self.items.push(&i);
                if rules.layout.pos[2] != usize::MAX {
                    self.values.push(v);
                }
                true
            }
            Ok(Outcome::MinValue) => {
                self.counts.min_value = self.counts.min_value.saturating_add(1);
                true
            }
            Ok(Outcome::Value) => {
                self.counts.values = self.counts.values.saturating_add(1);
                true
            }
            Ok(Outcome::Item) => {
                self.counts.items = self.counts.items.saturating_add(1);
                true
            }
            Err(e) => {
                self.error = Some((rel_line, e));
                false
            }
        }
    }
}
