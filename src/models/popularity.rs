//! The popularity baseline: every user gets the items with the most training interactions.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::core::{checked, Common, FitCtx, ModelConfig, ParamStore, SizesFrom, Spec};
use crate::data::{Interactions, SideInfo};
use crate::error::Result;
use crate::train::FitReport;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PopularityConfig {}

/// Nothing to set: no training settings, no side data.
impl ModelConfig for PopularityConfig {
    fn common(&self) -> Option<&Common> {
        None
    }
}

const COUNTS: &str = "item_counts";

pub struct Popularity;

impl Spec for Popularity {
    const PER_USER_STATE: bool = false;
    type Config = PopularityConfig;
    /// The item counts, as a buffer.
    type Params = ParamStore;

    fn build(_: &PopularityConfig, train: &Interactions, _: &SideInfo, _: Device) -> Result<ParamStore> {
        let counts: Vec<f32> = train.item_counts().into_iter().map(|c| c as f32).collect();
        let mut store = ParamStore::new(Device::Cpu);
        store.set_buffer(COUNTS, Tensor::from_slice(&counts));
        Ok(store)
    }

    /// Counting is the training: there are no epochs, so no validation metrics are logged.
    fn train(_: &PopularityConfig, _: &ParamStore, _: &Interactions, _: &SideInfo, _: FitCtx<'_>) -> Result<FitReport> {
        Ok(FitReport::default())
    }

    /// The item counts.
    fn param_count(_: &PopularityConfig, (_, n_items): (usize, usize), _: SizesFrom<'_>) -> Result<u128> {
        Ok(n_items as u128)
    }

    fn restore(_: &PopularityConfig, (_, n_items): (usize, usize), state: &HashMap<String, Tensor>, _: Device) -> Result<ParamStore> {
        let counts = checked(state, COUNTS, &[n_items as i64], Kind::Float)?;
        let mut store = ParamStore::new(Device::Cpu);
        store.set_buffer(COUNTS, counts.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?);
        Ok(store)
    }

    fn score_block(_: &PopularityConfig, p: &ParamStore, users: &Tensor) -> Result<Tensor> {
        Ok(p.buffer(COUNTS)?.f_unsqueeze(0)?.f_expand([users.numel() as i64, -1], false)?)
    }
}
