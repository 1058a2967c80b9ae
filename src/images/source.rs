//! Where the encoded image (JPEG or PNG bytes) of each item is: files on disk, or spans of a
//! container file that is memory-mapped (a DVBPR `.npy`). Nothing is read until asked for.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Mmap, UncheckedAdvice};

use crate::error::{Error, Result};
use crate::io::pickle::Span;

#[derive(Debug)]
enum Kind {
    Files(Vec<PathBuf>),
    /// Spans of one mapped file; None for an item that has no image in it.
    Spans { path: PathBuf, map: Arc<Mmap>, spans: Vec<Option<Span>> },
}

/// One encoded image per item, in item order.
#[derive(Debug)]
pub struct ImageSource {
    kind: Kind,
}

impl ImageSource {
    pub fn files(paths: Vec<PathBuf>) -> Self {
        ImageSource { kind: Kind::Files(paths) }
    }

    /// Images stored inside `path` (already mapped as `map`), at `spans`.
    pub fn spans(path: PathBuf, map: Arc<Mmap>, spans: Vec<Option<Span>>) -> Result<Self> {
        if let Some((i, s)) = spans.iter().enumerate().find_map(|(i, s)| s.filter(|s| s.end() > map.len() as u64).map(|s| (i, s))) {
            return Err(Error::file(&path, format!("item {i}: image bytes {}..{} lie past the end of the file ({} bytes)", s.start, s.end(), map.len())));
        }
        Ok(ImageSource { kind: Kind::Spans { path, map, spans } })
    }

    pub fn len(&self) -> usize {
        match &self.kind {
            Kind::Files(p) => p.len(),
            Kind::Spans { spans, .. } => spans.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The files, for a file source.
    pub fn paths(&self) -> Option<&[PathBuf]> {
        match &self.kind {
            Kind::Files(p) => Some(p),
            Kind::Spans { .. } => None,
        }
    }

    /// The container file, for a span source.
    pub fn container(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Files(_) => None,
            Kind::Spans { path, .. } => Some(path),
        }
    }

    /// The encoded bytes of item `i` (borrowed from the map, or read from its file).
    pub fn read(&self, i: usize) -> Result<Cow<'_, [u8]>> {
        match &self.kind {
            Kind::Files(paths) => {
                let p = paths.get(i).ok_or_else(|| self.out_of_range(i))?;
                std::fs::read(p).map(Cow::Owned).map_err(|e| Error::io(p, &e))
            }
            Kind::Spans { path, map, spans } => match spans.get(i).ok_or_else(|| self.out_of_range(i))? {
                Some(s) => map.get(s.start as usize..s.end() as usize).map(Cow::Borrowed).ok_or_else(|| {
                    Error::file(path, format!("item {i}'s image (bytes {}..{}) lies past the end of the file", s.start, s.end()))
                }),
                None => Err(Error::file(path, format!("item {i} has no image ('imgs') in the file"))),
            },
        }
    }

    fn out_of_range(&self, i: usize) -> Error {
        Error::invalid(format!("item {i} out of range for {} images", self.len()))
    }

    /// Calls `f` with the encoded bytes of item `i`: borrowed from the map, or read from its
    /// file into `buf` (whose allocation is reused across calls).
    pub fn with_bytes<R>(&self, i: usize, buf: &mut Vec<u8>, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        match &self.kind {
            Kind::Files(paths) => {
                use std::io::Read;
                let p = paths.get(i).ok_or_else(|| self.out_of_range(i))?;
                buf.clear();
                std::fs::File::open(p).and_then(|mut file| file.read_to_end(buf)).map_err(|e| Error::io(p, &e))?;
                Ok(f(buf))
            }
            Kind::Spans { .. } => Ok(f(&self.read(i)?)),
        }
    }

    /// Where item `i`'s image is, for messages: the file, or the byte range in the container.
    pub fn locate(&self, i: usize) -> String {
        match &self.kind {
            Kind::Files(paths) => paths.get(i).map_or_else(|| format!("item {i} (out of range)"), |p| p.display().to_string()),
            Kind::Spans { path, spans, .. } => match spans.get(i).copied().flatten() {
                Some(s) => format!("{}, bytes {}..{}", path.display(), s.start, s.end()),
                None => format!("{} (no image)", path.display()),
            },
        }
    }

    /// Absolute offset of item `i`'s first byte in its file (0 for a file source).
    pub fn base_offset(&self, i: usize) -> u64 {
        match &self.kind {
            Kind::Spans { spans, .. } => spans.get(i).copied().flatten().map_or(0, |s| s.start),
            Kind::Files(_) => 0,
        }
    }

    /// A fingerprint of what the images are: paths, sizes and modification times (files), or
    /// the container's path, size, modification time and spans. A cache built from a source
    /// with another fingerprint is stale.
    pub fn fingerprint(&self) -> Result<u64> {
        let mut h = Fnv::new();
        let stat = |h: &mut Fnv, p: &Path| -> Result<()> {
            let m = std::fs::metadata(p).map_err(|e| Error::io(p, &e))?;
            let mtime = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
            h.write(p.as_os_str().as_encoded_bytes());
            h.write(&m.len().to_le_bytes());
            h.write(&mtime.to_le_bytes());
            Ok(())
        };
        match &self.kind {
            Kind::Files(paths) => {
                h.write(b"files");
                for p in paths {
                    stat(&mut h, p)?;
                }
            }
            Kind::Spans { path, spans, .. } => {
                h.write(b"spans");
                stat(&mut h, path)?;
                for s in spans {
                    let (a, b) = s.map_or((u64::MAX, 0), |s| (s.start, s.len));
                    h.write(&a.to_le_bytes());
                    h.write(&b.to_le_bytes());
                }
            }
        }
        Ok(h.finish())
    }

    /// Error naming the first file (of a file source) that is not there or not a file, with
    /// its item: a stat each, before a bank allocates room for their pixels.
    pub fn check_files(&self) -> Result<()> {
        let Kind::Files(paths) = &self.kind else { return Ok(()) };
        for (i, p) in paths.iter().enumerate() {
            match std::fs::metadata(p) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(Error::invalid(format!("image of item {i} ({}): not a file", p.display()))),
                Err(e) => {
                    return Err(Error::invalid(format!(
                        "image of item {i} ({}): cannot read the file: {e}; pass on_error='skip' to leave such images black and list them",
                        p.display()
                    )))
                }
            }
        }
        Ok(())
    }

    /// Tells the kernel the mapped bytes of items `range` are no longer needed, so a pass over
    /// a multi-GB container does not keep it all resident in this process (the page cache keeps
    /// it for the next reader). No effect for file sources.
    pub fn release(&self, range: std::ops::Range<usize>) {
        if let Kind::Spans { map, spans, .. } = &self.kind {
            let covered = spans.get(range).unwrap_or_default().iter().flatten();
            let (lo, hi) = covered.fold((u64::MAX, 0u64), |(lo, hi), s| (lo.min(s.start), hi.max(s.end())));
            if lo >= hi {
                return;
            }
            const PAGE: u64 = 4096;
            let (start, end) = (lo.div_ceil(PAGE).saturating_mul(PAGE), (hi / PAGE).saturating_mul(PAGE));
            if start < end {
                // SAFETY: the map is read-only and file-backed: dropped pages are read back from
                // the file on the next access, so no reader sees different bytes.
                let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, start as usize, end.saturating_sub(start) as usize) };
            }
        }
    }
}

/// 64-bit FNV-1a: stable across Rust versions (fingerprints are stored in cache files).
pub(crate) struct Fnv(u64);

impl Fnv {
    pub fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    pub fn finish(&self) -> u64 {
        self.0
    }
}
