//! Python literals (the 2014 Amazon metadata lines, numpy's `.npy` header) and strict JSON,
//! parsed into one value tree. Never `eval`.
//!
//! # Python dialect
//! What `ast.literal_eval` accepts for data files, plus the Python 2 forms the 2014 Amazon
//! files were written with:
//! * strings in `'`, `"`, `'''` or `"""`, prefixes `u`, `b`, `r`, `ur`, `br`, `rb` (any case),
//!   adjacent literals concatenated (`'a' "b"`), every escape (`\\ \' \" \n \r \t \a \b \f \v`,
//!   `\ooo`, `\xhh`, `\uXXXX`, `\UXXXXXXXX`, backslash-newline); an unknown escape such as `\q`
//!   is kept as the two characters, as Python does.
//! * **Python 2 string semantics.** A string without `u` or `b` is a Python 2 byte string: its
//!   `\xhh` and `\ooo` escapes are raw bytes, so `'\xe2\x80\x99'` is `’`. The bytes are decoded
//!   as UTF-8; a byte that is not part of a valid UTF-8 sequence becomes the character with the
//!   same number (Latin-1), so `'caf\xe9'` is `café` and nothing is ever lost. This applies
//!   to escaped bytes only: the text itself must be UTF-8, and a raw byte that is not is an
//!   error at its offset (never silently reread as Latin-1). (For the strings
//!   Python 3's `repr` writes, this gives the same text as Python 3 does: `repr` only escapes
//!   control characters, which never form UTF-8 sequences.) `\uXXXX` is a code point in these
//!   strings too (Python 3 meaning; a Python 2 writer never puts a bare `\u` in a byte string).
//!   In `u'...'` strings `\xhh` and `\ooo` are code points (U+00hh). `b'...'` gives
//!   [`Literal::Bytes`] (`\u` is not an escape there, and non-ASCII characters are an error, as
//!   in Python 3).
//! * A surrogate pair written as two escapes (`\ud83d\ude00`, as Python 2 narrow builds and JSON
//!   write non-BMP characters) is combined into one character; a lone surrogate cannot be held
//!   in UTF-8 text and is an error. `\N{name}` escapes are not supported in text strings (an
//!   error, also in unprefixed strings: Python 3 reads a named escape there, and a Python 2
//!   writer never leaves a bare backslash; in bytes `\N` is kept as written, as Python does).
//! * integers (`0x`, `0o`, `0b`, `_` between digits, Python 2 `L` suffix and `017` octal, one
//!   leading sign) — outside i64 they become [`Literal::BigInt`] in decimal; floats (`1.`, `.5`,
//!   `1e-3`, `1_0.5`); `True`, `False`, `None`; lists, tuples (`()`, `(1,)`), dicts, sets
//!   (`{1, 2}`, `set()`), trailing commas, `#` comments, a top-level tuple without parentheses
//!   (`1, 2`). Complex numbers, `nan`/`inf` names and any expression are errors
//!   (`ast.literal_eval` rejects them too), and so is `...` (Ellipsis, never data).
//!
//! # JSON dialect
//! Strict RFC 8259: `"` strings that must be valid UTF-8 with no raw control characters,
//! escapes `\" \\ \/ \b \f \n \r \t \uXXXX` (surrogate pairs combined, a lone surrogate is an
//! error), `true`/`false`/`null`, the JSON number grammar, no trailing commas. `NaN`,
//! `Infinity` and `-Infinity` (which Python's `json.dumps` writes by default) are **rejected**:
//! they are not JSON, and a reader that took them would accept files other tools reject.
//!
//! # Both
//! Dicts keep their pairs in source order, repeated keys included ([`Literal::get`] returns the
//! last one, as Python and JSON parsers do). Nesting deeper than [`MAX_DEPTH`] is an error, never
//! a stack overflow. No input makes the parser panic; every error has the byte offset (within
//! the input) and says what was expected. The hot path allocates only the output: strings
//! without escapes are copied once from the input, escaped ones are decoded in a reused buffer.
//!
//! # Where things are
//! * `parser`: [`Parser`] (reusable, with its decoding buffer) and the dict-fields fast path.
//! * `cursor`: the parsing state over one text, whitespace and comments, error messages.
//! * `values`: one value: lists, tuples, dicts, sets, names, the top-level tuple.
//! * `numbers`: Python and JSON numbers, integers beyond i64 in decimal.
//! * `strings`: string literals (prefixes, concatenation, the fast slice path) and JSON strings.
//! * `escapes`: backslash escapes in Python and JSON strings.

mod cursor;
mod escapes;
mod numbers;
mod parser;
mod strings;
mod values;

pub use parser::{Field, Parser};
pub use strings::decode_utf8_or_latin1;

use std::fmt;

/// Containers nested deeper than this are an error (the parser is recursive; this bounds the
/// stack at well under a rayon worker's 2 MiB).
pub const MAX_DEPTH: usize = 512;

/// A parsed literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    None,
    Bool(bool),
    Int(i64),
    /// An integer outside i64, kept as its decimal digits (with sign).
    BigInt(String),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Literal>),
    Tuple(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
    Set(Vec<Literal>),
}

impl Literal {
    /// The value of the last `key` entry of a dict with that string key; `None` for a missing
    /// key or a value that is not a dict.
    pub fn get(&self, key: &str) -> Option<&Literal> {
        match self {
            Literal::Dict(pairs) => {
                pairs.iter().rev().find(|(k, _)| matches!(k, Literal::Str(s) if s == key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Literal::Str(s) => Some(s),
            _ => None,
        }
    }

    /// "a str", "an int", ...: for error messages about a value of the wrong type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Literal::None => "None",
            Literal::Bool(_) => "a bool",
            Literal::Int(_) | Literal::BigInt(_) => "an int",
            Literal::Float(_) => "a float",
            Literal::Str(_) => "a str",
            Literal::Bytes(_) => "bytes",
            Literal::List(_) => "a list",
            Literal::Tuple(_) => "a tuple",
            Literal::Dict(_) => "a dict",
            Literal::Set(_) => "a set",
        }
    }
}

/// Which grammar a text follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Python literal syntax (`ast.literal_eval`), including Python 2 forms (`u'...'`, `0L`).
    Python,
    /// Strict JSON (RFC 8259).
    Json,
}

/// Where and why a parse failed: `offset` is the byte offset in the parsed text.
#[derive(Debug, Clone, PartialEq)]
pub struct LiteralError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for LiteralError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for LiteralError {}

type PResult<T> = Result<T, LiteralError>;

/// Parse one complete literal (surrounding whitespace allowed, nothing else after it).
pub fn parse(text: &[u8], dialect: Dialect) -> Result<Literal, LiteralError> {
    Parser::new(dialect).parse(text)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
