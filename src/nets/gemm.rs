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
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs;
    if k > 0 && (last(m, k, a.1, a.2) >= a.0.len() || last(k, n, b.1, b.2) >= b.0.len()) || last(m, n, ldc, 1) >= c.len() {
        return Err(Error::state("gemm: a product's operands are smaller than its shape"));
    }
    // SAFETY: every element read or written lies within its slice (checked above); `c` does
    // not alias `a` or `b` (a shared and a mutable borrow).
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.0.as_ptr(), a.1 as isize, a.2 as isize, b.0.as_ptr(), b.1 as isize, b.2 as isize, beta, c.as_mut_ptr(), ldc as isize, 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::gemm;

    /// The product wrapper against a plain triple loop, with transposed and offset operands
    /// (the step reads the first layer's weight as two column blocks of a wider matrix).
    #[test]
    fn gemm_matches_the_definition_with_strides() {
        let (m, k, n, wide) = (128usize, 8usize, 16usize, 14usize);
        let a: Vec<f32> = (0..m * k).map(|v| (v as f32 * 0.37).sin()).collect();
        // B given transposed inside a wider row-major matrix: B[kk][j] = w[j * wide + 6 + kk].
        let w: Vec<f32> = (0..n * wide).map(|v| (v as f32 * 0.11).cos()).collect();
        let mut c = vec![1f32; m * n];
        gemm(m, k, n, (&a, k, 1), (&w[6..], 1, wide), 0.5, &mut c, n).unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 0.5 + (0..k).map(|kk| a[i * k + kk] * w[j * wide + 6 + kk]).sum::<f32>();
                assert!((c[i * n + j] - want).abs() < 1e-5, "({i}, {j}): {} vs {want}", c[i * n + j]);
            }
        }
    }
}
