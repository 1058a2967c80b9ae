//! The parsing state over one text: where it is, whitespace and comments, and the errors
//! it reports (every one at a byte offset, saying what was expected).

use super::{Dialect, LiteralError, PResult};

/// Parsing state over one text.
pub(super) struct Cursor<'t, 's> {
    pub(super) text: &'t [u8],
    pub(super) pos: usize,
    pub(super) dialect: Dialect,
    pub(super) depth: usize,
    pub(super) scratch: &'s mut Vec<u8>,
}

/// A byte as a message shows it.
pub(super) fn show_byte(b: Option<u8>) -> String {
    match b {
        None => "the end of the text".to_string(),
        Some(b) if b.is_ascii_graphic() => format!("'{}'", b as char),
        Some(b' ') => "a space".to_string(),
        Some(b'\n') => "a newline".to_string(),
        Some(b) => format!("byte 0x{b:02x}"),
    }
}

/// `text[a..b]`, for bounds the scanner found in the text (a <= b <= its length); empty
/// were they not.
pub(super) fn span(text: &[u8], a: usize, b: usize) -> &[u8] {
    text.get(a..b).unwrap_or_default()
}

pub(super) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

pub(super) fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Cursor<'_, '_> {
    /// Moves `n` bytes on. Positions stay within the text plus a few bytes (a text is at most
    /// isize::MAX bytes), so this never saturates; past the end, `peek` sees the end.
    pub(super) fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n);
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    pub(super) fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.text.get(self.pos.checked_add(ahead)?).copied()
    }

    pub(super) fn error_at(&self, offset: usize, message: impl Into<String>) -> LiteralError {
        LiteralError { offset: offset.min(self.text.len()), message: message.into() }
    }

    pub(super) fn error_expected(&self, what: &str) -> LiteralError {
        self.error_at(self.pos, format!("expected {what}, found {}", show_byte(self.peek())))
    }

    pub(super) fn expect_end(&mut self) -> PResult<()> {
        self.skip_ws();
        if self.pos < self.text.len() {
            return Err(self.error_at(
                self.pos,
                format!("unexpected {} after the end of the value (one literal expected)", show_byte(self.peek())),
            ));
        }
        Ok(())
    }

    pub(super) fn skip_ws(&mut self) {
        match self.dialect {
            Dialect::Json => {
                while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
                    self.advance(1);
                }
            }
            Dialect::Python => loop {
                match self.peek() {
                    Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') => self.advance(1),
                    Some(b'#') => {
                        while let Some(b) = self.peek() {
                            if b == b'\n' || b == b'\r' {
                                break;
                            }
                            self.advance(1);
                        }
                    }
                    // An explicit line join.
                    Some(b'\\') if matches!(self.peek_at(1), Some(b'\n' | b'\r')) => {
                        self.advance(1);
                        if self.peek() == Some(b'\r') && self.peek_at(1) == Some(b'\n') {
                            self.advance(1);
                        }
                        self.advance(1);
                    }
                    _ => break,
                }
            },
        }
    }

}
