//! McAuley's visual features (`image_features_*.b`): records of a 10-byte ASIN followed by
//! 4096 little-endian float32 (16,394 bytes a record), no header, repeated.
//!
//! The file is memory-mapped and never copied: opening it reads only the ASINs (one 10-byte
//! read per record) to check them and build the index. The floats are read in place — by the
//! Python array that views the map, by [`ImageFeatures::gather`] for training batches, or by
//! [`ImageFeatures::check_finite`]. Records are 16,394 bytes, so the floats are in general not
//! 4-byte aligned: every read here goes through `f32::from_le_bytes`.

use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// The ASIN field of a record, in bytes.
pub const ASIN_LEN: usize = 10;
/// The feature size of McAuley's files (the fc7 layer of a Caffe reference network).
pub const DEFAULT_DIM: usize = 4096;

/// An opened features file: the map, the ASINs, and their index.
pub struct ImageFeatures {
    path: PathBuf,
    map: Mmap,
    dim: usize,
    len: usize,
    /// Row of each ASIN; a repeated ASIN maps to its first record.
    index: FxHashMap<[u8; ASIN_LEN], u32>,
    duplicates: usize,
    first_duplicate: Option<usize>,
}

impl std::fmt::Debug for ImageFeatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFeatures").field("path", &self.path).field("len", &self.len).field("dim", &self.dim).finish()
    }
}

/// The bytes of a record's ASIN field as a message shows them.
fn show_asin(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        format!("'{}'", String::from_utf8_lossy(bytes))
    } else {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}

fn is_printable_ascii(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| (0x20..0x7f).contains(b))
}

impl ImageFeatures {
    /// Map `path` and index its ASINs. `dim` is the number of float32 per record (4096 in
    /// McAuley's files). Errors name the file, the record and its byte offset: a file whose
    /// size is not a whole number of records (truncated), an ASIN that is not printable ASCII
    /// (which also catches files of another type).
    pub fn open(path: &Path, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid("dim must be at least 1"));
        }
        let map = super::map_file(path)?;
        let size = map.len();
        // Checked: a huge dim must not wrap around into a small record size.
        let rec = dim.checked_mul(4).and_then(|b| b.checked_add(ASIN_LEN)).ok_or_else(|| {
            Error::file(path, format!("dim={dim} asks for records of 10 + 4 x {dim} bytes, more than can be addressed: is dim right?"))
        })?;
        // The first ASIN first: a file of another type is reported as such, not as truncated.
        let head = asin_field(&map);
        if !is_printable_ascii(head) {
            return Err(Error::file(path, format!(
                "record 0 (byte offset 0): the ASIN field holds {}, not printable ASCII: this is not an \
                 image-features file (10-byte ASIN + {dim} float32 per record)",
                show_asin(head)
            )));
        }
        // rec >= 10: neither is None.
        let (len, rest) = (size.checked_div(rec).unwrap_or(0), size.checked_rem(rec).unwrap_or(0));
        if rest != 0 {
            return Err(Error::file(path, format!(
                "truncated: the file is {size} bytes, not a whole number of {rec}-byte records \
                 (10-byte ASIN + {dim} float32); record {len} at byte offset {} has only {rest} bytes",
                size.saturating_sub(rest)
            )));
        }
        if len > u32::MAX as usize {
            return Err(Error::file(path, format!("{len} records: more than this reader indexes (2^32 - 1)")));
        }
        // Check the ASINs in parallel (they are spread over the whole file), then index them.
        // Whole records only (size is a multiple of rec, checked above).
        let bad = map.par_chunks_exact(rec).position_first(|record| !is_printable_ascii(asin_field(record)));
        if let Some(r) = bad {
            return Err(Error::file(path, format!(
                "record {r} (byte offset {}): the ASIN field holds {}, not printable ASCII \
                 (a corrupt file, or records that are not {rec} bytes: is dim={dim} right?)",
                r.saturating_mul(rec),
                show_asin(map.get(r.saturating_mul(rec)..).map_or(&[][..], asin_field))
            )));
        }
        let mut index = FxHashMap::with_capacity_and_hasher(len, Default::default());
        let mut duplicates = 0usize;
        let mut first_duplicate = None;
        for (r, record) in map.chunks_exact(rec).enumerate() {
            let key: [u8; ASIN_LEN] = super::byte_array(record);
            match index.entry(key) {
                Entry::Vacant(e) => {
                    e.insert(r as u32);
                }
                Entry::Occupied(_) => {
                    duplicates = duplicates.saturating_add(1);
                    first_duplicate.get_or_insert(r);
                }
            }
        }
        Ok(ImageFeatures { path: path.to_path_buf(), map, dim, len, index, duplicates, first_duplicate })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// float32 values per record.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Bytes per record (10 + 4 * dim).
    pub fn record_size(&self) -> usize {
        // Checked when the file was opened (it holds such records).
        self.dim.saturating_mul(4).saturating_add(ASIN_LEN)
    }

    /// The whole mapped file (for a zero-copy view: record `r`'s floats start at
    /// `r * record_size() + 10`).
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Records whose ASIN occurred earlier in the file, and the first of them.
    pub fn duplicates(&self) -> (usize, Option<usize>) {
        (self.duplicates, self.first_duplicate)
    }

    /// Record `r`'s ASIN (checked printable ASCII at open).
    pub fn asin(&self, r: usize) -> &str {
        let at = r.checked_mul(self.record_size());
        at.and_then(|at| self.map.get(at..at.checked_add(ASIN_LEN)?)).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("?")
    }

    /// Every record's ASIN, in file order.
    pub fn asins(&self) -> Vec<&str> {
        (0..self.len).map(|r| self.asin(r)).collect()
    }

    /// The row of each ASIN (its first record); an unknown ASIN is an error naming it and its
    /// position in `asins`.
    pub fn index_of(&self, asins: &[&str]) -> Result<Vec<i64>> {
        asins
            .iter()
            .enumerate()
            .map(|(pos, a)| {
                self.row_of(a).map(|r| r as i64).ok_or_else(|| {
                    Error::invalid(format!("ASIN {a:?} (position {pos}) is not in {}", self.path.display()))
                })
            })
            .collect()
    }

    /// The row of one ASIN, if present.
    pub fn row_of(&self, asin: &str) -> Option<usize> {
        let key: [u8; ASIN_LEN] = asin.as_bytes().try_into().ok()?;
        self.index.get(&key).map(|&r| r as usize)
    }

    /// Record `r`'s floats, as stored (little-endian bytes, maybe unaligned); r < len() (none
    /// past the last record).
    fn raw_row(&self, r: usize) -> &[u8] {
        let span = || {
            let at = r.checked_mul(self.record_size())?.checked_add(ASIN_LEN)?;
            Some(at..at.checked_add(self.dim.checked_mul(4)?)?)
        };
        span().and_then(|s| self.map.get(s)).unwrap_or_default()
    }

    /// The rows `rows` as one contiguous row-major buffer (len * dim), gathered in parallel.
    /// An out-of-range row is an error naming its position.
    pub fn gather(&self, rows: &[i64]) -> Result<Vec<f32>> {
        let what = "the gathered features";
        let mut out = crate::limits::try_filled(what, crate::limits::mul(what, rows.len(), self.dim)?, 0f32)?;
        self.gather_into(rows, &mut out)?;
        Ok(out)
    }

    /// [`Self::gather`] into a caller's buffer (`rows.len() * dim` long): the bindings pass
    /// numpy's memory, which numpy backs with huge pages (a fresh Vec's page faults cost more
    /// than the copy).
    pub fn gather_into(&self, rows: &[i64], out: &mut [f32]) -> Result<()> {
        if rows.len().checked_mul(self.dim) != Some(out.len()) {
            return Err(Error::invalid(format!(
                "output buffer of {} values for {} rows of {}",
                out.len(),
                rows.len(),
                self.dim
            )));
        }
        if let Some((pos, &r)) = rows.iter().enumerate().find(|(_, &r)| r < 0 || r as usize >= self.len) {
            return Err(Error::invalid(format!(
                "indices[{pos}]: row {r} is out of range: {} has {} records",
                self.path.display(),
                self.len
            )));
        }
        let dim = self.dim;
        out.par_chunks_mut(dim).zip(rows.par_iter()).for_each(|(dst, &r)| copy_le_f32(self.raw_row(r as usize), dst));
        Ok(())
    }

    /// Check every value is finite (in parallel, at memory speed); the error names the first
    /// record (in file order) holding NaN or an infinity, its byte offset, ASIN, column and value.
    pub fn check_finite(&self) -> Result<()> {
        // Exponent bits all ones = NaN or inf.
        const EXP: u32 = 0x7f80_0000;
        let bad_row = (0..self.len).into_par_iter().with_min_len(64).find_first(|&r| {
            self.raw_row(r).as_chunks::<4>().0.iter().any(|&s| u32::from_le_bytes(s) & EXP == EXP)
        });
        let Some(r) = bad_row else { return Ok(()) };
        let row = self.raw_row(r);
        let (col, value) = row
            .as_chunks::<4>()
            .0
            .iter()
            .map(|&s| f32::from_le_bytes(s))
            .enumerate()
            .find(|(_, v)| !v.is_finite())
            .unwrap_or((0, f32::NAN));
        Err(Error::file(&self.path, format!(
            "record {r} (byte offset {}, ASIN {}) has {value} in column {col}",
            r.saturating_mul(self.record_size()),
            show_asin(self.asin(r).as_bytes())
        )))
    }

    /// Sum of every value (f64, per-row partial sums): a full pass over the data.
    pub fn sum(&self) -> f64 {
        (0..self.len)
            .into_par_iter()
            .with_min_len(64)
            .map(|r| {
                self.raw_row(r).as_chunks::<4>().0.iter().map(|&s| f32::from_le_bytes(s)).sum::<f32>() as f64
            })
            .sum()
    }
}

/// The ASIN field at the start of a record (all of `record` when it is shorter).
fn asin_field(record: &[u8]) -> &[u8] {
    record.get(..ASIN_LEN).unwrap_or(record)
}

/// Little-endian float32 bytes (any alignment) into `dst` (`src.len() == 4 * dst.len()`).
fn copy_le_f32(src: &[u8], dst: &mut [f32]) {
    assert_eq!(Some(src.len()), dst.len().checked_mul(4));
    #[cfg(target_endian = "little")]
    // SAFETY: the lengths match (checked above), the regions cannot overlap (one is the
    // read-only map, the other a fresh Vec), byte copies need no alignment, and every bit
    // pattern is a valid f32. One memcpy instead of a per-value loop.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len());
    }
    #[cfg(not(target_endian = "little"))]
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    }
}

/// Write records in the layout above (for tests and synthetic data). `asins` must be 10
/// printable ASCII bytes each; `values` is row-major, `asins.len() * dim` long.
pub fn write(path: &Path, asins: &[&str], values: &[f32], dim: usize) -> Result<()> {
    use std::io::Write;
    let needed = asins.len().checked_mul(dim);
    if needed != Some(values.len()) {
        return Err(Error::invalid(format!(
            "{} ASINs x dim {dim} needs {} values, got {}",
            asins.len(),
            needed.map_or_else(|| "more".to_string(), |n| n.to_string()),
            values.len()
        )));
    }
    for (pos, a) in asins.iter().enumerate() {
        if a.len() != ASIN_LEN || !is_printable_ascii(a.as_bytes()) {
            return Err(Error::invalid(format!("ASIN {a:?} (position {pos}) is not 10 printable ASCII characters")));
        }
    }
    super::write_replacing(path, |w| {
        let mut buf = Vec::with_capacity(dim.saturating_mul(4).saturating_add(ASIN_LEN));
        for (a, row) in asins.iter().zip(values.chunks_exact(dim.max(1))) {
            buf.clear();
            buf.extend_from_slice(a.as_bytes());
            for v in row {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            w.write_all(&buf)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path, asins: &[&str], dim: usize) -> (PathBuf, Vec<f32>) {
        let path = dir.join("image_features_Test.b");
        let values: Vec<f32> = (0..asins.len() * dim).map(|i| i as f32 * 0.5 - 3.0).collect();
        write(&path, asins, &values, dim).unwrap();
        (path, values)
    }

    #[test]
    fn reads_index_and_gathers() {
        let dir = tempfile::tempdir().unwrap();
        let (path, values) = sample(dir.path(), &["B000000001", "B000000002", "0000031852"], 7);
        let f = ImageFeatures::open(&path, 7).unwrap();
        assert_eq!((f.len(), f.dim(), f.record_size()), (3, 7, 38));
        assert_eq!(f.asins(), vec!["B000000001", "B000000002", "0000031852"]);
        assert_eq!(f.index_of(&["0000031852", "B000000001"]).unwrap(), vec![2, 0]);
        let e = f.index_of(&["B000000001", "NOPE"]).unwrap_err().to_string();
        assert!(e.contains("\"NOPE\" (position 1)"), "{e}");
        assert_eq!(f.gather(&[2, 0, 2]).unwrap(), [&values[14..21], &values[0..7], &values[14..21]].concat());
        assert!(f.gather(&[3]).unwrap_err().to_string().contains("indices[0]: row 3 is out of range"));
        assert!(f.gather(&[-1]).is_err());
        assert_eq!(f.gather(&[]).unwrap(), Vec::<f32>::new());
        f.check_finite().unwrap();
        let expected: f64 = values.iter().map(|&v| v as f64).sum();
        assert!((f.sum() - expected).abs() < 1e-6 * expected.abs().max(1.0));
        assert_eq!(f.duplicates(), (0, None));
    }

    #[test]
    fn duplicates_map_to_the_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path(), &["AAAAAAAAAA", "BBBBBBBBBB", "AAAAAAAAAA", "AAAAAAAAAA"], 3);
        let f = ImageFeatures::open(&path, 3).unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f.duplicates(), (2, Some(2)));
        assert_eq!(f.row_of("AAAAAAAAAA"), Some(0));
    }

    #[test]
    fn truncated_file_names_record_offset_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path(), &["AAAAAAAAAA", "BBBBBBBBBB"], 4096);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..16394 + 100]).unwrap();
        let e = ImageFeatures::open(&path, 4096).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("record 1 at byte offset 16394 has only 100 bytes"), "{e}");
    }

    #[test]
    fn wrong_type_and_corrupt_asins() {
        let dir = tempfile::tempdir().unwrap();
        let jpeg = dir.path().join("photo.b");
        std::fs::write(&jpeg, [0xff, 0xd8, 0xff, 0xe0, 0, 16, b'J', b'F', b'I', b'F', 0, 1]).unwrap();
        let e = ImageFeatures::open(&jpeg, 4096).unwrap_err().to_string();
        assert!(e.contains("record 0 (byte offset 0)") && e.contains("ff d8 ff e0"), "{e}");
        assert!(e.contains("not an image-features file"), "{e}");
        // A dim whose record size does not fit in usize is refused, never wrapped around.
        let e = ImageFeatures::open(&jpeg, usize::MAX / 4 + 1).unwrap_err().to_string();
        assert!(e.contains("more than can be addressed"), "{e}");

        let (path, _) = sample(dir.path(), &["AAAAAAAAAA", "BBBBBBBBBB", "CCCCCCCCCC"], 2);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[2 * 18 + 3] = 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let e = ImageFeatures::open(&path, 2).unwrap_err().to_string();
        assert!(e.contains("record 2 (byte offset 36)"), "{e}");
        // The wrong dim puts the ASIN field in the floats.
        let (path, _) = sample(dir.path(), &["AAAAAAAAAA", "BBBBBBBBBB"], 6);
        assert!(ImageFeatures::open(&path, 3).is_err());

        let empty = dir.path().join("empty.b");
        std::fs::write(&empty, b"").unwrap();
        assert!(ImageFeatures::open(&empty, 4096).unwrap_err().to_string().contains("empty"));
        assert!(ImageFeatures::open(&dir.path().join("missing.b"), 4096).is_err());
        assert!(ImageFeatures::open(&path, 0).is_err());
    }

    #[test]
    fn check_finite_names_the_first_bad_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.b");
        let mut values = vec![1.0f32; 5 * 4];
        values[3 * 4 + 2] = f32::INFINITY;
        values[4 * 4] = f32::NAN;
        write(&path, &["A000000000", "A000000001", "A000000002", "A000000003", "A000000004"], &values, 4).unwrap();
        let e = ImageFeatures::open(&path, 4).unwrap().check_finite().unwrap_err().to_string();
        assert!(e.contains("record 3 (byte offset 78, ASIN 'A000000003') has inf in column 2"), "{e}");
    }

    #[test]
    fn writer_checks_its_input() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.b");
        assert!(write(&p, &["SHORT"], &[0.0], 1).unwrap_err().to_string().contains("position 0"));
        assert!(write(&p, &["AAAAAAAAAA"], &[0.0, 1.0], 1).is_err());
    }
}
