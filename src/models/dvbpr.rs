//! DVBPR (Kang et al. 2017): visually-aware recommendation trained end to end from item
//! images. score(u, i) = theta_u . phi(image_i), phi an image network (CNN-F by default),
//! trained on (user, positive, negative) triples to minimise
//! -sum ln sigmoid(theta_u . (phi(i) - phi(j))) + reg_cnn |conv weights|^2
//! + reg_fc |fc weights|^2 + reg_user |theta of the batch's users|^2, with Adam; theta_u and
//! phi have `factors` dimensions (the paper's K).
//!
//! The catalogue is the image bank's: every item with an image is scored, those without
//! interactions (cold items) included. After each epoch phi is computed for every item in
//! batches, so scoring, validation and recommending never run the network per user; a saved
//! model holds the network and those embeddings, so a loaded one scores without the images.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use super::cae::{Autoencoder, CaeConfig};
use super::core::{Common, FitCtx, FitStart, Model, ParamStore, Spec};
use super::dvbpr_step::{embed_all, lock, DvbprStep, ImageFeed, Regs};
use crate::data::{Interactions, ItemImages, Need, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::nets::cae::CaeShape;
use crate::nets::cnnf::{CnnF, CnnFConfig};
use crate::nets::inception::InceptionV3;
use crate::nets::towers::{cae_tower, inception_tower, read_inception_weights, HeadConfig, InceptionConfig};
use crate::nets::ImageTower;
use crate::sampling::TripleSampler;
use crate::train::{Control, EpochLog, Event, FitReport};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DvbprConfig {
    /// Dimension of theta_u and phi(image) (the paper's K).
    pub factors: usize,
    /// The image network: "cnnf" (trained from scratch), "cae" (the frozen encoder of a
    /// convolutional autoencoder + a trained head) or "inception_v3" (ImageNet weights from
    /// `weights`, frozen or fine-tuned, + a trained head).
    pub tower: String,
    /// Side of the (square) images the network takes; the bank must hold images of this size.
    pub image_size: usize,
    /// epochs, lr (Adam's), batch_size (triples per step, two images each), seed, threads
    /// (sampling and gathering images), device.
    #[serde(flatten)]
    pub common: Common,
    /// L2 weight of the trained conv weights (CNN-F's, a fine-tuned Inception's).
    pub reg_cnn: f64,
    /// L2 weight of the fc weights (CNN-F's, the head's).
    pub reg_fc: f64,
    /// L2 weight of the batch's user vectors.
    pub reg_user: f64,
    /// Standard deviation of the initial user vectors.
    pub init_std: f64,
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
    /// The trained head on a pretrained backbone (towers "cae" and "inception_v3"); None:
    /// the tower's default (cae: hidden 512, inception_v3: one linear layer; dropout 0.5).
    pub head: Option<HeadConfig>,
    /// tower="cae": the autoencoder's code size, first-layer channels and number of stride-2
    /// convolutions. Taken from the encoder when one is given (`set_encoder`), else the shape
    /// of the autoencoder pretrained at the start of fit.
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
    /// under reg_cnn) instead of freezing it.
    pub train_backbone: bool,
    /// tower="inception_v3": torchvision's flag, true for its ImageNet weights.
    pub transform_input: bool,
    /// tower="cae": a trained encoder given by `set_encoder`, used by fit instead of
    /// pretraining one. Not part of the JSON configuration: a fitted model holds it as its
    /// frozen backbone.
    #[serde(skip)]
    pub encoder: Option<Encoder>,
}

impl Default for DvbprConfig {
    fn default() -> Self {
        DvbprConfig {
            factors: 50,
            tower: "cnnf".into(),
            image_size: 224,
            common: Common::new(20, 1e-4, 128),
            reg_cnn: 1e-3,
            reg_fc: 1e-3,
            reg_user: 1.0,
            init_std: 0.01,
            fc_width: 4096,
            space_to_depth: None,
            channels_last: None,
            bf16: None,
            resident_images: "auto".into(),
            embed_batch: 256,
            head: None,
            latent: CaeShape::default().latent,
            cae_channels: CaeShape::default().channels,
            cae_depth: CaeShape::default().depth,
            pretrain_epochs: 10,
            pretrain_lr: 1e-3,
            weights: None,
            train_backbone: false,
            transform_input: true,
            encoder: None,
        }
    }
}

/// The weights of a trained encoder (names as in its own store), on the CPU.
#[derive(Clone)]
pub struct Encoder(Arc<Mutex<HashMap<String, Tensor>>>);

impl Encoder {
    /// Shallow handles on the weights.
    fn weights(&self) -> HashMap<String, Tensor> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect()
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoder({} tensors)", self.weights().len())
    }
}

/// Towers this build can construct.
pub const TOWERS: &[&str] = &["cnnf", "cae", "inception_v3"];

impl DvbprConfig {
    /// The model's own fields (the common ones are checked by the core).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        for (name, v) in [("factors", self.factors), ("fc_width", self.fc_width), ("embed_batch", self.embed_batch), ("image_size", self.image_size)] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        for (name, v) in [("reg_cnn", self.reg_cnn), ("reg_fc", self.reg_fc), ("reg_user", self.reg_user), ("init_std", self.init_std)] {
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
        if self.encoder.is_some() && tower != "cae" {
            return bad(format!("encoder= is for tower='cae' (a trained fr.ConvAutoencoder); this DVBPR has tower={tower:?}"));
        }
        if !["auto", "device", "host"].contains(&self.resident_images.as_str()) {
            return bad(format!("resident_images must be 'auto', 'device' or 'host', not {:?}", self.resident_images));
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

    /// This configuration with `encoder`'s trained encoder (copied now, to the CPU) for
    /// tower="cae", and its shape (latent, channels, depth).
    pub fn with_encoder(&self, encoder: &Autoencoder) -> Result<Self> {
        if self.tower != "cae" {
            return Err(Error::invalid(format!(
                "encoder= is for tower='cae' (a trained fr.ConvAutoencoder); this DVBPR has tower={:?}",
                self.tower
            )));
        }
        let shape = encoder.config().shape();
        if shape.image_size != self.image_size as i64 {
            return Err(Error::invalid(format!(
                "encoder: the autoencoder takes {0}x{0} images but this DVBPR has image_size={1}; \
                 use image_size={0} (and a bank of that size) or an autoencoder trained at {1}x{1}",
                shape.image_size, self.image_size
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
        let mut cfg = self.clone();
        (cfg.latent, cfg.cae_channels, cfg.cae_depth) = (shape.latent, shape.channels, shape.depth);
        cfg.encoder = Some(Encoder(Arc::new(Mutex::new(copied))));
        Ok(cfg)
    }
}

/// A tower's pretrained weights: `map[prefix + name]`, `what` naming them in errors.
struct Pretrained<'a> {
    map: &'a HashMap<String, Tensor>,
    prefix: &'a str,
    what: String,
}

/// Prefix of a frozen backbone's tensors (buffers of the store) in saved models and checkpoints.
pub const FROZEN: &str = "frozen.";
/// The buffer of phi of every catalogue item.
const ITEMS: &str = "item_embeddings";

/// The trained parameters and what scoring reads.
pub struct DvbprParams {
    /// The image network (under "tower") and one vector per user ("theta"); as buffers, a
    /// frozen backbone ("frozen.<name>": the tower's own store) and the item embeddings.
    store: ParamStore,
    /// The image network (behind a lock: the training step and `embed_new_items` run it from
    /// other threads).
    tower: Mutex<Box<dyn ImageTower>>,
    theta: Tensor,
    /// phi of every catalogue item (n_items, factors), on the model's device.
    items: Tensor,
    /// The losses of the autoencoder pretrained by the fit (tower="cae", no encoder).
    pretrain_history: Vec<EpochLog>,
}

impl DvbprParams {
    /// Trainable variables by name, sorted (a stable order for the optimiser state).
    fn trainable(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.store.vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// A new network, user vectors and (zero) item embeddings on `device` (seeded). Towers on a
/// pretrained backbone copy it from `pretrained` (a fine-tuned Inception may do without: its
/// backbone is in the store, loaded by the caller).
fn build_net(cfg: &DvbprConfig, device: Device, (n_users, n_items): (usize, usize), pretrained: Option<&Pretrained<'_>>) -> Result<DvbprParams> {
    tch::manual_seed(crate::sampling::rng::sub_seed(cfg.common.seed, crate::sampling::rng::streams::INIT, 7) as i64 >> 1);
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

/// The bank holds images of the configured size and every training item has one.
fn check_images(cfg: &DvbprConfig, train: &Interactions, images: &ItemImages) -> Result<()> {
    let spec = images.bank.spec();
    if spec.height != cfg.image_size || spec.width != cfg.image_size {
        return Err(Error::invalid(format!(
            "the image bank holds {}x{} images but image_size={}; build the bank with size={} (or set image_size)",
            spec.height, spec.width, cfg.image_size, cfg.image_size
        )));
    }
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

/// (B, n_items) scores of the user indices `users` (on the device).
fn scores(theta: &Tensor, items: &Tensor, users: &Tensor) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    Ok(theta.f_index_select(0, users)?.f_matmul(&items.f_tr()?)?)
}

/// DVBPR: the model.
pub struct Dvbpr;

impl Spec for Dvbpr {
    const KIND: &'static str = "dvbpr";
    const NAME: &'static str = "DVBPR";
    type Config = DvbprConfig;
    type Params = DvbprParams;

    fn common(c: &DvbprConfig) -> Option<&Common> {
        Some(&c.common)
    }

    fn validate(c: &DvbprConfig) -> Result<()> {
        c.validate()
    }

    fn needs(_: &DvbprConfig) -> SideNeeds {
        SideNeeds { images: Need::Required, ..Default::default() }
    }

    fn build(cfg: &DvbprConfig, train: &Interactions, side: &SideInfo, device: Device) -> Result<DvbprParams> {
        Self::build_fit(cfg, train, side, device, FitStart { resumed: None, observer: &mut |_| Control::Continue })
    }

    /// The tower's pretrained backbone comes from the checkpoint a resumed fit continues from
    /// (so it neither pretrains nor reads the weights file again), else from the encoder given,
    /// an autoencoder pretrained now, or the Inception weights file.
    fn build_fit(cfg: &DvbprConfig, train: &Interactions, side: &SideInfo, device: Device, start: FitStart<'_>) -> Result<DvbprParams> {
        let images = side.images.as_ref().ok_or_else(|| Error::invalid("DVBPR needs images="))?;
        check_images(cfg, train, images)?;
        let shape = (train.n_users(), train.n_items());
        let mut pretrain_history = Vec::new();
        let frozen_in_ckpt = start.resumed.filter(|(_, state)| state.keys().any(|k| k.starts_with(FROZEN)));
        let mut params = if let Some((path, state)) = frozen_in_ckpt {
            if let Some(encoder) = &cfg.encoder {
                same_encoder(&encoder.weights(), state, path)?;
            }
            build_net(cfg, device, shape, Some(&Pretrained { map: state, prefix: FROZEN, what: path.display().to_string() }))?
        } else {
            let owned = match cfg.tower.as_str() {
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
            let pretrained = owned.as_ref().map(|(map, what)| Pretrained { map, prefix: "", what: what.clone() });
            build_net(cfg, device, shape, pretrained.as_ref())?
        };
        params.pretrain_history = pretrain_history;
        Ok(params)
    }

    fn train(cfg: &DvbprConfig, params: &DvbprParams, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let images = side.images.as_ref().ok_or_else(|| Error::invalid("DVBPR needs images="))?;
        let sampler = TripleSampler::new(train, 1)?;
        let feed = ImageFeed::new(images, params.store.device(), &cfg.resident_images)?;
        let regs = Regs { cnn: cfg.reg_cnn, fc: cfg.reg_fc, user: cfg.reg_user };
        let (theta, items) = (params.theta.shallow_clone(), params.items.shallow_clone());
        let mut step = DvbprStep::new(&params.tower, params.trainable(), theta, items, feed, cfg.common.lr, regs, cfg.common.seed, cfg.embed_batch)?;
        // Without validation nothing reads the catalogue's embeddings before the last epoch.
        step.embed_each_epoch = ctx.validates();
        let report = ctx.run(&mut step, &sampler, &|u| {
            let users = Tensor::from_slice(u).f_to_device(params.theta.device())?;
            scores(&params.theta, &params.items, &users)
        })?;
        // Stopped inside an epoch, or resumed with no epoch left: embed the catalogue now.
        if !step.fresh {
            step.embed_items()?;
        }
        Ok(report)
    }

    fn store(params: &DvbprParams) -> &ParamStore {
        &params.store
    }

    /// A frozen backbone comes from the saved state: no encoder or weights file is needed.
    fn restore(cfg: &DvbprConfig, shape: (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<DvbprParams> {
        let frozen = state.keys().any(|k| k.starts_with(FROZEN));
        let pretrained = frozen.then(|| Pretrained { map: state, prefix: FROZEN, what: "saved model".into() });
        let params = build_net(cfg, device, shape, pretrained.as_ref())?;
        params.store.load(state)?;
        Ok(params)
    }

    fn score_block(_: &DvbprConfig, params: &DvbprParams, users: &Tensor) -> Result<Tensor> {
        scores(&params.theta, &params.items, users)
    }

    fn item_vectors(_: &DvbprConfig, params: &DvbprParams) -> Result<Tensor> {
        Ok(params.items.shallow_clone())
    }

    fn user_vectors(_: &DvbprConfig, params: &DvbprParams) -> Result<Tensor> {
        Ok(params.theta.shallow_clone())
    }

    /// phi of the images of `side` (new products), in the bank's row order.
    fn embed_new_items(cfg: &DvbprConfig, params: &DvbprParams, side: &SideInfo) -> Result<Tensor> {
        let images = side.images.as_ref().ok_or_else(|| Error::invalid("DVBPR embeds new items from images: pass images"))?;
        let spec = images.bank.spec();
        if spec.height != cfg.image_size || spec.width != cfg.image_size {
            return Err(Error::invalid(format!(
                "the images are {}x{}, this model takes {}x{}",
                spec.height, spec.width, cfg.image_size, cfg.image_size
            )));
        }
        let device = params.store.device();
        let feed = ImageFeed::new(images, device, "host")?;
        embed_all(&**lock(&params.tower), &feed, images.len(), cfg.embed_batch, device)
    }
}

/// DVBPR's own methods (reached from Python by a downcast of the model).
impl Model<Dvbpr> {
    /// Losses of the autoencoder pretrained inside the last fit (tower="cae", no encoder).
    pub fn pretrain_history(&self) -> &[EpochLog] {
        self.params().map_or(&[], |p| &p.pretrain_history)
    }

    /// tower="cae": build on `encoder`'s trained encoder (copied now, to the CPU) instead of
    /// pretraining one in fit; the configuration takes its shape (latent, channels, depth).
    pub fn set_encoder(&mut self, encoder: &Autoencoder) -> Result<()> {
        let cfg = self.config().with_encoder(encoder)?;
        self.set_config(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Duplicates;
    use crate::models::{FitOptions, Recommender};
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

    type Dvbpr = Model<super::Dvbpr>;

    fn config(epochs: usize) -> DvbprConfig {
        DvbprConfig {
            factors: 4,
            image_size: 32,
            common: Common { device: "cpu".into(), ..Common::new(epochs, 1e-3, 16) },
            embed_batch: 10,
            ..Default::default()
        }
    }

    fn options(checkpoint: Option<&Path>, resume: bool) -> FitOptions {
        FitOptions { checkpoint_dir: checkpoint.map(Path::to_path_buf), resume }
    }

    fn fit_with(cfg: DvbprConfig, train: &Interactions, side: &SideInfo, options: &FitOptions) -> Result<Dvbpr> {
        let mut m = Dvbpr::new(cfg)?;
        m.fit(train, side, None, &mut |_| Control::Continue, options)?;
        Ok(m)
    }

    #[test]
    fn fits_scores_cold_items_saves_and_resumes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let (train, side) = data(dir.path(), false);
        let full = fit_with(config(3), &train, &side, &options(Some(&dir.path().join("a")), false)).unwrap();
        let s = full.score(&[0, 1]).unwrap();
        assert_eq!(s.size(), vec![2, 24]);
        assert_eq!(full.item_vectors().unwrap().size(), vec![24, 4]);
        assert_eq!(full.history().len(), 3);
        assert!(full.history().iter().all(|h| h.loss.is_finite()));
        // Interrupted after 2 epochs, then resumed to 3. Bit-for-bit equality with the
        // uninterrupted fit is tested in tests/test_dvbpr_model.py and tests/test_core.py:
        // dropout draws from libtorch's global generator, which the other tests of this
        // binary use concurrently.
        let ck = dir.path().join("b");
        let part = fit_with(config(2), &train, &side, &options(Some(&ck), false)).unwrap();
        let resumed = fit_with(config(3), &train, &side, &options(Some(&ck), true)).unwrap();
        assert_eq!(resumed.history().len(), 3);
        assert_eq!(resumed.history()[..2], part.history()[..]);
        // Other settings do not resume from that checkpoint.
        let mut other = config(3);
        other.common.lr = 5e-4;
        let e = fit_with(other, &train, &side, &options(Some(&ck), true)).err().unwrap().to_string();
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

        let mut m = Dvbpr::new(DvbprConfig { tower: "cae".into(), ..config(2) }).unwrap();
        m.set_encoder(&cae).unwrap();
        let c = m.config();
        assert_eq!((c.latent, c.cae_channels, c.cae_depth), (6, 4, 3), "the encoder's shape");
        m.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap();
        assert!(m.pretrain_history().is_empty(), "given, not pretrained");
        // Trained: the head and the user vectors only; the encoder is saved unchanged.
        let trained: Vec<String> = m.params().unwrap().trainable().into_iter().map(|(n, _)| n).collect();
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
        let mut p = Dvbpr::new(DvbprConfig { tower: "cae".into(), latent: 5, cae_channels: 4, cae_depth: 2, pretrain_epochs: 2, ..config(1) }).unwrap();
        p.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap();
        assert_eq!(p.pretrain_history().len(), 2);
        assert_eq!(p.item_vectors().unwrap().size(), [24, 4]);

        let mut cnnf = Dvbpr::new(config(1)).unwrap();
        assert!(cnnf.set_encoder(&cae).unwrap_err().to_string().contains("tower='cae'"));
        let mut wide = Dvbpr::new(DvbprConfig { tower: "cae".into(), image_size: 64, ..config(1) }).unwrap();
        assert!(wide.set_encoder(&cae).unwrap_err().to_string().contains("takes 32x32 images"));
    }

    /// Frozen: the backbone outside the model's store, saved as frozen state, only the head's
    /// fc penalty; fine-tuned: in the store, trained, its conv weights under reg_cnn.
    #[test]
    fn inception_tower_frozen_or_fine_tuned() {
        let vs = nn::VarStore::new(Device::Cpu);
        let backbone = InceptionV3::new(&vs.root(), true);
        let w: HashMap<String, Tensor> = backbone.named_parameters().iter().map(|(n, t)| (n.clone(), t.detach().copy())).collect();
        let source = Pretrained { map: &w, prefix: "", what: "test weights".into() };
        for train_backbone in [false, true] {
            let cfg = DvbprConfig { tower: "inception_v3".into(), image_size: 75, weights: Some("w.safetensors".into()), train_backbone, ..config(1) };
            let net = build_net(&cfg, Device::Cpu, (3, 5), Some(&source)).unwrap();
            let in_store = net.trainable().iter().filter(|(n, _)| n.starts_with("tower.backbone.")).count();
            assert_eq!(in_store > 0, train_backbone);
            assert_eq!(net.store.buffers.iter().any(|(n, _)| n.starts_with(FROZEN)), !train_backbone);
            let parts: Vec<_> = lock(&net.tower).penalties().into_iter().map(|p| p.0).collect();
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
        let mut m = Dvbpr::new(config(1)).unwrap();
        let e = m.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("training item 23 has no image"), "{e}");
        let mut m = Dvbpr::new(DvbprConfig { image_size: 64, ..config(1) }).unwrap();
        let e = m.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("32x32") && e.contains("image_size=64"), "{e}");
        let e = m.fit(&train, &SideInfo::default(), None, &mut |_| Control::Continue, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("needs images"), "{e}");
        assert!(Dvbpr::new(DvbprConfig { tower: "vgg".into(), ..Default::default() }).is_err());
        assert!(Dvbpr::new(DvbprConfig { image_size: 16, ..Default::default() }).err().unwrap().to_string().contains("too small"));
    }
}
