//! Headerless id lists, one id per line (catalogues of all users or all items).

use std::path::Path;

use memchr::memchr_iter;
use rustc_hash::FxHashMap;

use super::columns::{Id, IdColumn};
use super::options::IdType;
use super::text::{parse_i64, show, sniff, strip_bom, trim};
use crate::data::IdKind;
use crate::error::{Error, Result};
use crate::io::map_file;

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
            let no = (k as u64).saturating_add(1);
            // start <= end <= data.len(): ends are the line ends in order, then the length.
            let mut line = data.get(start..end).unwrap_or_default();
            start = end.saturating_add(1);
            if header && no == 1 {
                continue;
            }
            line = line.strip_suffix(b"\r").unwrap_or(line);
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
