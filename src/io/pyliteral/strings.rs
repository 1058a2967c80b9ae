//! String literals: Python's (prefixes, quotes, implicit concatenation, the slice fast path,
//! the Python 2 byte-string rule) and JSON's. Escapes are in `escapes`.

use super::cursor::{span, Cursor};
use super::{Dialect, Literal, PResult};

/// A decoded string run, before it becomes a [`Literal`].
pub(super) enum StrData {
    /// `text[start..end]`, already checked to be valid UTF-8 (no escapes, one piece).
    Slice(usize, usize),
    /// The decoded bytes are in the scratch buffer.
    Scratch,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum StrKind {
    /// Python 2 byte string / Python 3 str without prefix (see the module docs).
    Native,
    /// `u'...'`: text.
    Unicode,
    /// `b'...'`.
    Bytes,
}

/// Bytes as text: valid UTF-8 sequences are kept, every other byte becomes the Latin-1
/// character of the same number (the Python 2 byte-string rule in the module docs).
pub fn decode_utf8_or_latin1(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len().saturating_add(bytes.len() / 4));
            let mut rest = bytes;
            while !rest.is_empty() {
                match std::str::from_utf8(rest) {
                    Ok(s) => {
                        out.push_str(s);
                        break;
                    }
                    Err(e) => {
                        // from_utf8 said the first valid_up_to() bytes are valid, and that
                        // error_len() bytes (or the rest) after them are not.
                        let (good, after) = rest.split_at_checked(e.valid_up_to()).unwrap_or((rest, &[]));
                        out.push_str(std::str::from_utf8(good).unwrap_or_default());
                        let bad = e.error_len().unwrap_or(after.len()).max(1);
                        let (bad, after) = after.split_at_checked(bad).unwrap_or((after, &[]));
                        out.extend(bad.iter().map(|&b| b as char));
                        rest = after;
                    }
                }
            }
            out
        }
    }
}

impl<'t> Cursor<'t, '_> {
    /// Whether `pos` starts a string literal (a quote, or a valid prefix then a quote).
    pub(super) fn at_string_start(&self) -> bool {
        match self.dialect {
            Dialect::Json => self.peek() == Some(b'"'),
            Dialect::Python => {
                let mut i = 0;
                while i < 3 && self.peek_at(i).is_some_and(|b| b.is_ascii_alphabetic()) {
                    i = i.saturating_add(1);
                }
                matches!(self.peek_at(i), Some(b'\'' | b'"')) && prefix_kind(span(self.text, self.pos, self.pos.saturating_add(i))).is_some()
            }
        }
    }

    /// A string value: one literal, or (Python) adjacent literals concatenated.
    pub(super) fn string_value(&mut self, keep: bool) -> PResult<Literal> {
        let start = self.pos;
        let (kind, data) = self.string_run()?;
        if !keep {
            return Ok(Literal::None);
        }
        Ok(match (kind, data) {
            (StrKind::Bytes, StrData::Slice(a, b)) => Literal::Bytes(span(self.text, a, b).to_vec()),
            (StrKind::Bytes, StrData::Scratch) => Literal::Bytes(self.scratch.clone()),
            (_, StrData::Slice(a, b)) => match std::str::from_utf8(span(self.text, a, b)) {
                Ok(s) => Literal::Str(s.to_owned()),
                Err(_) => return Err(self.error_at(start, "internal: unchecked string slice")),
            },
            (_, StrData::Scratch) => Literal::Str(decode_utf8_or_latin1(self.scratch)),
        })
    }

    /// Parse a string (with Python's implicit concatenation) into a slice of the input or into
    /// `scratch`. Text strings in scratch still need [`decode_utf8_or_latin1`].
    pub(super) fn string_run(&mut self) -> PResult<(StrKind, StrData)> {
        if self.dialect == Dialect::Json {
            return self.json_string().map(|d| (StrKind::Unicode, d));
        }
        let (kind, first) = self.py_string_piece(false)?;
        // Implicit concatenation: look past whitespace for another literal.
        let save = self.pos;
        self.skip_ws();
        if !self.at_string_start() {
            self.pos = save;
            return Ok((kind, first));
        }
        // Move the first piece into scratch, then append the others.
        if let StrData::Slice(a, b) = first {
            self.scratch.clear();
            self.scratch.extend_from_slice(span(self.text, a, b));
        }
        loop {
            let piece_start = self.pos;
            let (k, _) = self.py_string_piece(true)?;
            if (k == StrKind::Bytes) != (kind == StrKind::Bytes) {
                return Err(self.error_at(piece_start, "cannot concatenate bytes and text string literals"));
            }
            let save = self.pos;
            self.skip_ws();
            if !self.at_string_start() {
                self.pos = save;
                break;
            }
        }
        Ok((kind, StrData::Scratch))
    }

    /// One Python string literal (prefix, quotes, body). With `append`, the decoded bytes go
    /// after what scratch holds; else a literal without escapes is returned as a slice.
    fn py_string_piece(&mut self, append: bool) -> PResult<(StrKind, StrData)> {
        let lit_start = self.pos;
        let mut plen = 0;
        while self.peek_at(plen).is_some_and(|b| b.is_ascii_alphabetic()) {
            plen = plen.saturating_add(1);
        }
        let (kind, raw) = match prefix_kind(span(self.text, self.pos, self.pos.saturating_add(plen))) {
            Some(k) => k,
            None => return Err(self.error_at(lit_start, "invalid string prefix (allowed: u, b, r, ur, br, rb)")),
        };
        self.advance(plen);
        // at_string_start saw a quote after the prefix.
        let Some(quote) = self.peek() else { return Err(self.error_expected("a quote")) };
        let triple = self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote);
        self.advance(if triple { 3 } else { 1 });
        let body_start = self.pos;

        // Fast path: scan to the closing quote; if nothing needs decoding, return a slice.
        if !append {
            let mut i = body_start;
            let t = self.text;
            let mut simple = true;
            let mut non_ascii = false;
            loop {
                match t.get(i) {
                    None => break,
                    Some(&b) if b == quote => {
                        if !triple || (t.get(i.saturating_add(1)) == Some(&quote) && t.get(i.saturating_add(2)) == Some(&quote)) {
                            break;
                        }
                        i = i.saturating_add(1);
                    }
                    Some(b'\\' | b'\r') => {
                        simple = false;
                        break;
                    }
                    Some(b'\n') if !triple => break,
                    Some(&b) => {
                        non_ascii |= b >= 0x80;
                        i = i.saturating_add(1);
                    }
                }
            }
            // No escapes, and ASCII or valid UTF-8 text (bytes must be ASCII: the slow path
            // reports the error; invalid UTF-8 needs the Latin-1 fallback): a slice.
            if simple
                && t.get(i) == Some(&quote)
                && (!non_ascii || (kind != StrKind::Bytes && std::str::from_utf8(span(t, body_start, i)).is_ok()))
            {
                self.pos = i.saturating_add(if triple { 3 } else { 1 });
                return Ok((kind, StrData::Slice(body_start, i)));
            }
            self.scratch.clear();
        }
        self.decode_py_body(kind, raw, quote, triple, lit_start)?;
        Ok((kind, StrData::Scratch))
    }

    /// Decode a Python string body at `pos` into scratch (appending), up to and past the
    /// closing quote.
    fn decode_py_body(&mut self, kind: StrKind, raw: bool, quote: u8, triple: bool, lit_start: usize) -> PResult<()> {
        let t = self.text;
        let mut i = self.pos;
        loop {
            // Copy a run of ordinary bytes.
            let run_start = i;
            while let Some(&b) = t.get(i) {
                if b == quote || b == b'\\' || b == b'\n' || b == b'\r' || (b >= 0x80 && kind == StrKind::Bytes) {
                    break;
                }
                i = i.saturating_add(1);
            }
            // Raw text must be UTF-8: only escaped bytes (`\xe9`) get the Python 2 rule of the
            // module docs. (A run ends at an ASCII byte, so it never splits a character.)
            let run = span(t, run_start, i);
            if let Err(e) = std::str::from_utf8(run) {
                let at = run_start.saturating_add(e.valid_up_to());
                return Err(self.error_at(at, format!(
                    "invalid UTF-8 (byte 0x{:02x}) in the text of a string; the file must be UTF-8 \
                     (bytes written as \\x escapes are read as Python 2 did)",
                    t.get(at).copied().unwrap_or_default()
                )));
            }
            self.scratch.extend_from_slice(run);
            let Some(&b) = t.get(i) else {
                return Err(self.error_at(lit_start, format!(
                    "unterminated string: no closing {} before the end of the text",
                    if triple { if quote == b'"' { "\"\"\"" } else { "'''" } } else if quote == b'"' { "\"" } else { "'" }
                )));
            };
            match b {
                _ if b == quote => {
                    if !triple {
                        self.pos = i.saturating_add(1);
                        return Ok(());
                    }
                    if t.get(i.saturating_add(1)) == Some(&quote) && t.get(i.saturating_add(2)) == Some(&quote) {
                        self.pos = i.saturating_add(3);
                        return Ok(());
                    }
                    self.scratch.push(b);
                    i = i.saturating_add(1);
                }
                b'\n' | b'\r' => {
                    if !triple {
                        return Err(self.error_at(lit_start, "unterminated string: a line break comes before the closing quote"));
                    }
                    // Python reads source with universal newlines.
                    self.scratch.push(b'\n');
                    i = i.saturating_add(if b == b'\r' && t.get(i.saturating_add(1)) == Some(&b'\n') { 2 } else { 1 });
                }
                b'\\' => {
                    i = if raw { self.raw_escape(kind, i)? } else { self.escape(kind, i)? };
                }
                _ => {
                    // A non-ASCII byte in a bytes literal.
                    return Err(self.error_at(i, "bytes literals may only contain ASCII characters (use \\x escapes)"));
                }
            }
        }
    }

    /// A JSON string at `pos`.
    fn json_string(&mut self) -> PResult<StrData> {
        let t = self.text;
        let start = self.pos;
        let body = start.saturating_add(1);
        let mut i = body;
        let mut escapes = false;
        loop {
            match t.get(i) {
                None => return Err(self.error_at(start, "unterminated string: no closing '\"' before the end of the text")),
                Some(b'"') => break,
                Some(b'\\') => {
                    escapes = true;
                    i = i.saturating_add(2);
                }
                Some(&b) if b < 0x20 => {
                    return Err(self.error_at(i, format!("raw control character 0x{b:02x} in a JSON string (must be escaped)")))
                }
                Some(_) => i = i.saturating_add(1),
            }
        }
        let end = i;
        if let Err(e) = std::str::from_utf8(span(t, body, end)) {
            return Err(self.error_at(body.saturating_add(e.valid_up_to()), "invalid UTF-8 in a JSON string"));
        }
        self.pos = end.saturating_add(1);
        if !escapes {
            return Ok(StrData::Slice(body, end));
        }
        self.scratch.clear();
        let mut j = body;
        while j < end {
            let run = j;
            while j < end && t.get(j) != Some(&b'\\') {
                j = j.saturating_add(1);
            }
            self.scratch.extend_from_slice(span(t, run, j));
            if j >= end {
                break;
            }
            let c = t.get(j.saturating_add(1)).copied();
            let byte = match c {
                Some(b'"') => b'"',
                Some(b'\\') => b'\\',
                Some(b'/') => b'/',
                Some(b'b') => 0x08,
                Some(b'f') => 0x0c,
                Some(b'n') => b'\n',
                Some(b'r') => b'\r',
                Some(b't') => b'\t',
                Some(b'u') => {
                    j = self.unicode_escape(j, 4)?;
                    if j > end {
                        return Err(self.error_at(end, "truncated \\u escape"));
                    }
                    continue;
                }
                _ => {
                    return Err(self.error_at(j, format!(
                        "invalid escape \\{} in a JSON string",
                        c.map(|b| (b as char).to_string()).unwrap_or_default()
                    )))
                }
            };
            self.scratch.push(byte);
            j = j.saturating_add(2);
        }
        Ok(StrData::Scratch)
    }
}

/// The kind of a string prefix (case-insensitive) and whether it is raw; `None` if invalid.
fn prefix_kind(prefix: &[u8]) -> Option<(StrKind, bool)> {
    let mut p = [0u8; 3];
    if prefix.len() > 3 {
        return None;
    }
    for (d, s) in p.iter_mut().zip(prefix) {
        *d = s.to_ascii_lowercase();
    }
    match p.get(..prefix.len())? {
        b"" => Some((StrKind::Native, false)),
        b"r" => Some((StrKind::Native, true)),
        b"u" => Some((StrKind::Unicode, false)),
        b"ur" => Some((StrKind::Unicode, true)),
        b"b" => Some((StrKind::Bytes, false)),
        b"br" | b"rb" => Some((StrKind::Bytes, true)),
        _ => None,
    }
}
