//! DVBPR's training step on the shared loop.

#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use std::collections::HashMap;
use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use super::config::DvbprConfig;
use super::feed::{upload, ImageFeed};
use super::net::{embed_all, embed_range, lock, phi, DvbprParams};
use crate::error::{Error, Result};
use crate::nets::ImageTower;
use crate::sampling::TripleBatch;
use crate::tensors::view_i64;
use crate::train::adam::Adam;
use crate::train::{BatchSource, BatchStep};

/// The DVBPR step: phi of the batch's positives and negatives in one forward pass, the BPR
/// loss summed over the batch with the batch's users' L2, Adam (its moments are the step's
/// state in checkpoints) with the network's L2 terms inside its update ([`Adam::l2`]: the
/// term's gradient `2 reg w` added in the pass that updates `w`). At the end of an epoch it embeds the catalogue into the model's item
/// embeddings (in place) when validation reads them, and after the last epoch.
pub struct DvbprStep<'a> {
    tower: &'a Mutex<Box<dyn ImageTower>>,
    theta: Tensor,
    /// The model's item embeddings (n_items, factors), refreshed in place.
    items: Tensor,
    pub feed: ImageFeed,
    adam: Adam,
    /// L2 weight of the batch's user vectors.
    reg_user: f64,
    embed_batch: usize,
    /// Embed the catalogue at each end of epoch (validation needs it), not only the last.
    pub embed_each_epoch: bool,
    /// The item embeddings are those of the parameters as they are.
    pub fresh: bool,
    last_epoch: bool,
    loss: Tensor,
    /// Training on several processes.
    sync: Option<crate::train::GradSync>,
}

impl<'a> DvbprStep<'a> {
    /// A step over `params` (Adam over its trainable variables; handles on its user vectors and
    /// item embeddings) with the pixels of `feed`.
    pub fn new(params: &'a DvbprParams, feed: ImageFeed, cfg: &DvbprConfig) -> Result<Self> {
        let mut adam = Adam::new(params.trainable(), cfg.common.lr)?;
        for (part, weights) in lock(&params.tower).penalised() {
            let reg = if part == "conv" { cfg.reg_cnn } else { cfg.reg_fc };
            if reg == 0.0 {
                continue;
            }
            for w in &weights {
                if !adam.l2(w, 2.0 * reg) {
                    return Err(Error::state(format!("DVBPR: a penalised {part} weight is not among the parameters optimised")));
                }
            }
        }
        Ok(DvbprStep {
            tower: &params.tower,
            theta: params.theta.shallow_clone(),
            items: params.items.shallow_clone(),
            feed,
            adam,
            reg_user: cfg.reg_user,
            embed_batch: cfg.embed_batch,
            embed_each_epoch: true,
            fresh: false,
            last_epoch: false,
            loss: Tensor::zeros([], (Kind::Double, params.theta.device())),
            sync: None,
        })
    }

    fn device(&self) -> Device {
        self.theta.device()
    }

    /// The batch's summed BPR loss and the loss differentiated (with the users' L2 term; the
    /// network's are Adam's).
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
        let total = &data + theta.f_square()?.f_sum(Kind::Float)? * self.reg_user;
        Ok((data, total))
    }

    /// phi of every item into the model's item embeddings.
    /// On several processes each rank embeds its share of the catalogue and the shares are
    /// gathered.
    pub fn embed_items(&mut self) -> Result<()> {
        let n_items = crate::tensors::size_at(&self.items, 0)? as usize;
        let e = match &self.sync {
            None => embed_all(&**lock(self.tower), &self.feed, n_items, self.embed_batch, self.device())?,
            Some(sync) => {
                let (world, d) = (sync.world_size(), crate::tensors::size_at(&self.items, 1)?);
                let mine = crate::train::distributed::share(n_items, sync.rank(), world);
                let longest = n_items.div_ceil(world) as i64;
                let part = embed_range(&**lock(self.tower), &self.feed, mine.clone(), self.embed_batch, self.device())?;
                let padded = Tensor::f_zeros([longest, d], (Kind::Float, self.device()))?;
                padded.f_narrow(0, 0, mine.len() as i64)?.f_copy_(&part)?;
                let all = Tensor::f_zeros([world as i64, longest, d], (Kind::Float, self.device()))?;
                sync.group().all_gather(&padded, &all)?;
                let rows: Vec<Tensor> = (0..world)
                    .map(|r| {
                        let s = crate::train::distributed::share(n_items, r, world);
                        all.f_select(0, r as i64).and_then(|t| t.f_narrow(0, 0, s.len() as i64))
                    })
                    .collect::<std::result::Result<_, _>>()?;
                Tensor::f_cat(&rows, 0)?
            }
        };
        tch::no_grad(|| self.items.shallow_clone().f_copy_(&e))?;
        self.fresh = true;
        Ok(())
    }
}

impl<S: BatchSource<Batch = TripleBatch>> BatchStep<S> for DvbprStep<'_> {
    fn begin_epoch(&mut self, epoch: usize, epochs: usize) -> Result<()> {
        self.fresh = false;
        self.last_epoch = epoch + 1 == epochs;
        Ok(())
    }

    fn step(&mut self, batch: &TripleBatch) -> Result<()> {
        if batch.is_empty() {
            // On several processes, an empty share still takes part in the gradient sum.
            if self.sync.is_some() {
                let none: Vec<Tensor> = (0..self.adam.len()).map(|_| Tensor::new()).collect();
                self.adam.step(&none)?;
            }
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

    fn distribute(&mut self, sync: &crate::train::GradSync) -> Result<()> {
        // The BPR loss is summed over the batch.
        sync.set_mean(false);
        self.adam.sync = Some(sync.clone());
        self.sync = Some(sync.clone());
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.adam.state()
    }

    fn restore_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.adam.restore(state)
    }
}
