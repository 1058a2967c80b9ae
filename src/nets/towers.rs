//! Image towers for the Siamese models: a pretrained image network (frozen, in a `VarStore`
//! of its own, run without autograd) or a fine-tuned one (in the caller's store), followed by
//! a trainable head to `k` dimensions in the caller's store.
//!
//! * [`cae_tower`]: the encoder of a trained [`super::cae::ConvAutoencoder`], frozen.
//! * [`inception_tower`]: Inception v3 from ImageNet weights, frozen or fine-tuned.
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::cae::{CaeEncoder, CaeShape};
use super::inception::{self, InceptionV3};
use super::weights::{self, copy_into};
use super::{random, ImageTower};
use crate::error::{Error, Result};

/// The trainable head: [dropout, linear to `hidden`, ReLU,] dropout, linear to k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadConfig {
    /// Width of the hidden layer; 0 for a single linear layer.
    pub hidden: i64,
    /// Dropout before each linear layer, at train time only.
    pub dropout: f64,
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig { hidden: 512, dropout: 0.5 }
    }
}

impl HeadConfig {
    pub fn check(&self) -> Result<()> {
        if !(0..=65536).contains(&self.hidden) {
            return Err(Error::invalid(format!("head hidden size must be in 0..=65536, got {}", self.hidden)));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(format!("head dropout must be in [0, 1), got {}", self.dropout)));
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct Head {
    hidden: Option<nn::Linear>,
    out: nn::Linear,
    dropout: f64,
}

impl Head {
    /// Under `p`: "hidden" (when cfg.hidden > 0) and "out".
    pub fn new(p: &nn::Path, in_dim: i64, k: i64, cfg: &HeadConfig) -> Result<Self> {
        let (hidden, d) = match cfg.hidden {
            0 => (None, in_dim),
            h => (Some(random::linear(&(p / "hidden"), in_dim, h, Default::default())?), h),
        };
        Ok(Head { hidden, out: random::linear(&(p / "out"), d, k, Default::default())?, dropout: cfg.dropout })
    }

    fn try_forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.shallow_clone();
        if let Some(h) = &self.hidden {
            x = random::dropout(&x, self.dropout, train, 0)?.f_linear(&h.ws, h.bs.as_ref())?.f_relu()?;
        }
        Ok(random::dropout(&x, self.dropout, train, 0)?.f_linear(&self.out.ws, self.out.bs.as_ref())?)
    }

    pub fn weights(&self) -> impl Iterator<Item = &Tensor> {
        self.hidden.iter().map(|l| &l.ws).chain(std::iter::once(&self.out.ws))
    }
}

impl ModuleT for Head {
    // tch's ModuleT cannot return an error; `error::guarded` turns this panic into one.
    #[allow(clippy::panic, reason = "ModuleT::forward_t is infallible by signature")]
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self.try_forward(x, train) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }
}

fn check_k(k: i64) -> Result<()> {
    if !(1..=65536).contains(&k) {
        return Err(Error::invalid(format!("k must be in 1..=65536, got {k}")));
    }
    Ok(())
}

/// A frozen network's store, sorted by name (for `frozen_state`).
fn sorted_variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The frozen encoder of a convolutional autoencoder and a head.
#[derive(Debug)]
pub struct CaeTower {
    frozen: nn::VarStore,
    encoder: CaeEncoder,
    head: Head,
    k: i64,
}

/// The CAE tower for `image_size` images: the encoder of shape `shape`, its weights copied
/// from `encoder[prefix + name]` (names as in its own store: "conv0.weight", ..., "fc.bias";
/// a `ConvAutoencoder`'s store holds them under "encoder."), frozen on `p`'s device; the
/// head under `p / "head"`.
pub fn cae_tower(
    p: &nn::Path,
    image_size: i64,
    shape: &CaeShape,
    encoder: &HashMap<String, Tensor>,
    prefix: &str,
    k: i64,
    head: &HeadConfig,
) -> Result<CaeTower> {
    shape.check()?;
    head.check()?;
    check_k(k)?;
    if image_size != shape.image_size {
        return Err(Error::invalid(format!(
            "image_size={image_size}, but the autoencoder was trained on {0}x{0} images; use image_size={0} or train another",
            shape.image_size
        )));
    }
    let mut frozen = nn::VarStore::new(p.device());
    let net = CaeEncoder::new(&frozen.root(), shape)?;
    copy_into(&sorted_variables(&frozen), encoder, prefix, "the autoencoder's encoder")?;
    frozen.freeze();
    Ok(CaeTower { frozen, encoder: net, head: Head::new(&(p / "head"), shape.latent, k, head)?, k })
}

impl ModuleT for CaeTower {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let z = tch::no_grad(|| self.encoder.forward_t(xs, false));
        self.head.forward_t(&z, train)
    }
}

impl ImageTower for CaeTower {
    fn out_dim(&self) -> i64 {
        self.k
    }
    fn penalised(&self) -> Vec<(&'static str, Vec<Tensor>)> {
        vec![("fc", self.head.weights().map(Tensor::shallow_clone).collect())]
    }
    fn frozen_state(&self) -> Vec<(String, Tensor)> {
        sorted_variables(&self.frozen)
    }
}

/// Options of the Inception v3 tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InceptionConfig {
    /// Fine-tune the backbone (in the caller's store, under "backbone") instead of freezing it.
    pub train_backbone: bool,
    /// torchvision's flag: true for its ImageNet weights (see [`inception`]).
    pub transform_input: bool,
    pub head: HeadConfig,
}

impl Default for InceptionConfig {
    fn default() -> Self {
        InceptionConfig { train_backbone: false, transform_input: true, head: HeadConfig { hidden: 0, dropout: 0.5 } }
    }
}

#[derive(Debug)]
enum Backbone {
    /// In its own store, never trained: run in eval mode without autograd.
    Frozen(nn::VarStore, InceptionV3),
    /// In the caller's store, trained with the head (batch norm in train mode when training).
    Trained(InceptionV3),
}

#[derive(Debug)]
pub struct InceptionTower {
    backbone: Backbone,
    head: Head,
    k: i64,
}

/// The ImageNet weights in a safetensors file written by `fashionrec.io.convert_inception_weights`.
pub fn read_inception_weights(path: &Path) -> Result<HashMap<String, Tensor>> {
    let named = weights::read(path)?;
    if !named.tensors.contains_key("Conv2d_1a_3x3.conv.weight") {
        return Err(Error::file(
            path,
            "no 'Conv2d_1a_3x3.conv.weight': not Inception v3 weights in torchvision's names \
             (convert a torchvision state dict with fashionrec.io.convert_inception_weights)",
        ));
    }
    Ok(named.tensors)
}

/// The Inception tower for `image_size` images: the backbone's weights copied from
/// `weights[prefix + torchvision name]` (`what` names them in errors), the head under
/// `p / "head"`. A fine-tuned backbone may be built without weights (`None`) when the caller
/// restores its own store afterwards; a frozen one needs them.
pub fn inception_tower(
    p: &nn::Path,
    image_size: i64,
    k: i64,
    cfg: &InceptionConfig,
    weights: Option<&HashMap<String, Tensor>>,
    prefix: &str,
    what: &str,
) -> Result<InceptionTower> {
    InceptionV3::check_size(image_size)?;
    cfg.head.check()?;
    check_k(k)?;
    let backbone = if cfg.train_backbone {
        let net = InceptionV3::new(&(p / "backbone"), cfg.transform_input);
        if let Some(w) = weights {
            net.load(w, prefix, what)?;
        }
        Backbone::Trained(net)
    } else {
        let w = weights.ok_or_else(|| Error::invalid("the frozen Inception tower needs its weights (weights=path)"))?;
        let mut vs = nn::VarStore::new(p.device());
        let net = InceptionV3::new(&vs.root(), cfg.transform_input);
        net.load(w, prefix, what)?;
        vs.freeze();
        Backbone::Frozen(vs, net)
    };
    Ok(InceptionTower { backbone, head: Head::new(&(p / "head"), inception::FEATURES, k, &cfg.head)?, k })
}

impl ModuleT for InceptionTower {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let features = match &self.backbone {
            Backbone::Frozen(_, net) => tch::no_grad(|| net.forward_t(xs, false)),
            Backbone::Trained(net) => net.forward_t(xs, train),
        };
        self.head.forward_t(&features, train)
    }
}

impl ImageTower for InceptionTower {
    fn out_dim(&self) -> i64 {
        self.k
    }
    fn penalised(&self) -> Vec<(&'static str, Vec<Tensor>)> {
        let mut out = vec![("fc", self.head.weights().map(Tensor::shallow_clone).collect())];
        if let Backbone::Trained(net) = &self.backbone {
            out.push(("conv", net.conv_weights().map(Tensor::shallow_clone).collect()));
        }
        out
    }
    fn frozen_state(&self) -> Vec<(String, Tensor)> {
        match &self.backbone {
            Backbone::Frozen(vs, _) => sorted_variables(vs),
            Backbone::Trained(_) => Vec::new(),
        }
    }
}

impl HeadConfig {
    /// Values of a [`Head`] of this configuration from `in_dim` inputs to `k`, counted without
    /// building it.
    pub fn values(&self, in_dim: usize, k: usize) -> u128 {
        match usize::try_from(self.hidden).unwrap_or(0) {
            0 => super::linear_values(in_dim, k, true),
            h => super::linear_values(in_dim, h, true).saturating_add(super::linear_values(h, k, true)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::cae::ConvAutoencoder;
    use tch::{Device, Kind};

    fn images(n: i64, size: i64) -> Tensor {
        Tensor::randint(256, [n, size, size, 3], (Kind::Uint8, Device::Cpu))
    }

    fn cae_shape() -> CaeShape {
        CaeShape { latent: 6, image_size: 32, channels: 4, depth: 4 }
    }

    /// A trained autoencoder's encoder weights, named as `Autoencoder::encoder_state` names them.
    fn encoder_weights() -> HashMap<String, Tensor> {
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = ConvAutoencoder::new(&vs.root(), &cae_shape()).unwrap();
        vs.variables().into_iter().filter_map(|(n, t)| n.strip_prefix("encoder.").map(|s| (s.to_string(), t))).collect()
    }

    #[test]
    fn cae_tower_freezes_the_encoder_and_trains_the_head() {
        let src = encoder_weights();
        let vs = nn::VarStore::new(Device::Cpu);
        let tower = cae_tower(&vs.root(), 32, &cae_shape(), &src, "", 5, &HeadConfig::default()).unwrap();
        let frozen = tower.frozen_state();
        assert_eq!(frozen.len(), src.len());
        for (name, t) in &frozen {
            assert!(t.equal(&src[name]), "{name} copied");
            assert!(!t.requires_grad(), "{name} frozen");
        }
        let out = tower.forward_t(&images(3, 32), true);
        assert_eq!((out.size(), tower.out_dim()), (vec![3, 5], 5));
        out.square().sum(Kind::Float).backward();
        assert!(vs.trainable_variables().iter().all(|t| t.grad().defined()), "the head has gradients");
        let penalised = tower.penalised();
        assert_eq!(penalised.iter().map(|p| p.0).collect::<Vec<_>>(), ["fc"]);
        // The head's two weights (not its biases), the store's own tensors.
        let weights: Vec<_> = vs.variables().into_iter().filter(|(n, _)| n.ends_with("weight")).map(|(_, t)| t.data_ptr()).collect();
        assert_eq!(penalised[0].1.len(), 2);
        assert!(penalised[0].1.iter().all(|t| weights.contains(&t.data_ptr())));
        // The caller's store holds the head only: 2 linear layers.
        assert_eq!(vs.variables().len(), 4);
    }

    #[test]
    fn cae_tower_rejects_other_sizes_and_missing_weights() {
        let vs = nn::VarStore::new(Device::Cpu);
        let err = cae_tower(&vs.root(), 64, &cae_shape(), &encoder_weights(), "", 5, &HeadConfig::default()).unwrap_err();
        assert!(err.to_string().contains("trained on 32x32"), "{err}");
        let mut partial = encoder_weights();
        partial.remove("fc.weight");
        let err = cae_tower(&vs.root(), 32, &cae_shape(), &partial, "", 5, &HeadConfig::default()).unwrap_err();
        assert!(err.to_string().contains("missing 1 tensors: 'fc.weight'"), "{err}");
        let mut wrong = encoder_weights();
        wrong.insert("conv0.weight".into(), Tensor::zeros([1, 2], (Kind::Float, Device::Cpu)));
        let err = cae_tower(&vs.root(), 32, &cae_shape(), &wrong, "", 5, &HeadConfig::default()).unwrap_err();
        assert!(err.to_string().contains("'conv0.weight' has shape [1, 2]"), "{err}");
    }

    /// Random "ImageNet" weights in torchvision's names, as a converted file would hold.
    fn inception_weights() -> HashMap<String, Tensor> {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = InceptionV3::new(&vs.root(), true);
        let mut w: HashMap<String, Tensor> = net.named_parameters().iter().map(|(n, t)| (n.clone(), t.detach().copy())).collect();
        // Entries a torchvision file has and the headless network ignores.
        w.insert("fc.weight".into(), Tensor::zeros([1000, 2048], (Kind::Float, Device::Cpu)));
        w.insert("AuxLogits.fc.bias".into(), Tensor::zeros([1000], (Kind::Float, Device::Cpu)));
        w
    }

    #[test]
    fn inception_backbone_has_torchvision_names_and_takes_75_pixels() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = InceptionV3::new(&vs.root(), true);
        // Every parameter and buffer of the store is registered under its torchvision name.
        let mut names: Vec<_> = net.named_parameters().iter().map(|(n, _)| n.clone()).collect();
        let mut store: Vec<_> = vs.variables().into_keys().collect();
        names.sort();
        store.sort();
        assert_eq!(names, store);
        assert!(names.contains(&"Mixed_7c.branch3x3dbl_3b.bn.running_var".to_string()));
        assert_eq!(names.len(), 94 * 5, "94 conv + batch norm units");
        let out = tch::no_grad(|| net.forward_t(&images(2, 75), false));
        assert_eq!(out.size(), [2, 2048]);
        assert!(InceptionV3::check_size(74).is_err());
    }

    #[test]
    fn inception_tower_frozen_or_fine_tuned() {
        let w = inception_weights();
        let cfg = InceptionConfig::default();
        let vs = nn::VarStore::new(Device::Cpu);
        let tower = inception_tower(&vs.root(), 75, 4, &cfg, Some(&w), "", "test weights").unwrap();
        let frozen = tower.frozen_state();
        assert_eq!(frozen.len(), 94 * 5);
        assert!(frozen.iter().all(|(n, t)| t.equal(&w[n]) && !t.requires_grad()));
        assert_eq!(vs.variables().len(), 2, "the head only: one linear layer by default");
        let out = tower.forward_t(&images(2, 75), true);
        assert_eq!(out.size(), [2, 4]);
        assert_eq!(tower.penalised().iter().map(|p| p.0).collect::<Vec<_>>(), ["fc"]);
        let err = inception_tower(&vs.root(), 75, 4, &cfg, None, "", "x").unwrap_err();
        assert!(err.to_string().contains("needs its weights"), "{err}");

        let tuned = InceptionConfig { train_backbone: true, ..cfg };
        let vs = nn::VarStore::new(Device::Cpu);
        let tower = inception_tower(&vs.root(), 75, 4, &tuned, Some(&w), "", "test weights").unwrap();
        assert!(tower.frozen_state().is_empty());
        let t = vs.variables()["backbone.Mixed_5b.branch1x1.conv.weight"].shallow_clone();
        assert!(t.equal(&w["Mixed_5b.branch1x1.conv.weight"]) && t.requires_grad());
        let names: Vec<_> = tower.penalised().iter().map(|p| p.0).collect();
        assert_eq!(names, ["fc", "conv"]);
        assert!(tower.penalised()[1].1.iter().any(|w| w.data_ptr() == t.data_ptr()), "the backbone's conv weights are penalised");
        let out = tower.forward_t(&images(2, 75), true);
        out.sum(Kind::Float).backward();
        assert!(t.grad().defined(), "the backbone is trained");
    }

    #[test]
    fn weights_round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let t = Tensor::arange(6, (Kind::Float, Device::Cpu)).view([2, 3]);
        let meta = [("k".to_string(), "v".to_string())].into_iter().collect();
        weights::write(&path, &[("a.b".into(), t.shallow_clone())], meta).unwrap();
        let back = weights::read(&path).unwrap();
        assert!(back.tensors["a.b"].equal(&t));
        assert_eq!(back.metadata["k"], "v");
        let err = read_inception_weights(&path).unwrap_err();
        assert!(err.to_string().contains("convert_inception_weights"), "{err}");
        std::fs::write(&path, b"not a file").unwrap();
        assert!(weights::read(&path).unwrap_err().to_string().contains("w.safetensors"));
    }
}
