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
    // The last character boundary at or before the cut (0 is always one).
    let end = (0..=QUOTE_BYTES).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{:?}... ({} bytes in all)", &text[..end], text.len())
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        from_libtorch(&e.to_string())
    }
}

/// A libtorch failure (a `TchError`'s text, or the panic of one of tch's infallible calls) as
/// the error it is: an allocation that failed is [`Error::Memory`], a size beyond int64 is
/// [`Error::InvalidInput`], anything else [`Error::Torch`]; the panic's wrapping
/// ("called `Result::unwrap()`...") and libtorch's C++ backtrace are cut, so neither reaches a
/// user. The one place such messages are read.
pub fn from_libtorch(text: &str) -> Error {
    let mut m = text;
    for wrap in ["called `Result::unwrap()` on an `Err` value: ", "Torch(\"", "Internal torch error: "] {
        if let Some((_, rest)) = m.split_once(wrap) {
            m = rest;
        }
    }
    let m = m.split("\nException raised from").next().unwrap_or(m);
    let m = m.split("Exception raised from").next().unwrap_or(m).trim_end_matches(['"', ')', '\n', ' ']);
    let m = m.replace("\\n", " ").replace('\n', " ");
    if m.contains("can't allocate memory") || m.contains("out of memory") || m.contains("OutOfMemory") {
        let bytes = m.split("allocate ").nth(2).or_else(|| m.split("allocate ").nth(1))
            .and_then(|t| t.split(' ').next()).and_then(|n| n.parse::<u128>().ok());
        return Error::Memory(match bytes {
            Some(b) => format!("not enough memory: libtorch could not allocate {} for a tensor", crate::limits::show_bytes(b)),
            None => format!("not enough memory: libtorch could not allocate a tensor ({})", m.chars().take(200).collect::<String>()),
        });
    }
    if m.contains("cannot be represented as a SymInt") || m.contains("negative dimension") {
        return Error::invalid(format!("a tensor size is out of range ({})", m.chars().take(200).collect::<String>()));
    }
    Error::Torch(m)
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
        Err(from_libtorch(&msg))
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

    /// An allocation libtorch cannot make is a memory error with a plain message: no panic's
    /// wrapping, no C++ backtrace.
    #[test]
    fn libtorch_allocation_failures_are_memory_errors() {
        let out = guarded(|| {
            let _ = tch::Tensor::zeros([1 << 40, 1 << 20], (tch::Kind::Float, tch::Device::Cpu));
            Ok(())
        });
        match out {
            Err(Error::Memory(m)) => assert!(m.starts_with("not enough memory") && !m.contains("unwrap") && !m.contains("Exception raised"), "{m}"),
            other => panic!("expected a memory error, got {other:?}"),
        }
        let e = from_libtorch("called `Result::unwrap()` on an `Err` value: Torch(\"IntArrayRef contains an int that cannot be represented as a SymInt: -9\\nException raised from x at y.cpp:1\")");
        assert!(matches!(&e, Error::InvalidInput(m) if !m.contains("Exception raised") && !m.contains("unwrap")), "{e:?}");
    }
}
