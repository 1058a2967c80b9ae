//! An interaction file into [`Interactions`] over given or built id maps; a failure the data
//! model reports by row (an unknown id, a duplicate pair) is placed on its line.

use std::path::Path;
use std::sync::Arc;

use rustc_hash::FxHashSet;

use super::columns::{Id, IdColumn};
use super::options::{CsvOptions, CsvReport, IdType};
use super::read::{read_csv, CsvTable};
use super::records::{pick, Records};
use super::rules::{Outcome, Rules};
use super::text::strip_bom;
use crate::data::idmap::UNKNOWN;
use crate::data::{Columns, Duplicates, IdKind, IdMap, Interactions, RawIds, Unknown};
use crate::error::{Error, Result};
use crate::io::map_file;

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
            report.kept = report.kept.saturating_sub(dropped);
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
    for (side, ((col, map), raw)) in cols.into_iter().zip(&maps).zip(raw).enumerate() {
        let Some(map) = map else { continue };
        let idx = map.lookup(raw).ok()?;
        if unknown == Unknown::Error {
            if let Some(row) = idx.iter().position(|&i| i == UNKNOWN) {
                let id = col.get(row)?;
                let line = find_line(path, opts, table, |u, i| if side == 0 { u == id } else { i == id })?;
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
        let (row, _) = known.iter().enumerate().find(|&(r, &k)| k && !seen.insert((table.users.get(r), table.items.get(r))))?;
        let (u, i) = (table.users.get(row)?, table.items.get(row)?);
        let first = find_line(path, opts, table, |a, b| a == u && b == i)?;
        let mut n = 0usize;
        let second = find_line(path, opts, table, |a, b| {
            n = n.saturating_add(usize::from(a == u && b == i));
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
