//! Reading an interaction file into a [`CsvTable`]: layout, the pass that fits the data, a column
//! switched to strings and read again when an auto-typed id is not an integer, `min_item_rows`.

use std::path::Path;

use memchr::memchr;
use rustc_hash::FxHashMap;

use super::columns::IdColumn;
use super::layout::{resolve_layout, Layout};
use super::options::{CsvOptions, CsvReport};
use super::rules::{row_error, Part};
use super::scan::{parse_parallel, parse_quoted, ParseErr};
use super::text::{sniff, strip_bom};
use crate::data::IdKind;
use crate::error::{Error, Result};
use crate::io::map_file;

/// The rows of an interaction file that passed the filters, in file order.
#[derive(Debug, Clone)]
pub struct CsvTable {
    pub users: IdColumn,
    pub items: IdColumn,
    pub values: Option<Vec<f32>>,
    /// Column names (the position as text for a headerless file): user, item, value.
    pub names: [String; 3],
    pub report: CsvReport,
    pub(super) layout: Layout,
}

impl CsvTable {
    pub fn len(&self) -> usize {
        self.users.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Target size of the chunks parsed in parallel: large enough that per-chunk work (a
/// thread hand-off, one concatenation) is noise, small enough for every core to get several.
const CHUNK_BYTES: usize = 1 << 20;

/// Reads the rows of an interaction file that pass the filters (see [`CsvOptions`]).
pub fn read_csv(path: &Path, opts: &CsvOptions) -> Result<CsvTable> {
    read_csv_chunked(path, opts, CHUNK_BYTES)
}

pub(super) fn read_csv_chunked(path: &Path, opts: &CsvOptions, chunk_bytes: usize) -> Result<CsvTable> {
    let map = map_file(path)?;
    let data = strip_bom(&map);
    sniff(path, data)?;
    let mut layout = resolve_layout(path, data, opts)?;
    // Parse; an auto column that meets a non-integer is switched to strings and read again.
    let (part, parallel) = loop {
        let quoted = memchr(b'"', data.get(layout.data_start..).unwrap_or_default()).is_some();
        let part =
            if quoted { parse_quoted(data, &layout, opts) } else { parse_parallel(data, &layout, opts, chunk_bytes) };
        match part {
            Err(ParseErr::NotInt(cols)) => {
                for c in cols {
                    if let (Some(kind), Some(auto)) = (layout.kinds.get_mut(c), layout.auto.get_mut(c)) {
                        (*kind, *auto) = (IdKind::Str, false);
                    }
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
                v.retain(|_| it.next().copied().unwrap_or(true));
            }
        }
    }
    report.kept = users.len();
    Ok(CsvTable { users, items, values, names: layout.names.clone(), report, layout })
}

/// Rows whose item has at least `k` rows.
fn min_rows_mask(items: &IdColumn, k: usize, report: &mut CsvReport) -> Vec<bool> {
    fn mask<T: std::hash::Hash + Eq>(ids: &[T], k: usize) -> (Vec<bool>, usize) {
        let mut counts: FxHashMap<&T, usize> = FxHashMap::default();
        for x in ids {
            let c = counts.entry(x).or_default();
            *c = c.saturating_add(1);
        }
        let below = counts.values().filter(|&&c| c < k).count();
        (ids.iter().map(|x| counts.get(x).is_some_and(|&c| c >= k)).collect(), below)
    }
    let (keep, below) = match items {
        IdColumn::Int(v) => mask(v, k),
        IdColumn::Str(s) => mask(&s.iter().collect::<Vec<_>>(), k),
    };
    report.items_below_min_rows = below;
    report.dropped_min_item_rows = keep.iter().filter(|&&x| !x).count();
    keep
}
