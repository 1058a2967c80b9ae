//! JPEG and PNG bytes to 8-bit RGB, as `PIL.Image.open(...).convert("RGB")` gives them.
//!
//! JPEG: libjpeg-turbo (`images::scaled`, Pillow's decoder, so Pillow's pixels) when the crate
//! is built with its SIMD code (the `jpeg-simd` feature, which needs nasm: the wheel has it;
//! [`jpeg_decoder`] says which runs). Builds without nasm decode at full size with zune-jpeg
//! (SIMD, pure Rust) in strict mode, so a truncated file is an error instead of a half-grey
//! image; its pixels differ from libjpeg-turbo's by rounding only (on the fashion-product
//! photos 6% of values, by 1-5 levels). libjpeg-turbo's warnings that mean lost data are
//! errors too.
//!
//! A JPEG at least twice the target size in both sides is decoded at 1/2, 1/4 or 1/8 scale
//! inside the IDCT (jpeg-decoder's scaled IDCT, as libjpeg's and Pillow's draft mode do: the
//! largest such scale that keeps both sides at or above the target); the bank then resizes the
//! rest. Most of a full decode's cost is the IDCT, upsampling and colour conversion of pixels a
//! downscale would throw away. [`DecodeOptions::reduce`] turns it off.
//!
//! PNG: zune-png, exact; alpha is dropped and grey replicated as Pillow's `convert("RGB")`
//! does, 16-bit samples keep their high byte. PNG has no reduced-resolution decode (every
//! row is deflated and unfiltered in full), so large PNGs are decoded in full, then resized.
//!
//! Both formats refuse an image whose header declares more than
//! [`DecodeOptions::max_pixels`] pixels before allocating anything for it (PIL's
//! decompression-bomb guard).

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

/// A decoded image: `height * width * 3` bytes, row-major RGB.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
}

/// The format, from the first bytes.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else {
        None
    }
}

/// Largest side the decoders are allowed (the pixel limit is the real guard; JPEG's own limit
/// is 65,535).
const MAX_SIDE: usize = 1 << 16;

/// PIL raises `DecompressionBombError` above twice `Image.MAX_IMAGE_PIXELS` (89,478,485).
pub const DEFAULT_MAX_PIXELS: u64 = 2 * 89_478_485;

/// What a decode may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Refuse an image whose header declares more pixels than this.
    pub max_pixels: u64,
    /// Decode a JPEG at 1/2, 1/4 or 1/8 scale when that stays at or above the target size.
    pub reduce: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions { max_pixels: DEFAULT_MAX_PIXELS, reduce: true }
    }
}

impl DecodeOptions {
    fn check_pixels(&self, kind: &str, width: usize, height: usize) -> Result<(), String> {
        let pixels = (width as u64).saturating_mul(height as u64);
        if pixels > self.max_pixels {
            return Err(format!(
                "the {kind} header declares {width}x{height} = {pixels} pixels, above the limit of {} \
                 (a decompression bomb?); raise max_pixels to decode it",
                self.max_pixels
            ));
        }
        Ok(())
    }
}

/// Decode JPEG or PNG bytes to RGB; with `reduce_to = Some((width, height))` and
/// `options.reduce`, a large JPEG comes out at the reduced scale (see the module notes). The
/// error says what is wrong (not where: the caller knows which item and file the bytes came
/// from).
pub fn decode_rgb(bytes: &[u8], reduce_to: Option<(usize, usize)>, options: DecodeOptions) -> Result<Rgb8, String> {
    let mut data = Vec::new();
    let (width, height) = match decode_into(bytes, reduce_to, None, options, &mut data)? {
        Placed::Scratch(w, h) => (w, h),
        Placed::Target => unreachable!("no target was given"),
    };
    Ok(Rgb8 { width, height, data })
}

/// The IDCT scale denominator for an image of `width x height` going to `target`: Pillow's
/// draft rule, the largest of 8, 4, 2 that both `width / tw` and `height / th` reach, else 1.
pub fn reduction(width: usize, height: usize, target: (usize, usize)) -> usize {
    let (tw, th) = (target.0.max(1), target.1.max(1));
    let room = width.checked_div(tw).unwrap_or(0).min(height.checked_div(th).unwrap_or(0));
    [8, 4, 2].into_iter().find(|&a| room >= a).unwrap_or(1)
}

/// Where [`decode_into`] put the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// In the target: the image had exactly the target's size.
    Target,
    /// In the scratch buffer, `width x height` RGB.
    Scratch(usize, usize),
}

/// Decode for a target of `size = (width, height)`: straight into `direct` (its pixels) when the
/// image has exactly that size (no intermediate copy: the common case of a catalogue already at
/// the model's size), else into `scratch` (resized as needed, its allocation reused across
/// calls), at a reduced scale where `options.reduce` allows.
pub fn decode_into(
    bytes: &[u8],
    size: Option<(usize, usize)>,
    direct: Option<&mut [u8]>,
    options: DecodeOptions,
    scratch: &mut Vec<u8>,
) -> Result<Placed, String> {
    let zune = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(MAX_SIDE)
        .set_max_height(MAX_SIDE);
    match sniff(bytes) {
        Some(Format::Jpeg) => decode_jpeg(bytes, zune, size, direct, options, scratch),
        Some(Format::Png) => decode_png(bytes, zune, options, scratch),
        None if bytes.is_empty() => Err("empty image data (0 bytes)".into()),
        None => Err(format!("not a JPEG or PNG image (it starts with {})", describe_magic(bytes))),
    }
}

fn jpeg_error(e: zune_jpeg::errors::DecodeErrors, len: usize) -> String {
    let msg = format!("{e:?}");
    if msg.contains("Exhausted data") || msg.contains("Not enough bytes") {
        format!("truncated JPEG: the data ends at byte {len} before the image is complete")
    } else {
        format!("corrupt JPEG: {}", msg.trim())
    }
}

fn decode_jpeg(
    bytes: &[u8],
    zune: DecoderOptions,
    size: Option<(usize, usize)>,
    mut direct: Option<&mut [u8]>,
    options: DecodeOptions,
    scratch: &mut Vec<u8>,
) -> Result<Placed, String> {
    // libjpeg-turbo at a reduced scale always; at full size too when its SIMD is built in
    // (then it is the faster decoder, and Pillow's own): its header read once, the pixels
    // straight into the target when the image has the target's size.
    let plan = |width: usize, height: usize| -> Result<usize, String> {
        options.check_pixels("JPEG", width, height)?;
        Ok(size.filter(|_| options.reduce).map_or(1, |target| reduction(width, height, target)))
    };
    if LIBJPEG_SIMD {
        let target = direct.as_deref_mut().zip(size);
        if let Some(placed) = super::scaled::decode_jpeg(bytes, &plan, target, scratch)? {
            return Ok(placed);
        }
    }
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), zune.jpeg_set_out_colorspace(ColorSpace::RGB));
    dec.decode_headers().map_err(|e| jpeg_error(e, bytes.len()))?;
    let info = dec.info().ok_or("corrupt JPEG: no image header")?;
    let (width, height) = (info.width as usize, info.height as usize);
    options.check_pixels("JPEG", width, height)?;
    if !LIBJPEG_SIMD && plan(width, height)? > 1 {
        if let Some(placed) = super::scaled::decode_jpeg(bytes, &plan, None, scratch)? {
            return Ok(placed);
        }
    }
    let bytes_out = dec.output_buffer_size().ok_or("corrupt JPEG: no image size")?;
    if dec.output_colorspace() != Some(ColorSpace::RGB) || rgb_bytes(width, height) != Some(bytes_out) {
        return Err(format!("unsupported JPEG colour space {:?} ({bytes_out} bytes for {width}x{height})", dec.output_colorspace()));
    }
    match direct {
        Some(out) if size == Some((width, height)) => {
            dec.decode_into(out).map_err(|e| jpeg_error(e, bytes.len()))?;
            Ok(Placed::Target)
        }
        _ => {
            reserve(scratch, bytes_out)?;
            scratch.resize(bytes_out, 0);
            dec.decode_into(scratch).map_err(|e| jpeg_error(e, bytes.len()))?;
            Ok(Placed::Scratch(width, height))
        }
    }
}

/// Whether libjpeg-turbo's SIMD code is built in (the `jpeg-simd` feature).
pub const LIBJPEG_SIMD: bool = cfg!(feature = "jpeg-simd");

/// Which decoder reads JPEGs in this build (for `fashionrec info`).
pub fn jpeg_decoder() -> &'static str {
    if LIBJPEG_SIMD {
        "libjpeg-turbo with SIMD (every JPEG)"
    } else {
        "zune-jpeg at full size, libjpeg-turbo without SIMD at reduced scale (built without nasm)"
    }
}

/// Bytes of a `width x height` RGB image; None when they overflow usize.
pub(crate) fn rgb_bytes(width: usize, height: usize) -> Option<usize> {
    width.checked_mul(height)?.checked_mul(3)
}

/// Grows `buf` to hold `len` bytes, or says the memory is not there (a `Vec` would abort).
pub(crate) fn reserve(buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
    buf.clear();
    buf.try_reserve_exact(len).map_err(|_| format!("cannot allocate {len} bytes for the decoded image"))
}

fn png_error(e: zune_png::error::PngDecodeErrors, len: usize) -> String {
    let msg = format!("{e:?}");
    if msg.contains("No more bytes") || msg.contains("Not enough bytes") || msg.contains("exhausted") {
        format!("truncated PNG: the data ends at byte {len} before the image is complete")
    } else {
        format!("corrupt PNG: {}", msg.trim())
    }
}

fn decode_png(bytes: &[u8], zune: DecoderOptions, options: DecodeOptions, scratch: &mut Vec<u8>) -> Result<Placed, String> {
    let mut dec = zune_png::PngDecoder::new_with_options(ZCursor::new(bytes), zune.png_set_strip_to_8bit(true));
    dec.decode_headers().map_err(|e| png_error(e, bytes.len()))?;
    let (width, height) = dec.dimensions().ok_or("corrupt PNG: no image header")?;
    options.check_pixels("PNG", width, height)?;
    let raw = dec.decode_raw().map_err(|e| png_error(e, bytes.len()))?;
    let channels = match dec.colorspace() {
        Some(ColorSpace::Luma) => 1,
        Some(ColorSpace::LumaA) => 2,
        Some(ColorSpace::RGB) => 3,
        Some(ColorSpace::RGBA) => 4,
        cs => return Err(format!("unsupported PNG colour space {cs:?}")),
    };
    if width.checked_mul(height).and_then(|p| p.checked_mul(channels)) != Some(raw.len()) {
        return Err(format!("corrupt PNG: {} bytes of pixels for {width}x{height}x{channels}", raw.len()));
    }
    if channels == 3 {
        // Already RGB: keep the decoder's buffer (no copy).
        *scratch = raw;
        return Ok(Placed::Scratch(width, height));
    }
    // Below raw.len() (checked above), so it fits.
    reserve(scratch, width.saturating_mul(height).saturating_mul(3))?;
    match channels {
        // chunks_exact: every chunk is whole, so first_chunk / first always hold.
        4 => scratch.extend(raw.chunks_exact(4).filter_map(<[u8]>::first_chunk::<3>).flatten()),
        1 => scratch.extend(raw.iter().flat_map(|&g| [g, g, g])),
        _ => scratch.extend(raw.chunks_exact(2).filter_map(<[u8]>::first).flat_map(|&g| [g, g, g])),
    }
    Ok(Placed::Scratch(width, height))
}

fn describe_magic(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let name = if bytes.starts_with(b"GIF8") {
        " = GIF"
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        " = WebP"
    } else if bytes.starts_with(b"BM") {
        " = BMP"
    } else if bytes.starts_with(b"<") {
        " = text/HTML"
    } else {
        ""
    };
    format!("{}{name}", hex.join(" "))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 2x2 RGB PNG, stored (uncompressed deflate) so the test needs no encoder.
    pub(crate) fn tiny_png(pixels: &[u8; 12]) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let start = out.len();
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            let crc = crc32(&out[start..]);
            out.extend_from_slice(&crc.to_be_bytes());
        }
        fn crc32(b: &[u8]) -> u32 {
            let mut c = 0xffff_ffffu32;
            for &x in b {
                c ^= x as u32;
                for _ in 0..8 {
                    c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
                }
            }
            !c
        }
        fn adler(b: &[u8]) -> u32 {
            let (mut a, mut s) = (1u32, 0u32);
            for &x in b {
                a = (a + x as u32) % 65521;
                s = (s + a) % 65521;
            }
            (s << 16) | a
        }
        let mut raw = vec![0u8];
        raw.extend_from_slice(&pixels[..6]);
        raw.push(0);
        raw.extend_from_slice(&pixels[6..]);
        let mut z = vec![0x78, 0x01, 1, raw.len() as u8, 0, !(raw.len() as u8), 0xff];
        z.extend_from_slice(&raw);
        z.extend_from_slice(&adler(&raw).to_be_bytes());
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut out, b"IHDR", &[0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0]);
        chunk(&mut out, b"IDAT", &z);
        chunk(&mut out, b"IEND", &[]);
        out
    }

    #[test]
    fn png_is_exact() {
        let px = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let img = decode_rgb(&tiny_png(&px), None, DecodeOptions::default()).unwrap();
        assert_eq!((img.width, img.height), (2, 2));
        assert_eq!(img.data, px);
    }

    #[test]
    fn bad_bytes_say_what_they_are() {
        let decode_rgb = |b: &[u8]| decode_rgb(b, None, DecodeOptions::default());
        assert!(decode_rgb(b"").unwrap_err().contains("empty"));
        assert!(decode_rgb(b"GIF89a....").unwrap_err().contains("GIF"));
        assert!(decode_rgb(b"hello world").unwrap_err().contains("not a JPEG or PNG"));
        let png = tiny_png(&[0; 12]);
        let e = decode_rgb(&png[..png.len() - 20]).unwrap_err();
        assert!(e.contains("PNG"), "{e}");
        let e = decode_rgb(&[0xff, 0xd8, 0xff, 0xe0, 0, 16, b'J']).unwrap_err();
        assert!(e.contains("JPEG"), "{e}");
    }

    #[test]
    fn pixel_limit_is_checked_on_the_header() {
        let small = DecodeOptions { max_pixels: 3, ..DecodeOptions::default() };
        let e = decode_rgb(&tiny_png(&[0; 12]), None, small).unwrap_err();
        assert!(e.contains("2x2 = 4 pixels, above the limit of 3"), "{e}");
    }

    #[test]
    fn reduction_is_pillows_draft_rule() {
        assert_eq!(reduction(1028, 1750, (224, 224)), 4);
        assert_eq!(reduction(224, 224, (224, 224)), 1);
        assert_eq!(reduction(447, 1000, (224, 224)), 1);
        assert_eq!(reduction(448, 1000, (224, 224)), 2);
        assert_eq!(reduction(4000, 4000, (224, 224)), 8);
        assert_eq!(reduction(4000, 4000, (0, 0)), 8);
    }
}
