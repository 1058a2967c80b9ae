//! Latent factors with an item bias: the parameters of every matrix-factorisation model.
//! score(u, i) = users[u] . items[i] + item_bias[i].

use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use tch::{nn, Device, Kind, Tensor};

use crate::data::Interactions;
use crate::error::{Error, Result};
use crate::limits;
use crate::sampling::rng::{stream_rng, streams};
use crate::tensors::{from_f32, parse_device};

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
    pub vs: nn::VarStore,
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

impl Factors {
    /// N(0, std^2) factors and zero biases, drawn per row from seeded streams (so the same
    /// seed gives the same start on every device and thread count).
    pub fn random(n_users: usize, n_items: usize, dim: usize, std: f64, seed: u64, device: Device) -> Result<Self> {
        let normal = Normal::new(0.0f32, std as f32).map_err(|e| Error::invalid(format!("init_std: {e}")))?;
        // Checked before anything is drawn: each factor is held three times on the way (the
        // draw, the tensor, the variable's copy).
        let what = format!("factors={dim} for {n_users} users and {n_items} items");
        let values = limits::mul(&what, n_users.saturating_add(n_items), dim)?;
        limits::bytes_for(&what, values, 3 * std::mem::size_of::<f32>())?;
        let draw = |rows: usize, offset: u64| -> Result<Vec<f32>> {
            let mut out = limits::try_filled(&what, rows * dim, 0f32)?;
            out.par_chunks_mut(dim.max(1)).enumerate().for_each(|(r, row)| {
                let mut rng = stream_rng(seed, streams::INIT, offset + r as u64);
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
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let users = root.var_copy(USERS, &users.to_kind(Kind::Float));
        let items = root.var_copy(ITEMS, &items.to_kind(Kind::Float));
        let item_bias = root.var_copy(ITEM_BIAS, &item_bias.to_kind(Kind::Float));
        Factors { vs, users, items, item_bias }
    }

    /// From a saved state, checking names and shapes.
    pub fn from_state(state: &std::collections::HashMap<String, Tensor>, device: &str) -> Result<Self> {
        let get = |name: &str| {
            state.get(name).ok_or_else(|| Error::state(format!("saved model has no tensor '{name}'")))
        };
        let (u, i, b) = (get(USERS)?, get(ITEMS)?, get(ITEM_BIAS)?);
        for (name, t) in [(USERS, u), (ITEMS, i), (ITEM_BIAS, b)] {
            if t.kind() != Kind::Float {
                return Err(Error::state(format!("saved tensor '{name}' holds {:?} values, not float32", t.kind())));
            }
        }
        let (us, is, bs) = (u.size(), i.size(), b.size());
        if us.len() != 2 || is.len() != 2 || us[1] != is[1] || bs != [is[0]] {
            return Err(Error::state(format!(
                "saved factors have inconsistent shapes: users {us:?}, items {is:?}, bias {bs:?}"
            )));
        }
        Ok(Self::from_tensors(u, i, b, parse_device(device)?))
    }

    pub fn dim(&self) -> usize {
        self.users.size()[1] as usize
    }

    pub fn n_users(&self) -> usize {
        self.users.size()[0] as usize
    }

    pub fn n_items(&self) -> usize {
        self.items.size()[0] as usize
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Scores of the given users for every item: a (users, items) f32 CPU tensor.
    pub fn score(&self, users: &[i64]) -> Result<Tensor> {
        Ok(self.score_on_device(users)?.f_to_device(Device::Cpu)?.f_contiguous()?)
    }

    /// The same scores, left on the parameters' device.
    pub fn score_on_device(&self, users: &[i64]) -> Result<Tensor> {
        let n = self.n_users() as i64;
        if let Some(&bad) = users.iter().find(|&&u| u < 0 || u >= n) {
            return Err(Error::invalid(format!("user index {bad} out of range for {n} users")));
        }
        tch::no_grad(|| -> Result<Tensor> {
            let idx = Tensor::from_slice(users).f_to_device(self.device())?;
            Ok(self.users.f_index_select(0, &idx)?.f_matmul(&self.items.f_tr()?)? + self.item_bias.f_unsqueeze(0)?)
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

    pub fn named(&self) -> Vec<(String, Tensor)> {
        vec![
            (USERS.into(), self.users.shallow_clone()),
            (ITEMS.into(), self.items.shallow_clone()),
            (ITEM_BIAS.into(), self.item_bias.shallow_clone()),
        ]
    }
}
