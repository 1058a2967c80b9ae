//! Backslash escapes in string bodies: Python's (raw strings included) and JSON's `\uXXXX`,
//! surrogate pairs combined.

use super::cursor::Cursor;
use super::strings::StrKind;
use super::PResult;

fn hex_val(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

fn push_char(buf: &mut Vec<u8>, c: char) {
    let mut tmp = [0u8; 4];
    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
}

impl Cursor<'_, '_> {
    /// A backslash in a raw string at `i`: kept with the next character (which cannot end the
    /// string), except `\uXXXX` / `\UXXXXXXXX` after an odd run of backslashes in Python 2
    /// `ur'...'` strings. Returns the next position.
    pub(super) fn raw_escape(&mut self, kind: StrKind, i: usize) -> PResult<usize> {
        let t = self.text;
        let mut run = 0;
        while t.get(i.saturating_add(run)) == Some(&b'\\') {
            run = run.saturating_add(1);
        }
        if kind == StrKind::Unicode && run % 2 == 1 && matches!(t.get(i.saturating_add(run)), Some(b'u' | b'U')) {
            let esc_start = i.saturating_add(run).saturating_sub(1);
            self.scratch.extend(std::iter::repeat_n(b'\\', run.saturating_sub(1)));
            let width = if t.get(i.saturating_add(run)) == Some(&b'u') { 4 } else { 8 };
            let next = self.unicode_escape(esc_start, width)?;
            return Ok(next);
        }
        // Keep the run, and the character after an odd run (it cannot end the string).
        self.scratch.extend(std::iter::repeat_n(b'\\', run));
        let mut next = i.saturating_add(run);
        if run % 2 == 1 {
            match t.get(next) {
                None => {
                    return Err(self.error_at(t.len(), "unterminated string: it ends with a backslash"));
                }
                Some(b'\r') => {
                    self.scratch.push(b'\n');
                    next = next.saturating_add(if t.get(next.saturating_add(1)) == Some(&b'\n') { 2 } else { 1 });
                }
                Some(&c) => {
                    if c >= 0x80 && kind == StrKind::Bytes {
                        return Err(self.error_at(next, "bytes literals may only contain ASCII characters (use \\x escapes)"));
                    }
                    // A non-ASCII character is left to the next run (copied whole, checked).
                    if c < 0x80 {
                        self.scratch.push(c);
                        next = next.saturating_add(1);
                    }
                }
            }
        }
        Ok(next)
    }

    /// `\uXXXX` (width 4) or `\UXXXXXXXX` (width 8) at `esc` (the backslash): the character,
    /// UTF-8 encoded into scratch. A high surrogate followed by a `\u` low surrogate is one
    /// character. Returns the position after the escape(s).
    pub(super) fn unicode_escape(&mut self, esc: usize, width: usize) -> PResult<usize> {
        let cp = self.hex_digits(esc.saturating_add(2), width, esc)?;
        let mut next = esc.saturating_add(2).saturating_add(width);
        let c = if (0xD800..0xDC00).contains(&cp) {
            let t = self.text;
            let low = if t.get(next) == Some(&b'\\') && t.get(next.saturating_add(1)) == Some(&b'u') {
                self.hex_digits(next.saturating_add(2), 4, next).ok().filter(|v| (0xDC00..0xE000).contains(v))
            } else {
                None
            };
            match low {
                Some(lo) => {
                    next = next.saturating_add(6);
                    // cp in D800..DC00 and lo in DC00..E000 (checked above): twenty bits of
                    // offset from U+10000, at most U+10FFFF.
                    (((cp & 0x3FF) << 10) | (lo & 0x3FF)).saturating_add(0x10000)
                }
                None => {
                    return Err(self.error_at(esc, format!(
                        "lone surrogate \\u{cp:04x} (not followed by a low surrogate \\udc00-\\udfff): it cannot be held in UTF-8 text"
                    )))
                }
            }
        } else {
            cp
        };
        match char::from_u32(c) {
            Some(ch) => push_char(self.scratch, ch),
            None if (0xDC00..0xE000).contains(&c) => {
                return Err(self.error_at(esc, format!("lone surrogate \\u{c:04x}: it cannot be held in UTF-8 text")))
            }
            None => return Err(self.error_at(esc, format!("escape for U+{c:X} is not a Unicode character (above U+10FFFF)"))),
        }
        Ok(next)
    }

    /// `n` hex digits at `at` (an escape starting at `esc`).
    fn hex_digits(&self, at: usize, n: usize, esc: usize) -> PResult<u32> {
        let mut v: u32 = 0;
        for k in 0..n {
            match self.text.get(at.saturating_add(k)).and_then(|&b| hex_val(b)) {
                Some(d) => v = (v << 4) | d,
                None => {
                    return Err(self.error_at(esc, format!(
                        "truncated escape: \\{} needs {n} hex digits",
                        self.text.get(esc.saturating_add(1)).map(|&b| b as char).unwrap_or('?')
                    )))
                }
            }
        }
        Ok(v)
    }

    /// A backslash escape at `i` in a non-raw string. Returns the next position.
    pub(super) fn escape(&mut self, kind: StrKind, i: usize) -> PResult<usize> {
        let t = self.text;
        let Some(&c) = t.get(i.saturating_add(1)) else {
            return Err(self.error_at(t.len(), "unterminated string: it ends with a backslash"));
        };
        let simple = match c {
            b'\\' => Some(b'\\'),
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'v' => Some(0x0b),
            _ => None,
        };
        if let Some(byte) = simple {
            self.scratch.push(byte);
            return Ok(i.saturating_add(2));
        }
        match c {
            // Backslash-newline: a line continuation inside the string.
            b'\n' => Ok(i.saturating_add(2)),
            b'\r' => Ok(if t.get(i.saturating_add(2)) == Some(&b'\n') { i.saturating_add(3) } else { i.saturating_add(2) }),
            b'0'..=b'7' => {
                let mut v: u32 = 0;
                let mut j = i.saturating_add(1);
                while j < i.saturating_add(4) {
                    let Some(&d @ b'0'..=b'7') = t.get(j) else { break };
                    // At most three octal digits: v <= 0o777.
                    v = v.saturating_mul(8).saturating_add((d as char).to_digit(8).unwrap_or(0));
                    j = j.saturating_add(1);
                }
                if kind == StrKind::Unicode {
                    // At most 0o777, always a valid character.
                    push_char(self.scratch, char::from_u32(v).unwrap_or('\u{fffd}'));
                } else {
                    // Bytes: Python keeps the low 8 bits of \400-\777.
                    self.scratch.push((v & 0xff) as u8);
                }
                Ok(j)
            }
            b'x' => {
                let v = self.hex_digits(i.saturating_add(2), 2, i)?;
                if kind == StrKind::Unicode {
                    push_char(self.scratch, char::from_u32(v).unwrap_or('\u{fffd}'));
                } else {
                    self.scratch.push(v as u8);
                }
                Ok(i.saturating_add(4))
            }
            b'u' | b'U' if kind != StrKind::Bytes => self.unicode_escape(i, if c == b'u' { 4 } else { 8 }),
            // Python 3 reads `\N{name}`; a Python 2 byte string keeps `\N` as written, but a
            // Python 2 writer never leaves a bare backslash there, so the text is Python 3's:
            // an error rather than a string other than Python's.
            b'N' if kind != StrKind::Bytes => {
                Err(self.error_at(i, "named \\N{...} escapes are not supported (write the character or \\uXXXX)"))
            }
            _ => {
                // Unknown escape: Python keeps the backslash and the character.
                self.scratch.push(b'\\');
                if c >= 0x80 && kind == StrKind::Bytes {
                    return Err(self.error_at(i.saturating_add(1), "bytes literals may only contain ASCII characters (use \\x escapes)"));
                }
                Ok(i.saturating_add(1))
            }
        }
    }
}
