//! Where the columns are and how their ids are read, from the header (or the first line) and
//! the options.

use std::path::Path;

use super::options::{Col, CsvOptions, IdSet, IdType};
use super::records::Records;
use crate::data::IdKind;
use crate::error::{Error, Result};

/// Where the columns are and how they are read, once the header (or first line) is known.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub(super) delim: u8,
    pub(super) n_fields: usize,
    /// Field positions of user, item, value (`usize::MAX`: no value column).
    pub(super) pos: [usize; 3],
    pub(super) names: [String; 3],
    pub(super) header: bool,
    pub(super) kinds: [IdKind; 2],
    pub(super) auto: [bool; 2],
    /// Byte offset of the first data line (after the BOM and header) and its line number.
    pub(super) data_start: usize,
    pub(super) first_line: u64,
}

impl Layout {
    pub(super) fn label(&self, c: usize) -> String {
        match (self.header, self.names.get(c), self.pos.get(c)) {
            (true, Some(name), _) => format!("column '{name}'"),
            (_, _, Some(p)) => format!("column {p}"),
            _ => format!("column {c}"),
        }
    }
}

/// Header (or first line), column positions, id kinds.
pub(super) fn resolve_layout(path: &Path, data: &[u8], opts: &CsvOptions) -> Result<Layout> {
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
                let hits: Vec<usize> = names_in_file.iter().enumerate().filter(|&(_, name)| name == n).map(|(k, _)| k).collect();
                match hits.as_slice() {
                    [k] => Ok(*k),
                    [] => {
                        let hint = if n_fields == 1 && names_in_file.first().is_some_and(|f| f.contains(['\t', ';', '|', ','])) {
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
            names_in_file.get(p).cloned().unwrap_or_else(|| p.to_string())
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
