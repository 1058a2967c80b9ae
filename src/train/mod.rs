//! The one training loop. A model supplies a [`BatchStep`] over a [`BatchSource`]; the loop
//! draws batches from the source, runs the steps, reports progress and per-epoch losses to an observer, and stops
//! cleanly when the observer says so (Ctrl-C, an early-stopping callback) with the model's
//! parameters as they are after the last finished step.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::Tensor;

use crate::error::{Error, Result};
use crate::sampling::rng::{streams, sub_seed};

pub mod adam;
pub mod distributed;
pub mod rows;
pub mod sparse_adam;
pub mod torch_step;

pub use distributed::{GradSync, Shard};
pub use rows::RowBatches;

/// The loss of one epoch, as kept in a model's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean loss per sample over the epoch (without the regularisation term).
    pub loss: f64,
    /// Wall time of the epoch's training (validation excluded).
    pub seconds: f64,
    /// Validation metrics after the epoch ("val_auc", ...), when validation data was given.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

/// Computes the validation metrics after an epoch (empty without validation data).
pub type Validate<'a> = dyn FnMut() -> Result<BTreeMap<String, f64>> + 'a;

#[derive(Debug)]
pub enum Event<'a> {
    /// A batch finished: `samples` of `total` in this epoch are done.
    Progress { epoch: usize, samples: usize, total: usize },
    EpochEnd(&'a EpochLog),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
    /// Stop because of an error the caller will raise (on several processes, the other
    /// ranks stop with an error too).
    Fail,
}

/// Where batches come from: a seeded, model-free sampler (triples of users, positives and
/// negatives; pairs of items; plain rows). `fill` must give the same batch for the same
/// (seed, batch) whatever the thread count.
pub trait BatchSource: Sync {
    type Batch: Default + Send + Shard;
    /// Samples in one epoch.
    fn epoch_len(&self) -> usize;
    /// Fill `batch` with `size` samples: batch number `batch` (0-based over the whole fit,
    /// so no two batches of a fit share a random stream) of `seed`.
    fn fill(&self, batch: &mut Self::Batch, size: usize, seed: u64, batch_index: u64);
    /// Called before each epoch (0-based), e.g. to reshuffle.
    fn begin_epoch(&self, _epoch: usize) {}
}

/// What a model does with the batches of a source.
pub trait BatchStep<S: BatchSource>: Send {
    /// Called before the first batch of each epoch (0-based), e.g. to set a learning rate.
    fn begin_epoch(&mut self, _epoch: usize, _epochs: usize) -> Result<()> {
        Ok(())
    }
    /// Update the parameters from one batch.
    fn step(&mut self, batch: &S::Batch) -> Result<()>;
    /// Called before batch `batch_index` of `seed` is drawn (e.g. to seed what the step
    /// draws itself: dropout masks, negatives).
    fn begin_batch(&mut self, _seed: u64, _batch_index: u64) {}
    /// Draw `size` samples (batch `batch_index` of `seed`) into `batch` and train on them.
    /// Kernels that sample inside their own parallel loop override this to skip the buffer;
    /// they must draw the same samples (see [`crate::sampling::TripleSampler::chunks`]).
    fn sample_and_step(
        &mut self,
        source: &S,
        batch: &mut S::Batch,
        size: usize,
        seed: u64,
        batch_index: u64,
    ) -> Result<()> {
        self.begin_batch(seed, batch_index);
        source.fill(batch, size, seed, batch_index);
        self.step(batch)
    }
    /// Training on several processes: the step's optimisers sum their gradients over the
    /// ranks through `sync` (see [`distributed`]). Steps that cannot refuse.
    fn distribute(&mut self, _sync: &GradSync) -> Result<()> {
        Err(Error::invalid("this model's training step cannot run on several processes"))
    }
    /// The summed per-sample loss since the last call (models on a GPU accumulate it there,
    /// so a step never waits for the device).
    fn take_loss(&mut self) -> Result<f64>;
    /// Called after the last batch of each epoch and before validation: models whose scores
    /// come from derived item embeddings (a CNN over images, a feature tower) recompute them.
    fn end_epoch(&mut self, _epoch: usize) -> Result<()> {
        Ok(())
    }
    /// libtorch's intra-op threads while this step runs (None: libtorch's setting). Steps of
    /// small tensors on the CPU say 1: the loop's pool already uses every core for sampling,
    /// and an OpenMP team per small op costs more than it saves (measured 3-4x slower on 2
    /// cores for the embedding models).
    fn intra_op_threads(&self) -> Option<i32> {
        None
    }
    /// What a checkpoint must hold besides the parameters to resume exactly (optimiser
    /// moments and step count), as named tensors.
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
    /// Puts back what [`BatchStep::state`] gave.
    fn restore_state(&mut self, _state: &HashMap<String, Tensor>) -> Result<()> {
        Ok(())
    }
}

/// Sets libtorch's intra-op threads of the calling thread (OpenMP's setting is per thread)
/// and puts the previous value back when dropped.
struct IntraOpThreads(Option<i32>);

impl IntraOpThreads {
    fn set(n: Option<i32>) -> Self {
        IntraOpThreads(n.filter(|&n| n > 0).map(|n| {
            let before = tch::get_num_threads();
            tch::set_num_threads(n);
            before
        }))
    }
}

impl Drop for IntraOpThreads {
    fn drop(&mut self) {
        if let Some(n) = self.0 {
            tch::set_num_threads(n.max(1));
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct LoopConfig {
    /// Epochs of the whole fit (a resumed fit counts the ones done before).
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Threads for sampling and parallel steps; 0 means one per core.
    pub threads: usize,
    /// The first epoch to run (0-based): a fit resumed after `start_epoch` epochs draws the
    /// batches, learning rates and epoch numbers the uninterrupted fit would have.
    pub start_epoch: usize,
    /// Training on several processes: each rank trains on its share of every global batch.
    pub sync: Option<GradSync>,
}

#[derive(Debug, Clone, Default)]
pub struct FitReport {
    pub history: Vec<EpochLog>,
    /// True when the observer stopped training before the last epoch.
    pub stopped: bool,
}

/// Called after each epoch's validation, before the observer (a checkpoint writer).
pub type AfterEpoch<'a, S> = dyn FnMut(&dyn BatchStep<S>, &EpochLog) -> Result<()> + 'a;

/// Train `model` for epochs `cfg.start_epoch..cfg.epochs` over `source`. Returns early
/// (`stopped`) when the observer says so; a non-finite epoch loss is an error.
pub fn fit_loop<S: BatchSource>(
    model: &mut dyn BatchStep<S>,
    source: &S,
    cfg: &LoopConfig,
    validate: &mut Validate<'_>,
    after_epoch: &mut AfterEpoch<'_, S>,
    observer: &mut dyn FnMut(&Event<'_>) -> Control,
) -> Result<FitReport> {
    if cfg.batch_size == 0 {
        return Err(Error::invalid("batch_size must be at least 1"));
    }
    let total = source.epoch_len();
    if total == 0 {
        return Err(Error::invalid("nothing to train on: the training data yields no samples"));
    }
    let n_batches = total.div_ceil(cfg.batch_size);
    if let Some(sync) = &cfg.sync {
        model.distribute(sync)?;
    }
    let pool = ThreadPool::new(cfg.threads)?;
    let mut report = FitReport::default();
    let mut batch = S::Batch::default();
    for epoch in cfg.start_epoch..cfg.epochs {
        let start = Instant::now();
        source.begin_epoch(epoch);
        model.begin_epoch(epoch, cfg.epochs)?;
        let mut done = 0;
        while done < n_batches {
            // Batches run in rounds of up to ROUND on a pool thread, so the parallel work
            // inside is dispatched cheaply; between rounds the observer runs here, on the
            // calling thread (where Python can see Ctrl-C).
            let (d, stop) = pool.run(|| -> Result<(usize, bool)> {
                let _threads = IntraOpThreads::set(model.intra_op_threads());
                let round = Instant::now();
                let mut b = done;
                while b < n_batches {
                    // b < n_batches = ceil(total / batch_size): b * batch_size < total.
                    let size = cfg.batch_size.min(total.saturating_sub(b.saturating_mul(cfg.batch_size)));
                    let index = epoch.checked_mul(n_batches).and_then(|i| i.checked_add(b)).ok_or_else(|| {
                        Error::invalid(format!("epoch {epoch} of {n_batches} batches: the batch index overflows"))
                    })? as u64;
                    b = b.saturating_add(1);
                    // What the step draws (dropout masks) depends on the batch alone, on any
                    // of the pool's threads: a resumed fit draws what the uninterrupted one did.
                    crate::nets::random::reseed(sub_seed(cfg.seed, streams::MODEL, index));
                    if let Some(sync) = &cfg.sync {
                        if shared_step(model, source, &mut batch, size, cfg.seed, index, sync)? {
                            return Ok((b, true));
                        }
                    } else {
                        model.sample_and_step(source, &mut batch, size, cfg.seed, index)?;
                    }
                    if round.elapsed() >= ROUND {
                        break;
                    }
                }
                Ok((b, false))
            })?;
            done = d;
            if stop {
                report.stopped = true;
                return Ok(report);
            }
            let samples = done.saturating_mul(cfg.batch_size).min(total);
            if done < n_batches {
                let said = observer(&Event::Progress { epoch: epoch.saturating_add(1), samples, total });
                if said != Control::Continue && !stop_or_ask(cfg, said) {
                    report.stopped = true;
                    return Ok(report);
                }
            }
        }
        let mut loss = model.take_loss()?;
        if let Some(sync) = &cfg.sync {
            loss = sync.sum_one(loss)?;
        }
        let loss = loss / total as f64;
        model.end_epoch(epoch)?;
        if !loss.is_finite() {
            return Err(Error::state(format!(
                "training diverged in epoch {}: the loss is {loss}; lower lr or raise reg",
                epoch.saturating_add(1)
            )));
        }
        let seconds = start.elapsed().as_secs_f64();
        let log = EpochLog { epoch: epoch.saturating_add(1), loss, seconds, metrics: validate()? };
        report.history.push(log.clone());
        after_epoch(&*model, &log)?;
        let said = observer(&Event::EpochEnd(&log));
        let stop = match &cfg.sync {
            None => said != Control::Continue,
            Some(sync) => {
                if said != Control::Continue {
                    stop_or_ask(cfg, said);
                }
                agreed_stop(sync.exchange()?)?
            }
        };
        if stop {
            report.stopped = epoch.saturating_add(1) < cfg.epochs;
            return Ok(report);
        }
    }
    Ok(report)
}

/// One step on several processes: this rank's share of the global batch, then the ranks'
/// agreement on stopping. True when every rank stops here.
fn shared_step<S: BatchSource>(
    model: &mut dyn BatchStep<S>,
    source: &S,
    batch: &mut S::Batch,
    size: usize,
    seed: u64,
    index: u64,
    sync: &GradSync,
) -> Result<bool> {
    model.begin_batch(seed, index);
    source.fill(batch, size, seed, index);
    let global = batch.samples();
    let mine = sync.begin_batch(global);
    batch.keep(mine.clone());
    // An error here leaves the other ranks waiting in a collective until the group's
    // timeout (or until this process exits and the group notices).
    distributed::with_share((mine, global), || model.step(batch))?;
    agreed_stop(sync.after_step()?)
}

/// What the observer said (Stop or Fail) under several processes is asked of every rank at
/// the next exchange; in one process the loop stops now (returns false).
fn stop_or_ask(cfg: &LoopConfig, said: Control) -> bool {
    match &cfg.sync {
        None => false,
        Some(sync) => {
            if said == Control::Fail {
                sync.report_failure();
            } else {
                sync.request_stop();
            }
            true
        }
    }
}

fn agreed_stop(a: distributed::Agreed) -> Result<bool> {
    if a.failed {
        return Err(Error::state("training stopped: another rank of the process group failed (its own error says why)"));
    }
    Ok(a.stop)
}

/// Longest stretch of batches between two observer calls.
const ROUND: Duration = Duration::from_millis(50);

/// A rayon pool for one fit: `threads` threads, or one per core for 0.
pub struct ThreadPool(rayon::ThreadPool);

impl ThreadPool {
    pub fn new(threads: usize) -> Result<Self> {
        crate::limits::check_threads("threads", threads)?;
        let n = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("fashionrec-{i}"))
            .build()
            .map(ThreadPool)
            .map_err(|e| Error::state(format!("cannot start {n} threads: {e}")))
    }

    /// Run `f` on one of the pool's threads, with its parallel iterators on the pool.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.0.install(f)
    }
}
