//! The convolutional autoencoder as a trainable object of its own (not a recommender): it
//! learns to reconstruct the item images of a bank, and its encoder then serves as the frozen
//! image network of the CAE tower (`nets::towers::cae_tower`). One file holds the weights, and
//! in its metadata the configuration and the training history.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::images::ImageBank;
use crate::nets::cae::{to_pixels, CaeShape, ConvAutoencoder};
use crate::nets::{check_images, weights};
use crate::tensors::{device_name, parse_device};
use crate::train::rows::Rows;
use crate::train::{fit_loop, BatchStep, Control, EpochLog, Event, FitReport, LoopConfig, RowBatches};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaeConfig {
    pub latent: i64,
    pub image_size: i64,
    pub channels: i64,
    pub depth: i64,
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    /// "auto", "cpu", "cuda", "cuda:N".
    pub device: String,
    pub seed: u64,
}

impl Default for CaeConfig {
    fn default() -> Self {
        let s = CaeShape::default();
        CaeConfig {
            latent: s.latent,
            image_size: s.image_size,
            channels: s.channels,
            depth: s.depth,
            epochs: 10,
            lr: 1e-3,
            batch_size: 64,
            device: "auto".into(),
            seed: 0,
        }
    }
}

impl CaeConfig {
    pub fn shape(&self) -> CaeShape {
        CaeShape { latent: self.latent, image_size: self.image_size, channels: self.channels, depth: self.depth }
    }

    fn check(&self) -> Result<()> {
        self.shape().check()?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::invalid(format!("lr must be positive, got {}", self.lr)));
        }
        if self.batch_size == 0 || self.batch_size > 1 << 20 {
            return Err(Error::invalid(format!("batch_size must be in 1..=1048576, got {}", self.batch_size)));
        }
        parse_device(&self.device).map(|_| ())
    }
}

const FORMAT: &str = "fashionrec-cae";
const FORMAT_VERSION: &str = "1";
/// Bytes of one forward pass's activations when encoding or reconstructing (no gradients
/// kept): the batch is sized by bytes, so large images or wide layers get fewer a pass.
const EVAL_BYTES: usize = 256 << 20;

/// Images per forward pass: [`EVAL_BYTES`] over an image's activations (its pixels as f32 and
/// the first, widest convolution's `channels` maps at full size, an upper bound of the rest),
/// between 1 and 256.
fn eval_batch(cfg: &CaeConfig) -> usize {
    let pixels = (cfg.image_size.max(1) as usize).saturating_mul(cfg.image_size.max(1) as usize);
    let per_image = pixels.saturating_mul((cfg.channels.max(1) as usize).saturating_mul(2).saturating_add(3)).saturating_mul(4);
    EVAL_BYTES.checked_div(per_image).unwrap_or(EVAL_BYTES).clamp(1, 256)
}

pub struct Autoencoder {
    cfg: CaeConfig,
    device: Device,
    vs: nn::VarStore,
    net: ConvAutoencoder,
    fitted: bool,
    history: Vec<EpochLog>,
}

impl Autoencoder {
    /// A new, randomly initialised autoencoder (seeded by `cfg.seed`).
    pub fn new(cfg: CaeConfig) -> Result<Self> {
        cfg.check()?;
        let device = parse_device(&cfg.device)?;
        Self::build(cfg, device)
    }

    fn build(cfg: CaeConfig, device: Device) -> Result<Self> {
        crate::nets::random::reseed(cfg.seed);
        let vs = nn::VarStore::new(device);
        let net = ConvAutoencoder::new(&vs.root(), &cfg.shape())?;
        Ok(Autoencoder { cfg, device, vs, net, fitted: false, history: Vec::new() })
    }

    pub fn config(&self) -> &CaeConfig {
        &self.cfg
    }

    #[allow(clippy::expect_used, reason = "a struct of numbers and strings always serialises to JSON")]
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.cfg).expect("a config serialises")
    }

    pub fn device(&self) -> String {
        device_name(self.device)
    }

    pub fn is_fitted(&self) -> bool {
        self.fitted
    }

    pub fn history(&self) -> &[EpochLog] {
        &self.history
    }

    /// The encoder's weights, named as in its own store ("conv0.weight", ..., "fc.bias"): what
    /// `nets::towers::cae_tower` takes (with prefix "").
    pub fn encoder_state(&self) -> Result<HashMap<String, Tensor>> {
        self.check_fitted()?;
        Ok(self
            .vs
            .variables()
            .into_iter()
            .filter_map(|(n, t)| n.strip_prefix("encoder.").map(|s| (s.to_string(), t.detach())))
            .collect())
    }

    fn check_fitted(&self) -> Result<()> {
        if !self.fitted {
            return Err(Error::state("this ConvAutoencoder is not fitted yet: call fit() first"));
        }
        Ok(())
    }

    fn check_bank(&self, bank: &ImageBank) -> Result<()> {
        let s = bank.spec();
        let want = self.cfg.image_size as usize;
        if s.height != want || s.width != want {
            return Err(Error::invalid(format!(
                "images: the bank holds {}x{} images, this autoencoder takes image_size={want} ({want}x{want}); \
                 build the bank at that size",
                s.height, s.width
            )));
        }
        if bank.is_empty() {
            return Err(Error::invalid("images: the bank is empty"));
        }
        Ok(())
    }

    /// Train from scratch on every image of `bank` (mean squared reconstruction error, Adam),
    /// on the shared loop over [`RowBatches`]. The observer sees progress and the epoch logs
    /// and may stop training.
    pub fn fit(&mut self, bank: &ImageBank, observer: &mut dyn FnMut(&Event<'_>) -> Control) -> Result<FitReport> {
        self.check_bank(bank)?;
        let fresh = Self::build(self.cfg.clone(), self.device)?;
        self.vs = fresh.vs;
        self.history.clear();
        self.fitted = false;
        let opt = nn::Adam::default().build(&self.vs, self.cfg.lr)?;
        let loss = Tensor::zeros([], (Kind::Float, self.device));
        let mut step = CaeStep { net: fresh.net, opt, bank, device: self.device, loss };
        let cfg = LoopConfig { epochs: self.cfg.epochs, batch_size: self.cfg.batch_size, seed: self.cfg.seed, ..Default::default() };
        let source = RowBatches::new(bank.len(), self.cfg.seed);
        let mut no_validation = || -> Result<BTreeMap<String, f64>> { Ok(BTreeMap::new()) };
        let report = fit_loop(&mut step, &source, &cfg, &mut no_validation, &mut |_, _| Ok(()), observer);
        // The network comes back whatever happened; it is usable after a stop.
        self.net = step.net;
        let report = report?;
        self.history = report.history.clone();
        self.fitted = true;
        Ok(report)
    }

    /// Runs `f` on the images of `rows` in blocks, without gradients, concatenating the
    /// results on the CPU.
    fn map_rows(&self, bank: &ImageBank, rows: &[i64], f: impl Fn(&Tensor) -> Tensor) -> Result<Tensor> {
        self.check_fitted()?;
        self.check_bank(bank)?;
        let per_pass = eval_batch(&self.cfg);
        let mut parts = Vec::with_capacity(rows.len().div_ceil(per_pass));
        for block in rows.chunks(per_pass) {
            let xs = gather(bank, block, self.device)?;
            check_images(&xs, self.cfg.image_size, "the autoencoder")?;
            parts.push(tch::no_grad(|| f(&xs)).f_to_device(Device::Cpu)?);
        }
        if parts.is_empty() {
            return Err(Error::invalid("rows: no rows given"));
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    }

    /// The codes of every image of `bank`: (n, latent) f32 on the CPU.
    pub fn encode(&self, bank: &ImageBank) -> Result<Tensor> {
        let rows: Vec<i64> = (0..bank.len() as i64).collect();
        self.map_rows(bank, &rows, |xs| self.net.encoder.forward_t(xs, false))
    }

    /// Reconstructions of the images of `rows`: uint8 (len(rows), S, S, 3) on the CPU.
    pub fn reconstruct(&self, bank: &ImageBank, rows: &[i64]) -> Result<Tensor> {
        self.map_rows(bank, rows, |xs| to_pixels(&self.net.forward_t(xs, false)))
    }

    /// Write the weights, configuration and history to `path` (safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.check_fitted()?;
        let mut tensors: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let metadata = [
            ("format", FORMAT.to_string()),
            ("format_version", FORMAT_VERSION.to_string()),
            ("library_version", env!("CARGO_PKG_VERSION").to_string()),
            ("config", self.config_json()),
            ("history", serde_json::to_string(&self.history).map_err(|e| Error::state(format!("history: {e}")))?),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        weights::write(path, &tensors, metadata)
    }

    /// Read an autoencoder written by [`Self::save`], on `device` (default: the saved one).
    pub fn load(path: &Path, device: Option<&str>) -> Result<Self> {
        let named = weights::read(path)?;
        let bad = |m: String| Error::file(path, m);
        let get = |k: &str| named.metadata.get(k).ok_or_else(|| bad(format!("not a fashionrec autoencoder file (no '{k}' metadata)")));
        if get("format")? != FORMAT {
            return Err(bad("not a fashionrec autoencoder file".into()));
        }
        if get("format_version")? != FORMAT_VERSION {
            return Err(bad(format!("autoencoder file format {} is not supported (reads {FORMAT_VERSION})", get("format_version")?)));
        }
        let mut cfg: CaeConfig = serde_json::from_str(get("config")?).map_err(|e| bad(format!("bad config: {e}")))?;
        if let Some(d) = device {
            cfg.device = d.to_string();
        }
        cfg.check().map_err(|e| bad(e.to_string()))?;
        let history = serde_json::from_str(get("history")?).map_err(|e| bad(format!("bad history: {e}")))?;
        let dev = parse_device(&cfg.device).map_err(|e| bad(e.to_string()))?;
        let mut model = Self::build(cfg, dev)?;
        let dst: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
        weights::copy_into(&dst, &named.tensors, "", &path.display().to_string())?;
        model.history = history;
        model.fitted = true;
        Ok(model)
    }
}

/// One Adam step on a batch of bank rows. Owns the network while training (a step must be
/// `Send`; tensors are not `Sync`).
struct CaeStep<'a> {
    net: ConvAutoencoder,
    opt: nn::Optimizer,
    bank: &'a ImageBank,
    device: Device,
    /// Summed per-image loss since the last `take_loss`, on the device (no sync per step).
    loss: Tensor,
}

impl BatchStep<RowBatches> for CaeStep<'_> {
    #[allow(clippy::arithmetic_side_effects, reason = "tensor arithmetic: the loss summed on the device")]
    fn step(&mut self, batch: &Rows) -> Result<()> {
        let xs = gather(self.bank, &batch.rows, self.device)?;
        let per_image = self.net.loss(&xs, true);
        let loss = per_image.f_mean(Kind::Float)?;
        self.opt.zero_grad();
        loss.f_backward()?;
        self.opt.step();
        self.loss += per_image.detach().f_sum(Kind::Float)?;
        Ok(())
    }

    fn take_loss(&mut self) -> Result<f64> {
        let total = self.loss.f_double_value(&[])?;
        self.loss = self.loss.f_zero_()?.shallow_clone();
        Ok(total)
    }
}

/// The uint8 images of `rows` on `device`, (len, S, S, 3).
fn gather(bank: &ImageBank, rows: &[i64], device: Device) -> Result<Tensor> {
    let s = bank.spec();
    let mut buf = crate::limits::try_filled("a batch of images", crate::limits::mul("a batch of images", rows.len(), s.image_bytes())?, 0u8)?;
    bank.gather(rows, &mut buf)?;
    let t = Tensor::from_slice(&buf).f_view([rows.len() as i64, s.height as i64, s.width as i64, 3])?;
    Ok(t.f_to_device(device)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::decode::tests::tiny_png;
    use crate::images::{BankSpec, Filter, ImageSource, OnError};

    /// 12 distinct 2x2 PNGs, resized to 16x16.
    fn bank(dir: &Path) -> ImageBank {
        let paths = (0..12u8)
            .map(|i| {
                let p = dir.join(format!("{i}.png"));
                let v = i * 20;
                std::fs::write(&p, tiny_png(&[v, 255 - v, 0, 0, v, 255 - v, 255 - v, 0, v, 9, 9, v])).unwrap();
                p
            })
            .collect();
        let spec = BankSpec { height: 16, width: 16, filter: Filter::Bilinear, reduce: true };
        ImageBank::build(&ImageSource::files(paths), spec, OnError::Raise, crate::images::DEFAULT_MAX_PIXELS, None, 1, &mut |_, _| true).unwrap().0
    }

    fn config(epochs: usize) -> CaeConfig {
        CaeConfig { latent: 4, image_size: 16, channels: 4, depth: 2, epochs, lr: 1e-2, batch_size: 5, device: "cpu".into(), seed: 1 }
    }

    #[test]
    fn fits_on_the_shared_loop_and_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let bank = bank(dir.path());
        let mut cae = Autoencoder::new(config(6)).unwrap();
        assert!(cae.encode(&bank).is_err(), "not fitted yet");
        let mut events = 0;
        let report = cae.fit(&bank, &mut |_| {
            events += 1;
            Control::Continue
        }).unwrap();
        assert!(!report.stopped && events >= 6);
        let losses: Vec<f64> = cae.history().iter().map(|h| h.loss).collect();
        assert_eq!(losses.len(), 6);
        assert!(losses[5] < losses[0], "{losses:?}");
        let codes = cae.encode(&bank).unwrap();
        assert_eq!(codes.size(), [12, 4]);
        let recon = cae.reconstruct(&bank, &[2, 0]).unwrap();
        assert_eq!((recon.size(), recon.kind()), (vec![2, 16, 16, 3], Kind::Uint8));
        assert_eq!(cae.encoder_state().unwrap().len(), 2 * 2 + 2, "two convs and the fc, weight and bias");

        let path = dir.path().join("cae.safetensors");
        cae.save(&path).unwrap();
        let back = Autoencoder::load(&path, Some("cpu")).unwrap();
        assert!(back.encode(&bank).unwrap().equal(&codes));
        assert_eq!((back.config(), back.history()), (cae.config(), cae.history()));
    }

    #[test]
    fn observer_stops_and_bad_input_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let bank = bank(dir.path());
        let mut cae = Autoencoder::new(config(4)).unwrap();
        let report = cae.fit(&bank, &mut |e| match e {
            Event::EpochEnd(_) => Control::Stop,
            _ => Control::Continue,
        }).unwrap();
        assert!(report.stopped && cae.history().len() == 1 && cae.is_fitted());
        let mut other = Autoencoder::new(CaeConfig { image_size: 32, ..config(1) }).unwrap();
        let err = other.fit(&bank, &mut |_| Control::Continue).unwrap_err();
        assert!(err.to_string().contains("image_size=32"), "{err}");
        assert!(Autoencoder::new(CaeConfig { batch_size: 0, ..config(1) }).is_err());
        assert!(Autoencoder::new(CaeConfig { device: "tpu".into(), ..config(1) }).is_err());
        assert!(cae.reconstruct(&bank, &[12]).is_err(), "row out of range");
    }

    /// Encoding passes are sized by bytes: larger images or wider layers, fewer a pass.
    #[test]
    fn eval_batches_are_sized_by_bytes() {
        let small = config(1);
        let large = CaeConfig { image_size: 1024, channels: 64, ..config(1) };
        assert!(eval_batch(&large) < eval_batch(&small) && eval_batch(&large) >= 1);
        assert!(eval_batch(&small) <= 256);
    }

}
