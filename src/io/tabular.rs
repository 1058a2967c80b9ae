//! Delimited text files of interactions (CSV, TSV, ...) and headerless id lists.
//!
//! Why here and not in pandas: a rating file of 7.8M lines must never become 7.8M Python
//! objects, and its filters (minimum rating, drop -1, keep some items) must run while reading.
//! The file is memory-mapped. When its data has no quote character it is cut at line ends into
//! chunks parsed in parallel (rayon); otherwise one quote-aware pass reads it (RFC 4180: quoted
//! fields, doubled quotes, delimiters and line breaks inside quotes). Both give the same rows
//! in file order. CRLF, a missing final newline and a UTF-8 BOM are accepted.
//!
//! Nothing is dropped silently: every row a filter removes is counted in [`CsvReport`]. Errors
//! name the file, the line (1-based, physical lines of the file), the column and the value.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use memchr::{memchr, memchr2, memchr_iter};
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::map_file;
use crate::data::{Columns, Duplicates, IdKind, IdMap, Interactions, RawIds, Unknown};
use crate::data::idmap::UNKNOWN;
use crate::error::{Error, Result};

// ---------------------------------------------------------------------------------------------
// Options and results
// ---------------------------------------------------------------------------------------------

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

    fn kind(&self) -> IdKind {
        match self {
            IdSet::Int(_) => IdKind::Int,
            IdSet::Str(_) => IdKind::Str,
        }
    }

    fn contains(&self, id: &Id<'_>) -> bool {
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
    fn dropped_summary(&self) -> String {
        format!(
            "{} rows read; dropped: {} below min_value, {} with a value in drop_values, {} by the item \
             filters, {} of items below min_item_rows",
            self.rows, self.dropped_min_value, self.dropped_values, self.dropped_items, self.dropped_min_item_rows
        )
    }
}

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
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i))
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
        self.ends.extend(other.ends.into_iter().map(|e| e + base));
    }
}

/// One column of raw ids as read.
#[derive(Debug, Clone, PartialEq)]
pub enum IdColumn {
    Int(Vec<i64>),
    Str(StrColumn),
}

impl IdColumn {
    fn empty(kind: IdKind) -> Self {
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
    fn get(&self, i: usize) -> Id<'_> {
        match self {
            IdColumn::Int(v) => Id::Int(v[i]),
            IdColumn::Str(s) => Id::Str(s.get(i)),
        }
    }
    fn push(&mut self, id: &Id<'_>) {
        match (self, id) {
            (IdColumn::Int(v), Id::Int(x)) => v.push(*x),
            (IdColumn::Str(s), Id::Str(x)) => s.push(x),
            _ => unreachable!("id kind fixed before parsing"),
        }
    }
    /// Room for `ids` more ids (and `bytes` more text for string ids), exactly.
    fn reserve_exact(&mut self, ids: usize, bytes: usize) {
        match self {
            IdColumn::Int(v) => v.reserve_exact(ids),
            IdColumn::Str(s) => s.reserve_exact(ids, bytes),
        }
    }
    fn shrink_to_fit(&mut self) {
        match self {
            IdColumn::Int(v) => v.shrink_to_fit(),
            IdColumn::Str(s) => s.shrink_to_fit(),
        }
    }
    fn text_len(&self) -> usize {
        match self {
            IdColumn::Int(_) => 0,
            IdColumn::Str(s) => s.text.len(),
        }
    }
    fn append(&mut self, other: IdColumn) {
        match (self, other) {
            (IdColumn::Int(a), IdColumn::Int(b)) => a.extend(b),
            (IdColumn::Str(a), IdColumn::Str(b)) => a.append(b),
            _ => unreachable!("every chunk has the same kinds"),
        }
    }
    fn retain(&mut self, keep: &[bool]) {
        match self {
            IdColumn::Int(v) => {
                let mut k = keep.iter();
                v.retain(|_| *k.next().unwrap());
            }
            IdColumn::Str(s) => {
                let mut out = StrColumn::default();
                for (i, &k) in keep.iter().enumerate() {
                    if k {
                        out.push(s.get(i));
                    }
                }
                *s = out;
            }
        }
    }
}

/// The rows of an interaction file that passed the filters, in file order.
#[derive(Debug, Clone)]
pub struct CsvTable {
    pub users: IdColumn,
    pub items: IdColumn,
    pub values: Option<Vec<f32>>,
    /// Column names (the position as text for a headerless file): user, item, value.
    pub names: [String; 3],
    pub report: CsvReport,
    layout: Layout,
}

impl CsvTable {
    pub fn len(&self) -> usize {
        self.users.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---------------------------------------------------------------------------------------------
// Reading an interaction file
// ---------------------------------------------------------------------------------------------

/// An id as parsed from one field.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Id<'a> {
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

/// Where the columns are and how they are read, once the header (or first line) is known.
#[derive(Debug, Clone)]
struct Layout {
    delim: u8,
    n_fields: usize,
    /// Field positions of user, item, value (`usize::MAX`: no value column).
    pos: [usize; 3],
    names: [String; 3],
    header: bool,
    kinds: [IdKind; 2],
    auto: [bool; 2],
    /// Byte offset of the first data line (after the BOM and header) and its line number.
    data_start: usize,
    first_line: u64,
}

impl Layout {
    fn label(&self, c: usize) -> String {
        if self.header {
            format!("column '{}'", self.names[c])
        } else {
            format!("column {}", self.pos[c])
        }
    }
}

/// Why a record could not be read.
enum RowErr {
    /// Malformed: the message names the column and the value (the caller adds the line).
    Bad(String),
    /// An auto-typed id column met a non-integer: the column is read again as strings.
    NotInt(usize),
    /// The record has this many fields.
    Fields(usize),
}

/// A record kept, or the filter that dropped it.
enum Outcome<'a> {
    Keep(Id<'a>, Id<'a>, f32),
    MinValue,
    Value,
    Item,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    rows: usize,
    blank: usize,
    min_value: usize,
    values: usize,
    items: usize,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.rows += o.rows;
        self.blank += o.blank;
        self.min_value += o.min_value;
        self.values += o.values;
        self.items += o.items;
    }
}

/// The per-record rules: parse the fields, apply the filters.
struct Rules<'o> {
    layout: &'o Layout,
    opts: &'o CsvOptions,
}

impl Rules<'_> {
    fn id<'a>(&self, c: usize, field: &'a [u8]) -> std::result::Result<Id<'a>, RowErr> {
        if field.is_empty() {
            return Err(RowErr::Bad(format!("{}: the id is empty", self.layout.label(c))));
        }
        match self.layout.kinds[c] {
            IdKind::Int => match parse_i64(trim(field)) {
                Some(x) => Ok(Id::Int(x)),
                None if self.layout.auto[c] => Err(RowErr::NotInt(c)),
                None => Err(RowErr::Bad(format!("{}: {} is not an integer id", self.layout.label(c), show(field)))),
            },
            IdKind::Str => match std::str::from_utf8(field) {
                Ok(s) => Ok(Id::Str(s)),
                Err(_) => Err(RowErr::Bad(format!("{}: {} is not valid UTF-8", self.layout.label(c), show(field)))),
            },
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

    fn row<'a>(&self, f: &[&'a [u8]; 3]) -> std::result::Result<Outcome<'a>, RowErr> {
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
struct Part {
    users: IdColumn,
    items: IdColumn,
    values: Vec<f32>,
    counts: Counts,
    /// '\n' bytes in the chunk (its line count, for the line numbers of later chunks).
    newlines: u64,
    /// First error: (line relative to the chunk's first line, error).
    error: Option<(u64, RowErr)>,
}

impl Part {
    fn new(layout: &Layout) -> Self {
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
    fn take(&mut self, rules: &Rules<'_>, fields: &[&[u8]; 3], rel_line: u64) -> bool {
        self.counts.rows += 1;
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
                self.counts.min_value += 1;
                true
            }
            Ok(Outcome::Value) => {
                self.counts.values += 1;
                true
            }
            Ok(Outcome::Item) => {
                self.counts.items += 1;
                true
            }
            Err(e) => {
                self.error = Some((rel_line, e));
                false
            }
        }
    }
}

/// Target size of the chunks parsed in parallel: large enough that per-chunk work (a
/// thread hand-off, one concatenation) is noise, small enough for every core to get several.
const CHUNK_BYTES: usize = 1 << 20;

/// Reads the rows of an interaction file that pass the filters (see [`CsvOptions`]).
pub fn read_csv(path: &Path, opts: &CsvOptions) -> Result<CsvTable> {
    read_csv_chunked(path, opts, CHUNK_BYTES)
}

fn read_csv_chunked(path: &Path, opts: &CsvOptions, chunk_bytes: usize) -> Result<CsvTable> {
    let map = map_file(path)?;
    let data = strip_bom(&map);
    sniff(path, data)?;
    let mut layout = resolve_layout(path, data, opts)?;
    // Parse; an auto column that meets a non-integer is switched to strings and read again.
    let (part, parallel) = loop {
        let quoted = memchr(b'"', &data[layout.data_start..]).is_some();
        let part =
            if quoted { parse_quoted(data, &layout, opts) } else { parse_parallel(data, &layout, opts, chunk_bytes) };
        match part {
            Err(ParseErr::NotInt(cols)) => {
                for c in cols {
                    layout.kinds[c] = IdKind::Str;
                    layout.auto[c] = false;
                }
            }
            Err(ParseErr::At(line, e)) => return Err(row_error(path, &layout, line, e)),
            Ok(p) => break (p, !quoted),
        }
    };
    let Part { mut users, mut items, values, counts, .. } = part;
    let mut values = (layout.pos[2] != usize::MAX).then_some(values);
    if counts.rows == 0 {
        return Err(Error::file(path, "no data rows (the file has only a header or blank lines)"));
    }
    let mut report = CsvReport {
        rows: counts.rows,
        blank_lines: counts.blank,
        dropped_min_value: counts.min_value,
        dropped_values: counts.values,
        dropped_items: counts.items,
        user_kind: Some(layout.kinds[0]),
        item_kind: Some(layout.kinds[1]),
        parallel,
        ..Default::default()
    };
    if let Some(k) = opts.min_item_rows {
        let keep = min_rows_mask(&items, k, &mut report);
        if keep.iter().any(|&x| !x) {
            users.retain(&keep);
            items.retain(&keep);
            if let Some(v) = values.as_mut() {
                let mut it = keep.iter();
                v.retain(|_| *it.next().unwrap());
            }
        }
    }
    report.kept = users.len();
    Ok(CsvTable { users, items, values, names: layout.names.clone(), report, layout })
}

/// Reads an interaction file into [`Interactions`]. Each side's id map is the given one (a
/// training set's, or a catalogue's) or else the sorted distinct ids of the rows kept. With
/// `min_item_rows`, a given item map keeps only the items that have enough rows (so give it a
/// catalogue, never a training set's map). Ids a given map does not know are an error naming
/// the line, or with `Unknown::Drop` their rows are dropped and counted.
pub fn read_interactions(
    path: &Path,
    opts: &CsvOptions,
    user_map: Option<Arc<IdMap>>,
    item_map: Option<Arc<IdMap>>,
    unknown: Unknown,
    dup: Duplicates,
) -> Result<(Interactions, CsvReport)> {
    // An auto column takes the kind of the id map it is matched against.
    let mut opts = opts.clone();
    let fixed = |t: IdType, map: &Option<Arc<IdMap>>| match (t, map) {
        (IdType::Auto, Some(m)) => kind_type(m.kind()),
        _ => t,
    };
    opts.user_type = fixed(opts.user_type, &user_map);
    opts.item_type = fixed(opts.item_type, &item_map);
    let table = read_csv(path, &opts)?;
    let mut report = table.report.clone();
    if table.is_empty() {
        return Err(Error::file(path, format!("no rows left after the filters: {}", report.dropped_summary())));
    }
    let item_map = match (item_map, opts.min_item_rows) {
        (Some(m), Some(_)) => Some(Arc::new(prune_map(&m, &table.items)?)),
        (m, _) => m,
    };
    let (mut su, mut si) = (Vec::new(), Vec::new());
    let (ru, ri) = (table.users.raw(&mut su), table.items.raw(&mut si));
    let cols = Columns { user: &table.names[0], item: &table.names[1], value: &table.names[2] };
    let built =
        Interactions::from_raw(ru, ri, table.values.as_deref(), user_map.clone(), item_map.clone(), unknown, dup, cols);
    match built {
        Ok((x, dropped)) => {
            report.dropped_unknown = dropped;
            report.kept -= dropped;
            report.pairs = x.nnz();
            Ok((x, report))
        }
        Err(e) => Err(locate(path, &opts, &table, [ru, ri], [user_map, item_map], unknown, dup)
            .unwrap_or_else(|| Error::file(path, e.to_string()))),
    }
}

fn kind_type(k: IdKind) -> IdType {
    match k {
        IdKind::Int => IdType::Int,
        IdKind::Str => IdType::Str,
    }
}

/// The items of `map` that still have rows.
fn prune_map(map: &IdMap, items: &IdColumn) -> Result<IdMap> {
    match (map, items) {
        (IdMap::Str { ids, .. }, IdColumn::Str(col)) => {
            let present: FxHashSet<&str> = col.iter().collect();
            IdMap::from_str_ids(ids.iter().filter(|s| present.contains(s.as_str())).cloned().collect(), "items")
        }
        (_, IdColumn::Int(col)) => {
            let present: FxHashSet<i64> = col.iter().copied().collect();
            let ids = map.int_ids().ok_or_else(|| Error::invalid("the item ids are strings, the file's integers"))?;
            IdMap::from_int_ids(ids.into_iter().filter(|x| present.contains(x)).collect(), "items")
        }
        _ => Err(Error::invalid("the item ids are integers, the file's strings")),
    }
}

/// Rows whose item has at least `k` rows.
fn min_rows_mask(items: &IdColumn, k: usize, report: &mut CsvReport) -> Vec<bool> {
    fn mask<T: std::hash::Hash + Eq>(ids: &[T], k: usize) -> (Vec<bool>, usize) {
        let mut counts: FxHashMap<&T, usize> = FxHashMap::default();
        for x in ids {
            *counts.entry(x).or_default() += 1;
        }
        let below = counts.values().filter(|&&c| c < k).count();
        (ids.iter().map(|x| counts[x] >= k).collect(), below)
    }
    let (keep, below) = match items {
        IdColumn::Int(v) => mask(v, k),
        IdColumn::Str(s) => mask(&s.iter().collect::<Vec<_>>(), k),
    };
    report.items_below_min_rows = below;
    report.dropped_min_item_rows = keep.iter().filter(|&&x| !x).count();
    keep
}

/// The line of a failure the data model reported by row: an unknown id or a duplicate pair.
#[allow(clippy::too_many_arguments)]
fn locate(
    path: &Path,
    opts: &CsvOptions,
    table: &CsvTable,
    raw: [RawIds<'_>; 2],
    maps: [Option<Arc<IdMap>>; 2],
    unknown: Unknown,
    dup: Duplicates,
) -> Option<Error> {
    let cols = [&table.users, &table.items];
    let mut known: Vec<bool> = vec![true; table.len()];
    for side in 0..2 {
        let Some(map) = &maps[side] else { continue };
        let idx = map.lookup(raw[side]).ok()?;
        if unknown == Unknown::Error {
            if let Some(row) = idx.iter().position(|&i| i == UNKNOWN) {
                let id = cols[side].get(row);
                let line = find_line(path, opts, table, |u, i| [u, i][side] == id)?;
                return Some(Error::file(
                    path,
                    format!(
                        "line {line}, {}: unknown id {id} (not among the {} known ids; pass unknown='drop' to \
                         drop such rows)",
                        table.layout.label(side),
                        map.len()
                    ),
                ));
            }
        }
        known.iter_mut().zip(&idx).for_each(|(k, &i)| *k &= i != UNKNOWN);
    }
    if dup == Duplicates::Error {
        let mut seen = FxHashSet::default();
        let row = (0..table.len()).find(|&r| known[r] && !seen.insert((table.users.get(r), table.items.get(r))))?;
        let (u, i) = (table.users.get(row), table.items.get(row));
        let first = find_line(path, opts, table, |a, b| a == u && b == i)?;
        let mut n = 0;
        let second = find_line(path, opts, table, |a, b| {
            n += usize::from(a == u && b == i);
            n == 2
        })?;
        return Some(Error::file(
            path,
            format!(
                "lines {first} and {second} hold the same pair ({} {u}, {} {i}); pass duplicates='sum', 'max' or \
                 'last' to merge them",
                table.layout.label(0),
                table.layout.label(1)
            ),
        ));
    }
    None
}

/// Line of the first kept record for which `pred(user, item)` holds (a second, sequential pass;
/// only run to place an error).
fn find_line(path: &Path, opts: &CsvOptions, table: &CsvTable, mut pred: impl FnMut(Id<'_>, Id<'_>) -> bool) -> Option<u64> {
    let map = map_file(path).ok()?;
    let data = strip_bom(&map);
    let layout = &table.layout;
    let rules = Rules { layout, opts };
    let mut rec = Records::new(data, layout.data_start, layout.first_line, layout.delim);
    let mut fields = Vec::new();
    let mut blank = 0;
    while let Ok(Some(line)) = rec.next(&mut fields, &mut blank) {
        if fields.len() != layout.n_fields {
            return None;
        }
        let f = pick(&fields, &layout.pos);
        if let Ok(Outcome::Keep(u, i, _)) = rules.row(&f) {
            if pred(u, i) {
                return Some(line);
            }
        }
    }
    None
}

fn pick<'a>(fields: &'a [Cow<'_, [u8]>], pos: &[usize; 3]) -> [&'a [u8]; 3] {
    let get = |p: usize| fields.get(p).map_or(&b""[..], |f| &f[..]);
    [get(pos[0]), get(pos[1]), get(pos[2])]
}

fn row_error(path: &Path, layout: &Layout, line: u64, e: RowErr) -> Error {
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

enum ParseErr {
    NotInt(Vec<usize>),
    /// Absolute line and the error.
    At(u64, RowErr),
}

/// Header (or first line), column positions, id kinds.
fn resolve_layout(path: &Path, data: &[u8], opts: &CsvOptions) -> Result<Layout> {
    let d = opts.delimiter;
    if matches!(d, b'"' | b'\n' | b'\r') || !d.is_ascii() {
        return Err(Error::invalid(format!("the delimiter must be one ASCII character other than a quote or a line end, not {:?}", d as char)));
    }
    let mut rec = Records::new(data, 0, 1, d);
    let mut fields = Vec::new();
    let mut blank = 0;
    let first = rec.next(&mut fields, &mut blank).map_err(|(line, m)| Error::file(path, format!("line {line}, {m}")))?;
    if first.is_none() {
        return Err(Error::file(path, "no data rows (the file has only blank lines)"));
    }
    let n_fields = fields.len();
    let names_in_file: Vec<String> = fields.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    let (data_start, first_data_line) = if opts.header { (rec.pos.min(data.len()), rec.line) } else { (0, 1) };
    let find = |col: &Col, what: &str| -> Result<usize> {
        match col {
            Col::Pos(p) if *p < n_fields => Ok(*p),
            Col::Pos(p) => Err(Error::file(
                path,
                format!("{what} column {p} is out of range: the lines have {n_fields} fields (positions are 0-based)"),
            )),
            Col::Name(n) if !opts.header => Err(Error::invalid(format!(
                "{what} column {n:?}: a file without a header takes columns by 0-based position"
            ))),
            Col::Name(n) => {
                let hits: Vec<usize> = (0..n_fields).filter(|&k| names_in_file[k] == *n).collect();
                match hits.as_slice() {
                    [k] => Ok(*k),
                    [] => {
                        let hint = if n_fields == 1 && names_in_file[0].contains(['\t', ';', '|', ',']) {
                            format!("; is the delimiter {:?} right?", d as char)
                        } else {
                            String::new()
                        };
                        Err(Error::file(path, format!("line 1: no column {n:?} in the header (columns: {names_in_file:?}){hint}")))
                    }
                    _ => Err(Error::file(path, format!("line 1: the header names column {n:?} {} times", hits.len()))),
                }
            }
        }
    };
    let pu = find(&opts.user, "user")?;
    let pi = find(&opts.item, "item")?;
    let pv = opts.value.as_ref().map(|c| find(c, "value")).transpose()?.unwrap_or(usize::MAX);
    if pu == pi || pu == pv || pi == pv {
        return Err(Error::invalid("the user, item and value columns must be different columns"));
    }
    let name = |p: usize, fallback: &str| {
        if p == usize::MAX {
            fallback.to_string()
        } else if opts.header {
            names_in_file[p].clone()
        } else {
            p.to_string()
        }
    };
    let kind = |t: IdType| if t == IdType::Str { IdKind::Str } else { IdKind::Int };
    // An auto item column takes the kind of the keep/drop sets it is matched against.
    let set_kind = opts.keep_items.as_ref().or(opts.drop_items.as_ref()).map(IdSet::kind);
    let (item_kind, item_auto) = match (opts.item_type, set_kind) {
        (IdType::Auto, Some(k)) => (k, false),
        (t, _) => (kind(t), t == IdType::Auto),
    };
    let layout = Layout {
        delim: d,
        n_fields,
        pos: [pu, pi, pv],
        names: [name(pu, "user"), name(pi, "item"), name(pv, "value")],
        header: opts.header,
        kinds: [kind(opts.user_type), item_kind],
        auto: [opts.user_type == IdType::Auto, item_auto],
        data_start,
        first_line: first_data_line,
    };
    check_sets(path, &layout, opts)?;
    Ok(layout)
}

/// The keep/drop item sets must hold the item column's kind of ids.
fn check_sets(path: &Path, layout: &Layout, opts: &CsvOptions) -> Result<()> {
    for (set, what) in [(&opts.keep_items, "keep_items"), (&opts.drop_items, "drop_items")] {
        if let Some(s) = set {
            if s.kind() != layout.kinds[1] {
                let k = |k: IdKind| if k == IdKind::Int { "integers" } else { "strings" };
                return Err(Error::file(
                    path,
                    format!("{what} holds {} but the {} ids are {}", k(s.kind()), layout.label(1), k(layout.kinds[1])),
                ));
            }
        }
    }
    Ok(())
}

/// The quote-free path: chunks cut at line ends, parsed in parallel, concatenated in order.
fn parse_parallel(
    data: &[u8],
    layout: &Layout,
    opts: &CsvOptions,
    chunk_bytes: usize,
) -> std::result::Result<Part, ParseErr> {
    let region = &data[layout.data_start..];
    let n_chunks = (region.len() / chunk_bytes).clamp(1, rayon::current_num_threads().max(1) * 64);
    let mut bounds = vec![0usize];
    for k in 1..n_chunks {
        let target = (region.len() * k / n_chunks).max(*bounds.last().unwrap());
        match memchr(b'\n', &region[target..]) {
            Some(off) => bounds.push(target + off + 1),
            None => break,
        }
    }
    bounds.push(region.len());
    bounds.dedup();
    let rules = Rules { layout, opts };
    let parts: Vec<Part> = bounds.par_windows(2).map(|w| parse_chunk(&region[w[0]..w[1]], &rules)).collect();
    merge(parts, layout)
}

fn parse_chunk(chunk: &[u8], rules: &Rules<'_>) -> Part {
    let layout = rules.layout;
    let mut part = Part::new(layout);
    // Reserve one row per line up front (no growth copies), give back what filters left unused.
    part.newlines = memchr_iter(b'\n', chunk).count() as u64;
    let lines = part.newlines as usize + 1;
    // String ids get the chunk's size in text (untouched pages cost no memory; shrunk below).
    let text = |c: usize| if layout.kinds[c] == IdKind::Str { chunk.len() } else { 0 };
    part.users.reserve_exact(lines, text(0));
    part.items.reserve_exact(lines, text(1));
    if layout.pos[2] != usize::MAX {
        part.values.reserve_exact(lines);
    }
    let mut start = 0;
    let mut f: [&[u8]; 3] = [b"", b"", b""];
    let ends = memchr_iter(b'\n', chunk).chain((chunk.last() != Some(&b'\n') && !chunk.is_empty()).then_some(chunk.len()));
    for (rel, end) in (0u64..).zip(ends) {
        let mut line = &chunk[start..end];
        start = end + 1;
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if line.is_empty() {
            part.counts.blank += 1;
        } else {
            let n = split_fields(line, layout.delim, &layout.pos, &mut f);
            if n != layout.n_fields {
                part.error = Some((rel, RowErr::Fields(n)));
                break;
            }
            if !part.take(rules, &f, rel) {
                break;
            }
        }
    }
    part.users.shrink_to_fit();
    part.items.shrink_to_fit();
    part.values.shrink_to_fit();
    part
}

/// Fields at `pos` into `out`; returns the number of fields. A plain byte loop: interaction
/// lines are short, where memchr's setup costs more than it saves.
#[inline]
fn split_fields<'a>(line: &'a [u8], delim: u8, pos: &[usize; 3], out: &mut [&'a [u8]; 3]) -> usize {
    let mut start = 0;
    let mut k = 0;
    let mut put = |k: usize, field: &'a [u8]| {
        for (o, &p) in out.iter_mut().zip(pos) {
            if p == k {
                *o = field;
            }
        }
    };
    for (i, &b) in line.iter().enumerate() {
        if b == delim {
            put(k, &line[start..i]);
            k += 1;
            start = i + 1;
        }
    }
    put(k, &line[start..]);
    k + 1
}

fn merge(parts: Vec<Part>, layout: &Layout) -> std::result::Result<Part, ParseErr> {
    let not_int: Vec<usize> = {
        let mut c: Vec<usize> = parts
            .iter()
            .filter_map(|p| match &p.error {
                Some((_, RowErr::NotInt(c))) => Some(*c),
                _ => None,
            })
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    if !not_int.is_empty() {
        return Err(ParseErr::NotInt(not_int));
    }
    let mut line = layout.first_line;
    let mut out = Part::new(layout);
    // Exact room for all rows, then each part is appended and freed: the peak stays near one copy.
    let rows: usize = parts.iter().map(|p| p.users.len()).sum();
    out.users.reserve_exact(rows, parts.iter().map(|p| p.users.text_len()).sum());
    out.items.reserve_exact(rows, parts.iter().map(|p| p.items.text_len()).sum());
    out.values.reserve_exact(parts.iter().map(|p| p.values.len()).sum());
    for p in parts {
        if let Some((rel, e)) = p.error {
            return Err(ParseErr::At(line + rel, e));
        }
        line += p.newlines;
        out.users.append(p.users);
        out.items.append(p.items);
        out.values.extend(p.values);
        out.counts.add(&p.counts);
    }
    Ok(out)
}

/// The quote-aware path: one sequential pass.
fn parse_quoted(data: &[u8], layout: &Layout, opts: &CsvOptions) -> std::result::Result<Part, ParseErr> {
    let rules = Rules { layout, opts };
    let mut part = Part::new(layout);
    let mut rec = Records::new(data, layout.data_start, layout.first_line, layout.delim);
    let mut fields = Vec::new();
    let mut blank = 0;
    loop {
        let line = match rec.next(&mut fields, &mut blank) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err((line, m)) => return Err(ParseErr::At(line, RowErr::Bad(m))),
        };
        if fields.len() != layout.n_fields {
            return Err(ParseErr::At(line, RowErr::Fields(fields.len())));
        }
        let f = pick(&fields, &layout.pos);
        if !part.take(&rules, &f, 0) {
            return match part.error.take() {
                Some((_, RowErr::NotInt(c))) => Err(ParseErr::NotInt(vec![c])),
                Some((_, e)) => Err(ParseErr::At(line, e)),
                None => unreachable!("take failed without an error"),
            };
        }
    }
    part.counts.blank = blank;
    Ok(part)
}

/// RFC 4180 records: fields may be quoted, with `""` for a quote and delimiters or line breaks
/// inside. A quote inside an unquoted field is kept as text (as spreadsheets write `3.5"`).
struct Records<'a> {
    data: &'a [u8],
    pos: usize,
    line: u64,
    delim: u8,
}

impl<'a> Records<'a> {
    fn new(data: &'a [u8], pos: usize, line: u64, delim: u8) -> Self {
        Records { data, pos, line, delim }
    }

    /// The next record's fields and its first line; `None` at the end. Blank lines are skipped
    /// and counted. An error is (line, message).
    fn next(&mut self, out: &mut Vec<Cow<'a, [u8]>>, blank: &mut usize) -> std::result::Result<Option<u64>, (u64, String)> {
        let d = self.data;
        loop {
            match &d[self.pos.min(d.len())..] {
                [] => return Ok(None),
                [b'\n', ..] => self.pos += 1,
                [b'\r', b'\n', ..] => self.pos += 2,
                [b'\r'] => self.pos += 1,
                _ => break,
            }
            self.line += 1;
            *blank += 1;
        }
        let start_line = self.line;
        out.clear();
        loop {
            if d.get(self.pos) == Some(&b'"') {
                let open_line = self.line;
                self.pos += 1;
                let mut seg = self.pos;
                let mut owned: Option<Vec<u8>> = None;
                let field = loop {
                    let Some(k) = memchr(b'"', &d[self.pos..]) else {
                        return Err((open_line, format!("a quoted field opened on line {open_line} is never closed")));
                    };
                    let q = self.pos + k;
                    self.line += memchr_iter(b'\n', &d[self.pos..q]).count() as u64;
                    if d.get(q + 1) == Some(&b'"') {
                        owned.get_or_insert_with(Vec::new).extend_from_slice(&d[seg..=q]);
                        self.pos = q + 2;
                        seg = self.pos;
                        continue;
                    }
                    self.pos = q + 1;
                    break match owned.take() {
                        Some(mut b) => {
                            b.extend_from_slice(&d[seg..q]);
                            Cow::Owned(b)
                        }
                        None => Cow::Borrowed(&d[seg..q]),
                    };
                };
                out.push(field);
                match &d[self.pos..] {
                    [] => return Ok(Some(start_line)),
                    [c, ..] if *c == self.delim => self.pos += 1,
                    [b'\n', ..] | [b'\r'] => {
                        self.pos += 1;
                        self.line += 1;
                        return Ok(Some(start_line));
                    }
                    [b'\r', b'\n', ..] => {
                        self.pos += 2;
                        self.line += 1;
                        return Ok(Some(start_line));
                    }
                    [c, ..] => {
                        return Err((
                            self.line,
                            format!("unexpected {:?} after the closing quote of field {}", *c as char, out.len()),
                        ))
                    }
                }
            } else {
                let rest = &d[self.pos..];
                let end = memchr2(self.delim, b'\n', rest).unwrap_or(rest.len());
                let mut field = &rest[..end];
                let at_delim = end < rest.len() && rest[end] == self.delim;
                if !at_delim && field.last() == Some(&b'\r') {
                    field = &field[..field.len() - 1];
                }
                out.push(Cow::Borrowed(field));
                self.pos += end + 1;
                if !at_delim {
                    if end < rest.len() {
                        self.line += 1;
                    }
                    return Ok(Some(start_line));
                }
                if self.pos >= d.len() {
                    out.push(Cow::Borrowed(&d[d.len()..]));
                    return Ok(Some(start_line));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Id lists
// ---------------------------------------------------------------------------------------------

/// A headerless list of ids, one per line (a catalogue of all users or all items). A blank
/// line or an id listed twice is an error naming the lines. With `header`, line 1 is skipped.
pub fn read_id_list(path: &Path, id_type: IdType, header: bool) -> Result<IdColumn> {
    let map = map_file(path)?;
    let data = strip_bom(&map);
    sniff(path, data)?;
    let mut kind = if id_type == IdType::Str { IdKind::Str } else { IdKind::Int };
    'again: loop {
        let mut out = IdColumn::empty(kind);
        let mut first_line: FxHashMap<Id<'_>, u64> = FxHashMap::default();
        let mut start = 0;
        let n = data.len();
        for (k, end) in memchr_iter(b'\n', data).chain((data.last() != Some(&b'\n')).then_some(n)).enumerate() {
            let no = k as u64 + 1;
            let mut line = &data[start..end];
            start = end + 1;
            if header && no == 1 {
                continue;
            }
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if trim(line).is_empty() {
                return Err(Error::file(path, format!("line {no} is blank (an id list has one id per line)")));
            }
            let id = match kind {
                IdKind::Int => match parse_i64(trim(line)) {
                    Some(x) => Id::Int(x),
                    None if id_type == IdType::Auto => {
                        kind = IdKind::Str;
                        continue 'again;
                    }
                    None => return Err(Error::file(path, format!("line {no}: {} is not an integer id", show(line)))),
                },
                IdKind::Str => match std::str::from_utf8(line) {
                    Ok(s) => Id::Str(s),
                    Err(_) => return Err(Error::file(path, format!("line {no}: {} is not valid UTF-8", show(line)))),
                },
            };
            if let Some(prev) = first_line.insert(id, no) {
                return Err(Error::file(path, format!("line {no}: id {id} is already on line {prev}")));
            }
            out.push(&id);
        }
        if out.is_empty() {
            return Err(Error::file(path, "no ids in the file"));
        }
        return Ok(out);
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

// ---------------------------------------------------------------------------------------------
// Writing (synthetic data for tests and benchmarks)
// ---------------------------------------------------------------------------------------------

/// Writes integer columns as CSV with a header line (`header` may be empty for none). Rows are
/// formatted in parallel, then written in order.
pub fn write_int_csv(path: &Path, header: &[&str], columns: &[&[i64]]) -> Result<()> {
    let n = columns.first().map_or(0, |c| c.len());
    if columns.is_empty() || columns.iter().any(|c| c.len() != n) {
        return Err(Error::invalid("write_int_csv: give one or more columns of equal length"));
    }
    if !header.is_empty() && header.len() != columns.len() {
        return Err(Error::invalid(format!("{} header names for {} columns", header.len(), columns.len())));
    }
    const BLOCK: usize = 1 << 16;
    let blocks: Vec<Vec<u8>> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let mut buf = Vec::with_capacity(BLOCK * 8 * columns.len());
            for r in b * BLOCK..((b + 1) * BLOCK).min(n) {
                for (c, col) in columns.iter().enumerate() {
                    if c > 0 {
                        buf.push(b',');
                    }
                    push_int(&mut buf, col[r]);
                }
                buf.push(b'\n');
            }
            buf
        })
        .collect();
    super::write_replacing(path, |file| {
        if !header.is_empty() {
            writeln!(file, "{}", header.join(","))?;
        }
        for b in blocks {
            file.write_all(&b)?;
        }
        Ok(())
    })
}

fn push_int(buf: &mut Vec<u8>, x: i64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut v = x.unsigned_abs();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if x < 0 {
        buf.push(b'-');
    }
    buf.extend_from_slice(&tmp[i..]);
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data)
}

/// A clear error for a file that is not text (a Parquet file or an image passed by mistake).
fn sniff(path: &Path, data: &[u8]) -> Result<()> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"PAR1", "a Parquet file (read it with pyarrow or pandas.read_parquet)"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"\x89PNG", "a PNG image"),
        (b"GIF8", "a GIF image"),
        (b"\x1F\x8B", "gzip-compressed (decompress it first)"),
        (b"PK\x03\x04", "a zip archive (extract it first)"),
        (b"\x93NUMPY", "a numpy .npy file"),
        (b"\xFF\xFE", "UTF-16 text (save it as UTF-8)"),
        (b"\xFE\xFF", "UTF-16 text (save it as UTF-8)"),
    ];
    if let Some((_, what)) = MAGIC.iter().find(|(m, _)| data.starts_with(m)) {
        return Err(Error::file(path, format!("this is {what}, not delimited text")));
    }
    if let Some(off) = memchr(0, &data[..data.len().min(1 << 16)]) {
        return Err(Error::file(path, format!("binary data (a NUL byte at offset {off}), not delimited text")));
    }
    Ok(())
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// A decimal integer with an optional sign; None when it is not one or does not fit in i64.
#[inline]
fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u64;
    }
    if neg {
        (v <= i64::MAX as u64 + 1).then(|| (v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// A field for a message: quoted, escaped, cut at 40 characters.
fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let mut t: String = s.chars().take(40).collect::<String>().escape_debug().to_string();
    if s.chars().count() > 40 {
        t.push_str("...");
    }
    format!("'{t}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f.flush().unwrap();
        f
    }

    fn opts(value: bool) -> CsvOptions {
        CsvOptions {
            user: Col::Name("user_id".into()),
            item: Col::Name("anime_id".into()),
            value: value.then(|| Col::Name("rating".into())),
            ..Default::default()
        }
    }

    fn ints(c: &IdColumn) -> Vec<i64> {
        match c {
            IdColumn::Int(v) => v.clone(),
            _ => panic!("expected integer ids, got {c:?}"),
        }
    }

    fn strs(c: &IdColumn) -> Vec<String> {
        match c {
            IdColumn::Str(s) => s.iter().map(str::to_string).collect(),
            _ => panic!("expected string ids, got {c:?}"),
        }
    }

    /// The error message, checked to start with the file's path.
    fn err(content: &[u8], o: &CsvOptions) -> String {
        let f = file(content);
        let e = read_csv(f.path(), o).unwrap_err().to_string();
        let p = f.path().display().to_string();
        assert!(e.starts_with(&format!("{p}: ")), "{e} does not name {p}");
        e
    }

    #[test]
    fn reads_ints_values_crlf_bom_no_final_newline() {
        let f = file(b"\xEF\xBB\xBFuser_id,anime_id,rating\r\n1,20,8\r\n2,10,-1\r\n1,10,7");
        let t = read_csv(f.path(), &opts(true)).unwrap();
        assert_eq!(ints(&t.users), vec![1, 2, 1]);
        assert_eq!(ints(&t.items), vec![20, 10, 10]);
        assert_eq!(t.values.unwrap(), vec![8.0, -1.0, 7.0]);
        assert_eq!((t.report.rows, t.report.kept, t.report.parallel), (3, 3, true));
    }

    #[test]
    fn filters_are_counted() {
        let f = file(b"user_id,anime_id,rating\n1,20,8\n2,10,-1\n1,10,3\n3,30,9\n4,30,10\n");
        let mut o = opts(true);
        o.drop_values = vec![-1.0];
        o.min_value = Some(5.0);
        o.drop_items = Some(IdSet::Int([20].into_iter().collect()));
        let t = read_csv(f.path(), &o).unwrap();
        assert_eq!(ints(&t.users), vec![3, 4]);
        let r = &t.report;
        // -1 is below min_value, so min_value counts it (the first filter that drops a row).
        assert_eq!((r.rows, r.dropped_min_value, r.dropped_values, r.dropped_items, r.kept), (5, 2, 0, 1, 2));
        let mut o = opts(true);
        o.drop_values = vec![-1.0];
        o.keep_items = Some(IdSet::Int([10, 30].into_iter().collect()));
        o.min_item_rows = Some(2);
        let t = read_csv(f.path(), &o).unwrap();
        // rows left after drop_values and keep_items: (1,10,3) (3,30,9) (4,30,10); item 10 has 1 row.
        assert_eq!(ints(&t.items), vec![30, 30]);
        let r = &t.report;
        assert_eq!((r.dropped_values, r.dropped_items, r.dropped_min_item_rows, r.items_below_min_rows), (1, 1, 1, 1));
    }

    #[test]
    fn quoted_fields_give_the_same_rows_as_plain_ones() {
        let plain = b"user_id,anime_id,rating\nab,1,5\ncd,2,4\n";
        let quoted = b"\"user_id\",anime_id,rating\n\"ab\",1,5\n\"c\"\"d\",2,\"4\"\n\"x,\ny\",3,1";
        let a = read_csv(file(plain).path(), &opts(true)).unwrap();
        let b = read_csv(file(quoted).path(), &opts(true)).unwrap();
        assert_eq!(strs(&a.users), vec!["ab", "cd"]);
        assert_eq!(strs(&b.users), vec!["ab", "c\"d", "x,\ny"]);
        assert_eq!(b.values.unwrap(), vec![5.0, 4.0, 1.0]);
        assert!(a.report.parallel && !b.report.parallel);
    }

    #[test]
    fn auto_switches_to_strings_and_keeps_the_text() {
        let f = file(b"user_id,anime_id\n007,1\nabc,2\n");
        let t = read_csv(f.path(), &opts(false)).unwrap();
        assert_eq!(strs(&t.users), vec!["007", "abc"]);
        assert_eq!(t.report.user_kind, Some(IdKind::Str));
        let mut o = opts(false);
        o.user_type = IdType::Int;
        let e = read_csv(f.path(), &o).unwrap_err().to_string();
        assert!(e.contains("line 3, column 'user_id': 'abc' is not an integer id"), "{e}");
    }

    #[test]
    fn headerless_by_position_and_other_delimiters() {
        let f = file(b"1\t5\t2.5\n2\t6\t3\n");
        let o = CsvOptions {
            delimiter: b'\t',
            header: false,
            user: Col::Pos(0),
            item: Col::Pos(1),
            value: Some(Col::Pos(2)),
            ..Default::default()
        };
        let t = read_csv(f.path(), &o).unwrap();
        assert_eq!((ints(&t.users), t.values.unwrap()), (vec![1, 2], vec![2.5, 3.0]));
        let e = err(b"1\t5\tx\n", &o);
        assert!(e.contains("line 1, column 2: 'x' is not a number"), "{e}");
    }

    #[test]
    fn errors_name_file_line_column_and_value() {
        let o = opts(true);
        let mut many = b"user_id,anime_id,rating\n".to_vec();
        for k in 0..200_000 {
            many.extend_from_slice(format!("{k},{},{}\n", k % 77, k % 10).as_bytes());
        }
        many.extend_from_slice(b"5,6,abc\n7,8,9\n");
        // line 1 is the header, then 200,000 good lines: the bad one is line 200,002.
        let e = err(&many, &o);
        assert!(e.contains("line 200002, column 'rating': 'abc' is not a number"), "{e}");
        let e = err(b"user_id,anime_id,rating\n1,2,3\n4,5\n", &o);
        assert!(e.contains("line 3, expected 3 fields, found 2 (a truncated line?)"), "{e}");
        let e = err(b"user_id,anime_id,rating\n1,2,nan\n", &o);
        assert!(e.contains("line 2, column 'rating': 'nan' is not a finite"), "{e}");
        let e = err(b"user_id,anime_id,rating\n1,,3\n", &o);
        assert!(e.contains("line 2, column 'anime_id': the id is empty"), "{e}");
        let e = err(b"user_id,anime_id,rating\n\"1,2,3\n", &o);
        assert!(e.contains("line 2, a quoted field opened on line 2 is never closed"), "{e}");
        let e = err(b"user_id,anime_id,rating\n\"1\"x,2,3\n", &o);
        assert!(e.contains("line 2, unexpected 'x' after the closing quote"), "{e}");
        let e = err(b"user_id\tanime_id\trating\n1\t2\t3\n", &o);
        assert!(e.contains("no column \"user_id\" in the header") && e.contains("delimiter"), "{e}");
        let e = err(b"user_id,anime_id,rating\n\n\n", &o);
        assert!(e.contains("no data rows"), "{e}");
        let e = err(b"\xFF\xD8\xFF\xE0\x00\x10JFIF", &o);
        assert!(e.contains("this is a JPEG image, not delimited text"), "{e}");
        let e = err(b"PAR1\x15\x04", &o);
        assert!(e.contains("Parquet"), "{e}");
        let e = err(b"user_id,anime_id\x00,rating\n", &o);
        assert!(e.contains("NUL byte at offset 16"), "{e}");
        assert!(read_csv(file(b"").path(), &o).unwrap_err().to_string().contains("the file is empty"));
        let e = err(b"user_id,anime_id,rating", &o);
        assert!(e.contains("no data rows"), "{e}");
    }

    #[test]
    fn parallel_chunks_agree_with_one_pass() {
        // 3 MB so the quote-free path cuts several chunks; the same content with one quoted
        // field takes the sequential path. Both must give identical rows.
        let mut body = String::from("user_id,anime_id,rating\n");
        for k in 0..250_000u64 {
            body.push_str(&format!("u{},{},{}\r\n", k % 997, (k * 31) % 1000, (k % 11) as i64 - 1));
            if k % 50_000 == 0 {
                body.push('\n'); // blank lines are skipped and counted
            }
        }
        let quoted = body.replacen("u0,", "\"u0\",", 1);
        let mut o = opts(true);
        o.drop_values = vec![-1.0];
        let a = read_csv(file(body.as_bytes()).path(), &o).unwrap();
        let b = read_csv(file(quoted.as_bytes()).path(), &o).unwrap();
        assert!(a.report.parallel && !b.report.parallel);
        assert_eq!(a.users, b.users);
        assert_eq!(a.items, b.items);
        assert_eq!(a.values, b.values);
        assert_eq!(a.report.blank_lines, 5);
        assert_eq!(b.report.blank_lines, 5);
        assert_eq!(a.report.dropped_values, 250_000 / 11 + 1);
    }

    #[test]
    fn interactions_with_catalogues_unknown_and_duplicates() {
        let f = file(b"user_id,anime_id,rating\na,1,5\nb,2,4\nc,9,3\na,1,2\n");
        let o = opts(true);
        let items = Arc::new(IdMap::build(RawIds::Int(&[1, 2, 3])));
        let e = read_interactions(f.path(), &o, None, Some(items.clone()), Unknown::Error, Duplicates::Sum)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4, column 'anime_id': unknown id 9"), "{e}");
        let (x, r) = read_interactions(f.path(), &o, None, Some(items.clone()), Unknown::Drop, Duplicates::Sum).unwrap();
        assert_eq!((x.n_items(), x.nnz(), r.dropped_unknown, r.kept, r.pairs), (3, 2, 1, 3, 2));
        assert_eq!(x.by_user().values.as_ref().unwrap(), &vec![7.0, 4.0]);
        let e = read_interactions(f.path(), &o, None, Some(items), Unknown::Drop, Duplicates::Error)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lines 2 and 5 hold the same pair"), "{e}");
    }

    #[test]
    fn min_item_rows_prunes_a_catalogue() {
        let f = file(b"user_id,anime_id\n1,1\n2,1\n1,2\n");
        let mut o = opts(false);
        o.min_item_rows = Some(2);
        let items = Arc::new(IdMap::build(RawIds::Int(&[1, 2, 3])));
        let (x, r) = read_interactions(f.path(), &o, None, Some(items), Unknown::Error, Duplicates::Error).unwrap();
        assert_eq!(x.ids().items.int_ids().unwrap(), vec![1]);
        assert_eq!((r.dropped_min_item_rows, r.kept), (1, 2));
        o.min_item_rows = Some(5);
        let e = read_interactions(f.path(), &o, None, None, Unknown::Error, Duplicates::Error).unwrap_err();
        assert!(e.to_string().contains("no rows left after the filters"), "{e}");
    }

    #[test]
    fn id_lists() {
        let f = file(b"\xEF\xBB\xBF10\r\n30\r\n20");
        assert_eq!(ints(&read_id_list(f.path(), IdType::Auto, false).unwrap()), vec![10, 30, 20]);
        let f = file(b"pmfk\nUDRR\n");
        assert_eq!(strs(&read_id_list(f.path(), IdType::Auto, false).unwrap()), vec!["pmfk", "UDRR"]);
        let f = file(b"a\nb\na\n");
        let e = read_id_list(f.path(), IdType::Auto, false).unwrap_err().to_string();
        assert!(e.contains("line 3: id \"a\" is already on line 1"), "{e}");
        let f = file(b"1\n\n2\n");
        let e = read_id_list(f.path(), IdType::Auto, false).unwrap_err().to_string();
        assert!(e.contains("line 2 is blank"), "{e}");
        let f = file(b"1\nx\n");
        let e = read_id_list(f.path(), IdType::Int, false).unwrap_err().to_string();
        assert!(e.contains("line 2: 'x' is not an integer id"), "{e}");
    }

    #[test]
    fn writer_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let u: Vec<i64> = (0..200_000).collect();
        let i: Vec<i64> = u.iter().map(|x| x % 13 - 6).collect();
        write_int_csv(&p, &["user_id", "anime_id"], &[&u, &i]).unwrap();
        let t = read_csv(&p, &opts(false)).unwrap();
        assert_eq!((ints(&t.users), ints(&t.items)), (u, i));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any chunking, quoted or not, LF or CRLF, with blank lines and with or without a final
        /// newline, gives exactly the rows written, in order.
        #[test]
        fn any_chunking_and_quoting_reads_the_rows_written(
            rows in proptest::collection::vec(("[a-z0-9]{1,6}", -5i64..50, -1i32..10, proptest::bool::ANY), 1..120),
            crlf in proptest::bool::ANY,
            final_newline in proptest::bool::ANY,
            chunk in 1usize..200,
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut plain = format!("user_id,anime_id,rating{eol}");
            let mut quoted = plain.clone();
            for (k, (u, i, v, blank)) in rows.iter().enumerate() {
                let end = if k + 1 == rows.len() && !final_newline { "" } else { eol };
                plain.push_str(&format!("{u},{i},{v}{end}"));
                quoted.push_str(&format!("\"{u}\",{i},\"{v}\"{end}"));
                if *blank && !end.is_empty() {
                    plain.push_str(eol);
                    quoted.push_str(eol);
                }
            }
            let mut o = opts(true);
            o.user_type = IdType::Str;
            o.drop_values = vec![-1.0];
            let want: Vec<_> = rows.iter().filter(|r| r.2 != -1).collect();
            for (text, c) in [(&plain, chunk), (&plain, 1 << 20), (&quoted, chunk)] {
                let f = file(text.as_bytes());
                let t = read_csv_chunked(f.path(), &o, c).unwrap();
                proptest::prop_assert_eq!(strs(&t.users), want.iter().map(|r| r.0.clone()).collect::<Vec<_>>());
                proptest::prop_assert_eq!(ints(&t.items), want.iter().map(|r| r.1).collect::<Vec<_>>());
                proptest::prop_assert_eq!(t.values.unwrap(), want.iter().map(|r| r.2 as f32).collect::<Vec<_>>());
                proptest::prop_assert_eq!(t.report.dropped_values, rows.len() - want.len());
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// The line number of a bad value is right whatever chunk it falls in.
        #[test]
        fn bad_value_line_is_right_across_chunks(n in 2usize..300, bad in 0usize..300, chunk in 1usize..100, blanks in 0usize..5) {
            let bad = bad % n;
            let mut text = String::from("user_id,anime_id,rating\n");
            let mut line = 1;
            let mut bad_line = 0;
            for k in 0..n {
                if k % 7 == 0 && blanks > 0 {
                    text.push_str(&"\n".repeat(blanks));
                    line += blanks;
                }
                line += 1;
                if k == bad {
                    bad_line = line;
                    text.push_str(&format!("{k},1,x{k}\n"));
                } else {
                    text.push_str(&format!("{k},1,{}\n", k % 10));
                }
            }
            let f = file(text.as_bytes());
            let e = read_csv_chunked(f.path(), &opts(true), chunk).unwrap_err().to_string();
            let want = format!("line {bad_line}, column 'rating': 'x{bad}' is not a number");
            proptest::prop_assert!(e.contains(&want), "{} does not contain {}", e, want);
        }
    }

    #[test]
    fn parse_i64_bounds() {
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"+12"), Some(12));
        assert_eq!(parse_i64(b"1.0"), None);
        assert_eq!(parse_i64(b"-"), None);
    }
}
