//! Scores that are a product of user and item vectors plus an item bias, computed blocked on
//! the CPU with every core: `score`, `recommend` and `evaluate` of the matrix-factorisation
//! models (BPR, SampledSoftmax, TripletModel, VBPR, DVBPR) take this path on the CPU.
//!
//! The item vectors are packed once per call into panels of 16 items ([`Packed`]); each rayon
//! task takes a few users and walks the catalogue in blocks of items sized to stay in the
//! core's L2 cache, computing 6 users x 16 items at a time (AVX2 + FMA when the CPU has them,
//! chosen at run time; otherwise the same sums with `f32::mul_add`, so both give the same
//! bits). A top-k reads each tile while it is hot and keeps only what beats its current k-th
//! score, so `recommend` and top-k metrics never write the (users x items) scores to memory.
//!
//! Every score is `fma(u[d-1], v[d-1], ... fma(u[0], v[0], 0)) + bias`, whatever the path, the
//! block or the thread count, so `score`, `recommend` and `evaluate` agree to the bit.

#![allow(clippy::indexing_slicing, reason = "the scoring kernel: DotFactors::new checks the vectors' shapes, check_users the user rows and scores_into the output's length; panels, tiles and top-k slots are sized from these")]
#![allow(clippy::arithmetic_side_effects, reason = "the scoring kernel: offsets are products of the shapes DotFactors::new, check_users and scores_into check on entry; tensor arithmetic besides")]

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::metrics::topk::Selector;
pub use crate::metrics::Keep;

/// Users per microkernel call.
const MR: usize = 6;
/// Items per panel (two 8-wide vectors).
const NR: usize = 16;
/// Bytes of packed item vectors per block: half a typical 1 MiB L2, the rest for the tile.
const BLOCK_BYTES: usize = 512 << 10;

/// A model's scores as `users[u] . items[i] + bias[i]`: CPU copies of the vectors.
pub struct DotFactors {
    users: Tensor,
    items: Tensor,
    bias: Option<Tensor>,
    n_users: usize,
    n_items: usize,
    dim: usize,
}

/// Item vectors in panels of [`NR`] items: `data[p][k][j]` is factor k of item `p * NR + j`
/// (zero past the last item), and the bias likewise.
struct Packed {
    data: Vec<f32>,
    bias: Vec<f32>,
    panels: usize,
}

fn cpu_f32(t: &Tensor, what: &str) -> Result<Tensor> {
    let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
    crate::tensors::cpu_f32_ptr(&t, what)?;
    Ok(t)
}

/// The elements of a contiguous f32 CPU tensor.
fn slice(t: &Tensor) -> &[f32] {
    let n = t.numel();
    if n == 0 {
        return &[];
    }
    // SAFETY: `t` is a contiguous f32 CPU tensor (checked by `cpu_f32`) of n elements, borrowed
    // for the slice's life, and nothing writes to it while the model is read.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, n) }
}

impl DotFactors {
    /// From user vectors (n_users, d), item vectors (n_items, d) and an optional item bias
    /// (n_items), on any device (copied to the CPU as float32 when they are not).
    pub fn new(users: &Tensor, items: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let (us, is) = (users.size(), items.size());
        let (n_users, n_items, dim) = match (us.as_slice(), is.as_slice()) {
            (&[n_users, dim], &[n_items, item_dim]) if dim == item_dim => (n_users, n_items, dim),
            _ => return Err(Error::state(format!("dot-product factors of shapes {us:?} and {is:?}"))),
        };
        let bias = match bias {
            Some(b) if b.size() != [n_items] => {
                return Err(Error::state(format!("an item bias of shape {:?} for {n_items} items", b.size())))
            }
            Some(b) => Some(cpu_f32(b, "the item bias")?),
            None => None,
        };
        Ok(DotFactors {
            users: cpu_f32(users, "the user vectors")?,
            items: cpu_f32(items, "the item vectors")?,
            bias,
            n_users: n_users as usize,
            n_items: n_items as usize,
            dim: dim as usize,
        })
    }

    /// Matrix factors with an item bias (BPR, SampledSoftmax), for the users `users`.
    pub fn of_factors(f: &super::factors::Factors, users: &Tensor) -> Result<Self> {
        Self::new(&f.users.f_index_select(0, users)?, &f.items, Some(&f.item_bias))
    }

    pub fn n_items(&self) -> usize {
        self.n_items
    }

    fn check_users(&self, users: &[i64]) -> Result<()> {
        if let Some(&bad) = users.iter().find(|&&u| u < 0 || u as usize >= self.n_users) {
            return Err(Error::invalid(format!("user index {bad} out of range for {} users", self.n_users)));
        }
        Ok(())
    }

    fn pack(&self) -> Result<Packed> {
        let (d, n) = (self.dim, self.n_items);
        let panels = n.div_ceil(NR);
        let len = crate::limits::mul("the packed item vectors", panels * NR, d)?;
        let mut data = crate::limits::try_filled("the packed item vectors", len, 0f32)?;
        let items = slice(&self.items);
        data.par_chunks_mut((d * NR).max(1)).enumerate().for_each(|(p, panel)| {
            for j in 0..NR.min(n - p * NR) {
                let v = &items[(p * NR + j) * d..(p * NR + j + 1) * d];
                for (k, &x) in v.iter().enumerate() {
                    panel[k * NR + j] = x;
                }
            }
        });
        let mut bias = vec![0f32; panels * NR];
        if let Some(b) = &self.bias {
            bias[..n].copy_from_slice(slice(b));
        }
        Ok(Packed { data, bias, panels })
    }

    /// What the rayon tasks read (tensors are not `Sync`; their data is).
    fn view(&self) -> View<'_> {
        View { users: slice(&self.users), n_items: self.n_items, dim: self.dim }
    }
}

/// Told each user's (row, first item, scores of a block of items).
type Sink<'a> = dyn FnMut(usize, usize, &[f32]) -> Result<()> + 'a;

/// The user vectors and sizes of a [`DotFactors`], shared by the tasks.
#[derive(Clone, Copy)]
struct View<'a> {
    users: &'a [f32],
    n_items: usize,
    dim: usize,
}

impl View<'_> {
    /// Panels per block of items.
    fn block_panels(&self) -> usize {
        (BLOCK_BYTES / (self.dim.max(1) * NR * 4)).max(1)
    }

    /// For the users `rows` (indices into the user table): calls `sink(r, first_item, scores)`
    /// for each user r (its position in `rows`) and block of items, blocks in item order.
    fn walk(&self, packed: &Packed, rows: &[i64], sink: &mut Sink<'_>) -> Result<()> {
        let d = self.dim;
        let users = self.users;
        let groups = rows.len().div_ceil(MR);
        // The users' vectors, MR at a time, zero rows past the last.
        let mut ubuf = vec![0f32; groups * MR * d];
        for (r, &u) in rows.iter().enumerate() {
            ubuf[r * d..(r + 1) * d].copy_from_slice(&users[u as usize * d..(u as usize + 1) * d]);
        }
        let bp = self.block_panels();
        let mut tile = vec![0f32; MR * bp * NR];
        let fma = has_fma();
        for p0 in (0..packed.panels).step_by(bp) {
            let np = bp.min(packed.panels - p0);
            let ld = np * NR;
            let first = p0 * NR;
            let valid = (self.n_items - first).min(ld);
            for g in 0..groups {
                let u = &ubuf[g * MR * d..(g + 1) * MR * d];
                for p in 0..np {
                    let panel = &packed.data[(p0 + p) * d * NR..(p0 + p + 1) * d * NR];
                    let bias = &packed.bias[(p0 + p) * NR..(p0 + p + 1) * NR];
                    let out = &mut tile[p * NR..];
                    if fma {
                        // SAFETY: the CPU has AVX2 and FMA (checked at run time); the slices
                        // hold MR x d, d x NR, NR and (MR - 1) x ld + NR values.
                        #[cfg(target_arch = "x86_64")]
                        unsafe {
                            kernel_avx2(u, panel, bias, out, ld, d)
                        };
                    } else {
                        kernel_scalar(u, panel, bias, out, ld, d);
                    }
                }
                for r in 0..MR.min(rows.len() - g * MR) {
                    sink(g * MR + r, first, &tile[r * ld..r * ld + valid])?;
                }
            }
        }
        Ok(())
    }
}

/// Users per rayon task: a multiple of [`MR`], small enough for every core to get several.
fn chunk(n_users: usize) -> usize {
    let per_thread = n_users.div_ceil(4 * rayon::current_num_threads().max(1));
    per_thread.div_ceil(MR).clamp(1, 8) * MR
}

impl DotFactors {
    /// The (users, n_items) scores of `users`, a CPU tensor.
    pub fn scores(&self, users: &[i64]) -> Result<Tensor> {
        let n = self.n_items;
        let total = crate::limits::mul("the score block (users x items)", users.len(), n)?;
        crate::limits::bytes_for("the score block (users x items)", total, 4)?;
        self.check_users(users)?;
        let t = Tensor::f_empty([users.len() as i64, n as i64], (Kind::Float, Device::Cpu))?;
        if total > 0 {
            // SAFETY: a fresh contiguous f32 CPU tensor of `total` elements, written only here.
            let out = unsafe { std::slice::from_raw_parts_mut(crate::tensors::cpu_f32_ptr(&t, "the score block")?, total) };
            self.scores_into(users, out)?;
        }
        Ok(t)
    }

    /// The scores of `users` written into `out`, row-major (users.len(), n_items).
    pub fn scores_into(&self, users: &[i64], out: &mut [f32]) -> Result<()> {
        self.check_users(users)?;
        let n = self.n_items;
        if out.len() != users.len() * n {
            return Err(Error::invalid(format!("{} values for {} users x {n} items", out.len(), users.len())));
        }
        if out.is_empty() {
            return Ok(());
        }
        let packed = self.pack()?;
        let (view, chunk) = (self.view(), chunk(users.len()));
        out.par_chunks_mut(chunk * n).zip(users.par_chunks(chunk)).try_for_each(|(o, rows)| {
            view.walk(&packed, rows, &mut |r, first, s| {
                o[r * n + first..r * n + first + s.len()].copy_from_slice(s);
                Ok(())
            })
        })
    }

    /// The top `k` items of each of `users` among those `keep(row, item)` allows, best first
    /// (ties: the lower item index), as [`crate::metrics::top_k_block`] gives them: rows of
    /// `min(k, n_items)`, padded with item -1 and score -inf; a NaN score is an error.
    pub fn top_k(&self, users: &[i64], k: usize, keep: &Keep<'_>) -> Result<(Vec<i64>, Vec<f32>)> {
        self.check_users(users)?;
        let k = k.min(self.n_items);
        let slots = crate::limits::mul("the top-k lists", users.len(), k)?;
        let mut items = crate::limits::try_filled("the top-k item lists", slots, -1i64)?;
        let mut best = crate::limits::try_filled("the top-k scores", slots, f32::NEG_INFINITY)?;
        if k == 0 || users.is_empty() {
            return Ok((items, best));
        }
        let packed = self.pack()?;
        let (view, chunk) = (self.view(), chunk(users.len()));
        items
            .par_chunks_mut(chunk * k)
            .zip(best.par_chunks_mut(chunk * k))
            .zip(users.par_chunks(chunk))
            .enumerate()
            .try_for_each(|(c, ((it, sc), rows))| -> Result<()> {
                let mut sel: Vec<Selector> = (0..rows.len()).map(|_| Selector::new(k)).collect();
                view.walk(&packed, rows, &mut |r, first, s| {
                    sel[r].feed(s, first as u32, |i| keep(c * chunk + r, i)).map_err(|i| {
                        Error::invalid(format!("the model's score for user index {}, item index {i} is NaN", rows[r]))
                    })
                })?;
                for (r, s) in sel.iter_mut().enumerate() {
                    for (slot, &(v, i)) in s.finish().iter().enumerate() {
                        it[r * k + slot] = i as i64;
                        sc[r * k + slot] = v;
                    }
                }
                Ok(())
            })?;
        Ok((items, best))
    }
}

fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[r * ld + j] = sum_k fma(u[r][k], panel[k][j]) + bias[j]` for MR users and NR items.
fn kernel_scalar(u: &[f32], panel: &[f32], bias: &[f32], out: &mut [f32], ld: usize, d: usize) {
    for r in 0..MR {
        for j in 0..NR {
            let mut acc = 0f32;
            for k in 0..d {
                acc = u[r * d + k].mul_add(panel[k * NR + j], acc);
            }
            out[r * ld + j] = acc + bias[j];
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(u: &[f32], panel: &[f32], bias: &[f32], out: &mut [f32], ld: usize, d: usize) {
    use std::arch::x86_64::*;
    debug_assert!(u.len() >= MR * d && panel.len() >= d * NR && out.len() >= (MR - 1) * ld + NR);
    let (u, b, o) = (u.as_ptr(), panel.as_ptr(), out.as_mut_ptr());
    let z = _mm256_setzero_ps();
    let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
    let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
    for k in 0..d {
        let b0 = _mm256_loadu_ps(b.add(k * NR));
        let b1 = _mm256_loadu_ps(b.add(k * NR + 8));
        let a = _mm256_broadcast_ss(&*u.add(k));
        c00 = _mm256_fmadd_ps(a, b0, c00);
        c01 = _mm256_fmadd_ps(a, b1, c01);
        let a = _mm256_broadcast_ss(&*u.add(d + k));
        c10 = _mm256_fmadd_ps(a, b0, c10);
        c11 = _mm256_fmadd_ps(a, b1, c11);
        let a = _mm256_broadcast_ss(&*u.add(2 * d + k));
        c20 = _mm256_fmadd_ps(a, b0, c20);
        c21 = _mm256_fmadd_ps(a, b1, c21);
        let a = _mm256_broadcast_ss(&*u.add(3 * d + k));
        c30 = _mm256_fmadd_ps(a, b0, c30);
        c31 = _mm256_fmadd_ps(a, b1, c31);
        let a = _mm256_broadcast_ss(&*u.add(4 * d + k));
        c40 = _mm256_fmadd_ps(a, b0, c40);
        c41 = _mm256_fmadd_ps(a, b1, c41);
        let a = _mm256_broadcast_ss(&*u.add(5 * d + k));
        c50 = _mm256_fmadd_ps(a, b0, c50);
        c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    let bb0 = _mm256_loadu_ps(bias.as_ptr());
    let bb1 = _mm256_loadu_ps(bias.as_ptr().add(8));
    for (r, (x0, x1)) in [(c00, c01), (c10, c11), (c20, c21), (c30, c31), (c40, c41), (c50, c51)].into_iter().enumerate() {
        _mm256_storeu_ps(o.add(r * ld), _mm256_add_ps(x0, bb0));
        _mm256_storeu_ps(o.add(r * ld + 8), _mm256_add_ps(x1, bb1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::top_k;

    fn factors(n_users: usize, n_items: usize, d: usize, bias: bool) -> DotFactors {
        tch::manual_seed(7);
        let u = Tensor::randn([n_users as i64, d as i64], (Kind::Float, Device::Cpu));
        let v = Tensor::randn([n_items as i64, d as i64], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([n_items as i64], (Kind::Float, Device::Cpu));
        DotFactors::new(&u, &v, bias.then_some(&b)).unwrap()
    }

    #[test]
    fn scores_are_the_products_and_the_kernels_agree() {
        for &(nu, ni, d) in &[(1, 1, 1), (7, 33, 5), (13, 70_000, 64), (20, 17, 130)] {
            let f = factors(nu, ni, d, true);
            let users: Vec<i64> = (0..nu as i64).rev().collect();
            let s = Vec::<f32>::try_from(f.scores(&users).unwrap().flatten(0, -1)).unwrap();
            let (us, vs, bs) = (slice(&f.users), slice(&f.items), slice(f.bias.as_ref().unwrap()));
            for (r, &u) in users.iter().enumerate() {
                for i in (0..ni).step_by(97.min(ni)) {
                    let mut acc = 0f32;
                    for k in 0..d {
                        acc = us[u as usize * d + k].mul_add(vs[i * d + k], acc);
                    }
                    assert_eq!(s[r * ni + i].to_bits(), (acc + bs[i]).to_bits(), "{nu} {ni} {d}");
                }
            }
        }
    }

    #[test]
    fn the_simd_kernel_gives_the_scalar_bits() {
        if !has_fma() {
            return;
        }
        let d = 37;
        let mut x = 0.37f32;
        let mut next = || {
            x = (x * 3.7 + 0.11).fract();
            x - 0.5
        };
        let u: Vec<f32> = (0..MR * d).map(|_| next()).collect();
        let panel: Vec<f32> = (0..d * NR).map(|_| next()).collect();
        let bias: Vec<f32> = (0..NR).map(|_| next()).collect();
        let (mut a, mut b) = (vec![0f32; MR * 20], vec![0f32; MR * 20]);
        kernel_scalar(&u, &panel, &bias, &mut a, 20, d);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: checked above; sizes as the kernel needs.
        unsafe {
            kernel_avx2(&u, &panel, &bias, &mut b, 20, d)
        };
        assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }

    #[test]
    fn top_k_is_the_top_k_of_the_scores() {
        let (nu, ni) = (25, 5000);
        let f = factors(nu, ni, 16, false);
        let users: Vec<i64> = (0..nu as i64).collect();
        let s = Vec::<f32>::try_from(f.scores(&users).unwrap().flatten(0, -1)).unwrap();
        let keep = |r: usize, i: u32| !(i as usize + r).is_multiple_of(3);
        for k in [0, 1, 10, 100, ni, ni + 5] {
            let (it, sc) = f.top_k(&users, k, &keep).unwrap();
            let kk = k.min(ni);
            let mut buf = Vec::new();
            for r in 0..nu {
                top_k(&s[r * ni..(r + 1) * ni], kk, |i| keep(r, i as u32), &mut buf);
                for slot in 0..kk {
                    let (want_i, want_s) = buf.get(slot).map_or((-1, f32::NEG_INFINITY), |&(s, i)| (i as i64, s));
                    assert_eq!((it[r * kk + slot], sc[r * kk + slot].to_bits()), (want_i, want_s.to_bits()));
                }
            }
        }
    }

    #[test]
    fn ties_go_to_the_lower_item_and_nan_is_an_error() {
        // Every item scores the same: the top-k is the first k allowed items.
        let u = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        let v = Tensor::ones([40, 3], (Kind::Float, Device::Cpu));
        let f = DotFactors::new(&u, &v, None).unwrap();
        let (it, _) = f.top_k(&[0, 1], 5, &|r, i| !(r == 1 && i == 2)).unwrap();
        assert_eq!(it, vec![0, 1, 2, 3, 4, 0, 1, 3, 4, 5]);
        let v = Tensor::from_slice(&[1f32, f32::NAN, 0.5]).reshape([3, 1]);
        let u = Tensor::ones([1, 1], (Kind::Float, Device::Cpu));
        let e = DotFactors::new(&u, &v, None).unwrap().top_k(&[0], 1, &|_, _| true).unwrap_err();
        assert!(e.to_string().contains("item index 1 is NaN"), "{e}");
        assert!(DotFactors::new(&u, &v, None).unwrap().scores(&[1]).is_err());
    }
}
