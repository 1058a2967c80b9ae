//! DVBPR's configuration and its checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::data::{Need, SideNeeds};
use crate::error::{Error, Result};
use crate::models::cae::Autoencoder;
use crate::models::core::{Common, ModelConfig};
use crate::nets::cae::CaeShape;
use crate::nets::cnnf::CnnF;
use crate::nets::inception::InceptionV3;
use crate::nets::towers::{HeadConfig, InceptionConfig};

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
    pub(super) fn weights(&self) -> HashMap<String, Tensor> {
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

impl ModelConfig for DvbprConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        crate::models::bpr::check_counts(&[("factors", self.factors), ("fc_width", self.fc_width), ("embed_batch", self.embed_batch), ("image_size", self.image_size)])?;
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

    fn needs(&self) -> SideNeeds {
        SideNeeds { images: Need::Required, ..Default::default() }
    }

    fn common(&self) -> Option<&Common> {
        Some(&self.common)
    }
}

impl DvbprConfig {
    /// The autoencoder shape of tower="cae".
    pub fn cae_shape(&self) -> CaeShape {
        CaeShape { latent: self.latent, image_size: self.image_size as i64, channels: self.cae_channels, depth: self.cae_depth }
    }

    pub(super) fn head_config(&self) -> HeadConfig {
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

