//! Python literals (the 2014 Amazon metadata lines, numpy's `.npy` header) and strict JSON,
//! parsed into one value tree. Never `eval`.
//!
//! OWNER: helper A (this stub only fixes the API other modules code against).

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

impl std::fmt::Display for LiteralError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.message)
    }
}

/// Parse one complete literal (surrounding whitespace allowed, nothing else after it).
pub fn parse(text: &[u8], dialect: Dialect) -> Result<Literal, LiteralError> {
    let _ = (text, dialect);
    Err(LiteralError { offset: 0, message: "literal parser not written yet".into() })
}
