//! DVBPR (Kang et al. 2017): visually-aware recommendation trained end to end from item
//! images. score(u, i) = theta_u . phi(image_i), phi an image network (CNN-F by default),
//! trained on (user, positive, negative) triples to minimise
//! -sum ln sigmoid(theta_u . (phi(i) - phi(j))) + reg_cnn |conv weights|^2 +
//! reg_fc |fc weights|^2 + reg_user |theta of the batch's users|^2, with Adam; theta_u and
//! phi have `factors` dimensions (the paper's K).
//!
//! The catalogue is the image bank's: every item with an image is scored, those without
//! interactions (cold items) included. After each epoch phi is computed for every item in
//! batches, so scoring, validation and recommending never run the network per user; a saved
//! model holds the network and those embeddings, so a loaded one scores without the images.
//!
//! Here: the model as a [`Spec`]. `config.rs`: the configuration and its checks; `net.rs`: the
//! parameters (towers, user vectors, item embeddings) and where a pretrained backbone comes
//! from; `feed.rs`: where a batch's pixels come from; `step.rs`: the training step.

mod config;
mod feed;
mod net;
mod step;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use tch::{Device, Tensor};

pub use self::config::{DvbprConfig, Encoder, TOWERS};
pub use self::net::{DvbprParams, FROZEN};
use self::feed::ImageFeed;
use self::net::{embed_all, lock};
use self::step::DvbprStep;
use super::cae::Autoencoder;
use super::core::{FitCtx, FitStart, Model, SizesFrom, Spec};
use crate::data::{Interactions, ItemImages, SideInfo};
use crate::error::{Error, Result};
use crate::sampling::TripleSampler;
use crate::train::{Control, EpochLog, FitReport};

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
    for (item, &count) in counts.iter().enumerate() {
        let Some(&row) = images.bank_rows(&[item as i64])?.first() else { continue };
        if count > 0 && skipped.contains(&row) {
            return Err(Error::invalid(format!(
                "training item {} has no image (its image could not be decoded: bank row {row})",
                train.ids().items.display(item)
            )));
        }
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
    type Config = DvbprConfig;
    type Params = DvbprParams;

    fn build(cfg: &DvbprConfig, train: &Interactions, side: &SideInfo, device: Device) -> Result<DvbprParams> {
        Self::build_fit(cfg, train, side, device, FitStart { resumed: None, observer: &mut |_| Control::Continue })
    }

    fn build_fit(cfg: &DvbprConfig, train: &Interactions, side: &SideInfo, device: Device, start: FitStart<'_>) -> Result<DvbprParams> {
        let images = side.images.as_ref().ok_or_else(|| Error::invalid("DVBPR needs images="))?;
        check_images(cfg, train, images)?;
        net::build_for_fit(cfg, (train.n_users(), train.n_items()), images, device, start)
    }

    fn train(cfg: &DvbprConfig, params: &DvbprParams, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let images = side.images.as_ref().ok_or_else(|| Error::invalid("DVBPR needs images="))?;
        let sampler = TripleSampler::new(train, 1)?;
        let feed = ImageFeed::new(images, params.store.device(), &cfg.resident_images)?;
        let mut step = DvbprStep::new(params, feed, cfg)?;
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

    /// theta per user, phi of every item, and the tower: CNN-F, or a frozen backbone (the
    /// autoencoder's encoder, Inception v3) and its trained head.
    fn param_count(cfg: &DvbprConfig, (n_users, n_items): (usize, usize), _: SizesFrom<'_>) -> Result<u128> {
        let k = cfg.factors;
        let tower = match cfg.tower.as_str() {
            "cnnf" => crate::nets::cnnf::cnnf_values(cfg.image_size, cfg.image_size, k, cfg.fc_width),
            "cae" => cfg.cae_shape().encoder_values().saturating_add(cfg.head_config().values(usize::try_from(cfg.latent).unwrap_or(0), k)),
            _ => {
                use crate::nets::inception::{BACKBONE_VALUES, FEATURES};
                BACKBONE_VALUES.saturating_add(cfg.head_config().values(FEATURES as usize, k))
            }
        };
        Ok(crate::limits::total([crate::limits::values(&[n_users, k]), crate::limits::values(&[n_items, k]), tower]))
    }

    fn restore(cfg: &DvbprConfig, shape: (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<DvbprParams> {
        net::restore(cfg, shape, state, device)
    }

    fn score_block(_: &DvbprConfig, params: &DvbprParams, users: &Tensor) -> Result<Tensor> {
        scores(&params.theta, &params.items, users)
    }

    fn dot_factors(_: &DvbprConfig, params: &DvbprParams, users: &Tensor) -> Result<Option<super::dot::DotFactors>> {
        Ok(Some(super::dot::DotFactors::new(&params.theta.f_index_select(0, users)?, &params.items, None)?))
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

