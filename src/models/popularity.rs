//! The popularity baseline: every user gets the items with the most training interactions.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::{not_fitted, Recommender};
use crate::data::{IdMaps, Interactions, SideInfo};
use crate::error::{Error, Result};
use crate::metrics::Validation;
use crate::train::{Control, EpochLog, Event, FitReport};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PopularityConfig {}

const COUNTS: &str = "item_counts";

pub struct Popularity {
    config: PopularityConfig,
    counts: Option<Tensor>,
    ids: Option<IdMaps>,
}

impl Popularity {
    pub fn new(config: PopularityConfig) -> Result<Self> {
        Ok(Popularity { config, counts: None, ids: None })
    }
}

impl Recommender for Popularity {
    fn kind(&self) -> &'static str {
        "popularity"
    }

    fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap()
    }

    /// Counts interactions; there are no epochs, so no validation metrics are logged.
    fn fit(
        &mut self,
        train: &Interactions,
        side: &SideInfo,
        _validation: Option<&Validation<'_>>,
        _observer: &mut dyn FnMut(&Event<'_>) -> Control,
    ) -> Result<FitReport> {
        super::check_side(self, "Popularity", train, side)?;
        let counts: Vec<f32> = train.item_counts().into_iter().map(|c| c as f32).collect();
        self.counts = Some(Tensor::from_slice(&counts));
        self.ids = Some(train.ids().clone());
        Ok(FitReport::default())
    }

    fn ids(&self) -> Option<&IdMaps> {
        self.ids.as_ref()
    }

    fn history(&self) -> &[EpochLog] {
        &[]
    }

    fn score(&self, users: &[i64]) -> Result<Tensor> {
        let counts = self.counts.as_ref().ok_or_else(|| not_fitted("Popularity"))?;
        let n = self.ids.as_ref().map_or(0, |i| i.users.len()) as i64;
        if let Some(&bad) = users.iter().find(|&&u| u < 0 || u >= n) {
            return Err(Error::invalid(format!("user index {bad} out of range for {n} users")));
        }
        Ok(counts.unsqueeze(0).expand([users.len() as i64, -1], false).contiguous())
    }

    fn item_vectors(&self) -> Result<Tensor> {
        Err(Error::invalid("the popularity model has no item vectors, so it cannot find similar items"))
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let counts = self.counts.as_ref().ok_or_else(|| not_fitted("Popularity"))?;
        Ok(vec![(COUNTS.into(), counts.shallow_clone())])
    }

    fn restore(
        &mut self,
        state: &HashMap<String, Tensor>,
        ids: IdMaps,
        _history: Vec<EpochLog>,
        _device: Option<&str>,
    ) -> Result<()> {
        let c = state.get(COUNTS).ok_or_else(|| Error::state(format!("saved model has no tensor '{COUNTS}'")))?;
        if c.size() != [ids.items.len() as i64] {
            return Err(Error::state(format!("saved counts {:?} do not match {} items", c.size(), ids.items.len())));
        }
        self.counts = Some(c.to_kind(Kind::Float).to_device(Device::Cpu));
        self.ids = Some(ids);
        Ok(())
    }

    fn device(&self) -> String {
        if self.counts.is_some() { "cpu".into() } else { String::new() }
    }
}
