//! The two passes over the data: quote-free text cut at line ends into chunks parsed in
//! parallel and concatenated in order, or one quote-aware sequential pass.

use memchr::{memchr, memchr_iter};
use rayon::prelude::*;

use super::layout::Layout;
use super::options::CsvOptions;
use super::records::{pick, Records};
use super::rules::{Part, RowErr, Rules};
use crate::data::IdKind;

pub(super) enum ParseErr {
    NotInt(Vec<usize>),
    /// Absolute line and the error.
    At(u64, RowErr),
}

/// The quote-free path: chunks cut at line ends, parsed in parallel, concatenated in order.
pub(super) fn parse_parallel(
    data: &[u8],
    layout: &Layout,
    opts: &CsvOptions,
    chunk_bytes: usize,
) -> std::result::Result<Part, ParseErr> {
    let region = data.get(layout.data_start..).unwrap_or_default();
    let n_chunks = region.len().checked_div(chunk_bytes).unwrap_or(0).clamp(1, rayon::current_num_threads().max(1).saturating_mul(64));
    let mut bounds = vec![0usize];
    for k in 1..n_chunks {
        let target = region.len().saturating_mul(k).checked_div(n_chunks).unwrap_or(0).max(bounds.last().copied().unwrap_or(0));
        match memchr(b'\n', region.get(target..).unwrap_or_default()) {
            Some(off) => bounds.push(target.saturating_add(off).saturating_add(1)),
            None => break,
        }
    }
    bounds.push(region.len());
    bounds.dedup();
    let rules = Rules { layout, opts };
    // Bounds increase from 0 to the region's length: every chunk is inside it.
    let chunks: Vec<&[u8]> = bounds.iter().zip(bounds.iter().skip(1)).filter_map(|(&a, &b)| region.get(a..b)).collect();
    let parts: Vec<Part> = chunks.par_iter().map(|chunk| parse_chunk(chunk, &rules)).collect();
    merge(parts, layout)
}

fn parse_chunk(chunk: &[u8], rules: &Rules<'_>) -> Part {
    let layout = rules.layout;
    let mut part = Part::new(layout);
    // Reserve one row per line up front (no growth copies), give back what filters left unused.
    part.newlines = memchr_iter(b'\n', chunk).count() as u64;
    let lines = (part.newlines as usize).saturating_add(1);
    // String ids get the chunk's size in text (untouched pages cost no memory; shrunk below).
    let [user_kind, item_kind] = layout.kinds;
    let text = |kind: IdKind| if kind == IdKind::Str { chunk.len() } else { 0 };
    part.users.reserve_exact(lines, text(user_kind));
    part.items.reserve_exact(lines, text(item_kind));
    if layout.pos[2] != usize::MAX {
        part.values.reserve_exact(lines);
    }
    let mut start = 0;
    let mut f: [&[u8]; 3] = [b"", b"", b""];
    let ends = memchr_iter(b'\n', chunk).chain((chunk.last() != Some(&b'\n') && !chunk.is_empty()).then_some(chunk.len()));
    for (rel, end) in (0u64..).zip(ends) {
        // start <= end <= chunk.len(): ends are the line ends in order, then the length.
        let mut line = chunk.get(start..end).unwrap_or_default();
        start = end.saturating_add(1);
        line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            part.counts.blank = part.counts.blank.saturating_add(1);
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
            put(k, line.get(start..i).unwrap_or_default());
            k = k.saturating_add(1);
            start = i.saturating_add(1);
        }
    }
    put(k, line.get(start..).unwrap_or_default());
    k.saturating_add(1)
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
            return Err(ParseErr::At(line.saturating_add(rel), e));
        }
        line = line.saturating_add(p.newlines);
        out.users.append(p.users);
        out.items.append(p.items);
        out.values.extend(p.values);
        out.counts.add(&p.counts);
    }
    Ok(out)
}

/// The quote-aware path: one sequential pass.
pub(super) fn parse_quoted(data: &[u8], layout: &Layout, opts: &CsvOptions) -> std::result::Result<Part, ParseErr> {
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
