//! Several models of one catalogue scored as one: the mean of their scores.
//!
//! Copies of a model trained from different seeds make partly different errors (their random
//! start, the negatives they drew); averaging their scores cancels part of those errors. On the
//! MovieLens cold users (`benches/hybrid_cold_users.py`), five HybridBPR seeds averaged ranked
//! better than the average single seed on every tuning split.
//!
//! The ensemble is a model like any other: `fit` fits each member in turn on the same data,
//! `score` / `score_new_users` average the members', `recommend` and `evaluate` run the shared
//! block loops over those means, and it saves and loads as one file (each member's tensors
//! under "member<k>.").

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{Kind, Tensor};

use super::{create, FitOptions, Recommender, Registered};
use crate::data::{FeatureTable, IdMaps, Interactions, Need, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::metrics::Validation;
use crate::train::{Control, EpochLog, Event, FitReport};

/// Members an ensemble may hold (each is a whole model).
pub const MAX_MEMBERS: usize = 256;

/// One member: its registry kind and configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub kind: String,
    pub config: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnsembleConfig {
    pub members: Vec<Member>,
}

pub struct Ensemble {
    members: Vec<Box<dyn Recommender>>,
    /// The members' epochs one after the other (numbered on through the members).
    history: Vec<EpochLog>,
}

const KIND: &str = "ensemble";

impl Ensemble {
    pub fn new(cfg: EnsembleConfig) -> Result<Self> {
        if cfg.members.is_empty() {
            return Err(Error::invalid("an ensemble needs at least one member"));
        }
        if cfg.members.len() > MAX_MEMBERS {
            return Err(Error::invalid(format!("an ensemble holds at most {MAX_MEMBERS} members, not {}", cfg.members.len())));
        }
        let members = cfg
            .members
            .iter()
            .enumerate()
            .map(|(k, m)| {
                if m.kind == KIND {
                    return Err(Error::invalid(format!("members[{k}]: an ensemble cannot hold an ensemble")));
                }
                create(&m.kind, &m.config.to_string()).map_err(|e| Error::invalid(format!("members[{k}] ({}): {e}", m.kind)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Ensemble { members, history: Vec::new() })
    }

    /// A fitted ensemble of copies of fitted models (each copied through its state, so the
    /// ensemble owns its members). They must share one catalogue.
    pub fn of_fitted(models: &[&dyn Recommender]) -> Result<Self> {
        let members = models.iter().map(|m| copy(*m)).collect::<Result<Vec<_>>>()?;
        if members.is_empty() {
            return Err(Error::invalid("an ensemble needs at least one member"));
        }
        let e = Ensemble { members, history: Vec::new() };
        e.check_catalogue()?;
        Ok(e)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// A copy of member `k`.
    pub fn member(&self, k: usize) -> Result<Box<dyn Recommender>> {
        let m = self.members.get(k).ok_or_else(|| Error::invalid(format!("member {k} out of range for {} members", self.members.len())))?;
        match m.ids() {
            Some(_) => copy(m.as_ref()),
            None => create(m.kind(), &m.config_json()),
        }
    }

    fn check_catalogue(&self) -> Result<()> {
        let Some(member0) = self.members.first() else { return Ok(()) };
        let first = member0.ids();
        for (k, m) in self.members.iter().enumerate().skip(1) {
            let same = match (m.ids(), first) {
                (Some(a), Some(b)) => a.same_as(b),
                (a, b) => a.is_none() && b.is_none(),
            };
            if !same {
                let (mine, theirs) = (m.kind(), member0.kind());
                return Err(Error::invalid(match (m.ids(), first) {
                    (Some(_), Some(_)) => format!(
                        "member {k} ({mine}) was fitted on other user or item ids than member 0 ({theirs}): the members of an ensemble must share one catalogue"
                    ),
                    _ => format!(
                        "member {k} ({mine}) and member 0 ({theirs}) are not both fitted: the members of an ensemble must share one catalogue (all fitted on the same data, or none)"
                    ),
                }));
            }
        }
        Ok(())
    }

    /// The mean of the members' (users, items) scores, summed in float64.
    #[allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic")]
    fn mean(&self, each: impl Fn(&dyn Recommender) -> Result<Tensor>) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for m in &self.members {
            let s = each(m.as_ref())?.f_to_kind(Kind::Double)?;
            total = Some(match total {
                None => s,
                Some(t) if t.size() == s.size() => t + s,
                Some(t) => return Err(Error::state(format!("members' scores differ in shape: {:?} vs {:?}", s.size(), t.size()))),
            });
        }
        let total = total.ok_or_else(|| Error::state("an ensemble without members"))?;
        Ok((total / self.members.len() as f64).f_to_kind(Kind::Float)?)
    }

    fn no_vector_space() -> Error {
        Error::invalid("an ensemble has no single vector space: use one member's, e.g. ensemble.models[0].item_vectors()")
    }
}

/// An independent copy of a fitted model: a new one of its kind and configuration, restored
/// from its state (the restore copies every tensor).
fn copy(m: &dyn Recommender) -> Result<Box<dyn Recommender>> {
    let ids = m.ids().ok_or_else(|| super::not_fitted(m.kind()))?.clone();
    let mut out = create(m.kind(), &m.config_json())?;
    let state: HashMap<String, Tensor> = m.state()?.into_iter().collect();
    let device = m.device();
    out.restore(&state, ids, m.history().to_vec(), Some(&device))?;
    Ok(out)
}

/// The stronger of two needs (what one member requires, the ensemble requires).
fn stronger(a: Need, b: Need) -> Need {
    match (a, b) {
        (Need::Required, _) | (_, Need::Required) => Need::Required,
        (Need::Optional, _) | (_, Need::Optional) => Need::Optional,
        _ => Need::Unused,
    }
}

const HISTORY: &str = "__history__";

impl Recommender for Ensemble {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn config_json(&self) -> String {
        let members = self
            .members
            .iter()
            .map(|m| Member { kind: m.kind().to_string(), config: serde_json::from_str(&m.config_json()).unwrap_or(Value::Null) })
            .collect();
        super::core::config_json(&EnsembleConfig { members })
    }

    fn needs(&self) -> SideNeeds {
        let start = SideNeeds { categorical_features: true, ..SideNeeds::default() };
        self.members.iter().map(|m| m.needs()).fold(start, |a, b| SideNeeds {
            images: stronger(a.images, b.images),
            item_features: stronger(a.item_features, b.item_features),
            user_features: stronger(a.user_features, b.user_features),
            categories: stronger(a.categories, b.categories),
            // Every member sees the same tables: a column one cannot read is refused.
            categorical_features: a.categorical_features && b.categorical_features,
        })
    }

    /// Each member in turn on the same data; the observer sees their epochs numbered on
    /// through the members, and stopping stops the ensemble (the members fitted so far are
    /// kept, the others are left unfitted: the ensemble is then unfitted).
    fn fit(
        &mut self,
        train: &Interactions,
        side: &SideInfo,
        validation: Option<&Validation<'_>>,
        observer: &mut dyn FnMut(&Event<'_>) -> Control,
        options: &FitOptions,
    ) -> Result<FitReport> {
        self.history.clear();
        let mut report = FitReport::default();
        let mut offset = 0;
        for (k, m) in self.members.iter_mut().enumerate() {
            let mut renumbered = |e: &Event<'_>| match e {
                Event::Progress { epoch, samples, total } => observer(&Event::Progress { epoch: epoch.saturating_add(offset), samples: *samples, total: *total }),
                Event::EpochEnd(log) => observer(&Event::EpochEnd(&EpochLog { epoch: log.epoch.saturating_add(offset), ..(*log).clone() })),
            };
            // Each member checkpoints in a folder of its own.
            let own = FitOptions { checkpoint_dir: options.checkpoint_dir.as_ref().map(|d| d.join(format!("member{k}"))), resume: options.resume, group: options.group.clone() };
            let r = m.fit(train, side, validation, &mut renumbered, &own)?;
            self.history.extend(r.history.iter().map(|h| EpochLog { epoch: h.epoch.saturating_add(offset), ..h.clone() }));
            offset = offset.saturating_add(r.history.len());
            if r.stopped {
                report.stopped = true;
                break;
            }
        }
        report.history = self.history.clone();
        if !report.stopped {
            self.check_catalogue()?;
        }
        Ok(report)
    }

    fn ids(&self) -> Option<&IdMaps> {
        // Fitted only when every member is.
        if self.members.iter().any(|m| m.ids().is_none()) {
            return None;
        }
        self.members.first().and_then(|m| m.ids())
    }

    fn history(&self) -> &[EpochLog] {
        &self.history
    }

    fn score(&self, users: &[i64]) -> Result<Tensor> {
        self.mean(|m| m.score(users))
    }

    fn score_new_users(&self, users: &FeatureTable) -> Result<Tensor> {
        self.mean(|m| m.score_new_users(users))
    }

    fn item_vectors(&self) -> Result<Tensor> {
        Err(Self::no_vector_space())
    }

    fn user_vectors(&self) -> Result<Tensor> {
        Err(Self::no_vector_space())
    }

    /// Each member's tensors under "member<k>.", and its history as text.
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (k, m) in self.members.iter().enumerate() {
            out.extend(m.state()?.into_iter().map(|(n, t)| (format!("member{k}.{n}"), t)));
            let history = serde_json::to_string(m.history()).map_err(|e| Error::state(e.to_string()))?;
            out.push((format!("member{k}.{HISTORY}"), Tensor::from_slice(history.as_bytes())));
        }
        Ok(out)
    }

    fn restore(&mut self, state: &HashMap<String, Tensor>, ids: IdMaps, history: Vec<EpochLog>, device: Option<&str>) -> Result<()> {
        for (k, m) in self.members.iter_mut().enumerate() {
            let prefix = format!("member{k}.");
            let own: HashMap<String, Tensor> =
                state.iter().filter_map(|(n, t)| n.strip_prefix(&prefix).map(|n| (n.to_string(), t.shallow_clone()))).collect();
            let text = own.get(HISTORY).ok_or_else(|| Error::state(format!("saved ensemble has no '{prefix}{HISTORY}'")))?;
            let bytes = Vec::<u8>::try_from(text.f_to_kind(Kind::Uint8)?.f_flatten(0, -1)?)?;
            let own_history: Vec<EpochLog> = serde_json::from_slice(&bytes).map_err(|e| Error::state(format!("{prefix}{HISTORY}: {e}")))?;
            m.restore(&own, ids.clone(), own_history, device).map_err(|e| Error::state(format!("member {k}: {e}")))?;
        }
        self.history = history;
        Ok(())
    }

    fn device(&self) -> String {
        self.members.first().map(|m| m.device()).unwrap_or_default()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl Registered for Ensemble {
    const KIND: &'static str = KIND;
    fn from_json(json: &str) -> Result<Self> {
        Ensemble::new(super::core::parse_config(KIND, json)?)
    }
    fn default_json() -> String {
        super::core::config_json(&EnsembleConfig::default())
    }
}
