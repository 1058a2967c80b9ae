//! One error type for the core. Every variant carries enough context (column, row, file,
//! byte offset, id) for the message alone to say what is wrong and where.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Bad user input: an unknown id, an out-of-range index, NaN, an empty table, a bad option.
    InvalidInput(String),
    /// A file whose content is malformed (the message says where).
    File { path: String, message: String },
    /// A file that could not be opened, read or written.
    Io { path: String, message: String },
    /// A model used before `fit`, or state that does not match (wrong shapes on load).
    State(String),
    /// An error raised inside libtorch.
    Torch(String),
    /// A size (from an argument or a file) that asks for more memory than there is.
    Memory(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
    pub fn file(path: impl AsRef<std::path::Path>, message: impl Into<String>) -> Self {
        Error::File { path: path.as_ref().display().to_string(), message: message.into() }
    }
    pub fn io(path: impl AsRef<std::path::Path>, err: &std::io::Error) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), message: err.to_string() }
    }
    pub fn state(msg: impl Into<String>) -> Self {
        Error::State(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(m) | Error::State(m) | Error::Memory(m) => f.write_str(m),
            Error::File { path, message } | Error::Io { path, message } => write!(f, "{path}: {message}"),
            Error::Torch(m) => write!(f, "libtorch: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Bytes an error message quotes of a bad input at most.
pub const QUOTE_BYTES: usize = 200;

/// `text` for an error message: Debug-quoted, cut to about [`QUOTE_BYTES`] bytes (at a
/// character boundary) with the full length said, so a huge bad input never floods a message.
pub fn quote(text: &str) -> String {
    if text.len() <= QUOTE_BYTES {
        return format!("{text:?}");
    }
    let mut end = QUOTE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes in all)", &text[..end], text.len())
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::Torch(e.to_string())
    }
}

/// Runs `f`, turning a panic inside it (tch's infallible calls panic on libtorch errors: a
/// CUDA out-of-memory, a shape mismatch) into an error, so the Python bindings raise a
/// `RuntimeError` (or `MemoryError`) that `except Exception` catches instead of a `PanicException`.
pub fn guarded<T>(f: impl FnOnce() -> crate::Result<T>) -> crate::Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "an internal error (panic without a message)".into());
        Err(Error::Torch(msg))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tch's infallible calls panic on a libtorch error; `guarded` turns that into an error
    /// carrying libtorch's message (a RuntimeError in Python, not a PanicException).
    #[test]
    fn libtorch_panics_become_errors() {
        let out = guarded(|| {
            let a = tch::Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu));
            let _ = a.matmul(&a); // (2, 3) x (2, 3): a shape error inside libtorch
            Ok(())
        });
        match out {
            Err(Error::Torch(m)) => assert!(m.contains("shapes cannot be multiplied") || m.contains("size"), "{m}"),
            other => panic!("expected a libtorch error, got {other:?}"),
        }
        assert_eq!(guarded(|| Ok(7)).unwrap(), 7);
    }
}
