//! Training on several processes: the one seam between the training loop and a process group.
//!
//! A [`Collective`] is a process group's operations on tensors (PyTorch's torch.distributed
//! behind it in the Python extension: gloo on CPUs, NCCL on GPUs; [`ThreadGroup`] in tests).
//! A [`GradSync`] is what one fit uses of it: the loop gives each rank a share of every global
//! batch ([`Shard`]), the optimisers sum their gradients over the ranks (dense ones as one
//! flattened bucket, row-sparse ones as the touched rows only), and the loop agrees on the
//! epoch's loss and on stopping. Every rank then takes the same optimiser step on the same
//! gradient, so the parameters stay equal on every rank without being sent again.
//!
//! Gradients are weighted so that their sum over the ranks is the single-process gradient of
//! the global batch: a loss that is a mean over the batch (`mean`) is weighted by the rank's
//! share of the batch; a loss summed over samples is summed as it is, and batch-independent
//! terms (an L2 on a network's weights) are scaled by the share ([`GradSync::fraction`]) by the
//! step that adds them.
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic; integer sizes are the gloo group's world size and rank and the batch's and parameters' sizes, which the ranks exchange and check before use")]

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tch::{Device, Kind, Tensor};

use super::sparse_adam::unique_inverse;
use crate::error::{Error, Result};

/// A process group's collective operations, in place on contiguous tensors. Every rank must
/// call the same operations in the same order with tensors of the same shape and kind.
pub trait Collective: Send + Sync {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Sums `t` over the ranks, in place.
    fn all_reduce_sum(&self, t: &Tensor) -> Result<()>;
    /// Makes `t` rank `root`'s on every rank, in place.
    fn broadcast(&self, t: &Tensor, root: usize) -> Result<()>;
    /// Every rank's `t` into `out` (shape (world_size, *t.shape), same kind and device).
    fn all_gather(&self, t: &Tensor, out: &Tensor) -> Result<()>;
    fn barrier(&self) -> Result<()>;
}

/// A batch the loop can cut into the ranks' shares.
pub trait Shard {
    /// Samples in the batch.
    fn samples(&self) -> usize;
    /// Keeps samples `range` only (in order).
    fn keep(&mut self, range: Range<usize>);
}

/// Rank `rank`'s samples of a global batch of `n` among `world` ranks: contiguous, sizes
/// differing by at most one, the lower ranks first.
pub fn share(n: usize, rank: usize, world: usize) -> Range<usize> {
    let start = |r: usize| r * (n / world) + r.min(n % world);
    start(rank)..start(rank + 1)
}

/// The largest flattened bucket of gradients (DDP's default, 25 MiB).
pub const BUCKET_BYTES: usize = 25 << 20;

/// Flags the ranks exchange to agree on stopping; summed, so any rank's flag reaches all.
const STOP: u8 = 1;
const FAILED: u8 = 2;

/// One fit's use of a [`Collective`] (cheap to clone: every optimiser of the fit holds one).
#[derive(Clone)]
pub struct GradSync(Arc<Inner>);

struct Inner {
    group: Arc<dyn Collective>,
    /// The loss is a mean over the batch (see the module's notes).
    mean: AtomicBool,
    /// This rank's share of the current global batch and that batch's size.
    share: Mutex<(Range<usize>, usize)>,
    /// What this rank asks of the others at the next exchange (`STOP`, `FAILED`).
    local: AtomicU8,
    /// What the last exchange agreed (any rank's flags).
    agreed: AtomicU8,
    /// The flags travelled with a gradient bucket during the current step.
    exchanged: AtomicBool,
}

impl std::fmt::Debug for GradSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GradSync(rank {} of {})", self.rank(), self.world_size())
    }
}

impl GradSync {
    pub fn new(group: Arc<dyn Collective>) -> Result<Self> {
        let world = group.world_size();
        if world == 0 || group.rank() >= world {
            return Err(Error::invalid(format!("process group: rank {} of world size {world}", group.rank())));
        }
        Ok(GradSync(Arc::new(Inner {
            group,
            mean: AtomicBool::new(false),
            share: Mutex::new((0..0, 0)),
            local: AtomicU8::new(0),
            agreed: AtomicU8::new(0),
            exchanged: AtomicBool::new(false),
        })))
    }

    pub fn rank(&self) -> usize {
        self.0.group.rank()
    }

    pub fn world_size(&self) -> usize {
        self.0.group.world_size()
    }

    pub fn group(&self) -> &dyn Collective {
        &*self.0.group
    }

    /// The step's loss is a mean over the batch (its gradient is weighted by the share).
    pub fn set_mean(&self, mean: bool) {
        self.0.mean.store(mean, Ordering::Relaxed);
    }

    fn lock_share(&self) -> std::sync::MutexGuard<'_, (Range<usize>, usize)> {
        self.0.share.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called by the loop before each step: this rank's samples of a global batch of `n`.
    pub fn begin_batch(&self, n: usize) -> Range<usize> {
        let r = share(n, self.rank(), self.world_size());
        *self.lock_share() = (r.clone(), n);
        self.0.exchanged.store(false, Ordering::Relaxed);
        r
    }

    /// This rank's samples of the current global batch, and the global batch's size.
    pub fn current_share(&self) -> (Range<usize>, usize) {
        self.lock_share().clone()
    }

    /// This rank's fraction of the current global batch (batch-independent loss terms are
    /// scaled by it, so that they count once in the sum over the ranks).
    pub fn fraction(&self) -> f64 {
        let (r, n) = self.current_share();
        if n == 0 {
            return 0.0;
        }
        r.len() as f64 / n as f64
    }

    /// The weight of this rank's gradient in the sum.
    fn weight(&self) -> f64 {
        if self.0.mean.load(Ordering::Relaxed) {
            self.fraction()
        } else {
            1.0
        }
    }

    /// Asks every rank to stop after the current step (the observer said Stop here).
    pub fn request_stop(&self) {
        self.0.local.fetch_or(STOP, Ordering::Relaxed);
    }

    /// Tells the other ranks that this one failed (they stop with an error).
    pub fn report_failure(&self) {
        self.0.local.fetch_or(FAILED, Ordering::Relaxed);
    }

    /// This rank's flag value for an exchange: FAILED outweighs any number of STOPs.
    fn local_flag(&self) -> f64 {
        let l = self.0.local.load(Ordering::Relaxed);
        if l & FAILED != 0 {
            // Larger than every rank's STOP together, so the sum tells a failure apart.
            (self.world_size() + 1) as f64
        } else if l & STOP != 0 {
            1.0
        } else {
            0.0
        }
    }

    /// Exchanges the flags unless a gradient bucket of this step carried them already; then
    /// whether every rank stops, and whether because one failed.
    pub fn after_step(&self) -> Result<Agreed> {
        if self.0.exchanged.load(Ordering::Relaxed) {
            return Ok(self.agreed());
        }
        self.exchange()
    }

    /// Exchanges the flags now (after the observer's verdict on an epoch).
    pub fn exchange(&self) -> Result<Agreed> {
        let t = Tensor::from_slice(&[self.local_flag()]);
        self.0.group.all_reduce_sum(&t)?;
        self.agree_sum(t.f_double_value(&[0])?);
        Ok(self.agreed())
    }

    fn agree_sum(&self, summed: f64) {
        let failed = summed > self.world_size() as f64 + 0.5;
        let mut flags = 0;
        if failed {
            flags |= FAILED;
        }
        if summed > 0.5 {
            flags |= STOP;
        }
        self.0.agreed.fetch_or(flags, Ordering::Relaxed);
        self.0.exchanged.store(true, Ordering::Relaxed);
    }

    pub fn agreed(&self) -> Agreed {
        let a = self.0.agreed.load(Ordering::Relaxed);
        Agreed { stop: a & STOP != 0, failed: a & FAILED != 0 }
    }

    /// Sums one value (on the CPU) over the ranks.
    pub fn sum_one(&self, value: f64) -> Result<f64> {
        let t = Tensor::from_slice(&[value]);
        self.0.group.all_reduce_sum(&t)?;
        Ok(t.f_double_value(&[0])?)
    }

    /// Sums the gradients `grads` of `params` over the ranks, in place, in flattened buckets
    /// of up to [`BUCKET_BYTES`] (DDP's default size; a larger gradient is a bucket of its
    /// own, reduced where it is, so no copy of the big tables), weighted (see the module's
    /// notes). The stop flags travel in the last bucket. A gradient undefined on this rank
    /// counts as zeros; it stays undefined only where it is undefined on every rank (the
    /// single-process optimiser skips such a parameter).
    pub fn reduce_dense(&self, params: &[&Tensor], grads: &mut [Tensor]) -> Result<()> {
        if params.len() != grads.len() {
            return Err(Error::state(format!("gradient sync: {} gradients for {} parameters", grads.len(), params.len())));
        }
        let device = params.first().map_or(Device::Cpu, |p| p.device());
        let w = self.weight();
        let _guard = tch::no_grad_guard();
        let mut flags: Vec<f32> = grads.iter().map(|g| g.defined() as u8 as f32).collect();
        flags.push(self.local_flag() as f32);
        // Every gradient as a contiguous float32 tensor of the parameter's size.
        let mut flat = Vec::with_capacity(grads.len());
        for (p, g) in params.iter().zip(grads.iter()) {
            flat.push(if g.defined() { g.f_to_kind(Kind::Float)?.f_contiguous()? } else { Tensor::f_zeros(p.size().as_slice(), (Kind::Float, device))? });
        }
        let scale = |t: &Tensor| -> Result<()> {
            if w != 1.0 {
                let _ = t.shallow_clone().f_mul_scalar_(w)?;
            }
            Ok(())
        };
        // Small gradients are gathered into buckets; the flags ride in the last one.
        let mut small: Vec<usize> = Vec::new();
        let mut small_bytes = 0usize;
        let missing = |i: usize| Error::state(format!("gradient sync: no gradient {i}"));
        let reduce_small = |small: &mut Vec<usize>, with_flags: bool, flat: &mut [Tensor]| -> Result<Option<Vec<f32>>> {
            let mut parts = Vec::with_capacity(small.len() + 1);
            for &i in small.iter() {
                parts.push(flat.get(i).ok_or_else(|| missing(i))?.f_flatten(0, -1)?);
            }
            if with_flags {
                parts.push(Tensor::from_slice(&flags).f_to_device(device)?);
            }
            if parts.is_empty() {
                return Ok(None);
            }
            let bucket = Tensor::f_cat(&parts, 0)?;
            let n_grads = bucket.numel() as i64 - if with_flags { flags.len() as i64 } else { 0 };
            scale(&bucket.f_narrow(0, 0, n_grads)?)?;
            self.0.group.all_reduce_sum(&bucket)?;
            let mut at = 0i64;
            for &i in small.iter() {
                let f = flat.get_mut(i).ok_or_else(|| missing(i))?;
                let n = f.numel() as i64;
                *f = bucket.f_narrow(0, at, n)?.f_view(f.size().as_slice())?;
                at += n;
            }
            small.clear();
            if !with_flags {
                return Ok(None);
            }
            Ok(Some(Vec::<f32>::try_from(bucket.f_narrow(0, n_grads, flags.len() as i64)?.f_to_device(Device::Cpu)?)?))
        };
        for i in 0..flat.len() {
            let bytes = match flat.get(i) {
                Some(f) if f.numel() * 4 >= BUCKET_BYTES => {
                    scale(f)?;
                    self.0.group.all_reduce_sum(f)?;
                    continue;
                }
                Some(f) => f.numel() * 4,
                None => continue,
            };
            if small_bytes + bytes > BUCKET_BYTES {
                reduce_small(&mut small, false, &mut flat)?;
                small_bytes = 0;
            }
            small.push(i);
            small_bytes += bytes;
        }
        let tail = reduce_small(&mut small, true, &mut flat)?.unwrap_or_default();
        for (((p, g), f), defined) in params.iter().zip(grads.iter_mut()).zip(flat).zip(&tail) {
            *g = if *defined > 0.5 { f.f_to_kind(p.kind())? } else { Tensor::new() };
        }
        self.agree_sum(tail.last().copied().unwrap_or(0.0) as f64);
        Ok(())
    }

    /// Sums row-sparse gradients over the ranks, sending only the touched rows: for every
    /// table at once, every rank's rows and their gradients are gathered (three collectives
    /// for all tables: the row counts with the stop flags, the row indices, the gradients,
    /// each padded to the longest rank), then added up by row. Returns per table the
    /// distinct rows and their summed gradient, `None` where no rank had a gradient.
    pub fn reduce_rows(&self, tables: &[RowsIn<'_>]) -> Result<Vec<Option<(Vec<i64>, Tensor)>>> {
        let _guard = tch::no_grad_guard();
        let (world, n) = (self.world_size(), tables.len());
        let device = tables.first().map_or(Device::Cpu, |t| t.device);
        // Row counts (-1: no gradient here) and this rank's stop flag.
        let mut mine: Vec<i64> = tables.iter().map(|t| t.mine.map_or(-1, |(r, _)| r.len() as i64)).collect();
        mine.push(self.local_flag() as i64);
        let counts = Tensor::f_zeros([world as i64, n as i64 + 1], (Kind::Int64, Device::Cpu))?;
        self.0.group.all_gather(&Tensor::from_slice(&mine), &counts)?;
        let counts = Vec::<i64>::try_from(counts.f_flatten(0, -1)?)?;
        // All world x (n + 1) of them (the gathered tensor's shape); -1 reads as "no gradient".
        let count = |r: usize, t: usize| counts.get(r * (n + 1) + t).copied().unwrap_or(-1);
        self.agree_sum((0..world).map(|r| count(r, n) as f64).sum());
        let longest: Vec<usize> = (0..n).map(|t| (0..world).map(|r| count(r, t).max(0) as usize).max().unwrap_or(0)).collect();
        let widths: Vec<usize> = tables.iter().map(|t| t.row_shape.iter().product::<i64>().max(0) as usize).collect();
        // This rank's rows (-1 pads) and gradients (zero pads), table after table.
        let mut idx = Vec::with_capacity(longest.iter().sum());
        let mut grads = Vec::with_capacity(n);
        for ((t, &len), &width) in tables.iter().zip(&longest).zip(&widths) {
            let block = Tensor::f_zeros([len as i64, width as i64], (Kind::Float, device))?;
            let rows = t.mine.map_or(&[][..], |(r, _)| r);
            idx.extend_from_slice(rows);
            idx.extend(std::iter::repeat_n(-1, len - rows.len()));
            if let Some((r, g)) = t.mine.filter(|(r, _)| !r.is_empty()) {
                block.f_narrow(0, 0, r.len() as i64)?.f_copy_(&(g.f_to_kind(Kind::Float)?.f_view([r.len() as i64, width as i64])? * self.weight()))?;
            }
            grads.push(block.f_flatten(0, -1)?);
        }
        let all_idx = Tensor::f_zeros([world as i64, idx.len() as i64], (Kind::Int64, Device::Cpu))?;
        self.0.group.all_gather(&Tensor::from_slice(&idx), &all_idx)?;
        let all_idx = Vec::<i64>::try_from(all_idx.f_flatten(0, -1)?)?;
        let flat = if grads.is_empty() { Tensor::f_zeros([0], (Kind::Float, device))? } else { Tensor::f_cat(&grads, 0)? };
        let all_grad = Tensor::f_zeros([world as i64, flat.numel() as i64], (Kind::Float, device))?;
        self.0.group.all_gather(&flat, &all_grad)?;
        let mut out = Vec::with_capacity(n);
        let (mut at_idx, mut at_grad) = (0usize, 0i64);
        for (t, ((table, &len), &width)) in tables.iter().zip(&longest).zip(&widths).enumerate() {
            let width = width as i64;
            if (0..world).all(|r| count(r, t) < 0) {
                out.push(None);
            } else {
                // Positions of real rows among the gathered (rank, slot) pairs.
                let mut keep = Vec::new();
                let mut rows = Vec::new();
                for r in 0..world {
                    for k in 0..len {
                        // All world x idx.len() of them (the gathered tensor's shape); -1 is a pad.
                        let row = all_idx.get(r * idx.len() + at_idx + k).copied().unwrap_or(-1);
                        if row >= 0 {
                            keep.push((r * len + k) as i64);
                            rows.push(row);
                        }
                    }
                }
                let (distinct, inverse) = unique_inverse(&rows);
                let gathered = all_grad.f_narrow(1, at_grad, len as i64 * width)?.f_reshape([world as i64 * len as i64, width])?;
                let sel = gathered.f_index_select(0, &Tensor::from_slice(&keep).f_to_device(device)?)?;
                let summed = Tensor::f_zeros([distinct.len() as i64, width], (Kind::Float, device))?
                    .f_index_add(0, &Tensor::from_slice(&inverse).f_to_device(device)?, &sel)?;
                let mut shape = vec![distinct.len() as i64];
                shape.extend_from_slice(&table.row_shape);
                out.push(Some((distinct, summed.f_view(shape.as_slice())?.f_to_kind(table.kind)?)));
            }
            at_idx += len;
            at_grad += len as i64 * width;
        }
        Ok(out)
    }

    /// Makes every tensor of `tensors` rank 0's (the initial parameters).
    pub fn broadcast_all(&self, tensors: &[Tensor]) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for t in tensors {
            let c = t.f_contiguous()?;
            self.0.group.broadcast(&c, 0)?;
            if c.data_ptr() != t.data_ptr() {
                t.shallow_clone().f_copy_(&c)?;
            }
        }
        Ok(())
    }

    /// An error on every rank unless every rank passes the same `value` (a hash of the
    /// training data).
    pub fn check_same(&self, what: &str, value: u64) -> Result<()> {
        let world = self.world_size() as i64;
        let out = Tensor::f_zeros([world, 1], (Kind::Int64, Device::Cpu))?;
        self.0.group.all_gather(&Tensor::from_slice(&[value as i64]), &out)?;
        let all = Vec::<i64>::try_from(out.f_flatten(0, -1)?)?;
        if let Some(r) = all.iter().position(|v| Some(v) != all.first()) {
            return Err(Error::invalid(format!(
                "distributed fit: {what} differ between ranks (rank 0 and rank {r}); every rank must pass the same data"
            )));
        }
        Ok(())
    }

    pub fn barrier(&self) -> Result<()> {
        self.0.group.barrier()
    }
}

thread_local! {
    /// The share of the global batch the step running on this thread trains on (set by the
    /// loop around each distributed step): this process's rows and the global batch's size.
    static SHARE: std::cell::RefCell<Option<(Range<usize>, usize)>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` (a step) with `share` as the current thread's share of the global batch.
pub fn with_share<T>(share: (Range<usize>, usize), f: impl FnOnce() -> T) -> T {
    SHARE.with(|s| *s.borrow_mut() = Some(share));
    let out = f();
    SHARE.with(|s| *s.borrow_mut() = None);
    out
}

/// When the step on this thread trains on a share of a global batch and `shape`'s rows are
/// `blocks` blocks of this process's samples (DVBPR's positives, then negatives: 2): the
/// global batch's shape (`blocks` blocks of the global batch's samples) and this process's
/// rows in it. A random tensor drawn for the global shape and cut to those rows is then the
/// single process's on every rank (`nets::random::dropout`). `None` in one process.
pub fn global_rows(shape: &[i64], blocks: i64) -> Option<(Vec<i64>, Vec<i64>)> {
    let rows = shape.first().copied().unwrap_or(0);
    let (range, global) = SHARE.with(|s| s.borrow().clone()).filter(|(r, _)| blocks > 0 && r.len() as i64 * blocks == rows)?;
    let mut global_shape = shape.to_vec();
    if let Some(r) = global_shape.first_mut() {
        *r = blocks * global as i64;
    }
    let mine = (0..blocks).flat_map(|b| range.clone().map(move |r| b * global as i64 + r as i64)).collect();
    Some((global_shape, mine))
}

/// One table's part of [`GradSync::reduce_rows`]: this rank's rows and their gradient
/// (`None`: no gradient this step), and the table's row shape, kind and device.
pub struct RowsIn<'a> {
    pub mine: Option<(&'a [i64], &'a Tensor)>,
    pub row_shape: Vec<i64>,
    pub kind: Kind,
    pub device: Device,
}

/// What the ranks agreed after a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Agreed {
    pub stop: bool,
    pub failed: bool,
}

/// A process group of threads in one process (tests and benches of the seam without
/// torch.distributed): each rank a thread holding one `ThreadGroup`.
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<ThreadShared>,
}

struct ThreadShared {
    world: usize,
    barrier: std::sync::Barrier,
    slots: Mutex<Vec<Option<Tensor>>>,
}

impl ThreadGroup {
    /// The `world` ranks of one group.
    pub fn group(world: usize) -> Vec<ThreadGroup> {
        let shared = Arc::new(ThreadShared { world, barrier: std::sync::Barrier::new(world), slots: Mutex::new((0..world).map(|_| None).collect()) });
        (0..world).map(|rank| ThreadGroup { rank, shared: shared.clone() }).collect()
    }

    /// Every rank's tensor (CPU copies), in rank order.
    fn exchange(&self, t: &Tensor) -> Result<Vec<Tensor>> {
        let lock = || self.shared.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mine = t.f_to_device(Device::Cpu)?.f_contiguous()?.f_detach_copy()?;
        *lock().get_mut(self.rank).ok_or_else(|| Error::state(format!("thread group: no rank {}", self.rank)))? = Some(mine);
        self.shared.barrier.wait();
        let all: Vec<Tensor> = lock().iter().map(|s| s.as_ref().map(|t| t.shallow_clone()).unwrap_or_else(Tensor::new)).collect();
        // Nobody overwrites a slot before every rank has read them all.
        self.shared.barrier.wait();
        Ok(all)
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.shared.world
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        let all = self.exchange(t)?;
        // Summed in rank order on every rank: the same bits everywhere.
        let (first, rest) = all.split_first().ok_or_else(|| Error::state("thread group: no rank"))?;
        let mut sum = first.f_detach_copy()?;
        for x in rest {
            sum = sum.f_add(x)?;
        }
        t.shallow_clone().f_copy_(&sum)?;
        Ok(())
    }
    fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        let all = self.exchange(t)?;
        t.shallow_clone().f_copy_(all.get(root).ok_or_else(|| Error::state(format!("thread group: no rank {root}")))?)?;
        Ok(())
    }
    fn all_gather(&self, t: &Tensor, out: &Tensor) -> Result<()> {
        let all = self.exchange(t)?;
        for (r, x) in all.iter().enumerate() {
            out.f_select(0, r as i64)?.f_copy_(&x.f_view_as(&out.f_select(0, r as i64)?)?)?;
        }
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        self.shared.barrier.wait();
        Ok(())
    }
}

/// A process group as a fit's option (`FitOptions::group`).
#[derive(Clone)]
pub struct ProcessGroup(pub Arc<dyn Collective>);

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessGroup(rank {} of {})", self.0.rank(), self.0.world_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_in_order() {
        for (n, world) in [(10, 3), (1, 2), (0, 2), (64, 2), (7, 7), (5, 8)] {
            let parts: Vec<_> = (0..world).map(|r| share(n, r, world)).collect();
            assert_eq!(parts[0].start, 0);
            assert_eq!(parts[world - 1].end, n);
            assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
            assert!(parts.iter().all(|p| p.len() == n / world || p.len() == n / world + 1));
        }
    }

    /// Buckets: small gradients flattened together, one above the bucket size reduced where
    /// it is, undefined ones as zeros unless undefined everywhere; a mean's share weights.
    #[test]
    fn dense_gradients_sum_over_the_ranks() {
        let big = (BUCKET_BYTES / 4 + 10) as i64;
        let shapes: Vec<Vec<i64>> = vec![vec![3, 4], vec![big], vec![5], vec![2, 2]];
        let outs: Vec<Vec<Tensor>> = std::thread::scope(|sc| {
            let hs: Vec<_> = ThreadGroup::group(2)
                .into_iter()
                .map(|g| {
                    let shapes = &shapes;
                    sc.spawn(move || {
                        let params: Vec<Tensor> = shapes.iter().map(|s| Tensor::zeros(s.as_slice(), (Kind::Float, Device::Cpu))).collect();
                        let r = g.rank() as f64;
                        let sync = GradSync::new(Arc::new(g)).unwrap();
                        sync.set_mean(true);
                        sync.begin_batch(3); // shares of 2 and 1: weights 2/3 and 1/3
                        let mut grads: Vec<Tensor> = params
                            .iter()
                            .enumerate()
                            .map(|(k, p)| if k == 3 || (k == 2 && r == 1.0) { Tensor::new() } else { p.ones_like() * (r + 1.0) })
                            .collect();
                        let refs: Vec<&Tensor> = params.iter().collect();
                        sync.reduce_dense(&refs, &mut grads).unwrap();
                        grads
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for grads in &outs {
            // rank 0: 1 * 2/3, rank 1: 2 * 1/3.
            for k in [0, 1] {
                assert_eq!(grads[k].size(), shapes[k]);
                assert!((grads[k].max().double_value(&[]) - 4.0 / 3.0).abs() < 1e-6 && (grads[k].min().double_value(&[]) - 4.0 / 3.0).abs() < 1e-6);
            }
            assert!((grads[2].mean(Kind::Float).double_value(&[]) - 2.0 / 3.0).abs() < 1e-6);
            assert!(!grads[3].defined());
        }
        assert!(outs[0][1].equal(&outs[1][1]));
    }
}
