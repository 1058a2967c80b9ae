//! DVBPR's parameters: the image tower (CNN-F, or a pretrained backbone and a head), the user
//! vectors and the item embeddings in one `ParamStore`; where a pretrained backbone comes from
//! (a checkpoint, a given encoder, an autoencoder pretrained on the bank, a weights file); phi
//! of images.
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use tch::{nn, Device, Kind, Tensor};

use super::config::DvbprConfig;
use super::feed::{upload, ImageFeed};
use crate::data::ItemImages;
use crate::error::{Error, Result};
use crate::models::cae::{Autoencoder, CaeConfig};
use crate::models::core::{FitStart, ModelParams, ParamStore};
use crate::nets::cnnf::{CnnF, CnnFConfig};
use crate::nets::towers::{cae_tower, inception_tower, read_inception_weights, InceptionConfig};
use crate::nets::ImageTower;
use crate::train::{Control, EpochLog, Event};

/// A tower's pretrained weights: `map[prefix + name]`, `what` naming them in errors.
pub struct Pretrained<'a> {
    pub map: &'a HashMap<String, Tensor>,
    pub prefix: &'a str,
    pub what: String,
}

/// Prefix of a frozen backbone's tensors (buffers of the store) in saved models and checkpoints.
pub const FROZEN: &str = "frozen.";
/// The buffer of phi of every catalogue item.
pub const ITEMS: &str = "item_embeddings";

/// The trained parameters and what scoring reads.
pub struct DvbprParams {
    /// The image network (under "tower") and one vector per user ("theta"); as buffers, a
    /// frozen backbone ("frozen.<name>": the tower's own store) and the item embeddings.
    pub store: ParamStore,
    /// The image network (behind a lock: the training step and `embed_new_items` run it from
    /// other threads).
    pub tower: Mutex<Box<dyn ImageTower>>,
    pub theta: Tensor,
    /// phi of every catalogue item (n_items, factors), on the model's device.
    pub items: Tensor,
    /// The losses of the autoencoder pretrained by the fit (tower="cae", no encoder).
    pub pretrain_history: Vec<EpochLog>,
}

/// No learnt per-item table: every item is embedded from its image.
impl ModelParams for DvbprParams {
    fn store(&self) -> &ParamStore {
        &self.store
    }
}

impl DvbprParams {
    /// Trainable variables by name, sorted (a stable order for the optimiser state).
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.store.vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// A new network, user vectors and (zero) item embeddings on `device` (seeded). Towers on a
/// pretrained backbone copy it from `pretrained` (a fine-tuned Inception may do without: its
/// backbone is in the store, loaded by the caller).
pub fn build_net(cfg: &DvbprConfig, device: Device, (n_users, n_items): (usize, usize), pretrained: Option<&Pretrained<'_>>) -> Result<DvbprParams> {
    crate::nets::random::reseed(crate::sampling::rng::sub_seed(cfg.common.seed, crate::sampling::rng::streams::INIT, 7));
    let mut store = ParamStore::new(device);
    let root = store.vs.root();
    let size = cfg.image_size as i64;
    let k = cfg.factors as i64;
    let tower: Box<dyn ImageTower> = match cfg.tower.as_str() {
        "cnnf" => Box::new(CnnF::new(
            &(&root / "tower"),
            CnnFConfig {
                height: size,
                width: size,
                out_dim: k,
                fc_width: cfg.fc_width as i64,
                space_to_depth: cfg.space_to_depth.unwrap_or(crate::tensors::gpu_path(device)),
                channels_last: cfg.channels_last.unwrap_or(crate::tensors::gpu_path(device)),
                bf16: cfg.bf16.unwrap_or(crate::tensors::gpu_path(device)),
            },
        )?),
        "cae" => {
            let p = pretrained.ok_or_else(|| Error::state("the CAE tower needs the encoder's weights"))?;
            let tower = cae_tower(&(&root / "tower"), size, &cfg.cae_shape(), p.map, p.prefix, k, &cfg.head_config());
            Box::new(tower.map_err(|e| Error::invalid(format!("{}: {e}", p.what)))?)
        }
        "inception_v3" => {
            let icfg = InceptionConfig { train_backbone: cfg.train_backbone, transform_input: cfg.transform_input, head: cfg.head_config() };
            let (map, prefix, what) = match pretrained {
                Some(p) => (Some(p.map), p.prefix, p.what.as_str()),
                None => (None, "", ""),
            };
            Box::new(inception_tower(&(&root / "tower"), size, k, &icfg, map, prefix, what)?)
        }
        other => return Err(Error::invalid(format!("unknown tower {other:?}"))),
    };
    let theta = crate::nets::random::var(&root, "theta", &[n_users as i64, k], nn::Init::Randn { mean: 0.0, stdev: cfg.init_std })?;
    for (name, t) in tower.frozen_state() {
        store.set_buffer(&format!("{FROZEN}{name}"), t);
    }
    let items = Tensor::f_zeros([n_items as i64, k], (Kind::Float, device))?;
    store.set_buffer(ITEMS, items.shallow_clone());
    Ok(DvbprParams { store, tower: Mutex::new(tower), theta, items, pretrain_history: Vec::new() })
}

/// tower="cae" without an encoder: an autoencoder trained on every image of the bank; its
/// encoder's weights and losses. The observer sees no pretraining epochs (the progress bar and
/// the callbacks count DVBPR's), but may stop it (Ctrl-C), which stops the fit.
fn pretrain(cfg: &DvbprConfig, images: &ItemImages, observer: &mut dyn FnMut(&Event<'_>) -> Control) -> Result<(HashMap<String, Tensor>, Vec<EpochLog>)> {
    let shape = cfg.cae_shape();
    let mut cae = Autoencoder::new(CaeConfig {
        latent: shape.latent,
        image_size: shape.image_size,
        channels: shape.channels,
        depth: shape.depth,
        epochs: cfg.pretrain_epochs,
        lr: cfg.pretrain_lr,
        batch_size: cfg.common.batch_size,
        device: cfg.common.device.clone(),
        seed: cfg.common.seed,
    })?;
    let report = cae.fit(&images.bank, &mut |e| match e {
        Event::Progress { total, .. } => observer(&Event::Progress { epoch: 1, samples: 0, total: *total }),
        Event::EpochEnd(_) => Control::Continue,
    })?;
    if report.stopped {
        return Err(Error::state("fit was stopped while the autoencoder was pretrained"));
    }
    Ok((cae.encoder_state()?, cae.history().to_vec()))
}

/// The parameters of a fit on `images`. The tower's pretrained backbone comes from the
/// checkpoint a resumed fit continues from (so it neither pretrains nor reads the weights file
/// again), else from the encoder given, an autoencoder pretrained now, or the Inception
/// weights file.
pub fn build_for_fit(cfg: &DvbprConfig, shape: (usize, usize), images: &ItemImages, device: Device, start: FitStart<'_>) -> Result<DvbprParams> {
    let frozen_in_ckpt = start.resumed.filter(|(_, state)| state.keys().any(|k| k.starts_with(FROZEN)));
    if let Some((path, state)) = frozen_in_ckpt {
        if let Some(encoder) = &cfg.encoder {
            same_encoder(&encoder.weights(), state, path)?;
        }
        return build_net(cfg, device, shape, Some(&Pretrained { map: state, prefix: FROZEN, what: path.display().to_string() }));
    }
    let mut pretrain_history = Vec::new();
    let weights = match cfg.tower.as_str() {
        "cae" => Some(match &cfg.encoder {
            Some(e) => (e.weights(), "encoder".to_string()),
            None => {
                let (weights, history) = pretrain(cfg, images, start.observer)?;
                pretrain_history = history;
                (weights, "the pretrained autoencoder".to_string())
            }
        }),
        // A fine-tuned backbone comes back from the checkpoint.
        "inception_v3" if !(cfg.train_backbone && start.resumed.is_some()) => {
            let path = Path::new(cfg.weights.as_deref().unwrap_or_default());
            Some((read_inception_weights(path)?, path.display().to_string()))
        }
        _ => None,
    };
    let pretrained = weights.as_ref().map(|(map, what)| Pretrained { map, prefix: "", what: what.clone() });
    let mut params = build_net(cfg, device, shape, pretrained.as_ref())?;
    params.pretrain_history = pretrain_history;
    Ok(params)
}

/// Parameters from a saved state; a frozen backbone comes from it too (no encoder or
/// weights file is needed).
pub fn restore(cfg: &DvbprConfig, shape: (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<DvbprParams> {
    let frozen = state.keys().any(|k| k.starts_with(FROZEN));
    let pretrained = frozen.then(|| Pretrained { map: state, prefix: FROZEN, what: "saved model".into() });
    let params = build_net(cfg, device, shape, pretrained.as_ref())?;
    params.store.load(state)?;
    Ok(params)
}

/// A resumed fit given an encoder must be given the one its checkpoint was trained with.
fn same_encoder(encoder: &HashMap<String, Tensor>, state: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let same = encoder.iter().all(|(name, t)| {
        state.get(&format!("{FROZEN}{name}")).is_some_and(|s| s.size() == t.size() && s.f_to_device(Device::Cpu).is_ok_and(|s| s.equal(t)))
    });
    if !same {
        return Err(Error::file(path, "the checkpoint was trained with another encoder; use another checkpoint_dir or resume=False"));
    }
    Ok(())
}

/// The tower behind its lock (a poisoned lock still holds a usable tower: the step that
/// panicked has failed the fit).
pub fn lock(tower: &Mutex<Box<dyn ImageTower>>) -> MutexGuard<'_, Box<dyn ImageTower>> {
    tower.lock().unwrap_or_else(|p| p.into_inner())
}

/// phi of uint8 images; a libtorch panic inside the network becomes an error.
pub fn phi(tower: &dyn ImageTower, images: &Tensor, train: bool) -> Result<Tensor> {
    catch_unwind(AssertUnwindSafe(|| tower.forward_t(images, train))).map_err(|p| {
        let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
        Error::Torch(msg.unwrap_or_else(|| "the image network failed".into()))
    })
}

/// phi of every item (eval mode, no gradient), `batch` images at a time: (n_items, factors) on `device`.
pub fn embed_all(tower: &dyn ImageTower, feed: &ImageFeed, n_items: usize, batch: usize, device: Device) -> Result<Tensor> {
    embed_range(tower, feed, 0..n_items, batch, device)
}

/// phi of items `range` (as [`embed_all`]).
pub fn embed_range(tower: &dyn ImageTower, feed: &ImageFeed, range: std::ops::Range<usize>, batch: usize, device: Device) -> Result<Tensor> {
    let mut parts = Vec::new();
    let _guard = tch::no_grad_guard();
    let end = range.end;
    for start in range.step_by(batch.max(1)) {
        let idx: Vec<i64> = (start as i64..(start + batch).min(end) as i64).collect();
        let items = upload(&Tensor::from_slice(&idx), device)?;
        parts.push(phi(tower, &feed.pixels(&items, &idx)?, false)?);
    }
    if parts.is_empty() {
        return Ok(Tensor::zeros([0, tower.out_dim()], (Kind::Float, device)));
    }
    Ok(Tensor::f_cat(&parts, 0)?)
}

