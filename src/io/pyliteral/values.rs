//! One value: the dispatch on its first byte, the top-level tuple without parentheses,
//! lists, tuples, dicts, sets and names (`True`, `null`, `set()`).

use super::cursor::{is_ident, is_ident_start, span, Cursor};
use super::{Dialect, Literal, PResult, MAX_DEPTH};

impl Cursor<'_, '_> {
    /// One value at `pos` (no leading whitespace). With `keep == false` it is fully checked
    /// but not built (returns `Literal::None`).
    pub(super) fn value(&mut self, keep: bool) -> PResult<Literal> {
        let Some(b) = self.peek() else {
            return Err(self.error_expected("a value"));
        };
        match b {
            b'[' => self.list(keep),
            b'{' => self.dict_or_set(keep),
            b'(' if self.dialect == Dialect::Python => self.paren(keep),
            b'"' => self.string_value(keep),
            b'\'' if self.dialect == Dialect::Python => self.string_value(keep),
            b'-' | b'+' | b'0'..=b'9' | b'.' => self.number(keep),
            _ if is_ident_start(b) => {
                if self.dialect == Dialect::Python && self.at_string_start() {
                    self.string_value(keep)
                } else {
                    self.name()
                }
            }
            _ => Err(self.error_expected("a value")),
        }
    }

    /// The whole text's value: in Python, `1, 2` (a tuple without parentheses) is one too,
    /// as for `ast.literal_eval`.
    pub(super) fn top_level(&mut self, keep: bool) -> PResult<Literal> {
        let first = self.value(keep)?;
        if self.dialect == Dialect::Json {
            return Ok(first);
        }
        self.skip_ws();
        if self.peek() != Some(b',') {
            return Ok(first);
        }
        self.enter()?;
        let mut items = vec![first];
        while self.peek() == Some(b',') {
            self.advance(1);
            self.skip_ws();
            if self.pos >= self.text.len() {
                break;
            }
            let v = self.value(keep)?;
            if keep {
                items.push(v);
            }
            self.skip_ws();
        }
        self.depth = self.depth.saturating_sub(1);
        Ok(if keep { Literal::Tuple(items) } else { Literal::None })
    }

    pub(super) fn enter(&mut self) -> PResult<()> {
        self.depth = self.depth.saturating_add(1);
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(self.pos, format!("containers nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    /// After an item of a `close`-terminated sequence: `,` or the end. Returns true at the end.
    /// Python allows a trailing comma, JSON does not.
    fn item_end(&mut self, close: u8, what: &str) -> PResult<bool> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.advance(1);
                self.skip_ws();
                if self.peek() == Some(close) {
                    if self.dialect == Dialect::Json {
                        return Err(self.error_at(self.pos, format!("trailing comma before '{}' (not JSON)", close as char)));
                    }
                    self.advance(1);
                    return Ok(true);
                }
                Ok(false)
            }
            Some(c) if c == close => {
                self.advance(1);
                Ok(true)
            }
            _ => Err(self.error_expected(&format!("',' or '{}' after {what}", close as char))),
        }
    }

    /// Steps over an opening bracket into a level deeper; true when `close` follows at once
    /// (an empty container: stepped over, back out of the level).
    fn open_is_empty(&mut self, close: u8) -> PResult<bool> {
        self.advance(1);
        self.enter()?;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.advance(1);
            self.depth = self.depth.saturating_sub(1);
            return Ok(true);
        }
        Ok(false)
    }

    fn list(&mut self, keep: bool) -> PResult<Literal> {
        let mut items = Vec::new();
        if !self.open_is_empty(b']')? {
            self.rest_of_items(&mut items, keep, b']', "a list item")?;
            self.depth = self.depth.saturating_sub(1);
        }
        Ok(if keep { Literal::List(items) } else { Literal::None })
    }

    /// The remaining items of a list, tuple or set up to its `close` (each item followed by ','
    /// or `close`), pushed to `items` when kept; `what` names an item in errors.
    fn rest_of_items(&mut self, items: &mut Vec<Literal>, keep: bool, close: u8, what: &str) -> PResult<()> {
        loop {
            let v = self.value(keep)?;
            if keep {
                items.push(v);
            }
            if self.item_end(close, what)? {
                return Ok(());
            }
        }
    }

    /// `(`: a tuple, or a parenthesised value.
    fn paren(&mut self, keep: bool) -> PResult<Literal> {
        if self.open_is_empty(b')')? {
            return Ok(if keep { Literal::Tuple(Vec::new()) } else { Literal::None });
        }
        let first = self.value(keep)?;
        self.skip_ws();
        if self.peek() == Some(b')') {
            self.advance(1);
            self.depth = self.depth.saturating_sub(1);
            return Ok(first);
        }
        let mut items = vec![first];
        if !self.item_end(b')', "a tuple item")? {
            self.rest_of_items(&mut items, keep, b')', "a tuple item")?;
        }
        self.depth = self.depth.saturating_sub(1);
        Ok(if keep { Literal::Tuple(items) } else { Literal::None })
    }

    fn dict_or_set(&mut self, keep: bool) -> PResult<Literal> {
        if self.open_is_empty(b'}')? {
            return Ok(if keep { Literal::Dict(Vec::new()) } else { Literal::None });
        }
        let json = self.dialect == Dialect::Json;
        if json && self.peek() != Some(b'"') {
            return Err(self.error_expected("a string key ('\"') or '}'"));
        }
        let first = self.value(keep)?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            if json {
                return Err(self.error_expected("':' after an object key"));
            }
            // A set.
            let mut items = vec![first];
            if !self.item_end(b'}', "a set item (or ':' after a dict key)")? {
                self.rest_of_items(&mut items, keep, b'}', "a set item")?;
            }
            self.depth = self.depth.saturating_sub(1);
            return Ok(if keep { Literal::Set(items) } else { Literal::None });
        }
        let mut pairs = Vec::new();
        let mut key = first;
        loop {
            // `pos` is at ':'.
            self.advance(1);
            self.skip_ws();
            let v = self.value(keep)?;
            if keep {
                pairs.push((key, v));
            }
            if self.item_end(b'}', "a dict value")? {
                break;
            }
            if json && self.peek() != Some(b'"') {
                return Err(self.error_expected("a string key ('\"')"));
            }
            key = self.value(keep)?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error_expected("':' after a dict key"));
            }
        }
        self.depth = self.depth.saturating_sub(1);
        Ok(if keep { Literal::Dict(pairs) } else { Literal::None })
    }

    fn name(&mut self) -> PResult<Literal> {
        let start = self.pos;
        while self.peek().is_some_and(is_ident) {
            self.advance(1);
        }
        let word = span(self.text, start, self.pos);
        let value = match (self.dialect, word) {
            (Dialect::Python, b"True") | (Dialect::Json, b"true") => Literal::Bool(true),
            (Dialect::Python, b"False") | (Dialect::Json, b"false") => Literal::Bool(false),
            (Dialect::Python, b"None") | (Dialect::Json, b"null") => Literal::None,
            (Dialect::Python, b"set") => {
                self.skip_ws();
                if self.peek() == Some(b'(') {
                    self.advance(1);
                    self.skip_ws();
                    if self.peek() == Some(b')') {
                        self.advance(1);
                        return Ok(Literal::Set(Vec::new()));
                    }
                }
                return Err(self.error_at(start, "only 'set()' (the empty set) may be written with 'set'"));
            }
            (Dialect::Json, b"NaN" | b"Infinity") => {
                return Err(self.error_at(start, "NaN and Infinity are not JSON numbers (this reader is strict RFC 8259 JSON)"));
            }
            _ => {
                let shown = String::from_utf8_lossy(word);
                let expected = match self.dialect {
                    Dialect::Python => "a literal (True, False, None, a number, a string, [...], (...), {...})",
                    Dialect::Json => "a JSON value (true, false, null, a number, a string, [...], {...})",
                };
                return Err(self.error_at(start, format!("unexpected name '{shown}': expected {expected}")));
            }
        };
        Ok(value)
    }
}
