//! Models. Every model implements [`Recommender`]: the Python layer, the metrics and the
//! checkpoint format talk to that trait only, so a new model slots in by implementing it and
//! adding one line to [`create`].

pub mod bpr;
pub mod checkpoint;
pub mod factors;
pub mod popularity;
pub mod similar;

use std::collections::HashMap;

use tch::Tensor;

use crate::data::{IdMaps, Interactions};
use crate::error::{Error, Result};
use crate::metrics::Validation;
use crate::train::{Control, EpochLog, Event, FitReport};

pub trait Recommender: Send {
    /// The registry name, as stored in checkpoints ("bpr", "popularity", ...).
    fn kind(&self) -> &'static str;

    /// The configuration as JSON (every field, defaults filled in).
    fn config_json(&self) -> String;

    /// Train from scratch on `train`. With `validation`, its metrics are computed after every
    /// epoch (into the epoch logs, as "val_<metric>"). The observer sees progress and the
    /// epoch logs and may stop training; the model is usable afterwards either way.
    fn fit(
        &mut self,
        train: &Interactions,
        validation: Option<&Validation<'_>>,
        observer: &mut dyn FnMut(&Event<'_>) -> Control,
    ) -> Result<FitReport>;

    /// Id maps of the training data; None before `fit`.
    fn ids(&self) -> Option<&IdMaps>;

    /// Per-epoch losses of the last fit.
    fn history(&self) -> &[EpochLog];

    /// Scores of the given user indices for every item: a (users, items) f32 CPU tensor.
    fn score(&self, users: &[i64]) -> Result<Tensor>;

    /// One vector per item (n_items, d), for item-item similarity.
    fn item_vectors(&self) -> Result<Tensor>;

    /// Named tensors to save.
    fn state(&self) -> Result<Vec<(String, Tensor)>>;

    /// Put back a saved state. `device` overrides the configured device when given.
    fn restore(
        &mut self,
        state: &HashMap<String, Tensor>,
        ids: IdMaps,
        history: Vec<EpochLog>,
        device: Option<&str>,
    ) -> Result<()>;

    /// Where the parameters live ("cpu", "cuda:0"); "" before fit.
    fn device(&self) -> String;
}

/// A new, unfitted model of registry name `kind` from its JSON configuration.
pub fn create(kind: &str, config_json: &str) -> Result<Box<dyn Recommender>> {
    match kind {
        "bpr" => Ok(Box::new(bpr::Bpr::new(parse_config(kind, config_json)?)?)),
        "popularity" => Ok(Box::new(popularity::Popularity::new(parse_config(kind, config_json)?)?)),
        _ => Err(Error::invalid(format!("unknown model kind {kind:?} (known: {})", KINDS.join(", ")))),
    }
}

/// Registry names accepted by [`create`].
pub const KINDS: &[&str] = &["bpr", "popularity"];

/// The default configuration of `kind`, as JSON.
pub fn default_config(kind: &str) -> Result<String> {
    match kind {
        "bpr" => Ok(serde_json::to_string(&bpr::BprConfig::default()).unwrap()),
        "popularity" => Ok(serde_json::to_string(&popularity::PopularityConfig::default()).unwrap()),
        _ => Err(Error::invalid(format!("unknown model kind {kind:?}"))),
    }
}

fn parse_config<T: serde::de::DeserializeOwned>(kind: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| Error::invalid(format!("{kind} configuration: {e}")))
}

/// The per-epoch validation closure for a model scored by `score`: metrics named "val_<m>".
pub(crate) fn validator<'a>(
    train: &'a Interactions,
    validation: Option<&'a Validation<'a>>,
    score: impl Fn(&[i64]) -> Result<Tensor> + 'a,
) -> Result<Box<crate::train::Validate<'a>>> {
    if let Some(v) = validation {
        train.check_same_ids(v.data, "the validation data")?;
    }
    Ok(Box::new(move || match validation {
        None => Ok(Default::default()),
        Some(v) => Ok(crate::metrics::evaluate_with(&score, v)?
            .into_iter()
            .map(|(k, x)| (format!("val_{k}"), x))
            .collect()),
    }))
}

/// Error for use before fit.
pub(crate) fn not_fitted(kind: &str) -> Error {
    Error::state(format!("this {kind} model is not fitted yet: call fit() first"))
}
