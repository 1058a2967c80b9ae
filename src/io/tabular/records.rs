//! RFC 4180 records, one at a time: the quote-aware reader (the header, the quoted path, and
//! the second pass that places an error on its line).

use std::borrow::Cow;

use memchr::{memchr, memchr2, memchr_iter};

pub(super) fn pick<'a>(fields: &'a [Cow<'_, [u8]>], pos: &[usize; 3]) -> [&'a [u8]; 3] {
    let get = |p: usize| fields.get(p).map_or(&b""[..], |f| &f[..]);
    [get(pos[0]), get(pos[1]), get(pos[2])]
}

/// RFC 4180 records: fields may be quoted, with `""` for a quote and delimiters or line breaks
/// inside. A quote inside an unquoted field is kept as text (as spreadsheets write `3.5"`).
pub(super) struct Records<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) line: u64,
    pub(super) delim: u8,
}

impl<'a> Records<'a> {
    pub(super) fn new(data: &'a [u8], pos: usize, line: u64, delim: u8) -> Self {
        Records { data, pos, line, delim }
    }

    /// The next record's fields and its first line; `None` at the end. Blank lines are skipped
    /// and counted. An error is (line, message).
    pub(super) fn next(&mut self, out: &mut Vec<Cow<'a, [u8]>>, blank: &mut usize) -> std::result::Result<Option<u64>, (u64, String)> {
        let d = self.data;
        loop {
            match after(d, self.pos) {
                [] => return Ok(None),
                [b'\n', ..] => self.pos = self.pos.saturating_add(1),
                [b'\r', b'\n', ..] => self.pos = self.pos.saturating_add(2),
                [b'\r'] => self.pos = self.pos.saturating_add(1),
                _ => break,
            }
            self.line = self.line.saturating_add(1);
            *blank = blank.saturating_add(1);
        }
        let start_line = self.line;
        out.clear();
        loop {
            if d.get(self.pos) == Some(&b'"') {
                let open_line = self.line;
                self.pos = self.pos.saturating_add(1);
                let mut seg = self.pos;
                let mut owned: Option<Vec<u8>> = None;
                let field = loop {
                    let Some(k) = memchr(b'"', after(d, self.pos)) else {
                        return Err((open_line, format!("a quoted field opened on line {open_line} is never closed")));
                    };
                    let q = self.pos.saturating_add(k);
                    self.line = self.line.saturating_add(memchr_iter(b'\n', d.get(self.pos..q).unwrap_or_default()).count() as u64);
                    if d.get(q.saturating_add(1)) == Some(&b'"') {
                        owned.get_or_insert_with(Vec::new).extend_from_slice(d.get(seg..=q).unwrap_or_default());
                        self.pos = q.saturating_add(2);
                        seg = self.pos;
                        continue;
                    }
                    self.pos = q.saturating_add(1);
                    break match owned.take() {
                        Some(mut b) => {
                            b.extend_from_slice(d.get(seg..q).unwrap_or_default());
                            Cow::Owned(b)
                        }
                        None => Cow::Borrowed(d.get(seg..q).unwrap_or_default()),
                    };
                };
                out.push(field);
                match after(d, self.pos) {
                    [] => return Ok(Some(start_line)),
                    [c, ..] if *c == self.delim => self.pos = self.pos.saturating_add(1),
                    [b'\n', ..] | [b'\r'] => {
                        self.pos = self.pos.saturating_add(1);
                        self.line = self.line.saturating_add(1);
                        return Ok(Some(start_line));
                    }
                    [b'\r', b'\n', ..] => {
                        self.pos = self.pos.saturating_add(2);
                        self.line = self.line.saturating_add(1);
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
                let rest = after(d, self.pos);
                let end = memchr2(self.delim, b'\n', rest).unwrap_or(rest.len());
                let mut field = rest.get(..end).unwrap_or(rest);
                let at_delim = rest.get(end) == Some(&self.delim);
                if !at_delim {
                    field = field.strip_suffix(b"\r").unwrap_or(field);
                }
                out.push(Cow::Borrowed(field));
                self.pos = self.pos.saturating_add(end).saturating_add(1);
                if !at_delim {
                    if end < rest.len() {
                        self.line = self.line.saturating_add(1);
                    }
                    return Ok(Some(start_line));
                }
                if self.pos >= d.len() {
                    out.push(Cow::Borrowed(&[]));
                    return Ok(Some(start_line));
                }
            }
        }
    }
}

/// The bytes of `d` from `pos` on (none once `pos` is past the end: positions step one past a
/// line's last byte).
fn after(d: &[u8], pos: usize) -> &[u8] {
    d.get(pos..).unwrap_or_default()
}
