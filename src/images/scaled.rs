//! JPEG decoding through libjpeg-turbo: at full size (builds with the `jpeg-simd` feature
//! decode every JPEG here, with libjpeg's default settings, Pillow's: the same pixels as
//! `Image.open(p).convert("RGB")`), and at 1/2, 1/4 or 1/8 scale inside the IDCT (every
//! build): libjpeg's `scale_denom`, through
//! mozjpeg-sys (libjpeg-turbo's code, compiled from source by cargo with the C compiler and
//! linked statically; with the `jpeg-simd` feature its SIMD IDCT and colour conversion too,
//! assembled by nasm at build time: the Makefile turns it on when nasm is installed. At these
//! scales the entropy decoding, scalar in every libjpeg, is most of the time). The output is
//! `ceil(width / denom) x ceil(height / denom)`, with the settings of Pillow's draft mode
//! (fast integer IDCT, plain chroma upsampling), so the pixels are Pillow's after `draft`.
//!
//! libjpeg reports a fatal error by calling `error_exit`, which must not return: it unwinds
//! (mozjpeg-sys compiles the C with `-fexceptions` and declares the callbacks `C-unwind`) to
//! the `catch_unwind` here, and the decoder is destroyed. Warnings that mean missing or
//! corrupt data (a premature end of the file, a bad Huffman code), which libjpeg would
//! paper over with grey, are errors too, as zune-jpeg's strict mode makes them.

use std::ffi::{c_int, c_ulong, CStr};
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use mozjpeg_sys::*;

use super::decode::{reserve, rgb_bytes, Placed};

/// Why libjpeg stopped, carried by the unwind.
struct Stop(String);

unsafe fn message(cinfo: &mut jpeg_common_struct) -> String {
    let buf = [0u8; 80];
    if let Some(format) = (*cinfo.err).format_message {
        format(cinfo, &buf);
    }
    CStr::from_bytes_until_nul(&buf).map(|m| m.to_string_lossy().into_owned()).unwrap_or_default()
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    let stop = Stop(message(cinfo));
    // resume_unwind: no panic hook, so nothing is printed.
    resume_unwind(Box::new(stop))
}

unsafe extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    if level < 0 {
        let code = (*cinfo.err).msg_code;
        let data_lost = [JWRN_JPEG_EOF, JWRN_HIT_MARKER, JWRN_HUFF_BAD_CODE, JWRN_MUST_RESYNC, JWRN_NOT_SEQUENTIAL, JWRN_BOGUS_PROGRESSION];
        if data_lost.contains(&code) {
            let prefix = if code == JWRN_JPEG_EOF { "EOF: " } else { "" };
            resume_unwind(Box::new(Stop(format!("{prefix}{}", message(cinfo)))));
        }
    }
}

/// Decode `bytes` (a JPEG) at `1 / denom` scale, `denom` chosen by `plan` from the size its
/// header declares (`plan` also refuses sizes: the pixel limit), into `direct` when that is
/// exactly the decoded size (no copy), else into `scratch`; 1: full size, with libjpeg's
/// default IDCT and fancy upsampling, as Pillow decodes without draft. None: a colour space
/// this path does not convert (CMYK, YCCK), for the caller to decode otherwise.
pub fn decode_jpeg(
    bytes: &[u8],
    plan: &dyn Fn(usize, usize) -> Result<usize, String>,
    direct: Option<(&mut [u8], (usize, usize))>,
    scratch: &mut Vec<u8>,
) -> Result<Option<Placed>, String> {
    let mut err = MaybeUninit::<jpeg_error_mgr>::zeroed();
    let mut cinfo = MaybeUninit::<jpeg_decompress_struct>::zeroed();
    // SAFETY: the structs are initialised by jpeg_std_error / jpeg_create_decompress before
    // use; `bytes` outlives the decoder; rows are written within `scratch`'s reservation (the
    // output size is checked against it before the first row); every exit destroys the decoder.
    unsafe {
        let err = jpeg_std_error(&mut *err.as_mut_ptr());
        err.error_exit = Some(error_exit);
        err.emit_message = Some(emit_message);
        let cinfo = &mut *cinfo.as_mut_ptr();
        cinfo.common.err = err;
        let created = catch_unwind(AssertUnwindSafe(|| jpeg_create_decompress(cinfo)));
        if created.is_err() {
            return Err("corrupt JPEG: the decoder could not be created".into());
        }
        let run = catch_unwind(AssertUnwindSafe(|| -> Result<Option<Placed>, String> {
            jpeg_mem_src(cinfo, bytes.as_ptr(), bytes.len() as c_ulong);
            jpeg_read_header(cinfo, 1);
            let (width, height) = (cinfo.image_width as usize, cinfo.image_height as usize);
            let denom = plan(width, height)?;
            if !matches!(cinfo.jpeg_color_space, JCS_YCbCr | JCS_GRAYSCALE | JCS_RGB) {
                return Ok(None);
            }
            let (sw, sh) = (width.div_ceil(denom), height.div_ceil(denom));
            let bytes = rgb_bytes(sw, sh).ok_or_else(|| format!("JPEG size {sw}x{sh} is too large"))?;
            let (base, placed) = match direct {
                Some((out, size)) if size == (sw, sh) && out.len() == bytes => (out.as_mut_ptr(), Placed::Target),
                _ => {
                    reserve(scratch, bytes)?;
                    (scratch.as_mut_ptr(), Placed::Scratch(sw, sh))
                }
            };
            cinfo.out_color_space = JCS_RGB;
            if denom > 1 {
                cinfo.scale_num = 1;
                cinfo.scale_denom = denom as _;
                // As Pillow's draft mode sets them: its pixels, and less work.
                cinfo.do_fancy_upsampling = 0;
                cinfo.dct_method = JDCT_FASTEST;
            }
            jpeg_start_decompress(cinfo);
            // sw * sh * 3 fits (bytes above): so do a row and every offset below.
            let row = sw.saturating_mul(3);
            if (cinfo.output_width as usize, cinfo.output_height as usize, cinfo.output_components) != (sw, sh, 3) {
                return Err(format!("corrupt JPEG: scaled output {}x{} where {sw}x{sh} was expected", cinfo.output_width, cinfo.output_height));
            }
            while (cinfo.output_scanline as usize) < sh {
                let line = cinfo.output_scanline as usize;
                let mut rows: [*mut u8; 4] = std::array::from_fn(|k| base.add(line.saturating_add(k).min(sh.saturating_sub(1)).saturating_mul(row)));
                let want = sh.saturating_sub(line).min(4) as u32;
                jpeg_read_scanlines(cinfo, rows.as_mut_ptr().cast(), want);
            }
            if placed != Placed::Target {
                scratch.set_len(bytes);
            }
            jpeg_finish_decompress(cinfo);
            Ok(Some(placed))
        }));
        jpeg_destroy_decompress(cinfo);
        match run {
            Ok(result) => result,
            Err(stop) => {
                scratch.clear();
                let why = stop.downcast::<Stop>().map(|s| s.0).unwrap_or_else(|_| "libjpeg failed".into());
                Err(match why.strip_prefix("EOF: ") {
                    Some(_) => format!("truncated JPEG: the data ends at byte {} before the image is complete", bytes.len()),
                    None => format!("corrupt JPEG: {why}"),
                })
            }
        }
    }
}
