//! [`Parser`]: a reusable parser, and the fast path that builds only some fields of a dict.

use super::cursor::{span, Cursor};
use super::strings::{StrData, StrKind};
use super::{Dialect, Literal, PResult};

/// A value found by [`Parser::parse_dict_fields`]: where it starts in the text, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub offset: usize,
    pub value: Literal,
}

/// A reusable parser: keeps its decoding buffer between calls, so parsing many lines (one
/// parser per thread) allocates nothing but the values it returns.
#[derive(Debug)]
pub struct Parser {
    dialect: Dialect,
    scratch: Vec<u8>,
}

impl Parser {
    pub fn new(dialect: Dialect) -> Self {
        Parser { dialect, scratch: Vec::new() }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Parse one complete literal (surrounding whitespace allowed, nothing else after it).
    pub fn parse(&mut self, text: &[u8]) -> PResult<Literal> {
        let mut cur = Cursor { text, pos: 0, dialect: self.dialect, depth: 0, scratch: &mut self.scratch };
        cur.skip_ws();
        let value = cur.top_level(true)?;
        cur.expect_end()?;
        Ok(value)
    }

    /// Check that `text` is one complete literal, building nothing.
    pub fn validate(&mut self, text: &[u8]) -> PResult<()> {
        let mut cur = Cursor { text, pos: 0, dialect: self.dialect, depth: 0, scratch: &mut self.scratch };
        cur.skip_ws();
        cur.top_level(false)?;
        cur.expect_end()
    }

    /// `text` must be one dict literal; returns the values of the string keys in `keys` (the
    /// last one when a key repeats), `None` for those absent. Every other value is still fully
    /// checked (the same errors as [`Parser::parse`]) but not built: the fast path for wide
    /// records of which only some fields are needed.
    pub fn parse_dict_fields(&mut self, text: &[u8], keys: &[&str]) -> PResult<Vec<Option<Field>>> {
        let mut out: Vec<Option<Field>> = vec![None; keys.len()];
        let mut cur = Cursor { text, pos: 0, dialect: self.dialect, depth: 0, scratch: &mut self.scratch };
        cur.skip_ws();
        // `({...})` is a dict too.
        let mut parens = 0usize;
        while cur.dialect == Dialect::Python && cur.peek() == Some(b'(') {
            cur.advance(1);
            cur.enter()?;
            parens = parens.saturating_add(1);
            cur.skip_ws();
        }
        if cur.peek() != Some(b'{') {
            return Err(cur.error_expected("a dict ('{')"));
        }
        cur.advance(1);
        cur.enter()?;
        cur.skip_ws();
        let mut first = true;
        if cur.peek() == Some(b'}') {
            cur.advance(1);
        } else {
            loop {
                // The key: compared in its decoded form without building a String.
                let wanted = if cur.at_string_start() {
                    let (kind, data) = cur.string_run()?;
                    if kind == StrKind::Bytes {
                        None
                    } else {
                        let decoded: &[u8] = match data {
                            StrData::Slice(a, b) => span(cur.text, a, b),
                            StrData::Scratch => cur.scratch,
                        };
                        keys.iter().position(|k| k.as_bytes() == decoded)
                    }
                } else {
                    if cur.dialect == Dialect::Json {
                        // The messages of `dict_or_set`, so both paths report the same error.
                        return Err(cur.error_expected(if first { "a string key ('\"') or '}'" } else { "a string key ('\"')" }));
                    }
                    cur.value(false)?;
                    None
                };
                cur.skip_ws();
                if cur.peek() != Some(b':') {
                    return Err(cur.error_expected("':' after a dict key"));
                }
                cur.advance(1);
                cur.skip_ws();
                let value_start = cur.pos;
                match wanted {
                    Some(i) => {
                        let value = cur.value(true)?;
                        // i is the key's position among the wanted keys, one slot each in `out`.
                        if let Some(slot) = out.get_mut(i) {
                            *slot = Some(Field { offset: value_start, value });
                        }
                    }
                    None => {
                        cur.value(false)?;
                    }
                }
                cur.skip_ws();
                match cur.peek() {
                    Some(b',') => {
                        cur.advance(1);
                        cur.skip_ws();
                        if cur.peek() == Some(b'}') {
                            if cur.dialect == Dialect::Json {
                                return Err(cur.error_at(cur.pos, "trailing comma before '}' (not JSON)"));
                            }
                            cur.advance(1);
                            break;
                        }
                        first = false;
                    }
                    Some(b'}') => {
                        cur.advance(1);
                        break;
                    }
                    _ => return Err(cur.error_expected("',' or '}' after a dict value")),
                }
            }
        }
        for _ in 0..parens {
            cur.skip_ws();
            if cur.peek() != Some(b')') {
                return Err(cur.error_expected("')'"));
            }
            cur.advance(1);
        }
        cur.expect_end()?;
        Ok(out)
    }
}
