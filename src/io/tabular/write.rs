//! Writing integer columns as CSV (synthetic data for tests and benchmarks).

use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};

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
            let mut buf = Vec::with_capacity(columns.len().saturating_mul(8 * BLOCK));
            for r in b.saturating_mul(BLOCK)..b.saturating_add(1).saturating_mul(BLOCK).min(n) {
                for (c, col) in columns.iter().enumerate() {
                    if c > 0 {
                        buf.push(b',');
                    }
                    // r < n, every column's length (checked above).
                    if let Some(&x) = col.get(r) {
                        push_int(&mut buf, x);
                    }
                }
                buf.push(b'\n');
            }
            buf
        })
        .collect();
    crate::io::write_replacing(path, |file| {
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
    // Digits from the last; u64::MAX has 20.
    let mut tmp = [0u8; 20];
    let mut len = 0usize;
    let mut v = x.unsigned_abs();
    for d in tmp.iter_mut().rev() {
        *d = b'0'.saturating_add((v % 10) as u8);
        v /= 10;
        len = len.saturating_add(1);
        if v == 0 {
            break;
        }
    }
    if x < 0 {
        buf.push(b'-');
    }
    buf.extend_from_slice(tmp.get(tmp.len().saturating_sub(len)..).unwrap_or_default());
}
