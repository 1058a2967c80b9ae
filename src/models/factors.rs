//! Latent factors with an item bias: the parameters of every matrix-factorisation model.
//! score(u, i) = users[u] . items[i] + item_bias[i].

use std::collections::HashMap;

use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::core::{checked, ModelParams, ParamStore};
use crate::data::Interactions;
use crate::error::{Error, Result};
use crate::limits;
use crate::sampling::rng::{stream_rng, streams};
use crate::tensors::from_f32;

/// Sets `bias` (one entry per item, on any device) to ln(1 + training count): the
/// full-softmax optimum when the embeddings carry nothing, so a model starts from popularity.
pub fn set_log_popularity(bias: &Tensor, train: &Interactions) -> Result<()> {
    let counts: Vec<f32> = train.item_counts().iter().map(|&c| (c as f32 + 1.0).ln()).collect();
    tch::no_grad(|| -> Result<()> {
        bias.shallow_clone().f_copy_(&Tensor::from_slice(&counts).f_to_device(bias.device())?)?;
        Ok(())
    })
}

pub struct Factors {
    /// The three tensors below, as the model's variables.
    pub store: ParamStore,
    pub users: Tensor,
    pub items: Tensor,
    pub item_bias: Tensor,
}

/// Shallow handles on the parameter tensors (same storage): owned, so a training step can
/// hold them and still be `Send` (tch tensors are `Send` but not `Sync`).
pub struct FactorHandles {
    pub users: Tensor,
    pub items: Tensor,
    pub item_bias: Tensor,
    pub device: Device,
}

pub const USERS: &str = "user_factors";
pub const ITEMS: &str = "item_factors";
pub const ITEM_BIAS: &str = "item_bias";

impl ModelParams for Factors {
    fn store(&self) -> &ParamStore {
        &self.store
    }

    /// The item factors (cold items' zeroed).
    fn item_tables(&self) -> Vec<Tensor> {
        vec![self.items.shallow_clone()]
    }

    /// The item bias (cold items' set to the lowest trained one).
    fn item_bias(&self) -> Option<Tensor> {
        Some(self.item_bias.shallow_clone())
    }
}

impl Factors {
    /// N(0, std^2) factors and zero biases, drawn per row from seeded streams (so the same
    /// seed gives the same start on every device and thread count).
    pub fn random(n_users: usize, n_items: usize, dim: usize, std: f64, seed: u64, device: Device) -> Result<Self> {
        let normal = Normal::new(0.0f32, std as f32).map_err(|e| Error::invalid(format!("init_std: {e}")))?;
        // Checked before anything is drawn: each factor is held three times on the way (the
        // draw, the tensor, the variable's copy).
        let what = format!("factors={dim} for {n_users} users and {n_items} items");
        let values = limits::mul(&what, n_users.saturating_add(n_items), dim)?;
        limits::bytes_for(&what, values, std::mem::size_of::<[f32; 3]>())?;
        let draw = |rows: usize, offset: u64| -> Result<Vec<f32>> {
            let mut out = limits::try_filled(&what, limits::mul(&what, rows, dim)?, 0f32)?;
            out.par_chunks_mut(dim.max(1)).enumerate().for_each(|(r, row)| {
                let mut rng = stream_rng(seed, streams::INIT, offset.saturating_add(r as u64));
                row.iter_mut().for_each(|x| *x = normal.sample(&mut rng));
            });
            Ok(out)
        };
        let users = from_f32(&draw(n_users, 0)?, &[n_users as i64, dim as i64]);
        let items = from_f32(&draw(n_items, 1 << 40)?, &[n_items as i64, dim as i64]);
        let bias = Tensor::zeros([n_items as i64], (Kind::Float, Device::Cpu));
        Ok(Self::from_tensors(&users, &items, &bias, device))
    }

    /// Parameters holding copies of the given tensors, on `device`.
    pub fn from_tensors(users: &Tensor, items: &Tensor, item_bias: &Tensor, device: Device) -> Self {
        let store = ParamStore::new(device);
        let root = store.vs.root();
        let users = root.var_copy(USERS, &users.to_kind(Kind::Float));
        let items = root.var_copy(ITEMS, &items.to_kind(Kind::Float));
        let item_bias = root.var_copy(ITEM_BIAS, &item_bias.to_kind(Kind::Float));
        Factors { store, users, items, item_bias }
    }

    /// From a saved state of `n_users` x `n_items` factors of width `dim` (names, shapes,
    /// dtypes and values checked).
    pub fn from_state(state: &HashMap<String, Tensor>, (n_users, n_items): (usize, usize), dim: usize, device: Device) -> Result<Self> {
        let (nu, ni, d) = (n_users as i64, n_items as i64, dim as i64);
        let u = checked(state, USERS, &[nu, d], Kind::Float)?;
        let i = checked(state, ITEMS, &[ni, d], Kind::Float)?;
        let b = checked(state, ITEM_BIAS, &[ni], Kind::Float)?;
        Ok(Self::from_tensors(u, i, b, device))
    }

    // The tables are 2-D: built so (from_tensors' callers, from_state's checked shapes).
    pub fn dim(&self) -> usize {
        self.users.size().get(1).map_or(0, |&d| d as usize)
    }

    pub fn n_users(&self) -> usize {
        self.users.size().first().map_or(0, |&n| n as usize)
    }

    pub fn n_items(&self) -> usize {
        self.items.size().first().map_or(0, |&n| n as usize)
    }

    pub fn device(&self) -> Device {
        self.store.device()
    }

    /// Scores (B, n_items) of the user indices `users` (on the parameters' device), left there:
    /// users . items^T + bias, one matrix product.
    #[allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic")]
    pub fn score_block(&self, users: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| -> Result<Tensor> {
            Ok(self.users.f_index_select(0, users)?.f_matmul(&self.items.f_tr()?)? + self.item_bias.f_unsqueeze(0)?)
        })
    }

    pub fn handles(&self) -> FactorHandles {
        FactorHandles {
            users: self.users.shallow_clone(),
            items: self.items.shallow_clone(),
            item_bias: self.item_bias.shallow_clone(),
            device: self.device(),
        }
    }

}

/// Values of [`Factors`] for `n_users` x `n_items` of width `dim` (both tables and the item
/// bias), counted without building them.
pub fn factor_values(n_users: usize, n_items: usize, dim: usize) -> u128 {
    limits::total([limits::values(&[n_users, dim]), limits::values(&[n_items, dim]), n_items as u128])
}
