//! Readers (and, for tests, writers) of the file formats the seed notebooks read.
//!
//! * [`npy`] and [`pickle`]: numpy's `.npy` container and the pickle stream inside object
//!   arrays, parsed without executing anything (never `np.load(allow_pickle=True)`).
//! * [`dvbpr`]: the DVBPR `*ImgPartitioned.npy` layout, streamed from a memory map so the JPEG
//!   bytes are never copied.
//! * [`features`]: McAuley's `image_features_*.b` (10-byte ASIN + 4096 float32 records).
//! * [`pyliteral`] and [`amazon`]: Python-literal / JSON lines and the Amazon metadata files.
//! * [`tabular`]: delimited interaction files and id lists (CSV).
//!
//! Every error names the file and the place in it (byte offset, line, record).

pub mod amazon;
pub mod dvbpr;
pub mod features;
pub mod npy;
pub mod pickle;
pub mod pyliteral;
pub mod tabular;

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::{Error, Result};

/// What a reader does with a bad record (a malformed metadata line, an image that does not
/// decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop with an error naming the record, where it is, and why.
    Raise,
    /// Leave it out (an image: a black row) and list it with the reason.
    Skip,
}

impl std::str::FromStr for OnError {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "raise" => Ok(OnError::Raise),
            "skip" => Ok(OnError::Skip),
            _ => Err(Error::invalid(format!("on_error must be 'raise' or 'skip', not {s:?}"))),
        }
    }
}

/// A read-only memory map of a whole file. Errors name the file; an empty file is an error
/// (nothing to map, and no format here is valid empty).
pub fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| Error::io(path, &e))?;
    let len = file.metadata().map_err(|e| Error::io(path, &e))?.len();
    if len == 0 {
        return Err(Error::file(path, "the file is empty"));
    }
    // SAFETY: the map is read-only; a file truncated by another process while mapped would
    // fault on access, as for any reader of a file that changes underneath it.
    unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, &e))
}
