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

/// The first `N` bytes of `b` as an array, for `from_le_bytes` / `from_be_bytes` of a slice
/// the caller cut to that length (a shorter slice is zero-padded: never a panic).
pub fn byte_array<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.iter_mut().zip(b).for_each(|(x, &y)| *x = y);
    a
}

/// The strings that `offsets` (increasing byte offsets, one more than the strings) cut
/// `bytes` into: the id lists and vocabularies of saved models. The error says what is wrong
/// ("offsets out of range", "invalid UTF-8"), for the caller to name the file and the list.
pub fn strings_at_offsets(offsets: &[i64], bytes: &[u8]) -> std::result::Result<Vec<String>, &'static str> {
    offsets
        .iter()
        .zip(offsets.iter().skip(1))
        .map(|(&a, &b)| {
            let (Ok(a), Ok(b)) = (usize::try_from(a), usize::try_from(b)) else { return Err("offsets out of range") };
            let s = bytes.get(a..b).ok_or("offsets out of range")?;
            std::str::from_utf8(s).map(str::to_string).map_err(|_| "invalid UTF-8")
        })
        .collect()
}

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

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
            _ => Err(Error::invalid(format!("on_error must be 'raise' or 'skip', not {}", crate::error::quote(s)))),
        }
    }
}

/// Open `path` for reading; a directory is refused as such (opening one succeeds on Linux,
/// and reading or mapping it then fails with a message that does not say why).
pub fn open_file(path: &Path) -> Result<File> {
    let file = File::open(path).map_err(|e| Error::io(path, &e))?;
    if file.metadata().map_err(|e| Error::io(path, &e))?.is_dir() {
        return Err(is_a_directory(path));
    }
    Ok(file)
}

/// The error for a directory where a file is expected.
pub fn is_a_directory(path: &Path) -> Error {
    Error::Io { path: path.display().to_string(), message: format!("{IS_A_DIRECTORY}, not a file") }
}

/// How [`is_a_directory`] errors start (the bindings raise IsADirectoryError for them).
pub const IS_A_DIRECTORY: &str = "Is a directory";

/// A read-only memory map of a whole file. Errors name the file; an empty file is an error
/// (nothing to map, and no format here is valid empty).
///
/// A file truncated by another process while mapped ends this process with SIGBUS when a
/// vanished page is touched, as with `numpy.memmap` (the README says so); our own writers
/// never truncate in place (see [`write_replacing`]).
pub fn map_file(path: &Path) -> Result<Mmap> {
    let file = open_file(path)?;
    let len = file.metadata().map_err(|e| Error::io(path, &e))?.len();
    if len == 0 {
        return Err(Error::file(path, "the file is empty"));
    }
    // SAFETY: the map is read-only; a file truncated by another process while mapped would
    // fault on access, as for any reader of a file that changes underneath it.
    unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, &e))
}

/// Write `path` whole through a temporary file in the same folder, renamed over `path` only
/// when `write` succeeded (and the data reached the disk). A reader that has the old file
/// open or mapped keeps reading the old bytes: the file is replaced, never truncated in
/// place. On failure the temporary file is removed and `path` is untouched.
pub fn write_replacing<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<T>,
) -> Result<T> {
    replace_with(path, |tmp| {
        let result = (|| {
            let mut w = BufWriter::with_capacity(1 << 20, File::create(tmp)?);
            let out = write(&mut w)?;
            w.flush()?;
            Ok(out)
        })();
        result.map_err(|e: std::io::Error| Error::io(path, &e))
    })
}

/// The one way the core writes a file a user named (model files, checkpoints, image bank
/// caches, converted weights, every `write_*`): `write(tmp)` creates and fills a temporary
/// file in `path`'s folder (a private name: `.<name>.<pid>-<n>.partial`); when it succeeds
/// the data is synced to disk and the file renamed over `path`, else (an error or a panic)
/// the temporary file is removed and `path`, if it existed, is left as it was: a failure
/// never removes or truncates a file the user had. Errors name `path`.
pub fn replace_with<T>(path: &Path, write: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    if path.is_dir() {
        return Err(is_a_directory(path));
    }
    let name = path.file_name().ok_or_else(|| Error::invalid(format!("{}: not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}-{}.partial",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    /// Removes the temporary file unless disarmed (also when `write` panics).
    struct Cleanup<'a>(&'a Path, bool);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            if self.1 {
                let _ = std::fs::remove_file(self.0);
            }
        }
    }
    let mut cleanup = Cleanup(&tmp, true);
    let out = write(&tmp)?;
    File::options()
        .write(true)
        .open(&tmp)
        .and_then(|f| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(path, &e))?;
    cleanup.1 = false;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_keeps_the_old_file_for_its_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        write_replacing(&path, |w| w.write_all(b"old bytes")).unwrap();
        let map = map_file(&path).unwrap();
        write_replacing(&path, |w| w.write_all(b"new")).unwrap();
        assert_eq!(&map[..], b"old bytes"); // the mapped old file is intact
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let failed = write_replacing(&path, |w| {
            w.write_all(b"half")?;
            Err::<(), _>(std::io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        // A writer that fails after creating its file (or panics) leaves the old file too.
        let failed = replace_with(&path, |tmp| {
            std::fs::write(tmp, b"partial").unwrap();
            Err::<(), _>(Error::invalid("checked and refused"))
        });
        assert!(failed.is_err());
        let panicked = std::panic::catch_unwind(|| {
            let _ = replace_with(&path, |tmp| -> Result<()> {
                std::fs::write(tmp, b"partial").unwrap();
                panic!("writer panicked")
            });
        });
        assert!(panicked.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn a_directory_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        for e in [map_file(dir.path()).unwrap_err(), write_replacing(dir.path(), |_| Ok(())).unwrap_err()] {
            assert!(e.to_string().contains("Is a directory, not a file"), "{e}");
        }
    }
}
