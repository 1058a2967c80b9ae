//! DVBPR (Kang et al. 2017): visually-aware recommendation trained end to end from item
//! images. score(u, i) = theta_u . phi(image_i), phi an image network (CNN-F by default),
//! trained on (user, positive, negative) triples to minimise
//! -sum ln sigmoid(theta_u . (phi(i) - phi(j))) + lambda_cnn |conv weights|^2
//! + lambda_fc |fc weights|^2 + lambda_u |theta of the batch's users|^2, with Adam.
//!
//! The catalogue is the image bank's: every item with an image is scored, those without
//! interactions (cold items) included. After each epoch phi is computed for every item in
//! batches, so scoring, validation and recommending never run the network per user; a saved
//! model holds the network and those embeddings, so a loaded one scores without the images.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::cae::{Autoencoder, CaeConfig};
use super::dvbpr_step::{DvbprStep, ImageFeed, Lambdas, Net, Offset, FROZEN};
use super::{check_side, device_top_k, not_fitted, recommend_by_blocks, validator, Recommender};
use crate::data::{IdMaps, Interactions, ItemImages, Need, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::metrics::Validation;
use crate::nets::cae::CaeShape;
use crate::nets::cnnf::{CnnF, CnnFConfig};
use crate::nets::inception::InceptionV3;
use crate::nets::towers::{cae_tower, inception_tower, read_inception_weights, HeadConfig, InceptionConfig};
use crate::nets::ImageTower;
use crate::sampling::TripleSampler;
use crate::tensors::{device_name, parse_device};
use crate::train::{fit_loop, Control, EpochLog, Event, FitReport, LoopConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DvbprConfig {
    /// Dimension of theta_u and phi(image).
    pub k: usize,
    /// The image network: "cnnf" (trained from scratch), "cae" (the frozen encoder of a
    /// convolutional autoencoder + a trained head) or "inception_v3" (ImageNet weights from
    /// `weights`, frozen or fine-tuned, + a trained head).
    pub tower: String,
    /// Side of the (square) images the network takes; the bank must hold images of this size.
    pub image_size: usize,
    pub epochs: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Triples per step (two images each).
    pub batch_size: usize,
    pub lambda_cnn: f64,
    pub lambda_fc: f64,
    pub lambda_u: f64,
    /// Standard deviation of the initial user vectors.
    pub init_std: f64,
    /// "auto", "cpu", "cuda" or "cuda:N".
    pub device: String,
    pub seed: u64,
    /// CPU threads for sampling and gathering images; 0 uses every core.
    pub threads: usize,
    /// CNN-F's fc 4096 layers' width (4096 as in the paper; smaller for quick CPU runs).
    pub fc_width: usize,
    /// CNN-F's conv1 as the equivalent space-to-depth convolution; None: on CUDA only
    /// (on the CPU the plain strided convolution measured faster).
    pub space_to_depth: Option<bool>,
    /// Channels-last activations; None: on CUDA only.
    pub channels_last: Option<bool>,
    /// bfloat16 convolutions and fc layers (float32 weights); None: on CUDA only.
    pub bf16: Option<bool>,
    /// Where the images live during training: "auto" (copied to the GPU when they fit),
    /// "device" (must fit), "host" (gathered per batch into pinned memory).
    pub resident_images: String,
    /// Images per batch when embedding every item.
    pub embed_batch: usize,
    /// Write a checkpoint (model, optimiser, epoch) there after every epoch.
    pub checkpoint_dir: Option<String>,
    /// Continue from the checkpoint in `checkpoint_dir` when there is one.
    pub resume: bool,
    /// The trained head on a pretrained backbone (towers "cae" and "inception_v3"); None:
    /// the tower's default (cae: hidden 512, inception_v3: one linear layer; dropout 0.5).
    pub head: Option<HeadConfig>,
    /// tower="cae": the autoencoder's code size, first-layer channels and number of stride-2
    /// convolutions. Taken from the encoder when one is given ([`Recommender::set_encoder`]),
    /// else the shape of the autoencoder pretrained at the start of fit.
    pub latent: i64,
    pub cae_channels: i64,
    pub cae_depth: i64,
    /// tower="cae" without an encoder: epochs and Adam learning rate of the autoencoder
    /// pretrained on the bank's images (batches of `batch_size` images) at the start of fit.
    pub pretrain_epochs: usize,
    pub pretrain_lr: f64,
    /// tower="inception_v3": the safetensors file of ImageNet weights (torchvision names;
    /// `fashionrec.io.convert_inception_weights` writes it). Read by fit only: a saved model
    /// holds the backbone.
    pub weights: Option<String>,
    /// tower="inception_v3": fine-tune the backbone (in the model's store, its conv weights
    /// under lambda_cnn) instead of freezing it.
    pub train_backbone: bool,
    /// tower="inception_v3": torchvision's flag, true for its ImageNet weights.
    pub transform_input: bool,
}

impl Default for DvbprConfig {
    fn default() -> Self {
        DvbprConfig {
            k: 50,
            tower: "cnnf".into(),
            image_size: 224,
            epochs: 20,
            lr: 1e-4,
            batch_size: 128,
            lambda_cnn: 1e-3,
            lambda_fc: 1e-3,
            lambda_u: 1.0,
            init_std: 0.01,
            device: "auto".into(),
            seed: 0,
            threads: 0,
            fc_width: 4096,
            space_to_depth: None,
            channels_last: None,
            bf16: None,
            resident_images: "auto".into(),
            embed_batch: 256,
            checkpoint_dir: None,
            resume: false,
            head: None,
            latent: CaeShape::default().latent,
            cae_channels: CaeShape::default().channels,
            cae_depth: CaeShape::default().depth,
            pretrain_epochs: 10,
            pretrain_lr: 1e-3,
            weights: None,
            train_backbone: false,
            transform_input: true,
        }
    }
}

/// Towers this build can construct.
pub const TOWERS: &[&str] = &["cnnf", "cae", "inception_v3"];

impl DvbprConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        for (name, v) in [("k", self.k), ("fc_width", self.fc_width), ("batch_size", self.batch_size), ("embed_batch", self.embed_batch), ("image_size", self.image_size)] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be a finite number > 0, got {}", self.lr));
        }
        for (name, v) in [("lambda_cnn", self.lambda_cnn), ("lambda_fc", self.lambda_fc), ("lambda_u", self.lambda_u), ("init_std", self.init_std)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be a finite number >= 0, got {v}"));
            }
        }
        if !TOWERS.contains(&self.tower.as_str()) {
            return bad(format!("tower must be one of {}, not {:?}", TOWERS.join(", "), self.tower));
        }
        let tower = self.tower.as_str();
        match tower {
            "cnnf" => {
                CnnF::final_size(self.image_size as i64, self.image_size as i64)?;
            }
            "cae" => {
                self.cae_shape().check()?;
                if !(self.pretrain_lr.is_finite() && self.pretrain_lr > 0.0) {
                    return bad(format!("pretrain_lr must be a finite number > 0, got {}", self.pretrain_lr));
                }
            }
            _ => {
                InceptionV3::check_size(self.image_size as i64)?;
                if self.weights.is_none() {
                    return bad("tower='inception_v3' needs weights=: a safetensors file of ImageNet weights \
                                (fashionrec.io.convert_inception_weights writes one from torchvision's; nothing is downloaded)"
                        .into());
                }
            }
        }
        // Options of the other towers are errors rather than silently ignored.
        if self.weights.is_some() && tower != "inception_v3" {
            return bad(format!("weights= is for tower='inception_v3', this DVBPR has tower={tower:?}"));
        }
        if self.train_backbone && tower != "inception_v3" {
            return bad(format!("train_backbone=True is for tower='inception_v3', this DVBPR has tower={tower:?}"));
        }
        if let Some(head) = &self.head {
            if tower == "cnnf" {
                return bad("head= is for the towers 'cae' and 'inception_v3' (CNN-F has its own fc layers: fc_width)".into());
            }
            head.check()?;
        }
        if !["auto", "device", "host"].contains(&self.resident_images.as_str()) {
            return bad(format!("resident_images must be 'auto', 'device' or 'host', not {:?}", self.resident_images));
        }
        if self.resume && self.checkpoint_dir.is_none() {
            return bad("resume=True needs checkpoint_dir".into());
        }
        Ok(())
    }

    /// The autoencoder shape of tower="cae".
    pub fn cae_shape(&self) -> CaeShape {
        CaeShape { latent: self.latent, image_size: self.image_size as i64, channels: self.cae_channels, depth: self.cae_depth }
    }

    fn head_config(&self) -> HeadConfig {
        self.head.clone().unwrap_or(match self.tower.as_str() {
            "inception_v3" => InceptionConfig::default().head,
            _ => HeadConfig::default(),
        })
    }
}

/// A tower's pretrained weights: `map[prefix + name]`, `what` naming them in errors.
struct Pretrained<'a> {
    map: &'a HashMap<String, Tensor>,
    prefix: &'a str,
    what: String,
}

/// The fitted state.
struct Fitted {
    net: Net,
    /// phi of every catalogue item (n_items, k), on the model's device.
    items: Tensor,
}

pub struct Dvbpr {
    config: DvbprConfig,
    fitted: Option<Fitted>,
    ids: Option<IdMaps>,
    history: Vec<EpochLog>,
    /// tower="cae": the weights of a trained encoder given by the caller (names as in its
    /// own store), used by fit instead of pretraining one.
    encoder: Option<HashMap<String, Tensor>>,
    /// The losses of the autoencoder pretrained by the last fit (tower="cae", no encoder).
    pretrain_history: Vec<EpochLog>,
}

const CHECKPOINT: &str = "dvbpr-checkpoint.safetensors";
const ITEMS: &str = "item_embeddings";

impl Dvbpr {
    pub fn new(config: DvbprConfig) -> Result<Self> {
        config.validate()?;
        Ok(Dvbpr { config, fitted: None, ids: None, history: Vec::new(), encoder: None, pretrain_history: Vec::new() })
    }

    fn fitted(&self) -> Result<&Fitted> {
        self.fitted.as_ref().ok_or_else(|| not_fitted("DVBPR"))
    }

    /// A new network and user vectors on `device` (seeded). Towers on a pretrained backbone
    /// copy it from `pretrained` (a fine-tuned Inception may do without: its backbone is in
    /// the store, restored by the caller).
    fn build_net(&self, device: Device, n_users: usize, pretrained: Option<&Pretrained<'_>>) -> Result<Net> {
        let cfg = &self.config;
        tch::manual_seed(crate::sampling::rng::sub_seed(cfg.seed, crate::sampling::rng::streams::INIT, 7) as i64 >> 1);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let size = cfg.image_size as i64;
        let k = cfg.k as i64;
        let tower: Box<dyn ImageTower> = match cfg.tower.as_str() {
            "cnnf" => Box::new(CnnF::new(
                &(&root / "tower"),
                CnnFConfig {
                    height: size,
                    width: size,
                    out_dim: k,
                    fc_width: cfg.fc_width as i64,
                    space_to_depth: cfg.space_to_depth.unwrap_or(device.is_cuda()),
                    channels_last: cfg.channels_last.unwrap_or(device.is_cuda()),
                    bf16: cfg.bf16.unwrap_or(device.is_cuda()),
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
        let theta = root.var("theta", &[n_users as i64, k], nn::Init::Randn { mean: 0.0, stdev: cfg.init_std });
        Ok(Net { vs, tower, theta })
    }

    /// tower="cae" without an encoder: an autoencoder trained on every image of the bank; its
    /// encoder's weights. The observer sees no pretraining epochs (the progress bar and the
    /// callbacks count DVBPR's), but may stop it (Ctrl-C), which stops the fit.
    fn pretrain(&mut self, images: &ItemImages, observer: &mut dyn FnMut(&Event<'_>) -> Control) -> Result<HashMap<String, Tensor>> {
        let cfg = &self.config;
        let shape = cfg.cae_shape();
        let mut cae = Autoencoder::new(CaeConfig {
            latent: shape.latent,
            image_size: shape.image_size,
            channels: shape.channels,
            depth: shape.depth,
            epochs: cfg.pretrain_epochs,
            lr: cfg.pretrain_lr,
            batch_size: cfg.batch_size,
            device: cfg.device.clone(),
            seed: cfg.seed,
        })?;
        let report = cae.fit(&images.bank, &mut |e| match e {
            Event::Progress { total, .. } => observer(&Event::Progress { epoch: 1, samples: 0, total: *total }),
            Event::EpochEnd(_) => Control::Continue,
        })?;
        if report.stopped {
            return Err(Error::state("fit was stopped while the autoencoder was pretrained"));
        }
        self.pretrain_history = cae.history().to_vec();
        cae.encoder_state()
    }

    fn checkpoint_path(&self) -> Option<PathBuf> {
        self.config.checkpoint_dir.as_ref().map(|d| Path::new(d).join(CHECKPOINT))
    }

    /// The configuration fields a checkpoint must agree on to be resumed.
    fn resumable_config(&self) -> String {
        let mut c = self.config.clone();
        c.checkpoint_dir = None;
        c.resume = false;
        c.epochs = 0;
        serde_json::to_string(&c).unwrap()
    }
}

/// Checks every training item has a decoded image.
fn check_training_images(train: &Interactions, images: &ItemImages) -> Result<()> {
    if images.bank.skipped().is_empty() {
        return Ok(());
    }
    let skipped: std::collections::HashSet<i64> = images.bank.skipped().iter().map(|s| s.0 as i64).collect();
    let counts = train.item_counts();
    for item in 0..train.n_items() {
        let row = images.bank_rows(&[item as i64])?[0];
        if counts[item] > 0 && skipped.contains(&row) {
            return Err(Error::invalid(format!(
                "training item {} has no image (its image could not be decoded: bank row {row})",
                train.ids().items.display(item)
            )));
        }
    }
    Ok(())
}

fn scores(theta: &Tensor, items: &Tensor, users: &[i64]) -> Result<Tensor> {
    let n = theta.size()[0];
    if let Some(&bad) = users.iter().find(|&&u| u < 0 || u >= n) {
        return Err(Error::invalid(format!("user index {bad} out of range for {n} users")));
    }
    let _guard = tch::no_grad_guard();
    let idx = Tensor::from_slice(users).f_to_device(theta.device())?;
    Ok(theta.f_index_select(0, &idx)?.f_matmul(&items.f_tr()?)?)
}

impl Recommender for Dvbpr {
    fn kind(&self) -> &'static str {
        "dvbpr"
    }

    fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap()
    }

    fn needs(&self) -> SideNeeds {
        SideNeeds { images: Need::Required, ..Default::default() }
    }

    fn fit(
        &mut self,
        train: &Interactions,
        side: &SideInfo,
        validation: Option<&Validation<'_>>,
        observer: &mut dyn FnMut(&Event<'_>) -> Control,
        options: &super::FitOptions,
    ) -> Result<FitReport> {
        check_side(self, "DVBPR", train, side)?;
        // fit(checkpoint_dir=, resume=) as every model takes them, or the configuration's.
        if let Some(dir) = &options.checkpoint_dir {
            self.config.checkpoint_dir = Some(dir.display().to_string());
            self.config.resume = options.resume;
        }
        let images = side.images.as_ref().ok_or_else(|| Error::invalid("DVBPR needs images="))?;
        let cfg = self.config.clone();
        let spec = images.bank.spec();
        if spec.height != cfg.image_size || spec.width != cfg.image_size {
            return Err(Error::invalid(format!(
                "the image bank holds {}x{} images but image_size={}; build the bank with size={} (or set image_size)",
                spec.height, spec.width, cfg.image_size, cfg.image_size
            )));
        }
        check_training_images(train, images)?;
        let device = parse_device(&cfg.device)?;
        let sampler = TripleSampler::new(train, 1)?;
        self.fitted = None;
        self.ids = None;
        self.history.clear();
        self.pretrain_history.clear();

        // A checkpoint to resume from is read (and checked against the settings and data)
        // first: it holds the tower's frozen backbone too, so resuming neither pretrains nor
        // reads the weights file again.
        let data_key = Tensor::from_slice(&[train.n_users() as i64, train.n_items() as i64, train.nnz() as i64]);
        let ckpt = match self.checkpoint_path() {
            Some(path) if cfg.resume && path.exists() => Some((open_checkpoint(&path, &self.resumable_config(), &data_key)?, path)),
            _ => None,
        };
        let frozen_in_ckpt = ckpt.as_ref().filter(|(state, _)| state.keys().any(|k| k.starts_with(FROZEN)));
        let owned: Option<(HashMap<String, Tensor>, String)>;
        let pretrained = if let Some((state, path)) = frozen_in_ckpt {
            if let Some(encoder) = &self.encoder {
                same_encoder(encoder, state, path)?;
            }
            owned = None;
            Some(Pretrained { map: state, prefix: FROZEN, what: path.display().to_string() })
        } else {
            owned = match cfg.tower.as_str() {
                "cae" => Some(match &self.encoder {
                    Some(e) => (e.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), "encoder".to_string()),
                    None => (self.pretrain(images, observer)?, "the pretrained autoencoder".to_string()),
                }),
                // A fine-tuned backbone comes back from the checkpoint.
                "inception_v3" if !(cfg.train_backbone && ckpt.is_some()) => {
                    let path = Path::new(cfg.weights.as_deref().unwrap_or_default());
                    Some((read_inception_weights(path)?, path.display().to_string()))
                }
                _ => None,
            };
            owned.as_ref().map(|(map, what)| Pretrained { map, prefix: "", what: what.clone() })
        };
        let net = self.build_net(device, train.n_users(), pretrained.as_ref())?;
        drop(owned);
        let feed = ImageFeed::new(images, device, &cfg.resident_images)?;
        let lambdas = Lambdas { cnn: cfg.lambda_cnn, fc: cfg.lambda_fc, user: cfg.lambda_u };
        let mut step = DvbprStep::new(net, feed, cfg.lr, lambdas, cfg.seed, train.n_items(), cfg.embed_batch)?;
        self.ids = Some(train.ids().clone());

        // Resume: parameters, optimiser moments, history and the epoch to continue from.
        let mut start = 0;
        if let Some((state, path)) = &ckpt {
            let (epoch, history) = apply_checkpoint(state, path, &mut step)?;
            start = epoch;
            self.history = history;
        }
        drop(ckpt);
        let n_batches = sampler.epoch_len().div_ceil(cfg.batch_size) as u64;
        step.epoch_offset = start;
        // Without validation nothing reads the catalogue's embeddings before the fit ends.
        step.embed_each_epoch = validation.is_some();
        let source = Offset { inner: &sampler, offset: start as u64 * n_batches, epoch_offset: start };
        let slot = step.embeddings.clone();
        let theta = step.net.theta.shallow_clone();
        let mut validate = validator(train, validation, |u| {
            let items = slot.lock().unwrap_or_else(|p| p.into_inner());
            let items = items.as_ref().ok_or_else(|| Error::state("no item embeddings yet"))?;
            Ok(scores(&theta, items, u)?.f_to_device(Device::Cpu)?)
        })?;
        let snapshot: Arc<Mutex<Vec<(String, Tensor)>>> = Default::default();
        if cfg.checkpoint_dir.is_some() {
            step.snapshot = Some(snapshot.clone());
        }
        let ckpt = self.checkpoint_path();
        let config_key = self.resumable_config();
        let mut history = self.history.clone();
        let mut wrapped = |e: &Event<'_>| -> Control {
            match e {
                Event::Progress { epoch, samples, total } => {
                    observer(&Event::Progress { epoch: epoch + start, samples: *samples, total: *total })
                }
                Event::EpochEnd(log) => {
                    let log = EpochLog { epoch: log.epoch + start, ..(*log).clone() };
                    history.push(log.clone());
                    if let Some(path) = &ckpt {
                        let state = snapshot.lock().unwrap_or_else(|p| p.into_inner());
                        if let Err(err) = write_checkpoint(path, &state, log.epoch, &history, &config_key, &data_key) {
                            eprintln!("DVBPR: could not write the checkpoint: {err}");
                        }
                    }
                    observer(&Event::EpochEnd(&log))
                }
            }
        };
        let loop_cfg = LoopConfig { epochs: cfg.epochs.saturating_sub(start), batch_size: cfg.batch_size, seed: cfg.seed, threads: cfg.threads, start_epoch: 0 };
        let result = if loop_cfg.epochs > 0 {
            fit_loop(&mut step, &source, &loop_cfg, &mut *validate, &mut |_, _| Ok(()), &mut wrapped)
        } else {
            Ok(FitReport::default())
        };
        drop(validate);
        drop(wrapped);
        let mut report = result?;
        // A fit stopped inside an epoch (or resumed at its end) has no fresh embeddings.
        let items = match (report.stopped, step.take_embeddings()) {
            (false, Some(e)) => e,
            _ => step.net.embed_all(&step.feed, train.n_items(), cfg.embed_batch)?,
        };
        self.history = history;
        report.history = self.history.clone();
        self.fitted = Some(Fitted { net: step.net, items });
        Ok(report)
    }

    fn ids(&self) -> Option<&IdMaps> {
        self.ids.as_ref()
    }

    fn history(&self) -> &[EpochLog] {
        &self.history
    }

    fn score(&self, users: &[i64]) -> Result<Tensor> {
        let f = self.fitted()?;
        Ok(scores(&f.net.theta, &f.items, users)?.f_to_device(Device::Cpu)?.f_contiguous()?)
    }

    fn recommend(&self, users: &[i64], k: usize, exclude: Option<&Interactions>, candidates: Option<&[bool]>) -> Result<(Vec<i64>, Vec<f32>)> {
        let f = self.fitted()?;
        let n_items = f.items.size()[0] as usize;
        let score = |b: &[i64]| scores(&f.net.theta, &f.items, b);
        if f.items.device().is_cuda() {
            return recommend_by_blocks(users, k, n_items, exclude, candidates, &score, &device_top_k);
        }
        recommend_by_blocks(users, k, n_items, exclude, candidates, &score, &super::cpu_top_k(n_items))
    }

    fn embed_new_items(&self, side: &SideInfo) -> Result<Tensor> {
        let f = self.fitted()?;
        let images = side.images.as_ref().ok_or_else(|| Error::invalid("DVBPR embeds new items from images: pass images"))?;
        let spec = images.bank.spec();
        if spec.height != self.config.image_size || spec.width != self.config.image_size {
            return Err(Error::invalid(format!(
                "the images are {}x{}, this model takes {}x{}",
                spec.height, spec.width, self.config.image_size, self.config.image_size
            )));
        }
        let feed = ImageFeed::new(images, f.net.vs.device(), "host")?;
        Ok(f.net.embed_all(&feed, images.len(), self.config.embed_batch)?.f_to_device(Device::Cpu)?)
    }

    fn item_vectors(&self) -> Result<Tensor> {
        Ok(self.fitted()?.items.f_to_device(Device::Cpu)?)
    }

    fn user_vectors(&self) -> Result<Tensor> {
        Ok(self.fitted()?.net.theta.detach().f_to_device(Device::Cpu)?)
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let f = self.fitted()?;
        let mut out: Vec<(String, Tensor)> = f.net.vs.variables().into_iter().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(f.net.frozen_state());
        out.push((ITEMS.into(), f.items.shallow_clone()));
        Ok(out)
    }

    fn restore(&mut self, state: &HashMap<String, Tensor>, ids: IdMaps, history: Vec<EpochLog>, device: Option<&str>) -> Result<()> {
        let device = parse_device(device.unwrap_or(&self.config.device))?;
        // A frozen backbone comes from the file: no encoder or weights file is needed.
        let frozen = state.keys().any(|k| k.starts_with(FROZEN));
        let pretrained = frozen.then(|| Pretrained { map: state, prefix: FROZEN, what: "saved model".into() });
        let net = self.build_net(device, ids.users.len(), pretrained.as_ref())?;
        copy_vars(&net.vs, state, "saved model")?;
        let items = state.get(ITEMS).ok_or_else(|| Error::state("saved model has no item_embeddings"))?;
        if items.size() != [ids.items.len() as i64, self.config.k as i64] {
            return Err(Error::state(format!("saved item embeddings have shape {:?}, expected ({}, {})", items.size(), ids.items.len(), self.config.k)));
        }
        let items = items.f_to_kind(Kind::Float)?.f_to_device(device)?;
        self.fitted = Some(Fitted { net, items });
        self.ids = Some(ids);
        self.history = history;
        Ok(())
    }

    fn device(&self) -> String {
        self.fitted.as_ref().map(|f| device_name(f.net.vs.device())).unwrap_or_default()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl super::Registered for Dvbpr {
    const KIND: &'static str = "dvbpr";
    fn from_json(json: &str) -> Result<Self> {
        Dvbpr::new(super::core::parse_config(Self::KIND, json)?)
    }
    fn default_json() -> String {
        super::core::config_json(&DvbprConfig::default())
    }
}

/// DVBPR's own methods (reached from Python by a downcast of the model).
impl Dvbpr {
    /// Losses of the autoencoder pretrained inside the last fit (tower="cae", no encoder).
    pub fn pretrain_history(&self) -> &[EpochLog] {
        &self.pretrain_history
    }

    /// tower="cae": build on `encoder`'s trained encoder (copied now, to the CPU) instead of
    /// pretraining one in fit; the configuration takes its shape (latent, channels, depth).
    pub fn set_encoder(&mut self, encoder: &Autoencoder) -> Result<()> {
        if self.config.tower != "cae" {
            return Err(Error::invalid(format!(
                "encoder= is for tower='cae' (a trained fr.ConvAutoencoder); this DVBPR has tower={:?}",
                self.config.tower
            )));
        }
        let shape = encoder.config().shape();
        if shape.image_size != self.config.image_size as i64 {
            return Err(Error::invalid(format!(
                "encoder: the autoencoder takes {0}x{0} images but this DVBPR has image_size={1}; \
                 use image_size={0} (and a bank of that size) or an autoencoder trained at {1}x{1}",
                shape.image_size, self.config.image_size
            )));
        }
        let weights = encoder.encoder_state().map_err(|e| Error::invalid(format!("encoder: {e}")))?;
        let mut copied = HashMap::with_capacity(weights.len());
        for (name, t) in weights {
            let cpu = t.f_to_device(Device::Cpu)?;
            let own = cpu.f_empty_like()?;
            tch::no_grad(|| own.shallow_clone().f_copy_(&cpu))?;
            copied.insert(name, own);
        }
        (self.config.latent, self.config.cae_channels, self.config.cae_depth) = (shape.latent, shape.channels, shape.depth);
        self.encoder = Some(copied);
        Ok(())
    }
}

/// Copy every variable of `vs` from `state` (same names and shapes).
fn copy_vars(vs: &nn::VarStore, state: &HashMap<String, Tensor>, what: &str) -> Result<()> {
    let _guard = tch::no_grad_guard();
    for (name, mut var) in vs.variables() {
        let saved = state.get(&name).ok_or_else(|| Error::state(format!("{what} has no tensor '{name}'")))?;
        if saved.size() != var.size() {
            return Err(Error::state(format!("{what}: '{name}' has shape {:?}, the model {:?}", saved.size(), var.size())));
        }
        var.f_copy_(saved)?;
    }
    Ok(())
}

fn text_tensor(s: &str) -> Tensor {
    Tensor::from_slice(s.as_bytes())
}

fn tensor_text(t: &Tensor, what: &str) -> Result<String> {
    let bytes = Vec::<u8>::try_from(t.f_to_kind(Kind::Uint8)?.f_flatten(0, -1)?)?;
    String::from_utf8(bytes).map_err(|_| Error::state(format!("checkpoint: {what} is not UTF-8")))
}

/// Write the snapshot of an epoch's end (parameters, Adam moments, item embeddings) with the
/// epoch, history and what it was trained on, through a temporary file.
fn write_checkpoint(path: &Path, state: &[(String, Tensor)], epoch: usize, history: &[EpochLog], config: &str, data: &Tensor) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, &e))?;
    }
    let mut all: Vec<(String, Tensor)> = state.iter().map(|(n, t)| (n.clone(), t.detach().to_device(Device::Cpu))).collect();
    all.push(("ckpt.epoch".into(), Tensor::from_slice(&[epoch as i64])));
    all.push(("ckpt.history".into(), text_tensor(&serde_json::to_string(history).unwrap())));
    all.push(("ckpt.config".into(), text_tensor(config)));
    all.push(("ckpt.data".into(), data.shallow_clone()));
    let tmp = path.with_extension("partial");
    Tensor::write_safetensors(&all, &tmp).map_err(|e| Error::file(&tmp, format!("cannot write the checkpoint: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, &e))
}

/// The tensors of the checkpoint at `path`, checked to be one of a model with these settings
/// (`config`) trained on this data.
fn open_checkpoint(path: &Path, config: &str, data: &Tensor) -> Result<HashMap<String, Tensor>> {
    let bad = |m: String| Error::file(path, m);
    let state: HashMap<String, Tensor> =
        Tensor::read_safetensors(path).map_err(|e| bad(format!("not a DVBPR checkpoint: {e}")))?.into_iter().collect();
    let get = |k: &str| state.get(k).ok_or_else(|| bad(format!("not a DVBPR checkpoint (no '{k}')")));
    if tensor_text(get("ckpt.config")?, "config")? != config {
        return Err(bad("the checkpoint was written with other settings than this model's; use another checkpoint_dir or resume=False".into()));
    }
    if !get("ckpt.data")?.equal(data) {
        return Err(bad("the checkpoint was trained on other data (users, items or interactions differ)".into()));
    }
    Ok(state)
}

/// Put a checkpoint read by [`open_checkpoint`] back into `step`; returns the epochs it had
/// finished and their history.
fn apply_checkpoint(state: &HashMap<String, Tensor>, path: &Path, step: &mut DvbprStep) -> Result<(usize, Vec<EpochLog>)> {
    let bad = |m: String| Error::file(path, m);
    let get = |k: &str| state.get(k).ok_or_else(|| bad(format!("not a DVBPR checkpoint (no '{k}')")));
    copy_vars(&step.net.vs, state, "the checkpoint").map_err(|e| bad(e.to_string()))?;
    step.adam.restore(state).map_err(|e| bad(e.to_string()))?;
    if let Some(items) = state.get(ITEMS) {
        *step.embeddings.lock().unwrap_or_else(|p| p.into_inner()) = Some(items.f_to_device(step.net.vs.device())?);
    }
    let epoch = get("ckpt.epoch")?.f_int64_value(&[0])? as usize;
    let history: Vec<EpochLog> =
        serde_json::from_str(&tensor_text(get("ckpt.history")?, "history")?).map_err(|e| bad(format!("bad history: {e}")))?;
    Ok((epoch, history))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Duplicates;
    use crate::images::bank::{BankSpec, ImageBank, OnError};
    use crate::images::decode::tests::tiny_png;
    use crate::images::resize::Filter;
    use crate::images::source::ImageSource;

    /// 24 items, red (even) or blue (odd) 2x2 patches upsampled to 32x32; item 23 has a
    /// broken file when `broken`. 12 users: even users like red items, odd users blue ones.
    fn data(dir: &Path, broken: bool) -> (Interactions, SideInfo) {
        let paths = (0..24)
            .map(|i| {
                let (r, b) = if i % 2 == 0 { (200u8, 20u8) } else { (20, 200) };
                let v = (i * 3) as u8;
                let mut png = tiny_png(&[r, v, b, r, 40, b, r, v, b, r, 90, b]);
                if broken && i == 23 {
                    png.truncate(20);
                }
                let p = dir.join(format!("{i}.png"));
                std::fs::write(&p, png).unwrap();
                p
            })
            .collect();
        let spec = BankSpec { height: 32, width: 32, filter: Filter::Bilinear, reduce: true };
        let on_error = if broken { OnError::Skip } else { OnError::Raise };
        let (bank, _) = ImageBank::build(&ImageSource::files(paths), spec, on_error, crate::images::DEFAULT_MAX_PIXELS, None, 1, &mut |_, _| true).unwrap();
        let (mut us, mut is) = (Vec::new(), Vec::new());
        for u in 0..12i64 {
            // Items 0..20 are warm (interacted with); 20..24 are cold.
            for i in (0..20i64).filter(|i| i % 2 == u % 2).take(6) {
                us.push(u);
                is.push(i);
            }
        }
        if broken {
            us.push(0);
            is.push(23);
        }
        let train = Interactions::from_indices(&us, &is, None, Some(12), Some(24), Duplicates::Sum, Default::default()).unwrap();
        let images = ItemImages::new(Arc::new(bank), None).unwrap();
        (train, SideInfo { images: Some(images), ..Default::default() })
    }

    fn config(epochs: usize, checkpoint: Option<&Path>, resume: bool) -> DvbprConfig {
        DvbprConfig {
            k: 4,
            image_size: 32,
            epochs,
            lr: 1e-3,
            batch_size: 16,
            device: "cpu".into(),
            embed_batch: 10,
            checkpoint_dir: checkpoint.map(|p| p.display().to_string()),
            resume,
            ..Default::default()
        }
    }

    fn fit(cfg: DvbprConfig, train: &Interactions, side: &SideInfo) -> Dvbpr {
        let mut m = Dvbpr::new(cfg).unwrap();
        m.fit(train, side, None, &mut |_| Control::Continue, &Default::default()).unwrap();
        m
    }

    #[test]
    fn fits_scores_cold_items_saves_and_resumes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let (train, side) = data(dir.path(), false);
        let full = fit(config(3, Some(&dir.path().join("a")), false), &train, &side);
        let s = full.score(&[0, 1]).unwrap();
        assert_eq!(s.size(), vec![2, 24]);
        assert_eq!(full.item_vectors().unwrap().size(), vec![24, 4]);
        assert_eq!(full.history().len(), 3);
        assert!(full.history().iter().all(|h| h.loss.is_finite()));
        // Interrupted after 2 epochs, then resumed to 3. Bit-for-bit equality with the
        // uninterrupted fit is tested in tests/test_dvbpr_model.py: dropout draws from
        // libtorch's global generator, which the other tests of this binary use concurrently.
        let ck = dir.path().join("b");
        let part = fit(config(2, Some(&ck), false), &train, &side);
        let resumed = fit(config(3, Some(&ck), true), &train, &side);
        assert_eq!(resumed.history().len(), 3);
        assert_eq!(resumed.history()[..2], part.history()[..]);
        // Other settings do not resume from that checkpoint.
        let mut other = Dvbpr::new(DvbprConfig { lr: 5e-4, ..config(3, Some(&ck), true) }).unwrap();
        let e = other.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("other settings"), "{e}");
        // Saved and loaded: same scores, without the images.
        let path = dir.path().join("m.safetensors");
        crate::models::checkpoint::save(&full, &path).unwrap();
        let back = crate::models::checkpoint::load(&path, Some("cpu")).unwrap();
        assert!(back.score(&[0, 1]).unwrap().equal(&s));
        // New images embed as the catalogue's did.
        let new = full.embed_new_items(&side).unwrap();
        assert!((new - full.item_vectors().unwrap()).abs().max().double_value(&[]) < 1e-5);
    }

    #[test]
    fn cae_tower_freezes_a_given_encoder_and_saves_it() {
        let dir = tempfile::tempdir().unwrap();
        let (train, side) = data(dir.path(), false);
        let cae_cfg = CaeConfig { latent: 6, image_size: 32, channels: 4, depth: 3, epochs: 1, lr: 1e-2, batch_size: 8, device: "cpu".into(), seed: 0 };
        let mut cae = Autoencoder::new(cae_cfg).unwrap();
        cae.fit(&side.images.as_ref().unwrap().bank, &mut |_| Control::Continue).unwrap();
        let encoder = cae.encoder_state().unwrap();

        let mut m = Dvbpr::new(DvbprConfig { tower: "cae".into(), ..config(2, None, false) }).unwrap();
        m.set_encoder(&cae).unwrap();
        assert_eq!((m.config.latent, m.config.cae_channels, m.config.cae_depth), (6, 4, 3), "the encoder's shape");
        m.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap();
        assert!(m.pretrain_history().is_empty(), "given, not pretrained");
        // Trained: the head and the user vectors only; the encoder is saved unchanged.
        let trained: Vec<String> = m.fitted().unwrap().net.trainable().into_iter().map(|(n, _)| n).collect();
        assert!(trained.contains(&"theta".to_string()) && trained.iter().all(|n| n == "theta" || n.starts_with("tower.head.")), "{trained:?}");
        let state = m.state().unwrap();
        let frozen: Vec<_> = state.iter().filter_map(|(n, t)| n.strip_prefix(FROZEN).map(|n| (n, t))).collect();
        assert_eq!(frozen.len(), encoder.len());
        assert!(frozen.iter().all(|(n, t)| t.equal(&encoder[*n])));
        let path = dir.path().join("m.safetensors");
        crate::models::checkpoint::save(&m, &path).unwrap();
        let back = crate::models::checkpoint::load(&path, Some("cpu")).unwrap();
        assert!(back.score(&[0, 1]).unwrap().equal(&m.score(&[0, 1]).unwrap()));

        // Without an encoder, fit pretrains one on the bank.
        let mut p = Dvbpr::new(DvbprConfig { tower: "cae".into(), latent: 5, cae_channels: 4, cae_depth: 2, pretrain_epochs: 2, ..config(1, None, false) }).unwrap();
        p.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap();
        assert_eq!(p.pretrain_history().len(), 2);
        assert_eq!(p.item_vectors().unwrap().size(), [24, 4]);

        let mut cnnf = Dvbpr::new(config(1, None, false)).unwrap();
        assert!(cnnf.set_encoder(&cae).unwrap_err().to_string().contains("tower='cae'"));
        let mut wide = Dvbpr::new(DvbprConfig { tower: "cae".into(), image_size: 64, ..config(1, None, false) }).unwrap();
        assert!(wide.set_encoder(&cae).unwrap_err().to_string().contains("takes 32x32 images"));
    }

    /// Frozen: the backbone outside the model's store, saved as frozen state, only the head's
    /// fc penalty; fine-tuned: in the store, trained, its conv weights under lambda_cnn.
    #[test]
    fn inception_tower_frozen_or_fine_tuned() {
        let vs = nn::VarStore::new(Device::Cpu);
        let backbone = InceptionV3::new(&vs.root(), true);
        let w: HashMap<String, Tensor> = backbone.named_parameters().iter().map(|(n, t)| (n.clone(), t.detach().copy())).collect();
        let source = Pretrained { map: &w, prefix: "", what: "test weights".into() };
        for train_backbone in [false, true] {
            let cfg = DvbprConfig { tower: "inception_v3".into(), image_size: 75, weights: Some("w.safetensors".into()), train_backbone, ..config(1, None, false) };
            let m = Dvbpr::new(cfg).unwrap();
            let net = m.build_net(Device::Cpu, 3, Some(&source)).unwrap();
            let in_store = net.trainable().iter().filter(|(n, _)| n.starts_with("tower.backbone.")).count();
            assert_eq!(in_store > 0, train_backbone);
            assert_eq!(net.frozen_state().is_empty(), train_backbone);
            let parts: Vec<_> = net.tower.penalties().into_iter().map(|p| p.0).collect();
            assert_eq!(parts, if train_backbone { vec!["fc", "conv"] } else { vec!["fc"] });
        }
        let e = Dvbpr::new(DvbprConfig { tower: "inception_v3".into(), image_size: 75, ..Default::default() }).err().unwrap().to_string();
        assert!(e.contains("needs weights="), "{e}");
        let e = Dvbpr::new(DvbprConfig { tower: "inception_v3".into(), image_size: 64, weights: Some("w".into()), ..Default::default() });
        assert!(e.err().unwrap().to_string().contains("at least 75"));
        assert!(Dvbpr::new(DvbprConfig { weights: Some("w".into()), ..Default::default() }).is_err(), "weights for cnnf");
    }

    #[test]
    fn bad_input_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let (train, side) = data(dir.path(), true);
        let mut m = Dvbpr::new(config(1, None, false)).unwrap();
        let e = m.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("training item 23 has no image"), "{e}");
        let mut m = Dvbpr::new(DvbprConfig { image_size: 64, ..config(1, None, false) }).unwrap();
        let e = m.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("32x32") && e.contains("image_size=64"), "{e}");
        let e = m.fit(&train, &SideInfo::default(), None, &mut |_| Control::Continue, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("needs images"), "{e}");
        assert!(Dvbpr::new(DvbprConfig { tower: "vgg".into(), ..Default::default() }).is_err());
        assert!(Dvbpr::new(DvbprConfig { image_size: 16, ..Default::default() }).err().unwrap().to_string().contains("too small"));
        assert!(Dvbpr::new(DvbprConfig { resume: true, ..Default::default() }).is_err());
    }
}
