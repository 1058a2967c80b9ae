//! The one training loop. A model supplies a [`BatchStep`]; the loop draws batches from the
//! sampler, runs the steps, reports progress and per-epoch losses to an observer, and stops
//! cleanly when the observer says so (Ctrl-C, an early-stopping callback) with the model's
//! parameters as they are after the last finished step.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sampling::{TripleBatch, TripleSampler};

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
}

/// What a model does with one batch.
pub trait BatchStep: Send {
    /// Called before the first batch of each epoch (0-based), e.g. to set a learning rate.
    fn begin_epoch(&mut self, _epoch: usize, _epochs: usize) -> Result<()> {
        Ok(())
    }
    /// Update the parameters from one batch.
    fn step(&mut self, batch: &TripleBatch) -> Result<()>;
    /// Draw `size` triples (stream `stream` of `seed`) into `batch` and train on them.
    /// Kernels that sample inside their own parallel loop override this to skip the buffer;
    /// they must draw the same triples (see [`TripleSampler::chunks`]).
    fn sample_and_step(
        &mut self,
        sampler: &TripleSampler<'_>,
        batch: &mut TripleBatch,
        size: usize,
        seed: u64,
        stream: u64,
    ) -> Result<()> {
        sampler.fill(batch, size, seed, stream);
        self.step(batch)
    }
    /// The summed per-sample loss since the last call (models on a GPU accumulate it there,
    /// so a step never waits for the device).
    fn take_loss(&mut self) -> Result<f64>;
}

#[derive(Debug, Clone)]
pub struct LoopConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Threads for sampling and parallel steps; 0 means one per core.
    pub threads: usize,
}

#[derive(Debug, Clone, Default)]
pub struct FitReport {
    pub history: Vec<EpochLog>,
    /// True when the observer stopped training before the last epoch.
    pub stopped: bool,
}

pub fn fit_triples(
    model: &mut dyn BatchStep,
    sampler: &TripleSampler<'_>,
    cfg: &LoopConfig,
    validate: &mut Validate<'_>,
    observer: &mut dyn FnMut(&Event<'_>) -> Control,
) -> Result<FitReport> {
    if cfg.batch_size == 0 {
        return Err(Error::invalid("batch_size must be at least 1"));
    }
    let total = sampler.epoch_len();
    let n_batches = total.div_ceil(cfg.batch_size);
    let pool = ThreadPool::new(cfg.threads)?;
    let mut report = FitReport::default();
    let mut batch = TripleBatch::default();
    for epoch in 0..cfg.epochs {
        let start = Instant::now();
        model.begin_epoch(epoch, cfg.epochs)?;
        let mut done = 0;
        while done < n_batches {
            // Batches run in rounds of up to ROUND on a pool thread, so the parallel work
            // inside is dispatched cheaply; between rounds the observer runs here, on the
            // calling thread (where Python can see Ctrl-C).
            done = pool.run(|| -> Result<usize> {
                let round = Instant::now();
                let mut b = done;
                while b < n_batches {
                    let size = cfg.batch_size.min(total - b * cfg.batch_size);
                    model.sample_and_step(sampler, &mut batch, size, cfg.seed, (epoch * n_batches + b) as u64)?;
                    b += 1;
                    if round.elapsed() >= ROUND {
                        break;
                    }
                }
                Ok(b)
            })?;
            let samples = (done * cfg.batch_size).min(total);
            if done < n_batches && observer(&Event::Progress { epoch: epoch + 1, samples, total }) == Control::Stop {
                report.stopped = true;
                return Ok(report);
            }
        }
        let loss = model.take_loss()? / total as f64;
        if !loss.is_finite() {
            return Err(Error::state(format!(
                "training diverged in epoch {}: the loss is {loss}; lower the learning rate or raise reg",
                epoch + 1
            )));
        }
        let seconds = start.elapsed().as_secs_f64();
        let log = EpochLog { epoch: epoch + 1, loss, seconds, metrics: validate()? };
        report.history.push(log.clone());
        if observer(&Event::EpochEnd(&log)) == Control::Stop {
            report.stopped = epoch + 1 < cfg.epochs;
            return Ok(report);
        }
    }
    Ok(report)
}

/// Longest stretch of batches between two observer calls.
const ROUND: Duration = Duration::from_millis(50);

/// A rayon pool for one fit: `threads` threads, or one per core for 0.
pub struct ThreadPool(rayon::ThreadPool);

impl ThreadPool {
    pub fn new(threads: usize) -> Result<Self> {
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
