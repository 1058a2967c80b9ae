//! Single-precision matrix products on CPU slices (`matrixmultiply`'s SGEMM, AVX2/FMA chosen
//! at run time), for steps that multiply batch-sized matrices whose libtorch dispatch would
//! cost more than the arithmetic (the deep triplet model's native step).

use crate::error::{Error, Result};

/// C (m x n, rows `ldc` apart) = A B + beta C, A (m x k) and B (k x n) read with the given
/// row and column strides. The extents are checked against the slices before the unsafe call.
#[allow(clippy::too_many_arguments, reason = "an SGEMM's shape and strides")]
pub fn gemm(m: usize, k: usize, n: usize, a: (&[f32], usize, usize), b: (&[f32], usize, usize), beta: f32, c: &mut [f32], ldc: usize) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    // The offset of the last element of a rows x cols operand; None when it overflows.
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        rows.saturating_sub(1).checked_mul(rs)?.checked_add(cols.saturating_sub(1).checked_mul(cs)?)
    };
    let outside = |end: Option<usize>, len: usize| end.is_none_or(|e| e >= len);
    if k > 0 && (outside(last(m, k, a.1, a.2), a.0.len()) || outside(last(k, n, b.1, b.2), b.0.len())) || outside(last(m, n, ldc, 1), c.len()) {
        return Err(Error::state("gemm: a product's operands are smaller than its shape"));
    }
    if small_product(m, k, n, a, b, beta, c, ldc) {
        return Ok(());
    }
    // SAFETY: every element read or written lies within its slice (checked above); `c` does
    // not alias `a` or `b` (a shared and a mutable borrow).
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.0.as_ptr(), a.1 as isize, a.2 as isize, b.0.as_ptr(), b.1 as isize, b.2 as isize, beta, c.as_mut_ptr(), ldc as isize, 1);
    }
    Ok(())
}

/// The products with a dimension of 1 (a network's one-unit output layer), written out:
/// SGEMM's packing of the large operand costs about what such a product computes. Only for
/// operands whose inner rows are contiguous (else returns false and SGEMM runs); extents were
/// checked by the caller.
#[allow(clippy::too_many_arguments, reason = "an SGEMM's shape and strides")]
fn small_product(m: usize, k: usize, n: usize, a: (&[f32], usize, usize), b: (&[f32], usize, usize), beta: f32, c: &mut [f32], ldc: usize) -> bool {
    let scale = |c: &mut [f32]| {
        if beta == 0.0 {
            c.iter_mut().for_each(|x| *x = 0.0);
        } else if beta != 1.0 {
            c.iter_mut().for_each(|x| *x *= beta);
        }
    };
    if n == 1 && a.2 == 1 && b.1 == 1 && k > 0 {
        // c[i] = beta c[i] + a[i, :] . b[:, 0], eight lanes summed at a time.
        let bv = b.0.get(..k).unwrap_or_default();
        for (i, row) in a.0.chunks(a.1.max(1)).take(m).enumerate() {
            let row = row.get(..k).unwrap_or_default();
            let mut lanes = [0f32; 8];
            let (ra, rb) = (row.chunks_exact(8), bv.chunks_exact(8));
            let tail: f32 = ra.remainder().iter().zip(rb.remainder()).map(|(x, y)| x * y).sum();
            ra.zip(rb).for_each(|(x, y)| lanes.iter_mut().zip(x).zip(y).for_each(|((s, x), y)| *s += x * y));
            if let Some(out) = i.checked_mul(ldc).and_then(|at| c.get_mut(at)) {
                *out = if beta == 0.0 { 0.0 } else { beta * *out } + lanes.iter().sum::<f32>() + tail;
            }
        }
        return true;
    }
    if m == 1 && b.2 == 1 {
        // c[0, :] = beta c[0, :] + sum over kk of a[0, kk] b[kk, :].
        let out = c.get_mut(..n).unwrap_or_default();
        scale(out);
        for (kk, row) in b.0.chunks(b.1.max(1)).take(k).enumerate() {
            let x = kk.checked_mul(a.2).and_then(|at| a.0.get(at)).copied().unwrap_or(0.0);
            out.iter_mut().zip(row).for_each(|(o, v)| *o += x * v);
        }
        return true;
    }
    if k == 1 && b.2 == 1 {
        // c[i, :] = beta c[i, :] + a[i, 0] b[0, :] (an outer product).
        let bv = b.0.get(..n).unwrap_or_default();
        for (i, row) in c.chunks_mut(ldc.max(1)).take(m).enumerate() {
            let row = row.get_mut(..n).unwrap_or_default();
            scale(row);
            let x = i.checked_mul(a.1).and_then(|at| a.0.get(at)).copied().unwrap_or(0.0);
            row.iter_mut().zip(bv).for_each(|(o, v)| *o += x * v);
        }
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::gemm;

    /// The product wrapper against a plain triple loop, with transposed and offset operands
    /// (the step reads the first layer's weight as two column blocks of a wider matrix).
    /// Also the shapes with a dimension of 1 (written out, not SGEMM), with B row-major too.
    #[test]
    fn gemm_matches_the_definition_with_strides() {
        for (m, k, n, beta) in [(128usize, 8usize, 16usize, 0.5f32), (37, 19, 1, 0.0), (1, 37, 21, 1.0), (33, 1, 21, 0.5), (9, 1, 1, 0.0)] {
            let wide = k + n + 2;
            let a: Vec<f32> = (0..m * k).map(|v| (v as f32 * 0.37).sin()).collect();
            // B given transposed inside a wider row-major matrix: B[kk][j] = w[j * wide + 2 + kk].
            let w: Vec<f32> = (0..n * wide).map(|v| (v as f32 * 0.11).cos()).collect();
            let mut c = vec![1f32; m * n];
            gemm(m, k, n, (&a, k, 1), (&w[2..], 1, wide), beta, &mut c, n).unwrap();
            // And B row-major (rows `wide` apart): B[kk][j] = w2[kk * wide + j].
            let w2: Vec<f32> = (0..k * wide).map(|v| (v as f32 * 0.23).cos()).collect();
            let mut c2 = vec![1f32; m * n];
            gemm(m, k, n, (&a, k, 1), (&w2, wide, 1), beta, &mut c2, n).unwrap();
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = beta + (0..k).map(|kk| a[i * k + kk] * w[j * wide + 2 + kk]).sum::<f32>();
                    assert!((c[i * n + j] - want).abs() < 1e-4, "{m}x{k}x{n} ({i}, {j}): {} vs {want}", c[i * n + j]);
                    let want: f32 = beta + (0..k).map(|kk| a[i * k + kk] * w2[kk * wide + j]).sum::<f32>();
                    assert!((c2[i * n + j] - want).abs() < 1e-4, "{m}x{k}x{n} row-major ({i}, {j}): {} vs {want}", c2[i * n + j]);
                }
            }
        }
    }
}
