//! DVBPR's training machinery: where the pixels of a batch come from ([`ImageFeed`]), phi of
//! images ([`phi`], [`embed_all`]), and the training step on the shared loop ([`DvbprStep`]).
//!
//! GPU pipeline: when the images fit, the uint8 bank is copied to the device once and each
//! batch is an `index_select` there (no host work, no copy, no synchronisation per step; the
//! loss accumulates on the device). Otherwise each batch is gathered on the host (rayon) into
//! pinned memory and copied asynchronously.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use tch::{Device, Kind, Tensor};

use crate::data::ItemImages;
use crate::error::{Error, Result};
use crate::nets::ImageTower;
use crate::sampling::rng::{streams, sub_seed};
use crate::sampling::TripleBatch;
use crate::tensors::view_i64;
use crate::train::adam::Adam;
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
    let mut parts = Vec::new();
    let _guard = tch::no_grad_guard();
    for start in (0..n_items).step_by(batch.max(1)) {
        let idx: Vec<i64> = (start as i64..(start + batch).min(n_items) as i64).collect();
        let items = upload(&Tensor::from_slice(&idx), device)?;
        parts.push(phi(tower, &feed.pixels(&items, &idx)?, false)?);
    }
    if parts.is_empty() {
        return Ok(Tensor::zeros([0, tower.out_dim()], (Kind::Float, device)));
    }
    Ok(Tensor::f_cat(&parts, 0)?)
}

/// Regularisation weights of the loss.
#[derive(Debug, Clone, Copy)]
pub struct Regs {
    pub cnn: f64,
    pub fc: f64,
    pub user: f64,
}

/// The DVBPR step: phi of the batch's positives and negatives in one forward pass, the BPR
/// loss summed over the batch, the L2 terms, Adam (its moments are the step's state in
/// checkpoints). At the end of an epoch it embeds the catalogue into the model's item
/// embeddings (in place) when validation reads them, and after the last epoch.
pub struct DvbprStep<'a> {
    tower: &'a Mutex<Box<dyn ImageTower>>,
    theta: Tensor,
    /// The model's item embeddings (n_items, factors), refreshed in place.
    items: Tensor,
    pub feed: ImageFeed,
    adam: Adam,
    regs: Regs,
    seed: u64,
    embed_batch: usize,
    /// Embed the catalogue at each end of epoch (validation needs it), not only the last.
    pub embed_each_epoch: bool,
    /// The item embeddings are those of the parameters as they are.
    pub fresh: bool,
    last_epoch: bool,
    loss: Tensor,
}

impl<'a> DvbprStep<'a> {
    /// A step over `trainable` (the variables Adam updates, by name), `theta` and `items`
    /// handles on the model's tensors.
    pub fn new(
        tower: &'a Mutex<Box<dyn ImageTower>>,
        trainable: Vec<(String, Tensor)>,
        theta: Tensor,
        items: Tensor,
        feed: ImageFeed,
        lr: f64,
        regs: Regs,
        seed: u64,
        embed_batch: usize,
    ) -> Result<Self> {
        let adam = Adam::new(trainable, lr)?;
        let loss = Tensor::zeros([], (Kind::Double, theta.device()));
        Ok(DvbprStep { tower, theta, items, feed, adam, regs, seed, embed_batch, embed_each_epoch: true, fresh: false, last_epoch: false, loss })
    }

    fn device(&self) -> Device {
        self.theta.device()
    }

    /// The batch's summed BPR loss and the total loss (with the L2 terms).
    pub fn losses(&self, batch: &TripleBatch) -> Result<(Tensor, Tensor)> {
        let device = self.device();
        let b = batch.len() as i64;
        let host: Vec<i64> = batch.pos.iter().chain(batch.neg.iter().step_by(batch.n_neg.max(1) * batch.n_cand.max(1))).copied().collect();
        // SAFETY: the views are used (copied to the device) while `batch` is borrowed unchanged.
        let users = upload(unsafe { &view_i64(&batch.users) }, device)?;
        let items = upload(unsafe { &view_i64(&host) }, device)?;
        let tower = lock(self.tower);
        let phi = phi(&**tower, &self.feed.pixels(&items, &host)?, true)?;
        let theta = self.theta.f_index_select(0, &users)?;
        let diff = phi.f_narrow(0, 0, b)? - phi.f_narrow(0, b, b)?;
        let x = (&theta * diff).f_sum_dim_intlist(1, false, Kind::Float)?;
        let data = (-x).f_softplus()?.f_sum(Kind::Float)?;
        let mut total = &data + theta.f_square()?.f_sum(Kind::Float)? * self.regs.user;
        for (name, p) in tower.penalties() {
            let w = match name {
                "conv" => self.regs.cnn,
                _ => self.regs.fc,
            };
            if w != 0.0 {
                total = total + p * w;
            }
        }
        Ok((data, total))
    }

    /// Seed of the dropout masks of epoch `epoch`: fixed per epoch, so a resumed fit draws
    /// the same masks as an uninterrupted one.
    fn dropout_seed(&self, epoch: usize) -> i64 {
        (sub_seed(self.seed, streams::MODEL, (1 << 32) + epoch as u64) >> 1) as i64
    }

    /// phi of every item into the model's item embeddings.
    pub fn embed_items(&mut self) -> Result<()> {
        let n_items = self.items.size()[0] as usize;
        let e = embed_all(&**lock(self.tower), &self.feed, n_items, self.embed_batch, self.device())?;
        tch::no_grad(|| self.items.shallow_clone().f_copy_(&e))?;
        self.fresh = true;
        Ok(())
    }
}

impl<S: BatchSource<Batch = TripleBatch>> BatchStep<S> for DvbprStep<'_> {
    fn begin_epoch(&mut self, epoch: usize, epochs: usize) -> Result<()> {
        tch::manual_seed(self.dropout_seed(epoch));
        self.fresh = false;
        self.last_epoch = epoch + 1 == epochs;
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
        if self.embed_each_epoch || self.last_epoch {
            self.embed_items()?;
        }
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.adam.state()
    }

    fn restore_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.adam.restore(state)
    }
}
