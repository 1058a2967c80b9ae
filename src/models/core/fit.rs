//! Running a fit: the loop, validation, the observer, and checkpoints / resume, in one place
//! for every model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use super::{to_cpu, ParamStore};
use crate::data::{Interactions, SideInfo};
use crate::error::{Error, Result};
use crate::metrics::Validation;
use crate::models::validator;
use crate::train::{fit_loop, BatchSource, BatchStep, Control, EpochLog, Event, FitReport, LoopConfig};

/// What a model's `train` runs its step through: the loop's settings, validation, the
/// observer, and the checkpoints (resume). Later also the place of the collective for
/// training on several processes.
pub struct FitCtx<'a> {
    pub loop_cfg: LoopConfig,
    pub(super) train: &'a Interactions,
    pub(super) validation: Option<&'a Validation<'a>>,
    pub(super) observer: &'a mut dyn FnMut(&Event<'_>) -> Control,
    pub(super) store: &'a ParamStore,
    pub(super) checkpoint: Option<Checkpoint>,
    /// The checkpoint's tensors when the fit is resumed.
    pub(super) resumed: Option<HashMap<String, Tensor>>,
}

impl FitCtx<'_> {
    /// Whether scores are read after every epoch (validation data was given).
    pub fn validates(&self) -> bool {
        self.validation.is_some()
    }

    /// Runs `step` over `source` for the configured epochs; `score` gives the validation
    /// scores (a CPU or device tensor). With a checkpoint to resume from, the parameters and
    /// the step's state are put back first and the fit continues at the next epoch, drawing
    /// the batches the uninterrupted fit would have drawn.
    pub fn run<B: BatchSource>(
        self,
        step: &mut dyn BatchStep<B>,
        source: &B,
        score: &dyn Fn(&[i64]) -> Result<Tensor>,
    ) -> Result<FitReport> {
        let FitCtx { mut loop_cfg, train, validation, observer, store, checkpoint, resumed } = self;
        let mut history = Vec::new();
        if let (Some(ck), Some(state)) = (&checkpoint, resumed) {
            let bad = |e: Error| Error::file(&ck.path, e.to_string());
            store.load(&state).map_err(bad)?;
            step.restore_state(&state).map_err(bad)?;
            (loop_cfg.start_epoch, history) = ck.progress(&state)?;
        }
        let sync = loop_cfg.sync.clone();
        if let Some(sync) = &sync {
            // Every rank starts from rank 0's parameters and resumes at rank 0's epoch.
            let start = sync.sum_one(if sync.rank() == 0 { loop_cfg.start_epoch as f64 } else { 0.0 })? as usize;
            if start != loop_cfg.start_epoch {
                return Err(Error::invalid(format!(
                    "distributed fit: rank {} resumes at epoch {} but rank 0 at epoch {start}; every rank must see the same checkpoint_dir",
                    sync.rank(),
                    loop_cfg.start_epoch
                )));
            }
            let tensors: Vec<Tensor> = store.state().into_iter().map(|(_, t)| t).collect();
            sync.broadcast_all(&tensors)?;
        }
        let score = |u: &[i64]| -> Result<Tensor> { to_cpu(score(u)?) };
        let mut validate = validator(train, validation, score)?;
        let mut after_epoch = |step: &dyn BatchStep<B>, log: &EpochLog| -> Result<()> {
            history.push(log.clone());
            let Some(ck) = &checkpoint else { return Ok(()) };
            match &sync {
                None => ck.write(store, step, &history),
                // Rank 0 writes; the others wait until the file is complete.
                Some(sync) => {
                    let written = if sync.rank() == 0 { ck.write(store, step, &history) } else { Ok(()) };
                    let failed = sync.sum_one(written.is_err() as u8 as f64)? > 0.0;
                    written?;
                    if failed {
                        return Err(Error::state("rank 0 could not write the checkpoint (its error says why)"));
                    }
                    Ok(())
                }
            }
        };
        let mut report = if loop_cfg.start_epoch < loop_cfg.epochs {
            fit_loop(step, source, &loop_cfg, &mut validate, &mut after_epoch, observer)?
        } else {
            FitReport::default()
        };
        drop(validate);
        report.history = history;
        Ok(report)
    }
}

/// The checkpoint of one fit: its file, and what it must match to be resumed from.
pub(super) struct Checkpoint {
    pub(super) path: PathBuf,
    /// The configuration without the fields a resumed fit may change (epochs, threads, device).
    config: String,
    /// Users, items and interactions of the training data.
    data: [i64; 3],
}

const CKPT_EPOCH: &str = "ckpt.epoch";
const CKPT_HISTORY: &str = "ckpt.history";
const CKPT_CONFIG: &str = "ckpt.config";
const CKPT_DATA: &str = "ckpt.data";

impl Checkpoint {
    pub(super) fn new<C: Serialize>(kind: &str, dir: &Path, cfg: &C, train: &Interactions) -> Result<Self> {
        let mut config = serde_json::to_value(cfg).map_err(|e| Error::state(e.to_string()))?;
        if let Value::Object(map) = &mut config {
            for key in ["epochs", "threads", "device"] {
                map.remove(key);
            }
        }
        let path = dir.join(format!("{kind}-checkpoint.safetensors"));
        // A checkpoint that cannot be written is an error now, before any training, not after
        // the first epoch: the folder is made and a file created in it and removed.
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
        let probe = dir.join(format!(".{kind}-checkpoint.probe-{}", std::process::id()));
        std::fs::OpenOptions::new().write(true).create_new(true).open(&probe).map_err(|e| Error::io(&probe, &e))?;
        let _ = std::fs::remove_file(&probe);
        let data = [train.n_users() as i64, train.n_items() as i64, train.nnz() as i64];
        Ok(Checkpoint { path, config: config.to_string(), data })
    }

    /// Parameters, the step's state (optimiser moments), the epochs done and their history,
    /// through a temporary file.
    fn write<B: BatchSource>(&self, store: &ParamStore, step: &dyn BatchStep<B>, history: &[EpochLog]) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
        }
        let text = |s: &str| Tensor::from_slice(s.as_bytes());
        let mut all: Vec<(String, Tensor)> = store.state().into_iter().chain(step.state()).collect();
        for (_, t) in all.iter_mut() {
            *t = t.f_detach()?.f_to_device(Device::Cpu)?;
        }
        all.push((CKPT_EPOCH.into(), Tensor::from_slice(&[history.last().map_or(0, |h| h.epoch) as i64])));
        all.push((CKPT_HISTORY.into(), text(&serde_json::to_string(history).map_err(|e| Error::state(format!("history: {e}")))?)));
        all.push((CKPT_CONFIG.into(), text(&self.config)));
        all.push((CKPT_DATA.into(), Tensor::from_slice(&self.data)));
        crate::io::replace_with(&self.path, |tmp| {
            Tensor::write_safetensors(&all, tmp).map_err(|e| Error::file(&self.path, format!("cannot write the checkpoint: {e}")))
        })
    }

    /// The checkpoint's tensors, checked to be one of a model with these settings trained on
    /// this data.
    pub(super) fn open(&self) -> Result<HashMap<String, Tensor>> {
        let bad = |m: String| Error::file(&self.path, m);
        let state: HashMap<String, Tensor> =
            Tensor::read_safetensors(&self.path).map_err(|e| bad(format!("not a checkpoint: {e}")))?.into_iter().collect();
        if ckpt_text(&state, CKPT_CONFIG).map_err(bad)? != self.config {
            return Err(bad("the checkpoint was written with other settings than this model's; use another checkpoint_dir or resume=False".into()));
        }
        let data = state.get(CKPT_DATA).and_then(|t| Vec::<i64>::try_from(t).ok());
        if data.as_deref() != Some(self.data.as_slice()) {
            return Err(bad("the checkpoint was trained on other data (users, items or interactions differ)".into()));
        }
        Ok(state)
    }

    /// Epochs done and their history.
    fn progress(&self, state: &HashMap<String, Tensor>) -> Result<(usize, Vec<EpochLog>)> {
        let bad = |m: String| Error::file(&self.path, m);
        let epoch = state.get(CKPT_EPOCH).ok_or_else(|| bad(format!("not a checkpoint (no '{CKPT_EPOCH}')")))?;
        let epoch = epoch.f_int64_value(&[0])?;
        let history: Vec<EpochLog> = serde_json::from_str(&ckpt_text(state, CKPT_HISTORY).map_err(bad)?)
            .map_err(|e| bad(format!("bad history: {e}")))?;
        if epoch < 0 || history.len() != epoch as usize {
            return Err(bad(format!("the checkpoint's history ({} epochs) does not match its epoch {epoch}", history.len())));
        }
        Ok((epoch as usize, history))
    }
}

fn ckpt_text(state: &HashMap<String, Tensor>, key: &str) -> std::result::Result<String, String> {
    let t = state.get(key).ok_or_else(|| format!("not a checkpoint (no '{key}')"))?;
    let bytes = Vec::<u8>::try_from(t.f_to_kind(Kind::Uint8).and_then(|t| t.f_flatten(0, -1)).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| format!("checkpoint: {key} is not UTF-8"))
}

/// A fingerprint of the training data and side data, compared between the ranks of a
/// distributed fit: the interactions (indices and values), the feature tables, the
/// categories, and the images' rows (not their pixels).
pub(super) fn fingerprint(train: &Interactions, side: &SideInfo) -> u64 {
    let mut a = crc32fast::Hasher::new();
    let mut b = crc32fast::Hasher::new();
    let csr = train.by_user();
    a.update(&(train.n_users() as u64).to_le_bytes());
    a.update(&(train.n_items() as u64).to_le_bytes());
    csr.indptr.iter().for_each(|p| a.update(&(*p as u64).to_le_bytes()));
    csr.indices.iter().for_each(|i| a.update(&i.to_le_bytes()));
    csr.values.iter().flatten().for_each(|v| a.update(&v.to_le_bytes()));
    for table in [&side.user_features, &side.item_features].into_iter().flatten() {
        b.update(&(table.n_rows as u64).to_le_bytes());
        for c in &table.categorical {
            b.update(c.name.as_bytes());
            c.values.iter().for_each(|v| b.update(v.as_bytes()));
        }
        if let Some(m) = &table.continuous {
            m.data.iter().for_each(|v| b.update(&v.to_le_bytes()));
        }
    }
    side.categories.iter().for_each(|c| c.iter().for_each(|v| b.update(&v.to_le_bytes())));
    if let Some(images) = &side.images {
        b.update(&(images.bank.len() as u64).to_le_bytes());
        images.rows.iter().for_each(|r| r.iter().for_each(|v| b.update(&v.to_le_bytes())));
    }
    (a.finalize() as u64) << 32 | b.finalize() as u64
}
