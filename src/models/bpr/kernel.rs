//! BPR's SGD update over raw rows, compiled for the best instruction set the CPU has, and the
//! chunk loop that trains triples as the sampler draws them ahead.

#![allow(clippy::indexing_slicing, reason = "BPR's SGD kernel: rows are the sampler's draws from the training data that sized the parameter matrices (sgd_update's safety contract), dot_diff's rows share one length d")]
#![allow(clippy::arithmetic_side_effects, reason = "BPR's SGD kernel: row offsets are rows of the parameter matrices (sgd_update's safety contract) times their width d")]

use crate::sampling::ahead::{prefetch, RowPrefetch};
use crate::sampling::pair_filter::PairFilter;
use crate::sampling::rng::Rng;
use crate::sampling::TripleSampler;

/// Raw parameter pointers shared by the rayon workers. Hogwild (Recht et al. 2011): workers
/// update rows without locks; with sparse updates collisions are rare and harmless to
/// convergence. Results are bit-for-bit reproducible with one thread.
#[derive(Clone, Copy)]
pub(super) struct SharedRows {
    pub(super) users: *mut f32,
    pub(super) items: *mut f32,
    pub(super) bias: *mut f32,
    pub(super) dim: usize,
}
unsafe impl Send for SharedRows {}
unsafe impl Sync for SharedRows {}

impl SharedRows {
    /// score(u, j) = p_u . q_j + b_j.
    ///
    /// # Safety
    /// `u` and `j` in range of the matrices.
    #[inline(always)]
    pub(super) unsafe fn score(&self, u: usize, j: usize) -> f32 {
        let d = self.dim;
        let pu = std::slice::from_raw_parts(self.users.add(u * d), d);
        let qj = std::slice::from_raw_parts(self.items.add(j * d), d);
        *self.bias.add(j) + pu.iter().zip(qj).map(|(a, b)| a * b).sum::<f32>()
    }
}

impl RowPrefetch for SharedRows {
    #[inline(always)]
    fn user(&self, u: usize) {
        prefetch(self.users.wrapping_add(u * self.dim), self.dim * 4);
    }
    #[inline(always)]
    fn item(&self, i: usize) {
        prefetch(self.items.wrapping_add(i * self.dim), self.dim * 4);
        prefetch(self.bias.wrapping_add(i), 4);
    }
}

/// The settings of one SGD update.
#[derive(Clone, Copy)]
pub(super) struct Update {
    pub(super) rows: SharedRows,
    pub(super) lr: f32,
    pub(super) reg: f32,
    pub(super) breg: f32,
}

pub(super) type ChunkLoop = unsafe fn(&TripleSampler<'_>, &PairFilter, &mut Rng, usize, Update) -> f64;

/// Trains `len` triples drawn ahead from `rng` (see `crate::sampling::ahead`); the chunk's loss.
///
/// # Safety
/// `update.rows` are the live parameters of a model over the sampler's data. Indices come from
/// the sampler over this model's shapes, with the negative never a positive of the user (so
/// never equal to i). Concurrent writes to one row from two threads are the Hogwild race,
/// accepted by design.
#[inline(always)]
unsafe fn train_drawn_ahead(sampler: &TripleSampler<'_>, filter: &PairFilter, rng: &mut Rng, len: usize, up: Update) -> f64 {
    let mut loss = 0f64;
    sampler.draw_ahead(filter, rng, len, &up.rows, |u, i, j| loss += unsafe { sgd_update(up.rows, u, i, j, up.lr, up.reg, up.breg, 1.0) });
    loss
}

/// The chunk loop compiled whole for AVX2+FMA: the update inlined into the sampling
/// pipeline, no call per sample.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn train_drawn_ahead_avx2(sampler: &TripleSampler<'_>, filter: &PairFilter, rng: &mut Rng, len: usize, up: Update) -> f64 {
    train_drawn_ahead(sampler, filter, rng, len, up)
}

pub(super) fn select_chunk_loop() -> ChunkLoop {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return train_drawn_ahead_avx2;
        }
    }
    train_drawn_ahead
}

pub(super) type Kernel = unsafe fn(SharedRows, usize, usize, usize, f32, f32, f32, f32) -> f64;

/// The update compiled for the best instruction set this CPU has (AVX2+FMA doubles the
/// vector width of the default x86-64 build).
pub(super) fn select_kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return sgd_update_avx2;
        }
    }
    sgd_update
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn sgd_update_avx2(rows: SharedRows, u: usize, i: usize, j: usize, lr: f32, reg: f32, breg: f32, w: f32) -> f64 {
    sgd_update(rows, u, i, j, lr, reg, breg, w)
}

/// One BPR SGD update with the loss weighted by `w` (1, or WARP's rank weight); returns the
/// sample's weighted loss -w ln sigmoid(x).
///
/// # Safety
/// `u`, `i`, `j` must be in range of the parameter matrices behind `rows`, and `i != j`
/// (a negative is never a positive of the same user).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn sgd_update(rows: SharedRows, u: usize, i: usize, j: usize, lr: f32, reg: f32, breg: f32, w: f32) -> f64 {
    let d = rows.dim;
    // Distinct rows (users and items are different matrices, i != j), so these slices do not
    // overlap within a thread, which lets the compiler vectorise the loops below.
    let pu = std::slice::from_raw_parts_mut(rows.users.add(u * d), d);
    let qi = std::slice::from_raw_parts_mut(rows.items.add(i * d), d);
    let qj = std::slice::from_raw_parts_mut(rows.items.add(j * d), d);
    let (bi, bj) = (&mut *rows.bias.add(i), &mut *rows.bias.add(j));
    let x = *bi - *bj + dot_diff(pu, qi, qj);
    // z = sigmoid(-x) = d(-ln sigmoid(x))/d(-x)
    let z0 = 1.0 / (1.0 + x.exp());
    let z = w * z0;
    for ((uf, pf), qf) in pu.iter_mut().zip(qi.iter_mut()).zip(qj.iter_mut()) {
        let (u0, p0, q0) = (*uf, *pf, *qf);
        *uf = u0 + lr * (z * (p0 - q0) - reg * u0);
        *pf = p0 + lr * (z * u0 - reg * p0);
        *qf = q0 + lr * (-z * u0 - reg * q0);
    }
    *bi += lr * (z - breg * *bi);
    *bj += lr * (-z - breg * *bj);
    // -ln sigmoid(x) = ln(1 + e^x) - x = -ln(z) - x; past x = 30 it is e^-x, below f32 noise.
    (w * if x > 30.0 { 0.0 } else { -z0.ln() - x }) as f64
}

/// a . (p - q) with eight partial sums, so the compiler can vectorise it.
#[inline(always)]
fn dot_diff(a: &[f32], p: &[f32], q: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let n8 = a.len() / 8 * 8;
    for ((ca, cp), cq) in a[..n8].chunks_exact(8).zip(p[..n8].chunks_exact(8)).zip(q[..n8].chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += ca[k] * (cp[k] - cq[k]);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for k in n8..a.len() {
        s += a[k] * (p[k] - q[k]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_diff_matches_naive() {
        let a: Vec<f32> = (0..19).map(|x| x as f32 * 0.1).collect();
        let p: Vec<f32> = (0..19).map(|x| (x as f32).sin()).collect();
        let q: Vec<f32> = (0..19).map(|x| (x as f32).cos()).collect();
        let naive: f32 = (0..19).map(|k| a[k] * (p[k] - q[k])).sum();
        assert!((dot_diff(&a, &p, &q) - naive).abs() < 1e-5);
    }

    #[test]
    fn sgd_update_matches_the_gradient() {
        // One user, items 0 (positive) and 1 (negative), d = 3; compare with the formulas.
        let mut users = vec![0.1f32, -0.2, 0.3];
        let mut items = vec![0.5f32, 0.1, -0.4, -0.3, 0.2, 0.6];
        let mut bias = vec![0.05f32, -0.1];
        let rows = SharedRows { users: users.as_mut_ptr(), items: items.as_mut_ptr(), bias: bias.as_mut_ptr(), dim: 3 };
        let (lr, reg, breg) = (0.1f32, 0.01f32, 0.02f32);
        let (u0, i0, j0, b0) = (users.clone(), items[..3].to_vec(), items[3..].to_vec(), bias.clone());
        let x: f32 = b0[0] - b0[1] + (0..3).map(|f| u0[f] * (i0[f] - j0[f])).sum::<f32>();
        let z = 1.0 / (1.0 + x.exp());
        let loss = unsafe { sgd_update(rows, 0, 0, 1, lr, reg, breg, 1.0) };
        assert!((loss - (1.0 + (-x as f64).exp()).ln()).abs() < 1e-6);
        for f in 0..3 {
            assert!((users[f] - (u0[f] + lr * (z * (i0[f] - j0[f]) - reg * u0[f]))).abs() < 1e-7);
            assert!((items[f] - (i0[f] + lr * (z * u0[f] - reg * i0[f]))).abs() < 1e-7);
            assert!((items[3 + f] - (j0[f] + lr * (-z * u0[f] - reg * j0[f]))).abs() < 1e-7);
        }
        assert!((bias[0] - (b0[0] + lr * (z - breg * b0[0]))).abs() < 1e-7);
        assert!((bias[1] - (b0[1] + lr * (-z - breg * b0[1]))).abs() < 1e-7);
    }
}
