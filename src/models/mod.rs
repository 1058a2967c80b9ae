//! Models. Every model implements [`Recommender`]: the Python layer, the metrics and the
//! checkpoint format talk to that trait only. A model is a [`core::Spec`] (configuration,
//! parameters, train, score) made a `Recommender` by [`core::Model`], and one line of
//! [`registry!`] below.

pub mod bpr;
pub mod cae;
pub mod checkpoint;
pub mod compatibility;
pub mod core;
pub mod dot;
pub mod dvbpr;
pub mod ensemble;
pub mod factors;
pub mod hybrid;
pub mod popularity;
pub mod rated_below;
pub mod sampled_softmax;
pub mod similar;
pub mod triplet;
pub mod vbpr;

use std::collections::HashMap;

use tch::Tensor;

use crate::data::{FeatureTable, IdMaps, Interactions, SideInfo, SideNeeds};
use crate::error::{Error, Result};
use crate::metrics::{top_k_block, Keep, Validation};
use crate::train::{Control, EpochLog, Event, FitReport};

pub use self::core::FitOptions;

/// A model. `&self` methods only read the model (libtorch reads of its tensors), so several
/// threads may call them at once (the Python layer does, with the GIL released); only `fit`
/// and `restore` change it. Implementations must keep it that way: no interior mutability
/// behind `&self`.
pub trait Recommender: Send {
    /// The registry name, as stored in checkpoints ("bpr", "popularity", ...).
    fn kind(&self) -> &'static str;

    /// The configuration as JSON (every field, defaults filled in).
    fn config_json(&self) -> String;

    /// Which side data `fit` uses (checked against what it is given before training).
    fn needs(&self) -> SideNeeds {
        SideNeeds::default()
    }

    /// Train from scratch on `train`, with `side` data aligned to its indices (see
    /// [`SideInfo`]). With `validation`, its metrics are computed after every epoch (into the
    /// epoch logs, as "val_<metric>"). The observer sees progress and the epoch logs and may
    /// stop training; the model is usable afterwards either way.
    fn fit(
        &mut self,
        train: &Interactions,
        side: &SideInfo,
        validation: Option<&Validation<'_>>,
        observer: &mut dyn FnMut(&Event<'_>) -> Control,
        options: &FitOptions,
    ) -> Result<FitReport>;

    /// Id maps of the training data; None before `fit`.
    fn ids(&self) -> Option<&IdMaps>;

    /// Per-epoch losses of the last fit.
    fn history(&self) -> &[EpochLog];

    /// Scores of the given user indices for every item: a (users, items) f32 CPU tensor.
    fn score(&self, users: &[i64]) -> Result<Tensor>;

    /// [`Recommender::score`] written into `out` (row-major (users.len(), n_items)) when the
    /// model can without a tensor in between (dot-product models on the CPU): Ok(true); else
    /// Ok(false) and nothing written.
    fn score_into(&self, _users: &[i64], _out: &mut [f32]) -> Result<bool> {
        Ok(false)
    }

    /// Scores of users the model was not trained on, from their features (one row of
    /// `users` per user, columns as in fit's `user_features`), for every item.
    fn score_new_users(&self, _users: &FeatureTable) -> Result<Tensor> {
        Err(Error::invalid(format!("the {} model cannot score new users from features", self.kind())))
    }

    /// Item vectors (n, d) of items given by their side data alone (new products: images,
    /// features), in the space of [`Recommender::item_vectors`].
    fn embed_new_items(&self, _side: &SideInfo) -> Result<Tensor> {
        Err(Error::invalid(format!("the {} model cannot embed new items from side data", self.kind())))
    }

    /// One vector per item (n_items, d), for item-item similarity.
    fn item_vectors(&self) -> Result<Tensor>;

    /// One vector per user (n_users, d), for plots.
    fn user_vectors(&self) -> Result<Tensor> {
        Err(Error::invalid(format!("the {} model has no user vectors", self.kind())))
    }

    /// The top `k` items for each user index, best first, skipping each user's items in
    /// `exclude`: (items, scores), row-major (users.len(), k), padded with -1 / -inf where
    /// fewer candidates remain. Scores blocks of users and selects in Rust; models on a GPU
    /// may override it to select on the device.
    /// `candidates` (one flag per item): only those items are recommended.
    fn recommend(&self, users: &[i64], k: usize, exclude: Option<&Interactions>, candidates: Option<&[bool]>) -> Result<(Vec<i64>, Vec<f32>)> {
        let n_items = self.ids().ok_or_else(|| not_fitted(self.kind()))?.items.len();
        recommend_by_blocks(users, k, n_items, exclude, candidates, &|b| self.score(b), &cpu_top_k(n_items))
    }

    /// The top `k` items of each of `users` among those `keep(row, item)` allows, as
    /// `recommend` returns them, without the full scores: for models that can (dot-product
    /// scores on the CPU); Ok(None) for the others, which `evaluate` then scores block by block.
    fn rank(&self, _users: &[i64], _k: usize, _keep: &Keep<'_>) -> Result<Option<(Vec<i64>, Vec<f32>)>> {
        Ok(None)
    }

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

    /// The model as `Any`, for the methods of one model (DVBPR's encoder) reached by a
    /// downcast instead of on this trait.
    fn as_any(&self) -> &dyn std::any::Any;
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

/// A model the registry can make: its kind, from JSON, its default configuration.
pub trait Registered: Recommender + Sized + 'static {
    const KIND: &'static str;
    fn from_json(json: &str) -> Result<Self>;
    fn default_json() -> String;
}

impl<S: core::Spec> Registered for core::Model<S> {
    const KIND: &'static str = S::KIND;
    fn from_json(json: &str) -> Result<Self> {
        core::Model::from_json(json)
    }
    fn default_json() -> String {
        core::config_json(&S::Config::default())
    }
}

/// The one list of models, with their names: each `Spec` with its registry name (in model
/// files and checkpoints, `create`) and the name users know (in messages), then the models
/// that are not a `Spec`. [`create`], [`KINDS`] and [`default_config`] come from it.
macro_rules! registry {
    ($($spec:ty => ($kind:literal, $name:literal)),* ; $($other:ty),* $(,)?) => {
        $(impl core::Named for $spec {
            const KIND: &'static str = $kind;
            const NAME: &'static str = $name;
        })*
        registry!(@list $(core::Model<$spec>,)* $($other,)*);
    };
    (@list $($model:ty,)*) => {
        /// Registry names accepted by [`create`].
        pub const KINDS: &[&str] = &[$(<$model as Registered>::KIND),*];

        /// A new, unfitted model of registry name `kind` from its JSON configuration.
        pub fn create(kind: &str, config_json: &str) -> Result<Box<dyn Recommender>> {
            $(if kind == <$model as Registered>::KIND {
                return Ok(Box::new(<$model as Registered>::from_json(config_json)?));
            })*
            Err(Error::invalid(format!("unknown model kind {kind:?} (known: {})", KINDS.join(", "))))
        }

        /// The default configuration of `kind`, as JSON.
        pub fn default_config(kind: &str) -> Result<String> {
            $(if kind == <$model as Registered>::KIND {
                return Ok(<$model as Registered>::default_json());
            })*
            Err(Error::invalid(format!("unknown model kind {kind:?} (known: {})", KINDS.join(", "))))
        }
    };
}

registry!(
    bpr::Bpr => ("bpr", "BPR"),
    popularity::Popularity => ("popularity", "Popularity"),
    hybrid::HybridBpr => ("hybrid_bpr", "HybridBPR"),
    triplet::Triplet => ("triplet", "TripletModel"),
    triplet::DeepTriplet => ("deep_triplet", "DeepTripletModel"),
    dvbpr::Dvbpr => ("dvbpr", "DVBPR"),
    vbpr::Vbpr => ("vbpr", "VBPR"),
    compatibility::Compatibility => ("compatibility", "CompatibilityModel"),
    sampled_softmax::SampledSoftmax => ("sampled_softmax", "SampledSoftmax");
    ensemble::Ensemble,
);

/// Scores on the device for one block of users, then the top-k selection: for [`Recommender::recommend`].
type BlockTopK<'a> = dyn Fn(Tensor, &[i64], usize, Option<&Interactions>, Option<&[bool]>) -> Result<(Vec<i64>, Vec<f32>)> + 'a;

/// The top-k selection of a CPU score block (rayon over its rows), read where it lies.
pub fn cpu_top_k(n_items: usize) -> impl Fn(Tensor, &[i64], usize, Option<&Interactions>, Option<&[bool]>) -> Result<(Vec<i64>, Vec<f32>)> {
    move |s, b, k, ex, cand| {
        let idx: Vec<u32> = b.iter().map(|&u| u as u32).collect();
        let s = s.f_to_device(tch::Device::Cpu)?.f_to_kind(tch::Kind::Float)?.f_contiguous()?;
        let n = s.numel();
        let values: &[f32] = if n == 0 {
            &[]
        } else {
            // SAFETY: a contiguous f32 CPU tensor of n elements, alive and unwritten while read.
            unsafe { std::slice::from_raw_parts(crate::tensors::cpu_f32_ptr(&s, "the scores")? as *const f32, n) }
        };
        top_k_block(values, n_items, &idx, k, ex, cand)
    }
}

/// `recommend` of a model scored by [`dot::DotFactors`] (`rows`: the users' rows there): the
/// same checks and results as [`recommend_by_blocks`], the exclusions applied inside the
/// blocked top-k.
pub fn dot_recommend(
    f: &dot::DotFactors,
    rows: &[i64],
    users: &[i64],
    k: usize,
    exclude: Option<&Interactions>,
    candidates: Option<&[bool]>,
) -> Result<(Vec<i64>, Vec<f32>)> {
    let n_items = f.n_items();
    check_restrictions(n_items, users, exclude, candidates)?;
    let keep = |r: usize, i: u32| {
        candidates.is_none_or(|c| c.get(i as usize) == Some(&true))
            && exclude.is_none_or(|x| users.get(r).is_some_and(|&u| x.user_items(u as usize).binary_search(&i).is_err()))
    };
    f.top_k(rows, k, &keep)
}

fn check_restrictions(n_items: usize, users: &[i64], exclude: Option<&Interactions>, candidates: Option<&[bool]>) -> Result<()> {
    if let Some(x) = exclude {
        if x.n_items() != n_items {
            return Err(Error::invalid(format!("exclude has {} items, the model {n_items}", x.n_items())));
        }
        // Negative indices are left to the model's own check of the users.
        if let Some(&u) = users.iter().find(|&&u| u >= 0 && u as usize >= x.n_users()) {
            return Err(Error::invalid(format!("user index {u} out of range for {} users", x.n_users())));
        }
    }
    if let Some(c) = candidates {
        if c.len() != n_items {
            return Err(Error::invalid(format!("candidates has {} flags, the model {n_items} items", c.len())));
        }
    }
    Ok(())
}

/// Top-k over blocks of users: `score` gives a block's (users, items) scores, `select` picks
/// (on the CPU with rayon, or on the device with [`device_top_k`]).
pub fn recommend_by_blocks(
    users: &[i64],
    k: usize,
    n_items: usize,
    exclude: Option<&Interactions>,
    candidates: Option<&[bool]>,
    score: &dyn Fn(&[i64]) -> Result<Tensor>,
    select: &BlockTopK<'_>,
) -> Result<(Vec<i64>, Vec<f32>)> {
    let k = k.min(n_items);
    check_restrictions(n_items, users, exclude, candidates)?;
    let step = crate::metrics::evaluate::BLOCK_VALUES.checked_div(n_items).unwrap_or(crate::metrics::evaluate::BLOCK_VALUES).max(1);
    let total = users.len().checked_mul(k).ok_or_else(|| Error::invalid("k x users overflows"))?;
    let (mut items, mut scores) = (Vec::with_capacity(total), Vec::with_capacity(total));
    for block in users.chunks(step) {
        let (it, sc) = select(score(block)?, block, k, exclude, candidates)?;
        items.extend(it);
        scores.extend(sc);
    }
    Ok((items, scores))
}

/// Top-k of a (users, items) score block where it lives (a GPU): each user's items in
/// `exclude`, and the items not in `candidates`, set to -inf there, `topk` there, only
/// (users, k) copied back. Slots without a candidate come back as item -1, score -inf.
pub fn device_top_k(
    scores: Tensor,
    users: &[i64],
    k: usize,
    exclude: Option<&Interactions>,
    candidates: Option<&[bool]>,
) -> Result<(Vec<i64>, Vec<f32>)> {
    let device = scores.device();
    let mut scores = scores.f_contiguous()?;
    if let Some(c) = candidates {
        let outside: Vec<bool> = c.iter().map(|&ok| !ok).collect();
        let outside = Tensor::from_slice(&outside).f_to_device(device)?.f_unsqueeze(0)?;
        scores = scores.f_masked_fill(&outside, f64::NEG_INFINITY)?;
    }
    if let Some(x) = exclude {
        let (mut rows, mut cols) = (Vec::new(), Vec::new());
        for (r, &u) in users.iter().enumerate() {
            for &i in x.user_items(u as usize) {
                rows.push(r as i64);
                cols.push(i as i64);
            }
        }
        if !rows.is_empty() {
            let r = Tensor::from_slice(&rows).f_to_device(device)?;
            let c = Tensor::from_slice(&cols).f_to_device(device)?;
            let inf = Tensor::from_slice(&[f32::NEG_INFINITY]).f_to_device(device)?;
            scores = scores.f_index_put_(&[Some(r), Some(c)], &inf, false)?;
        }
    }
    if scores.f_isnan()?.f_any()?.f_int64_value(&[])? != 0 {
        return Err(Error::invalid("the model's scores contain NaN"));
    }
    let (values, index) = scores.f_topk(k as i64, 1, true, true)?;
    let values = crate::tensors::to_vec_f32(&values)?;
    let index = Vec::<i64>::try_from(index.f_to_device(tch::Device::Cpu)?.f_flatten(0, -1)?)?;
    let items = index.iter().zip(&values).map(|(&i, &v)| if v == f32::NEG_INFINITY { -1 } else { i }).collect();
    Ok((items, values))
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
