//! Resizing RGB images exactly as Pillow's `Image.resize` does (its `Resample.c`): a separable
//! convolution whose kernel widens with the scale when shrinking (so it averages rather than
//! aliases), coefficients rounded to 22-bit fixed point, each pass rounded to 8 bits. Pillow 13
//! runs the vertical pass first when that shrinks the image more (`h - oh > 2 (w - ow)`),
//! else the horizontal one; the order changes the rounding, so it is followed here too. Given
//! the same input pixels the output is bit-identical to Pillow 13's for every filter here
//! (`tests/test_images.py` checks it against PIL).

#![allow(clippy::indexing_slicing, reason = "Pillow's pixel loops: resize_with asserts the source and destination sizes (w x h x 3, ow x oh x 3) and taps() keeps every tap inside its line or column")]
#![allow(clippy::arithmetic_side_effects, reason = "Pillow's pixel loops: coordinates, taps and fixed-point sums come from the sizes resize_with asserts (w x h x 3, ow x oh x 3) and the filter's support")]

use std::f64::consts::PI;

/// Pillow's resampling filters (`PIL.Image.Resampling`), except NEAREST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Box,
    Bilinear,
    Hamming,
    Bicubic,
    Lanczos,
}

impl std::str::FromStr for Filter {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "box" => Ok(Filter::Box),
            "bilinear" | "linear" => Ok(Filter::Bilinear),
            "hamming" => Ok(Filter::Hamming),
            "bicubic" | "cubic" => Ok(Filter::Bicubic),
            "lanczos" | "antialias" => Ok(Filter::Lanczos),
            _ => Err(crate::Error::invalid(format!(
                "filter must be one of 'box', 'bilinear', 'hamming', 'bicubic', 'lanczos', not {s:?}"
            ))),
        }
    }
}

impl Filter {
    pub fn name(self) -> &'static str {
        match self {
            Filter::Box => "box",
            Filter::Bilinear => "bilinear",
            Filter::Hamming => "hamming",
            Filter::Bicubic => "bicubic",
            Filter::Lanczos => "lanczos",
        }
    }

    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * PI;
                    // Pillow writes these constants as C floats.
                    x.sin() / x * (0.54f32 as f64 + 0.46f32 as f64 * x.cos())
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * PI;
        x.sin() / x
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The taps of one axis: for output position `o`, input positions `first[o]..first[o] + len[o]`
/// weighted by `weights[o * ksize..]` (fixed point).
struct Taps {
    ksize: usize,
    first: Vec<usize>,
    len: Vec<usize>,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for a full-image box.
fn taps(in_size: usize, out_size: usize, filter: Filter) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut first = Vec::with_capacity(out_size);
    let mut len = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero, as `as` does.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(xmax) {
            let w = if ww != 0.0 { kx / ww } else { *kx };
            let fixed = w * (1u32 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if w < 0.0 { (-0.5 + fixed) as i32 } else { (0.5 + fixed) as i32 };
        }
        first.push(xmin);
        len.push(xmax);
    }
    Taps { ksize, first, len, weights }
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Resize a `w x h` RGB image (`src`, row-major, 3 bytes a pixel) into `dst` of `ow x oh`.
/// The same size is a copy, as in Pillow.
pub fn resize_rgb(src: &[u8], w: usize, h: usize, dst: &mut [u8], ow: usize, oh: usize, filter: Filter) {
    resize_with(src, w, h, dst, ow, oh, filter, Simd::detect())
}

/// Which vector instructions the passes may use (tests compare each against the scalar code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Simd {
    None,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Simd {
    fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Simd::Avx2;
        }
        Simd::None
    }
}

#[allow(clippy::too_many_arguments)]
fn resize_with(src: &[u8], w: usize, h: usize, dst: &mut [u8], ow: usize, oh: usize, filter: Filter, simd: Simd) {
    assert_eq!(src.len(), w * h * 3, "source size");
    assert_eq!(dst.len(), ow * oh * 3, "destination size");
    if (w, h) == (ow, oh) {
        dst.copy_from_slice(src);
        return;
    }
    let horiz = taps(w, ow, filter);
    let vert = taps(h, oh, filter);
    if w == ow {
        vertical(src, w, &vert, 0, dst, simd);
        return;
    }
    // Only the input rows the vertical pass reads go through the horizontal pass.
    let (y_first, y_last) = (vert.first[0], vert.first[oh - 1] + vert.len[oh - 1]);
    if h == oh {
        horizontal(src, w, y_first..y_last, &horiz, ow, dst, simd);
        return;
    }
    if h > oh && (h - oh) as i64 > 2 * (w as i64 - ow as i64) {
        let mut tmp = vec![0u8; oh * w * 3];
        vertical(src, w, &vert, 0, &mut tmp, simd);
        horizontal(&tmp, w, 0..oh, &horiz, ow, dst, simd);
        return;
    }
    let mut tmp = vec![0u8; (y_last - y_first) * ow * 3];
    horizontal(src, w, y_first..y_last, &horiz, ow, &mut tmp, simd);
    vertical(&tmp, ow, &vert, y_first, dst, simd);
}

fn horizontal(src: &[u8], w: usize, rows: std::ops::Range<usize>, t: &Taps, ow: usize, out: &mut [u8], simd: Simd) {
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx2 {
        // SAFETY: Simd::Avx2 is only chosen when the CPU has AVX2.
        unsafe { simd::horizontal(src, w, rows, t, ow, out) };
        return;
    }
    for (r, y) in rows.enumerate() {
        let line = &src[y * w * 3..(y + 1) * w * 3];
        let out_line = &mut out[r * ow * 3..(r + 1) * ow * 3];
        for (xx, o) in out_line.chunks_exact_mut(3).enumerate() {
            o.copy_from_slice(&horizontal_pixel(line, t, xx));
        }
    }
}

/// One output pixel of the horizontal pass, scalar (the reference the SIMD path must match).
#[inline]
fn horizontal_pixel(line: &[u8], t: &Taps, xx: usize) -> [u8; 3] {
    let half = 1i32 << (PRECISION_BITS - 1);
    let k = &t.weights[xx * t.ksize..xx * t.ksize + t.len[xx]];
    let px = &line[t.first[xx] * 3..(t.first[xx] + t.len[xx]) * 3];
    let (mut s0, mut s1, mut s2) = (half, half, half);
    for (p, &kx) in px.chunks_exact(3).zip(k) {
        s0 += p[0] as i32 * kx;
        s1 += p[1] as i32 * kx;
        s2 += p[2] as i32 * kx;
    }
    [clip8(s0), clip8(s1), clip8(s2)]
}

/// `row0` is the input row that `src`'s first row holds.
fn vertical(src: &[u8], w: usize, t: &Taps, row0: usize, out: &mut [u8], simd: Simd) {
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx2 {
        // SAFETY: Simd::Avx2 is only chosen when the CPU has AVX2.
        unsafe { simd::vertical_avx2(src, w, t, row0, out) };
        return;
    }
    vertical_generic(src, w, t, row0, out)
}

/// Integer sums are exact in any order, so the compiler may vectorise this freely (and does,
/// 8 lanes at a time, when inlined into the AVX2 copy): the result is the same bit for bit.
#[inline(always)]
fn vertical_generic(src: &[u8], w: usize, t: &Taps, row0: usize, out: &mut [u8]) {
    let half = 1i32 << (PRECISION_BITS - 1);
    let stride = w * 3;
    let mut acc = vec![0i32; stride];
    for (yy, out_line) in out.chunks_exact_mut(stride).enumerate() {
        acc.fill(half);
        let k = &t.weights[yy * t.ksize..yy * t.ksize + t.len[yy]];
        let line = |dy: usize| {
            let y = t.first[yy] + dy - row0;
            &src[y * stride..(y + 1) * stride]
        };
        // Two taps per sweep: half the loads and stores of the accumulator row.
        let mut dy = 0;
        while dy + 1 < k.len() {
            let (k0, k1) = (k[dy], k[dy + 1]);
            for ((a, &p0), &p1) in acc.iter_mut().zip(line(dy)).zip(line(dy + 1)) {
                *a += p0 as i32 * k0 + p1 as i32 * k1;
            }
            dy += 2;
        }
        if dy < k.len() {
            let k0 = k[dy];
            for (a, &p0) in acc.iter_mut().zip(line(dy)) {
                *a += p0 as i32 * k0;
            }
        }
        for (o, &a) in out_line.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{horizontal_pixel, vertical_generic, Taps, PRECISION_BITS};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn vertical_avx2(src: &[u8], w: usize, t: &Taps, row0: usize, out: &mut [u8]) {
        vertical_generic(src, w, t, row0, out)
    }

    /// The horizontal pass with one pixel's three channels in four lanes (the fourth carries
    /// the next pixel's red, computed and dropped).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn horizontal(src: &[u8], w: usize, rows: std::ops::Range<usize>, t: &Taps, ow: usize, out: &mut [u8]) {
        let half = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
        for (r, y) in rows.enumerate() {
            let line = &src[y * w * 3..(y + 1) * w * 3];
            let out_line = &mut out[r * ow * 3..(r + 1) * ow * 3];
            // A 4-byte load of the line's last pixel reads one byte past the line: allowed
            // only where `src` goes on.
            let spare = (y + 1) * w * 3 < src.len();
            for (xx, o) in out_line.chunks_exact_mut(3).enumerate() {
                let (first, len) = (t.first[xx], t.len[xx]);
                if !spare && first + len == w {
                    o.copy_from_slice(&horizontal_pixel(line, t, xx));
                    continue;
                }
                let k = &t.weights[xx * t.ksize..xx * t.ksize + len];
                let p = line.as_ptr().add(first * 3);
                // SAFETY (every load): pixel `j`'s 4 bytes start at 3 j, inside `line` or, for
                // its last pixel, one byte past it where `spare` says `src` holds that byte.
                let load = |j: usize| _mm_cvtsi32_si128(p.add(3 * j).cast::<i32>().read_unaligned());
                // Two taps at a time: tap j in the low four lanes, tap j + 1 in the high four.
                let mut wide = _mm256_setzero_si256();
                let mut j = 0;
                while j + 1 < len {
                    let px = _mm256_cvtepu8_epi32(_mm_unpacklo_epi32(load(j), load(j + 1)));
                    let kk = _mm256_setr_m128i(_mm_set1_epi32(k[j]), _mm_set1_epi32(k[j + 1]));
                    wide = _mm256_add_epi32(wide, _mm256_mullo_epi32(px, kk));
                    j += 2;
                }
                let mut acc = _mm_add_epi32(half, _mm_add_epi32(_mm256_castsi256_si128(wide), _mm256_extracti128_si256::<1>(wide)));
                if j < len {
                    acc = _mm_add_epi32(acc, _mm_mullo_epi32(_mm_cvtepu8_epi32(load(j)), _mm_set1_epi32(k[j])));
                }
                // clip8 in lanes: an arithmetic shift, then saturation to 0..=255.
                let v = _mm_srai_epi32::<{ PRECISION_BITS as i32 }>(acc);
                let v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);
                let b = (_mm_cvtsi128_si32(v) as u32).to_le_bytes();
                o.copy_from_slice(&b[..3]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_a_copy_and_constant_stays_constant() {
        let src: Vec<u8> = (0..5 * 4 * 3).map(|v| v as u8).collect();
        let mut dst = vec![0; src.len()];
        resize_rgb(&src, 5, 4, &mut dst, 5, 4, Filter::Bilinear);
        assert_eq!(src, dst);
        for f in [Filter::Box, Filter::Bilinear, Filter::Hamming, Filter::Bicubic, Filter::Lanczos] {
            let src = vec![77u8; 37 * 23 * 3];
            let mut dst = vec![0; 10 * 9 * 3];
            resize_rgb(&src, 37, 23, &mut dst, 10, 9, f);
            assert!(dst.iter().all(|&v| v == 77), "{f:?}");
            let mut up = vec![0; 50 * 40 * 3];
            resize_rgb(&src, 37, 23, &mut up, 50, 40, f);
            assert!(up.iter().all(|&v| v == 77), "{f:?}");
        }
    }

    /// The vector passes against the scalar ones, on noise (which exercises the clipping), for
    /// every filter, both pass orders and the last pixel of a buffer (the 4-byte loads' edge).
    #[test]
    fn vector_passes_match_the_scalar_ones() {
        let simd = Simd::detect();
        if simd == Simd::None {
            return;
        }
        let mut state = 12345u64;
        let mut byte = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 56) as u8
        };
        let sizes = [(257, 438, 224, 224), (438, 257, 224, 224), (5, 7, 3, 2), (1, 9, 4, 3), (40, 30, 41, 29), (3, 3, 1, 1), (700, 20, 224, 224)];
        for &(w, h, ow, oh) in &sizes {
            let src: Vec<u8> = (0..w * h * 3).map(|_| byte()).collect();
            for f in [Filter::Box, Filter::Bilinear, Filter::Hamming, Filter::Bicubic, Filter::Lanczos] {
                let mut a = vec![0; ow * oh * 3];
                let mut b = vec![0; ow * oh * 3];
                resize_with(&src, w, h, &mut a, ow, oh, f, Simd::None);
                resize_with(&src, w, h, &mut b, ow, oh, f, simd);
                assert_eq!(a, b, "{f:?} {w}x{h} -> {ow}x{oh}");
            }
        }
    }

    #[test]
    fn box_halving_averages_pairs() {
        // 4x1 -> 2x1 with the box filter: each output pixel is the mean of two inputs.
        let src = [0, 0, 0, 100, 100, 100, 200, 200, 200, 50, 50, 50];
        let mut dst = [0u8; 6];
        resize_rgb(&src, 4, 1, &mut dst, 2, 1, Filter::Box);
        assert_eq!(dst, [50, 50, 50, 125, 125, 125]);
    }
}
