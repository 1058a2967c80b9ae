//! Every model's [`Spec::param_count`] against the stores it builds and restores, so the
//! closed form cannot drift from the code; the core's checks by it (a forged file's sizes, a
//! fit beyond memory).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tch::{Device, Tensor};

use super::{config_json, Model, ModelParams, SizesFrom, Spec};
use crate::data::{CategoricalColumn, Columns, DenseMatrix, Duplicates, FeatureTable, Interactions, SideInfo};
use crate::error::Error;
use crate::models::bpr::Bpr;
use crate::models::compatibility::Compatibility;
use crate::models::hybrid::HybridBpr;
use crate::models::popularity::Popularity;
use crate::models::sampled_softmax::SampledSoftmax;
use crate::models::triplet::{DeepTriplet, Triplet};
use crate::models::vbpr::Vbpr;
use crate::models::Recommender;
use crate::train::Control;

/// The values of `p`'s store: its variables, and its buffers but those `side_data` names (the
/// side data a model keeps, which [`Spec::param_count`] leaves out).
fn store_values<P: ModelParams>(p: &P, side_data: &dyn Fn(&str) -> bool) -> u128 {
    let store = p.store();
    let vars: u128 = store.vs.variables().values().map(|t| t.numel() as u128).sum();
    let own: u128 = store.buffers.iter().filter(|(n, _)| !side_data(n)).map(|(_, t)| t.numel() as u128).sum();
    vars + own
}

/// `cfg`'s count equals the values of the store built on `train` and `side`, of its saved
/// state, and of the store restored from that; the core restores the state, and refuses it
/// under a configuration whose `factors` was multiplied by 1000, naming it.
pub(crate) fn assert_counts<S: Spec>(cfg: &S::Config, train: &Interactions, side: &SideInfo, side_data: &dyn Fn(&str) -> bool) {
    assert_counts_of::<S>(cfg, train, side, &S::build(cfg, train, side, Device::Cpu).unwrap(), side_data);
}

/// [`assert_counts`] of the parameters `built` for `train` and `side` (built otherwise than
/// by [`Spec::build`]).
pub(crate) fn assert_counts_of<S: Spec>(cfg: &S::Config, train: &Interactions, side: &SideInfo, built: &S::Params, side_data: &dyn Fn(&str) -> bool) {
    let shape = (train.n_users(), train.n_items());
    let what = format!("{} {}", S::NAME, config_json(cfg));
    let stated = S::param_count(cfg, shape, SizesFrom::Fit(train, side)).unwrap();
    assert!(stated > 0, "{what}");
    assert_eq!(stated, store_values(built, side_data), "{what}: the store built");
    let state: HashMap<String, Tensor> = built.store().state().into_iter().collect();
    assert_eq!(S::param_count(cfg, shape, SizesFrom::Saved(&state)).unwrap(), stated, "{what}: from the saved state");
    let restored = S::restore(cfg, shape, &state, Device::Cpu).unwrap();
    assert_eq!(store_values(&restored, side_data), stated, "{what}: the store restored");

    let mut model = Model::<S>::new(cfg.clone()).unwrap();
    model.restore(&state, train.ids().clone(), vec![], Some("cpu")).unwrap();
    let Ok(Value::Object(mut json)) = serde_json::to_value(cfg) else { panic!("{what}: not an object") };
    let Some(factors) = json.get("factors").and_then(Value::as_u64) else { return };
    json.insert("factors".into(), Value::from(factors * 1000));
    let forged: S::Config = serde_json::from_value(Value::Object(json)).unwrap();
    let e = Model::<S>::new(forged).unwrap().restore(&state, train.ids().clone(), vec![], Some("cpu")).unwrap_err();
    assert!(matches!(e, Error::State(_)), "{what}: {e:?}");
    let e = e.to_string();
    assert!(e.contains("claims ") && e.contains(&format!("factors={}", factors * 1000)) && e.contains("forged"), "{what}: {e}");
}

/// 12 users, 15 items; items 12..15 have no interaction (cold).
fn data() -> Interactions {
    let (mut us, mut is) = (Vec::new(), Vec::new());
    for u in 0..12i64 {
        for i in [u, (u + 1) % 12, (u + 5) % 12] {
            us.push(u);
            is.push(i);
        }
    }
    Interactions::from_indices(&us, &is, None, Some(12), Some(15), Duplicates::Sum, Columns::default()).unwrap()
}

/// Pairs of 15 items (the item x item data of the compatibility model).
fn pairs() -> Interactions {
    let q: Vec<i64> = (0..15).collect();
    let p: Vec<i64> = (0..15).map(|i| (i + 1) % 15).collect();
    Interactions::from_indices(&q, &p, None, Some(15), Some(15), Duplicates::Sum, Columns::default()).unwrap()
}

fn dense(rows: usize, cols: usize) -> DenseMatrix {
    DenseMatrix::new(rows, cols, (0..rows * cols).map(|x| (x % 7) as f32 - 3.0).collect(), vec![]).unwrap()
}

/// A table of `rows` rows: two categorical columns (3 and `rows` / 2 distinct values) and
/// `cont` continuous ones.
fn table(rows: usize, cont: usize) -> Arc<FeatureTable> {
    let col = |name: &str, k: usize| CategoricalColumn { name: name.into(), values: (0..rows).map(|r| format!("v{}", r % k)).collect() };
    let continuous = (cont > 0).then(|| dense(rows, cont));
    Arc::new(FeatureTable::new(rows, vec![col("a", 3), col("b", rows / 2)], continuous).unwrap())
}

fn json<C: serde::de::DeserializeOwned + serde::Serialize + Default>(kind: &str, json: &str) -> C {
    super::parse_config(kind, json).unwrap()
}

fn nothing(_: &str) -> bool {
    false
}

#[test]
fn counts_equal_the_stores_of_the_factor_models() {
    let train = data();
    let none = SideInfo::default();
    for f in [1, 4, 7] {
        let cfg = format!(r#"{{"factors": {f}, "device": "cpu"}}"#);
        assert_counts::<Bpr>(&json("bpr", &cfg), &train, &none, &nothing);
        assert_counts::<Triplet>(&json("triplet", &cfg), &train, &none, &nothing);
        assert_counts::<SampledSoftmax>(&json("sampled_softmax", &cfg), &train, &none, &nothing);
    }
    assert_counts::<Triplet>(&json("triplet", r#"{"factors": 3, "item_bias": true, "device": "cpu"}"#), &train, &none, &nothing);
    assert_counts::<Popularity>(&Default::default(), &train, &none, &nothing);
    for cfg in [
        r#"{"factors": 4, "user_factors": 3, "hidden": [5], "device": "cpu"}"#,
        r#"{"factors": 2, "user_factors": 6, "hidden": [7, 3, 2], "device": "cpu"}"#,
    ] {
        assert_counts::<DeepTriplet>(&json("deep_triplet", cfg), &train, &none, &nothing);
    }
}

#[test]
fn counts_equal_the_stores_of_the_feature_models() {
    let train = data();
    for cols in [1, 5] {
        let side = SideInfo { item_features: Some(Arc::new(FeatureTable::dense(dense(15, cols)))), ..Default::default() };
        for cfg in [r#"{"factors": 3, "visual_factors": 2, "device": "cpu"}"#, r#"{"factors": 1, "visual_factors": 6, "device": "cpu"}"#] {
            assert_counts::<Vbpr>(&json("vbpr", cfg), &train, &side, &|n| n == "item_features");
        }
        let categories = Some(Arc::new((0..15).map(|i| i % 3).collect::<Vec<i64>>()));
        for side in [side.clone(), SideInfo { categories, ..side }] {
            for f in [2, 5] {
                let cfg = format!(r#"{{"factors": {f}, "device": "cpu"}}"#);
                assert_counts::<Compatibility>(&json("compatibility", &cfg), &pairs(), &side, &|n| n == "categories");
            }
        }
    }
}

#[test]
fn counts_equal_the_stores_of_hybrid_bpr() {
    let train = data();
    // Every buffer of HybridBPR is side data: encoded rows, column names, vocabularies.
    let all = |_: &str| true;
    let both = SideInfo { user_features: Some(table(12, 2)), item_features: Some(table(15, 3)), ..Default::default() };
    let cfg = r#"{"factors": 4, "embed_dim": 3, "hidden": [8, 5], "device": "cpu"}"#;
    assert_counts::<HybridBpr>(&json("hybrid_bpr", cfg), &train, &both, &all);
    let cfg = r#"{"factors": 3, "embed_dim": 2, "hidden": [], "item_id_column": false, "item_bias": false, "device": "cpu"}"#;
    assert_counts::<HybridBpr>(&json("hybrid_bpr", cfg), &train, &both, &all);
    // Id embeddings and the item tower on the item-id column alone, no features.
    let cfg = r#"{"factors": 5, "embed_dim": 4, "hidden": [6], "id_embeddings": true, "device": "cpu"}"#;
    assert_counts::<HybridBpr>(&json("hybrid_bpr", cfg), &train, &SideInfo::default(), &all);
    // Each continuous column's buckets as one more categorical column (either side).
    for bins in [2, 3, 50] {
        let cfg = format!(r#"{{"factors": 4, "embed_dim": 3, "hidden": [8, 5], "continuous_bins": {bins}, "device": "cpu"}}"#);
        assert_counts::<HybridBpr>(&json("hybrid_bpr", &cfg), &train, &both, &all);
    }
    let users_only = SideInfo { user_features: Some(table(12, 0)), ..Default::default() };
    let cfg = r#"{"factors": 2, "embed_dim": 2, "hidden": [3], "id_embeddings": true, "item_id_column": false, "device": "cpu"}"#;
    assert_counts::<HybridBpr>(&json("hybrid_bpr", cfg), &train, &users_only, &all);
}

/// A fit whose parameters cannot fit in memory is refused before anything is built, naming
/// the settings that multiply (not the others).
#[test]
fn a_fit_beyond_memory_is_refused_before_building() {
    let train = data();
    let mut m = crate::models::create("deep_triplet", r#"{"factors": 4, "user_factors": 4, "hidden": [1099511627776], "device": "cpu"}"#).unwrap();
    let started = std::time::Instant::now();
    let e = m.fit(&train, &SideInfo::default(), None, &mut |_| Control::Continue, &Default::default()).unwrap_err();
    assert!(started.elapsed().as_secs() < 5);
    let Error::Memory(msg) = e else { panic!("not a memory error: {e:?}") };
    assert!(msg.contains("hidden=[1099511627776]") && msg.contains("12 users and 15 items") && msg.contains("Adam"), "{msg}");
    assert!(!msg.contains("batch_size") && !msg.contains("seed"), "{msg}");
    let side = SideInfo { item_features: Some(Arc::new(FeatureTable::dense(dense(15, 2)))), ..Default::default() };
    let mut m = crate::models::create("vbpr", r#"{"factors": 1, "visual_factors": 4611686018427387904, "device": "cpu"}"#).unwrap();
    let e = m.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap_err().to_string();
    assert!(e.contains("visual_factors=4611686018427387904") && !e.contains("factors=1 "), "{e}");
    // A model that fits is not refused: its count is its store's.
    let mut m = crate::models::create("bpr", r#"{"factors": 3, "epochs": 1, "device": "cpu", "threads": 1}"#).unwrap();
    m.fit(&train, &SideInfo::default(), None, &mut |_| Control::Continue, &Default::default()).unwrap();
}
