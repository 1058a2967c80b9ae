//! DVBPR's training machinery: where the pixels of a batch come from ([`ImageFeed`]), the
//! network and user vectors ([`Net`]), Adam with state that can be saved ([`Adam`]), and the
//! training step on the shared loop ([`DvbprStep`]).
//!
//! GPU pipeline: when the images fit, the uint8 bank is copied to the device once and each
//! batch is an `index_select` there (no host work, no copy, no synchronisation per step; the
//! loss accumulates on the device). Otherwise each batch is gathered on the host (rayon) into
//! pinned memory and copied asynchronously.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use tch::{nn, Device, Kind, Tensor};

use crate::data::ItemImages;
use crate::error::{Error, Result};
use crate::nets::ImageTower;
use crate::sampling::rng::{streams, sub_seed};
use crate::sampling::TripleBatch;
use crate::tensors::view_i64;
use crate::train::{BatchSource, BatchStep};

/// Where batches of item images come from.
pub enum ImageFeed {
    /// The whole bank as uint8 (rows, H, W, 3) on the device, and the bank row of each item
    /// index there (None: row = index).
    Resident { pixels: Tensor, rows: Option<Tensor> },
    /// Gathered on the host per batch (into pinned memory when the device is CUDA).
    Host { images: ItemImages, device: Device },
}

impl ImageFeed {
    /// The resident feed when `resident` allows it and the bank can be copied to `device`,
    /// else the host feed. On the CPU the host feed is the resident one (no copy needed).
    pub fn new(images: &ItemImages, device: Device, resident: &str) -> Result<Self> {
        let host = || ImageFeed::Host { images: images.clone(), device };
        if device == Device::Cpu || resident == "host" {
            return Ok(host());
        }
        let bank = &images.bank;
        let spec = bank.spec();
        let shape = [bank.len() as i64, spec.height as i64, spec.width as i64, 3];
        // SAFETY: the view lives only for the copy below, while `bank` (an Arc) is held.
        let view = unsafe { Tensor::from_blob(bank.pixels().as_ptr(), &shape, &[], Kind::Uint8, Device::Cpu) };
        match view.f_to_device(device) {
            Ok(pixels) => {
                let rows = images.rows.as_ref().map(|r| Tensor::from_slice(r).f_to_device(device)).transpose()?;
                Ok(ImageFeed::Resident { pixels, rows })
            }
            // Out of device memory: the bank stays on the host ("device" insists).
            Err(e) if resident == "device" => Err(Error::Torch(format!("cannot copy the image bank to {device:?}: {e}"))),
            Err(_) => Ok(host()),
        }
    }

    pub fn is_resident(&self) -> bool {
        matches!(self, ImageFeed::Resident { .. })
    }

    /// uint8 (N, H, W, 3) images of item indices: `items` on the device, `host` the same
    /// indices on the host (used by the host feed only).
    pub fn pixels(&self, items: &Tensor, host: &[i64]) -> Result<Tensor> {
        match self {
            ImageFeed::Resident { pixels, rows } => {
                let r = match rows {
                    Some(map) => map.f_index_select(0, items)?,
                    None => items.shallow_clone(),
                };
                Ok(pixels.f_index_select(0, &r)?)
            }
            ImageFeed::Host { images, device } => {
                let rows = images.bank_rows(host)?;
                let spec = images.bank.spec();
                let shape = [rows.len() as i64, spec.height as i64, spec.width as i64, 3];
                let buf = Tensor::f_empty(shape, (Kind::Uint8, Device::Cpu))?;
                let buf = if device.is_cuda() { buf.f_pin_memory(*device)? } else { buf };
                // SAFETY: `buf` is a fresh contiguous uint8 tensor of exactly this many bytes.
                let out = unsafe { std::slice::from_raw_parts_mut(buf.data_ptr() as *mut u8, rows.len() * spec.image_bytes()) };
                images.bank.gather(&rows, out)?;
                Ok(if device.is_cuda() { buf.f_to_device_(*device, Kind::Uint8, true, false)? } else { buf })
            }
        }
    }
}

/// A host tensor on `device` without waiting for the device: a blocking copy would
/// synchronise the stream every step (CUDA stages pageable memory at once, so the host
/// buffer may be reused as soon as this returns).
pub fn upload(t: &Tensor, device: Device) -> Result<Tensor> {
    if device == Device::Cpu {
        return Ok(t.shallow_clone());
    }
    Ok(t.f_to_device_(device, t.kind(), true, false)?)
}

/// Prefix of a frozen backbone's tensors in saved models and checkpoints.
pub const FROZEN: &str = "frozen.";

/// The trained parameters: the image network (under "tower") and one vector per user
/// ("theta"), in one VarStore.
pub struct Net {
    pub vs: nn::VarStore,
    pub tower: Box<dyn ImageTower>,
    pub theta: Tensor,
}

impl Net {
    /// phi of uint8 images; a libtorch panic inside the network becomes an error.
    pub fn phi(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        let tower = &self.tower;
        catch_unwind(AssertUnwindSafe(|| tower.forward_t(images, train))).map_err(|p| {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            Error::Torch(msg.unwrap_or_else(|| "the image network failed".into()))
        })
    }

    /// phi of every item (eval mode, no gradient), `batch` images at a time: (n_items, k).
    pub fn embed_all(&self, feed: &ImageFeed, n_items: usize, batch: usize) -> Result<Tensor> {
        let device = self.vs.device();
        let mut parts = Vec::new();
        let _guard = tch::no_grad_guard();
        for start in (0..n_items).step_by(batch.max(1)) {
            let idx: Vec<i64> = (start as i64..(start + batch).min(n_items) as i64).collect();
            let items = upload(&Tensor::from_slice(&idx), device)?;
            parts.push(self.phi(&feed.pixels(&items, &idx)?, false)?);
        }
        if parts.is_empty() {
            return Ok(Tensor::zeros([0, self.tower.out_dim()], (Kind::Float, device)));
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    }

    /// The tower's frozen backbone (outside `vs`), named under [`FROZEN`]: saved with the
    /// model and in checkpoints, so neither needs the encoder or weights file again.
    pub fn frozen_state(&self) -> Vec<(String, Tensor)> {
        self.tower.frozen_state().into_iter().map(|(n, t)| (format!("{FROZEN}{n}"), t)).collect()
    }

    /// Trainable variables by name, sorted (a stable order for the optimiser state).
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

pub use crate::train::adam::Adam;

/// Regularisation weights of the loss.
#[derive(Debug, Clone, Copy)]
pub struct Lambdas {
    pub cnn: f64,
    pub fc: f64,
    pub user: f64,
}

/// The DVBPR step: phi of the batch's positives and negatives in one forward pass, the BPR
/// loss summed over the batch, the L2 terms, Adam. `epoch_offset` shifts the epoch numbers
/// (a resumed fit continues the learning rate schedule and the random streams).
pub struct DvbprStep {
    pub net: Net,
    pub feed: ImageFeed,
    pub adam: Adam,
    pub lambdas: Lambdas,
    pub seed: u64,
    pub n_items: usize,
    pub embed_batch: usize,
    pub epoch_offset: usize,
    loss: Tensor,
    /// phi of every item after the last finished epoch (eval mode), for validation.
    pub embeddings: Arc<Mutex<Option<Tensor>>>,
    /// Embed the catalogue at each end of epoch (validation needs it); otherwise the fit
    /// embeds it once, after the last epoch.
    pub embed_each_epoch: bool,
    /// Filled at each epoch's end with (shallow handles on) the parameters, the optimiser
    /// state and the item embeddings, for a checkpoint written after validation.
    pub snapshot: Option<Arc<Mutex<Vec<(String, Tensor)>>>>,
}

impl DvbprStep {
    pub fn new(net: Net, feed: ImageFeed, lr: f64, lambdas: Lambdas, seed: u64, n_items: usize, embed_batch: usize) -> Result<Self> {
        let adam = Adam::new(net.trainable(), lr)?;
        let device = net.vs.device();
        Ok(DvbprStep {
            net,
            feed,
            adam,
            lambdas,
            seed,
            n_items,
            embed_batch,
            epoch_offset: 0,
            loss: Tensor::zeros([], (Kind::Double, device)),
            embeddings: Default::default(),
            embed_each_epoch: true,
            snapshot: None,
        })
    }

    /// The batch's summed BPR loss and the total loss (with the L2 terms).
    pub fn losses(&self, batch: &TripleBatch) -> Result<(Tensor, Tensor)> {
        let device = self.net.vs.device();
        let b = batch.len() as i64;
        let host: Vec<i64> = batch.pos.iter().chain(batch.neg.iter().step_by(batch.n_neg.max(1) * batch.n_cand.max(1))).copied().collect();
        // SAFETY: the views are used (copied to the device) while `batch` is borrowed unchanged.
        let users = upload(unsafe { &view_i64(&batch.users) }, device)?;
        let items = upload(unsafe { &view_i64(&host) }, device)?;
        let phi = self.net.phi(&self.feed.pixels(&items, &host)?, true)?;
        let theta = self.net.theta.f_index_select(0, &users)?;
        let diff = phi.f_narrow(0, 0, b)? - phi.f_narrow(0, b, b)?;
        let x = (&theta * diff).f_sum_dim_intlist(1, false, Kind::Float)?;
        let data = (-x).f_softplus()?.f_sum(Kind::Float)?;
        let mut total = &data + theta.f_square()?.f_sum(Kind::Float)? * self.lambdas.user;
        for (name, p) in self.net.tower.penalties() {
            let w = match name {
                "conv" => self.lambdas.cnn,
                "fc" => self.lambdas.fc,
                _ => self.lambdas.fc,
            };
            if w != 0.0 {
                total = total + p * w;
            }
        }
        Ok((data, total))
    }

    /// Seed of the dropout masks of (absolute) epoch `epoch`: fixed per epoch, so a resumed
    /// fit draws the same masks as an uninterrupted one.
    fn dropout_seed(&self, epoch: usize) -> i64 {
        (sub_seed(self.seed, streams::MODEL, (1 << 32) + epoch as u64) >> 1) as i64
    }

    pub fn take_embeddings(&self) -> Option<Tensor> {
        self.embeddings.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|t| t.shallow_clone())
    }
}

impl<S: BatchSource<Batch = TripleBatch>> BatchStep<S> for DvbprStep {
    fn begin_epoch(&mut self, epoch: usize, _epochs: usize) -> Result<()> {
        tch::manual_seed(self.dropout_seed(epoch + self.epoch_offset));
        Ok(())
    }

    fn step(&mut self, batch: &TripleBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let (data, total) = self.losses(batch)?;
        self.adam.minimise(&total)?;
        let _guard = tch::no_grad_guard();
        self.loss += data.detach().f_to_kind(Kind::Double)?;
        Ok(())
    }

    fn take_loss(&mut self) -> Result<f64> {
        let v = self.loss.f_double_value(&[])?;
        self.loss = self.loss.f_zeros_like()?;
        Ok(v)
    }

    fn end_epoch(&mut self, _epoch: usize) -> Result<()> {
        let e = match self.embed_each_epoch {
            true => Some(self.net.embed_all(&self.feed, self.n_items, self.embed_batch)?),
            false => None,
        };
        if let Some(slot) = &self.snapshot {
            let mut state = self.net.vs.variables().into_iter().collect::<Vec<_>>();
            state.extend(self.adam.state());
            state.extend(self.net.frozen_state());
            if let Some(e) = &e {
                state.push(("item_embeddings".into(), e.shallow_clone()));
            }
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = state;
        }
        *self.embeddings.lock().unwrap_or_else(|p| p.into_inner()) = e;
        Ok(())
    }
}

/// A source whose batch numbers start `offset` batches later (a resumed fit draws the
/// batches the uninterrupted one would have drawn).
pub struct Offset<'a, S> {
    pub inner: &'a S,
    pub offset: u64,
    pub epoch_offset: usize,
}

impl<S: BatchSource> BatchSource for Offset<'_, S> {
    type Batch = S::Batch;
    fn epoch_len(&self) -> usize {
        self.inner.epoch_len()
    }
    fn fill(&self, batch: &mut Self::Batch, size: usize, seed: u64, batch_index: u64) {
        self.inner.fill(batch, size, seed, batch_index + self.offset)
    }
    fn begin_epoch(&self, epoch: usize) {
        self.inner.begin_epoch(epoch + self.epoch_offset)
    }
}
