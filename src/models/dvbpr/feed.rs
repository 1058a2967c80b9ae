//! Where the pixels of a batch come from.
//!
//! GPU pipeline: when the images fit, the uint8 bank is copied to the device once and each
//! batch is an `index_select` there (no host work, no copy, no synchronisation per step; the
//! loss accumulates on the device). Otherwise each batch is gathered on the host (rayon) into
//! pinned memory and copied asynchronously.

use tch::{Device, Kind, Tensor};

use crate::data::ItemImages;
use crate::error::{Error, Result};

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
        if !crate::tensors::gpu_path(device) || resident == "host" {
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
                let out = unsafe { std::slice::from_raw_parts_mut(buf.data_ptr() as *mut u8, buf.numel()) };
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

