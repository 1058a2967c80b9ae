//! The image bank: every item's image decoded once, resized, and kept as uint8 (N, H, W, 3),
//! in RAM or in a memory-mapped cache file that later runs reuse. Models read batches from it;
//! the conversion to floats in [-1, 1] happens per batch, on the device the model trains on,
//! so the bank stays 4x smaller than float pixels and the host-to-device copy moves bytes.
//!
//! Cache file: a 4096-byte header (magic, where the pixels and the metadata trailer are), the
//! pixels from offset 4096 (page-aligned), then a JSON trailer (size, filter, source
//! fingerprint, skipped items, whether JPEGs were decoded at reduced scale). It is written under a temporary name and renamed when
//! complete, so an interrupted build never leaves a cache that looks valid.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::decode::{decode_into, DecodeOptions, Placed};
use super::resize::{resize_rgb, Filter};
use super::source::ImageSource;
use crate::error::{Error, Result};
pub use crate::io::OnError;
use crate::train::ThreadPool;

/// The size and filter images are stored at, and whether large JPEGs are decoded at reduced
/// scale first (which changes their pixels: see [`super::decode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankSpec {
    pub height: usize,
    pub width: usize,
    pub filter: Filter,
    pub reduce: bool,
}

impl BankSpec {
    /// Bytes of one image (checked against the pixel limit when a bank is built or opened).
    pub fn image_bytes(&self) -> usize {
        // Saturating: a size past usize is refused wherever the bytes are allocated or mapped.
        self.height.saturating_mul(self.width).saturating_mul(3)
    }

    /// Why this size cannot be a bank's (zero, or above `max_pixels`), before anything is
    /// allocated for it.
    fn check(&self, max_pixels: u64) -> std::result::Result<(), String> {
        let pixels = (self.height as u64).checked_mul(self.width as u64);
        if self.height == 0 || self.width == 0 {
            Err(format!("image size must be positive, not {}x{}", self.height, self.width))
        } else if pixels.is_none_or(|p| p > max_pixels) {
            Err(format!("image size {}x{} is above the limit of {max_pixels} pixels an image", self.height, self.width))
        } else {
            Ok(())
        }
    }
}

/// How a build used its cache file.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheUse {
    /// No cache file: the pixels are in RAM.
    None,
    /// Decoded and written to the cache file.
    Built,
    /// An existing cache file matched the source and size: nothing was decoded.
    Reused,
    /// An existing cache file did not match (the reason) and was rebuilt.
    Rebuilt(String),
}

enum Pixels {
    /// An anonymous map, prefaulted when built.
    Memory(MmapMut),
    /// A read-only map of a cache file; the pixels start at [`PIXEL_OFFSET`].
    Mapped(Mmap),
}

pub struct ImageBank {
    spec: BankSpec,
    n: usize,
    pixels: Pixels,
    skipped: Vec<(usize, String)>,
    cache: Option<PathBuf>,
    /// The source's fingerprint, for a bank read from a cache file.
    fingerprint: Option<u64>,
}

const MAGIC: &[u8; 8] = b"FRBANK\x00\x01";
const PIXEL_OFFSET: usize = 4096;
/// Images decoded between two progress reports (and page releases of the source).
const BLOCK: usize = 512;

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Trailer {
    n: usize,
    height: usize,
    width: usize,
    filter: String,
    /// Absent in files written before reduced decoding existed (they decoded in full).
    #[serde(default)]
    reduce: bool,
    fingerprint: u64,
    skipped: Vec<(usize, String)>,
}

impl ImageBank {
    /// Decode every image of `source` once (in parallel on `threads` threads, 0 = all cores),
    /// resized to `spec`. With `cache`, the pixels go to that file, which is reused as is when
    /// it was built from the same source at the same size; a path holding anything else is
    /// refused, never overwritten. Images (and the size asked for) above `max_pixels` are
    /// refused. `progress(done, total)` is called between blocks of images; returning false
    /// cancels the build.
    pub fn build(
        source: &ImageSource,
        spec: BankSpec,
        on_error: OnError,
        max_pixels: u64,
        cache: Option<&Path>,
        threads: usize,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(ImageBank, CacheUse)> {
        spec.check(max_pixels).map_err(Error::invalid)?;
        if source.is_empty() {
            return Err(Error::invalid("the image source has no images"));
        }
        let fingerprint = cache.map(|_| source.fingerprint()).transpose()?;
        let mut reason = None;
        if let Some(path) = cache {
            if path.is_dir() {
                return Err(Error::invalid(format!("cache {} is a directory; give a file path", path.display())));
            }
            if path.exists() {
                if !is_bank_file(path) {
                    return Err(Error::invalid(format!(
                        "cache {} exists and is not a fashionrec image bank: refusing to overwrite it (remove it or choose another path)",
                        path.display()
                    )));
                }
                match Self::open(path) {
                    Ok(bank) => {
                        match stale(&bank, source.len(), spec, fingerprint.unwrap_or_default()) {
                            None => return Ok((bank, CacheUse::Reused)),
                            Some(why) => reason = Some(why),
                        }
                    }
                    Err(e) => reason = Some(format!("it could not be read ({e})")),
                }
            }
        }
        let n = source.len();
        let row = spec.image_bytes();
        // Checked before a byte is allocated: the bank's size against the memory budget, and
        // (when a missing image is an error) that every file is there.
        let total = crate::limits::mul("the image bank (images x height x width x 3)", n, row)?;
        crate::limits::bytes_for(&format!("the image bank of {n} images of {}x{}", spec.height, spec.width), total, 1)?;
        if matches!(on_error, OnError::Raise) {
            source.check_files()?;
        }
        let pool = ThreadPool::new(threads)?;
        let decode = DecodeOptions { max_pixels, reduce: spec.reduce };
        let mut skipped = Vec::new();
        let bank = match cache {
            None => {
                let mut map = prefaulted_zeroed(total, &pool)?;
                fill(source, spec, decode, on_error, &pool, Sink::Memory(&mut map), &mut skipped, progress)?;
                ImageBank { spec, n, pixels: Pixels::Memory(map), skipped, cache: None, fingerprint: None }
            }
            Some(path) => {
                let file_len = total.checked_add(PIXEL_OFFSET).ok_or_else(|| Error::Memory(format!("the image bank of {n} images: {total} bytes of pixels are too many for a file")))?;
                crate::io::replace_with(path, |tmp| {
                    let file = File::options()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(tmp)
                        .map_err(|e| Error::io(path, &e))?;
                    file.set_len(file_len as u64).map_err(|e| Error::io(path, &e))?;
                    fill(source, spec, decode, on_error, &pool, Sink::File { file: &file, path }, &mut skipped, progress)?;
                    // SAFETY: the file was just created by this process under a private name.
                    let mut map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| Error::io(path, &e))?;
                    let trailer = Trailer {
                        n,
                        height: spec.height,
                        width: spec.width,
                        filter: spec.filter.name().into(),
                        reduce: spec.reduce,
                        fingerprint: fingerprint.unwrap_or_default(),
                        skipped: skipped.clone(),
                    };
                    let json = serde_json::to_vec(&trailer).map_err(|e| Error::state(format!("image bank trailer: {e}")))?;
                    let header = [*MAGIC, (PIXEL_OFFSET as u64).to_le_bytes(), (file_len as u64).to_le_bytes(), (json.len() as u64).to_le_bytes()].concat();
                    // The map holds PIXEL_OFFSET header bytes and then the pixels.
                    map.get_mut(..header.len()).ok_or_else(|| Error::state("image bank: no room for the header"))?.copy_from_slice(&header);
                    map.flush().map_err(|e| Error::io(path, &e))?;
                    drop(map);
                    let mut file = file;
                    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).map_err(|e| Error::io(path, &e))?;
                    file.write_all(&json).map_err(|e| Error::io(path, &e))
                })?;
                Self::open(path)?
            }
        };
        let used = match (cache, reason) {
            (None, _) => CacheUse::None,
            (Some(_), None) => CacheUse::Built,
            (Some(_), Some(r)) => CacheUse::Rebuilt(r),
        };
        Ok((bank, used))
    }

    /// Open a cache file (memory-mapped, read-only) without its source.
    pub fn open(path: &Path) -> Result<ImageBank> {
        let map = crate::io::map_file(path)?;
        let bad = |m: String| Error::file(path, m);
        if map.len() < PIXEL_OFFSET || !map.starts_with(MAGIC) {
            return Err(bad("not a fashionrec image bank (no FRBANK header)".into()));
        }
        // Within the PIXEL_OFFSET bytes checked above.
        let word = |k: usize| map.get(k..k.saturating_add(8)).map_or(0, |b| u64::from_le_bytes(crate::io::byte_array(b))) as usize;
        let (pixel_offset, trailer_offset, trailer_len) = (word(8), word(16), word(24));
        if pixel_offset != PIXEL_OFFSET || trailer_offset.checked_add(trailer_len) != Some(map.len()) {
            return Err(bad(format!(
                "truncated or damaged image bank: its header says {} bytes, the file has {}",
                trailer_offset.saturating_add(trailer_len),
                map.len()
            )));
        }
        // In the file: trailer_offset + trailer_len is its length (checked above).
        let t: Trailer = serde_json::from_slice(map.get(trailer_offset..).unwrap_or_default())
            .map_err(|e| bad(format!("damaged image bank metadata at byte offset {trailer_offset}: {e}")))?;
        let filter = t.filter.parse().map_err(|e| bad(format!("damaged image bank metadata: {e}")))?;
        let spec = BankSpec { height: t.height, width: t.width, filter, reduce: t.reduce };
        // Every size in the trailer is checked against the file before it is used.
        spec.check(u64::MAX).map_err(|e| bad(format!("damaged image bank metadata: {e}")))?;
        let pixel_bytes = t.n.checked_mul(t.height).and_then(|v| v.checked_mul(t.width)).and_then(|v| v.checked_mul(3));
        if pixel_bytes.and_then(|b| b.checked_add(PIXEL_OFFSET)) != Some(trailer_offset) {
            return Err(bad(format!("damaged image bank: {} images of {}x{} do not fill its pixel data", t.n, t.height, t.width)));
        }
        if let Some((i, _)) = t.skipped.iter().find(|(i, _)| *i >= t.n) {
            return Err(bad(format!("damaged image bank metadata: skipped item {i} is out of range for {} images", t.n)));
        }
        Ok(ImageBank {
            spec,
            n: t.n,
            pixels: Pixels::Mapped(map),
            skipped: t.skipped,
            cache: Some(path.to_path_buf()),
            fingerprint: Some(t.fingerprint),
        })
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn spec(&self) -> BankSpec {
        self.spec
    }

    /// Items whose image could not be decoded (their rows are black), with why.
    pub fn skipped(&self) -> &[(usize, String)] {
        &self.skipped
    }

    pub fn cache_path(&self) -> Option<&Path> {
        self.cache.as_deref()
    }

    /// All pixels, (N, H, W, 3) row-major.
    pub fn pixels(&self) -> &[u8] {
        match &self.pixels {
            Pixels::Memory(m) => m,
            // open checked that the file holds them.
            Pixels::Mapped(m) => {
                let end = self.n.checked_mul(self.spec.image_bytes()).and_then(|b| b.checked_add(PIXEL_OFFSET));
                end.and_then(|end| m.get(PIXEL_OFFSET..end)).unwrap_or_default()
            }
        }
    }

    /// The pixels of item `i` (None past the last item).
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let row = self.spec.image_bytes();
        let at = i.checked_mul(row)?;
        self.pixels().get(at..at.checked_add(row)?)
    }

    /// The images of `items` copied into `out` (len(items) x H x W x 3), in parallel.
    pub fn gather(&self, items: &[i64], out: &mut [u8]) -> Result<()> {
        let row = self.spec.image_bytes();
        if items.len().checked_mul(row) != Some(out.len()) {
            return Err(Error::invalid(format!("gather: output has {} bytes for {} images", out.len(), items.len())));
        }
        if let Some((k, i)) = items.iter().enumerate().find(|&(_, &i)| i < 0 || i as usize >= self.n) {
            return Err(Error::invalid(format!("row {k}: item index {i} is out of range for {} images", self.n)));
        }
        out.par_chunks_mut(row).zip(items.par_iter()).for_each(|(o, &i)| {
            if let Some(image) = self.image(i as usize) {
                o.copy_from_slice(image);
            }
        });
        Ok(())
    }

    /// A float batch for a model: (len(items), 3, H, W) on `device`, values in [-1, 1]
    /// (`x / 127.5 - 1`, as the DVBPR seed's `(x / 255 - 0.5) * 2`). The uint8 pixels travel
    /// to the device and are converted there. The result is a channels-last view.
    #[allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (the pixels' scaling)")]
    pub fn batch(&self, items: &[i64], device: Device) -> Result<Tensor> {
        let what = "a batch of images";
        let mut buf = crate::limits::try_filled(what, crate::limits::mul(what, items.len(), self.spec.image_bytes())?, 0u8)?;
        self.gather(items, &mut buf)?;
        let shape = [items.len() as i64, self.spec.height as i64, self.spec.width as i64, 3];
        let t = Tensor::from_slice(&buf).view(shape).to_device(device);
        Ok(t.permute([0, 3, 1, 2]).to_kind(Kind::Float) / 127.5 - 1.0)
    }
}

/// Why a cache file does not fit this build (None: it does).
fn stale(bank: &ImageBank, n: usize, spec: BankSpec, fingerprint: u64) -> Option<String> {
    let have = bank.spec;
    if have.reduce != spec.reduce {
        let how = |r: bool| if r { "with reduced-scale JPEG decoding" } else { "with full JPEG decoding" };
        Some(format!("it was built {}, not {}", how(have.reduce), how(spec.reduce)))
    } else if have != spec {
        Some(format!(
            "it holds {}x{} images ({}), not {}x{} ({})",
            have.height,
            have.width,
            have.filter.name(),
            spec.height,
            spec.width,
            spec.filter.name()
        ))
    } else if bank.n != n {
        Some(format!("it holds {} images, the source has {n}", bank.n))
    } else if bank.fingerprint != Some(fingerprint) {
        Some("the source images changed since it was built (paths, sizes or modification times)".into())
    } else {
        None
    }
}

/// Whether `path` starts as a bank file does (damaged or not: then it is ours to rebuild).
fn is_bank_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == MAGIC
}

/// Zeroed memory for a bank in RAM, its pages faulted in up front, in parallel, by
/// `MADV_POPULATE_WRITE` (Linux 5.14+; elsewhere the pages fault in as rows are written).
/// A fresh 4 KiB page costs a fault on first write, which on a VM cost about as much as
/// decoding the 224x224 JPEG that lands there (80 us a 150 KB image, measured); populating
/// in 8 MiB ranges costs a fraction of that. Transparent huge pages were faster still in a
/// process that had already freed some, but a fresh process paid 0.6 s of kernel time per
/// 300 MB compacting memory for them (defrag=madvise): the first build, which is the one a
/// user pays, ran at half the speed of the next (benches/image_decode.py, "bank, warm").
fn prefaulted_zeroed(len: usize, pool: &ThreadPool) -> Result<MmapMut> {
    const RANGE: usize = 8 << 20;
    let map = MmapMut::map_anon(len.max(1)).map_err(|e| Error::Memory(format!("cannot allocate {} for images: {e}", crate::limits::show_bytes(len as u128))))?;
    pool.run(|| {
        (0..len.div_ceil(RANGE)).into_par_iter().for_each(|c| {
            // c < len / RANGE rounded up: at < len.
            let at = c.saturating_mul(RANGE);
            // Only a hint: on failure the pages fault in when the rows are written.
            let _ = map.advise_range(memmap2::Advice::PopulateWrite, at, RANGE.min(len.saturating_sub(at)));
        })
    });
    Ok(map)
}

/// Where decoded images go: the bank's memory, or a cache file at [`PIXEL_OFFSET`] (each row
/// decoded into a worker's own buffer, kept hot in cache, and written with `pwrite`: faulting in
/// file-backed pages one by one is as slow as fresh 4 KiB pages).
enum Sink<'a> {
    Memory(&'a mut [u8]),
    File { file: &'a File, path: &'a Path },
}

/// Decode `source` (N rows) into `sink`, block by block.
#[allow(clippy::too_many_arguments)]
fn fill(
    source: &ImageSource,
    spec: BankSpec,
    decode: DecodeOptions,
    on_error: OnError,
    pool: &ThreadPool,
    mut sink: Sink<'_>,
    skipped: &mut Vec<(usize, String)>,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let n = source.len();
    let row = spec.image_bytes();
    for first in (0..n).step_by(BLOCK) {
        // first < n: the block is first..end, end <= n.
        let count = BLOCK.min(n.saturating_sub(first));
        let end = first.saturating_add(count);
        let mut errors: Vec<(usize, String)> = match &mut sink {
            Sink::Memory(out) => {
                let bytes = first.checked_mul(row).zip(end.checked_mul(row));
                let block = bytes.and_then(|(a, b)| out.get_mut(a..b)).ok_or_else(|| Error::state("image bank: a block past the end of the pixels"))?;
                pool.run(|| {
                    block
                        .par_chunks_mut(row)
                        .enumerate()
                        .map_init(Scratch::default, |scratch, (k, dst)| load_row(source, first.saturating_add(k), spec, decode, dst, scratch))
                        .flatten()
                        .collect()
                })
            }
            Sink::File { file, path } => {
                let (file, path): (&File, &Path) = (file, path);
                let written: Result<Vec<Option<(usize, String)>>> = pool.run(|| {
                    (first..end)
                        .into_par_iter()
                        .map_init(Scratch::default, |scratch, i| {
                            let mut dst = std::mem::take(&mut scratch.row);
                            dst.resize(row, 0);
                            let failed = load_row(source, i, spec, decode, &mut dst, scratch);
                            let at = i.checked_mul(row).and_then(|b| b.checked_add(PIXEL_OFFSET));
                            let at = at.ok_or_else(|| Error::state("image bank: a row past the end of the file"));
                            let done = at.and_then(|at| file.write_all_at(&dst, at as u64).map_err(|e| Error::io(path, &e)));
                            scratch.row = dst;
                            done.map(|_| failed)
                        })
                        .collect()
                });
                written?.into_iter().flatten().collect()
            }
        };
        source.release(first..end);
        errors.sort_by_key(|e| e.0);
        if let Some((i, msg)) = errors.first() {
            if on_error == OnError::Raise {
                return Err(Error::invalid(format!(
                    "image of item {i} ({}): {msg}; pass on_error='skip' to leave such images black and list them",
                    source.locate(*i)
                )));
            }
        }
        skipped.extend(errors.into_iter().map(|(i, m)| (i, format!("{} ({})", m, source.locate(i)))));
        if !progress(end, n) {
            return Err(Error::state("cancelled"));
        }
    }
    Ok(())
}

/// [`load_into`] item `i`; a failure leaves `dst` black (a failed decode may have written part
/// of it, and a reused buffer holds the last image) and returns why.
fn load_row(source: &ImageSource, i: usize, spec: BankSpec, decode: DecodeOptions, dst: &mut [u8], scratch: &mut Scratch) -> Option<(usize, String)> {
    load_into(source, i, spec, decode, dst, scratch).err().map(|e| {
        dst.fill(0);
        (i, e)
    })
}

/// Buffers a worker reuses from image to image (file bytes, decoded pixels, the output row).
#[derive(Default)]
struct Scratch {
    file: Vec<u8>,
    pixels: Vec<u8>,
    row: Vec<u8>,
}

/// Decode item `i` and resize it into `dst`.
fn load_into(
    source: &ImageSource,
    i: usize,
    spec: BankSpec,
    decode: DecodeOptions,
    dst: &mut [u8],
    scratch: &mut Scratch,
) -> std::result::Result<(), String> {
    let Scratch { file, pixels, .. } = scratch;
    let size = Some((spec.width, spec.height));
    let decoded = source
        .with_bytes(i, file, |bytes| decode_into(bytes, size, Some(&mut *dst), decode, pixels))
        .map_err(|e| match e {
            Error::Io { message, .. } => format!("cannot read the file: {message}"),
            other => other.to_string(),
        })?;
    match decoded {
        Ok(Placed::Target) => Ok(()),
        Ok(Placed::Scratch(w, h)) => {
            let src = w.checked_mul(h).and_then(|p| p.checked_mul(3)).and_then(|len| pixels.get(..len)).ok_or_else(|| format!("the decoder gave fewer than {w}x{h}x3 bytes"))?;
            resize_rgb(src, w, h, dst, spec.width, spec.height, spec.filter);
            Ok(())
        }
        // Offsets inside a container file help find the bytes with a hex viewer.
        Err(m) => Err(match source.container() {
            Some(_) => format!("{m} (the image starts at byte offset {} of the file)", source.base_offset(i)),
            None => m,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::decode::tests::tiny_png;

    fn source(dir: &Path, n: usize, bad: Option<usize>) -> ImageSource {
        let paths = (0..n)
            .map(|i| {
                let p = dir.join(format!("{i}.png"));
                let v = (i * 10) as u8;
                let mut bytes = tiny_png(&[v, v + 1, v + 2, v, v, v, v, v, v, v, v, v]);
                if Some(i) == bad {
                    bytes.truncate(30);
                }
                std::fs::write(&p, bytes).unwrap();
                p
            })
            .collect();
        ImageSource::files(paths)
    }

    const MAXPX: u64 = crate::images::DEFAULT_MAX_PIXELS;

    fn spec() -> BankSpec {
        BankSpec { height: 2, width: 2, filter: Filter::Bilinear, reduce: true }
    }

    #[test]
    fn memory_bank_skip_and_raise() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path(), 700, Some(600));
        let e = ImageBank::build(&src, spec(), OnError::Raise, MAXPX, None, 2, &mut |_, _| true).err().unwrap().to_string();
        assert!(e.contains("image of item 600") && e.contains("600.png") && e.contains("PNG"), "{e}");
        let mut calls = 0;
        let (bank, used) = ImageBank::build(&src, spec(), OnError::Skip, MAXPX, None, 2, &mut |_, _| {
            calls += 1;
            true
        })
        .unwrap();
        assert_eq!((used, calls, bank.len()), (CacheUse::None, 2, 700));
        assert_eq!(bank.skipped().len(), 1);
        assert_eq!(bank.skipped()[0].0, 600);
        assert!(bank.image(600).unwrap().iter().all(|&v| v == 0));
        assert_eq!(&bank.image(3).unwrap()[..3], &[30, 31, 32]);
        let mut out = vec![0u8; 2 * 12];
        bank.gather(&[3, 1], &mut out).unwrap();
        assert_eq!(out[12], 10);
        assert!(bank.gather(&[700], &mut out[..12]).is_err());
        let t = bank.batch(&[3, 0], Device::Cpu).unwrap();
        assert_eq!(t.size(), vec![2, 3, 2, 2]);
        let v = t.double_value(&[0, 1, 0, 0]);
        assert!((v - (31.0 / 127.5 - 1.0)).abs() < 1e-6, "{v}");
        assert_eq!(t.double_value(&[1, 0, 0, 0]), -1.0);
    }

    #[test]
    fn cache_is_reused_rebuilt_when_stale_and_validated() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path(), 5, None);
        let cache = dir.path().join("bank.bin");
        let (a, used) = ImageBank::build(&src, spec(), OnError::Raise, MAXPX, Some(&cache), 1, &mut |_, _| true).unwrap();
        assert_eq!(used, CacheUse::Built);
        let (b, used) = ImageBank::build(&src, spec(), OnError::Raise, MAXPX, Some(&cache), 1, &mut |_, _| panic!("decoded")).unwrap();
        assert_eq!(used, CacheUse::Reused);
        assert_eq!(a.pixels(), b.pixels());
        let other = BankSpec { height: 3, ..spec() };
        let (c, used) = ImageBank::build(&src, other, OnError::Raise, MAXPX, Some(&cache), 1, &mut |_, _| true).unwrap();
        assert!(matches!(used, CacheUse::Rebuilt(ref r) if r.contains("2x2")), "{used:?}");
        assert_eq!(c.pixels().len(), 5 * 3 * 2 * 3);
        // A cancelled build leaves no file behind and the previous cache intact.
        let e = ImageBank::build(&src, spec(), OnError::Raise, MAXPX, Some(&cache), 1, &mut |_, _| false).err().unwrap();
        assert!(e.to_string().contains("cancelled"));
        assert_eq!(ImageBank::open(&cache).unwrap().spec(), other);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 6);
        // Damage is detected.
        let bytes = std::fs::read(&cache).unwrap();
        std::fs::write(&cache, &bytes[..bytes.len() - 3]).unwrap();
        assert!(ImageBank::open(&cache).err().unwrap().to_string().contains("truncated or damaged"));
    }

    #[test]
    fn cache_of_another_kind_is_refused_and_huge_sizes_too() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path(), 3, None);
        let other = dir.path().join("notes.csv");
        std::fs::write(&other, "user,item\n1,2\n").unwrap();
        let e = ImageBank::build(&src, spec(), OnError::Raise, MAXPX, Some(&other), 1, &mut |_, _| true).err().unwrap().to_string();
        assert!(e.contains("not a fashionrec image bank: refusing to overwrite"), "{e}");
        assert_eq!(std::fs::read(&other).unwrap(), b"user,item\n1,2\n");
        let e = ImageBank::build(&src, spec(), OnError::Raise, MAXPX, Some(dir.path()), 1, &mut |_, _| true).err().unwrap().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let huge = BankSpec { height: usize::MAX / 2, width: 3, ..spec() };
        let e = ImageBank::build(&src, huge, OnError::Raise, MAXPX, None, 1, &mut |_, _| true).err().unwrap().to_string();
        assert!(e.contains("above the limit"), "{e}");
        // Sizes in a trailer that would overflow, or skipped items past the end, are damage.
        let cache = dir.path().join("bank.bin");
        ImageBank::build(&src, spec(), OnError::Raise, MAXPX, Some(&cache), 1, &mut |_, _| true).unwrap();
        let bytes = std::fs::read(&cache).unwrap();
        let at = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
        let json = String::from_utf8(bytes[at..].to_vec()).unwrap();
        for (from, to) in [("\"n\":3", "\"n\":6148914691236517206"), ("\"skipped\":[]", "\"skipped\":[[9,\"x\"]]"), ("bilinear", "nearest")] {
            let damaged = json.replace(from, to);
            let mut b = bytes[..at].to_vec();
            b.extend_from_slice(damaged.as_bytes());
            b[24..32].copy_from_slice(&(damaged.len() as u64).to_le_bytes());
            std::fs::write(&cache, &b).unwrap();
            let e = ImageBank::open(&cache).err().unwrap().to_string();
            assert!(e.contains("bank.bin") && e.contains("damaged image bank"), "{from}: {e}");
        }
    }
}
