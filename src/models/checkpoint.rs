//! Saving and loading models: one safetensors file holding the parameters, the id maps, and
//! in its metadata the model kind, its JSON configuration and its training history. Loading
//! gives back exactly the same scores and raw ids.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors};
use serde_json::{json, Value};
use tch::{Kind, Tensor};

use super::{create, Recommender};
use crate::data::{IdMap, IdMaps};
use crate::error::{Error, Result};
use crate::nets::weights::Owned;
use crate::train::EpochLog;

const FORMAT: &str = "fashionrec";
/// 2 adds the `checksum` metadata; version 1 files (no checksum) are still read. 3 names
/// configuration fields in the one vocabulary: older files are read through [`migrate_config`].
const FORMAT_VERSION: &str = "3";
const READS_VERSIONS: &[&str] = &["1", "2", "3"];
/// The configuration of a `kind` model saved in format `version`, in today's names: format 3
/// took one word for one thing (`factors` for every latent size, `sampler=` for every choice
/// of negatives).
fn migrate_config(kind: &str, version: &str, config: String) -> Result<String> {
    let mut value: Value = serde_json::from_str(&config).map_err(|e| Error::state(format!("bad config metadata: {e}")))?;
    let Some(map) = value.as_object_mut() else { return Ok(config) };
    // A saved configuration holds every field of its day, so a field it lacks was added
    // since: it takes the value that reproduces the behaviour the file was trained with, not
    // today's default (which may have changed with the field).
    for (k, field, before) in ADDED_SINCE {
        if *k == kind && !map.contains_key(*field) {
            map.insert((*field).to_string(), serde_json::from_str(before).map_err(|e| Error::state(format!("{field}: {e}")))?);
        }
    }
    if version == FORMAT_VERSION {
        return Ok(value.to_string());
    }
    let rename = |map: &mut serde_json::Map<String, Value>, old: &str, new: &str| {
        if let Some(v) = map.remove(old) {
            map.insert(new.to_string(), v);
        }
    };
    match kind {
        "deep_triplet" => rename(map, "item_factors", "factors"),
        "compatibility" => {
            rename(map, "style_dim", "factors");
            if let Some(v) = map.remove("negatives") {
                let sampler = if v == "category" { "category" } else { "uniform" };
                map.insert("sampler".into(), json!({ "kind": sampler }));
            }
        }
        "hybrid_bpr" => {
            if map.remove("negatives").is_some_and(|v| v == "rated_below") {
                map.insert("sampler".into(), json!({ "kind": "rated_below" }));
            }
        }
        "sampled_softmax" => {
            rename(map, "dim", "factors");
            if let Some(Value::String(proposal)) = map.get("sampler").cloned() {
                let exponent = map.remove("exponent").unwrap_or(json!(0.75));
                map.insert("sampler".into(), json!({ "kind": proposal, "exponent": exponent }));
            }
        }
        "dvbpr" => {
            for (old, new) in [("k", "factors"), ("lambda_cnn", "reg_cnn"), ("lambda_fc", "reg_fc"), ("lambda_u", "reg_user")] {
                rename(map, old, new);
            }
            // Arguments of fit since format 3.
            map.remove("checkpoint_dir");
            map.remove("resume");
        }
        _ => {}
    }
    Ok(value.to_string())
}

/// (model kind, configuration field, its value before the field existed, as JSON), for the
/// fields added to a model after its first release whose default is not the old behaviour.
const ADDED_SINCE: &[(&str, &str, &str)] = &[
    ("hybrid_bpr", "loss", r#""bpr""#),
    ("hybrid_bpr", "item_bias_init", r#""zero""#),
    ("hybrid_bpr", "item_id_column", "false"),
    ("hybrid_bpr", "average_epochs", "0"),
    ("hybrid_bpr", "continuous_bins", "0"),
];

const IDS_PREFIX: &str = "__ids__.";
/// Metadata key of the CRC-32 over the tensors and the other metadata (see [`checksum`]).
const CHECKSUM: &str = "checksum";

fn encode_ids(name: &str, map: &IdMap, out: &mut Vec<(String, Owned)>) -> serde_json::Value {
    match map {
        IdMap::Range(n) => json!({"kind": "range", "n": n}),
        IdMap::Int { ids, .. } => {
            let data = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
            out.push((format!("{IDS_PREFIX}{name}"), Owned::new(Dtype::I64, vec![ids.len()], data)));
            json!({"kind": "int"})
        }
        IdMap::Str { ids, .. } => {
            let mut offsets = Vec::with_capacity(ids.len().saturating_add(1));
            let mut bytes = Vec::new();
            offsets.push(0i64);
            for s in ids {
                bytes.extend_from_slice(s.as_bytes());
                offsets.push(bytes.len() as i64);
            }
            let off = offsets.iter().flat_map(|v| v.to_le_bytes()).collect();
            out.push((format!("{IDS_PREFIX}{name}.offsets"), Owned::new(Dtype::I64, vec![offsets.len()], off)));
            out.push((format!("{IDS_PREFIX}{name}.bytes"), Owned::new(Dtype::U8, vec![bytes.len()], bytes)));
            json!({"kind": "str"})
        }
    }
}

/// Write `model` to `path` (through a temporary file, so a failed save leaves no half file).
pub fn save(model: &dyn Recommender, path: &Path) -> Result<()> {
    let ids = model.ids().ok_or_else(|| super::not_fitted(model.kind()))?;
    let mut tensors: Vec<(String, Owned)> = Vec::new();
    for (name, t) in model.state()? {
        tensors.push((name, Owned::of(&t, "a tensor")?));
    }
    let id_info = json!({
        "users": encode_ids("users", &ids.users, &mut tensors),
        "items": encode_ids("items", &ids.items, &mut tensors),
    });
    let metadata: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("library_version", env!("CARGO_PKG_VERSION").to_string()),
        ("model", model.kind().to_string()),
        ("config", model.config_json()),
        ("history", serde_json::to_string(model.history()).map_err(|e| Error::state(format!("history: {e}")))?),
        ("ids", id_info.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut metadata = metadata;
    let sum = checksum(
        tensors.iter().map(|(n, o)| (n.as_str(), format!("{:?}", o.dtype), o.shape.as_slice(), o.data.as_slice())),
        &metadata,
    );
    metadata.insert(CHECKSUM.to_string(), sum);
    let views = tensors.iter().map(|(n, o)| (n.as_str(), o));
    let bytes = safetensors::serialize(views, &Some(metadata))
        .map_err(|e| Error::file(path, format!("cannot write: {e:?}")))?;
    // Through a temporary file renamed over `path`: a failed save leaves no half file, and a
    // reader of the old file keeps its bytes.
    crate::io::write_replacing(path, |w| w.write_all(&bytes))
}

/// "crc32:xxxxxxxx" over every tensor in name order (name, dtype, shape, data) and every other
/// metadata entry in key order, so a flipped bit anywhere that matters is an error on load.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, String, &'a [usize], &'a [u8])>, meta: &HashMap<String, String>) -> String {
    let mut tensors: Vec<_> = tensors.collect();
    tensors.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = crc32fast::Hasher::new();
    for (name, dtype, shape, data) in tensors {
        for part in [name.as_bytes(), b"\0", dtype.as_bytes(), b"\0"] {
            h.update(part);
        }
        for &d in shape {
            h.update(&(d as u64).to_le_bytes());
        }
        h.update(data);
    }
    let mut keys: Vec<&String> = meta.keys().filter(|k| k.as_str() != CHECKSUM).collect();
    keys.sort();
    for k in keys {
        for part in [k.as_bytes(), b"\0", meta[k].as_bytes(), b"\0"] {
            h.update(part);
        }
    }
    format!("crc32:{:08x}", h.finalize())
}

/// Error naming the tensor and the position of its first NaN or infinity (float tensors).
fn check_finite(name: &str, dtype: Dtype, data: &[u8]) -> std::result::Result<(), String> {
    let first_bad = match dtype {
        Dtype::F32 => data.chunks_exact(4).position(|c| !f32::from_le_bytes(crate::io::byte_array(c)).is_finite()),
        Dtype::F64 => data.chunks_exact(8).position(|c| !f64::from_le_bytes(crate::io::byte_array(c)).is_finite()),
        _ => None,
    };
    match first_bad {
        Some(i) => Err(format!("tensor '{name}' holds a value that is not finite (NaN or inf) at flat position {i}")),
        None => Ok(()),
    }
}

/// Read a model written by [`save`]. `device` overrides the saved configuration's device.
pub fn load(path: &Path, device: Option<&str>) -> Result<Box<dyn Recommender>> {
    let buf = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
    let bad = |m: String| Error::file(path, m);
    let st = SafeTensors::deserialize(&buf)
        .map_err(|e| bad(format!("not a fashionrec model file (safetensors: {e:?})")))?;
    let (_, header) = SafeTensors::read_metadata(&buf).map_err(|e| bad(format!("bad header: {e:?}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let get = |k: &str| meta.get(k).cloned().ok_or_else(|| bad(format!("not a fashionrec model file (no '{k}' metadata)")));
    if get("format")? != FORMAT {
        return Err(bad("not a fashionrec model file".into()));
    }
    let version = get("format_version")?;
    if !READS_VERSIONS.contains(&version.as_str()) {
        return Err(bad(format!(
            "model file format {} is not supported by this version of fashionrec (it reads formats {}); \
             upgrade fashionrec to read it",
            crate::error::quote(&version),
            READS_VERSIONS.join(", ")
        )));
    }
    if version != "1" {
        let stored = get(CHECKSUM)?;
        let views = st.tensors();
        let sum = checksum(views.iter().map(|(n, v)| (n.as_str(), format!("{:?}", v.dtype()), v.shape(), v.data())), &meta);
        if stored != sum {
            return Err(bad(format!(
                "checksum mismatch (stored {}, computed {sum}): the file is corrupt (a changed byte)",
                crate::error::quote(&stored)
            )));
        }
    }
    let kind = get("model")?;
    let config = migrate_config(&kind, &version, get("config")?).map_err(|e| bad(e.to_string()))?;
    let mut model = create(&kind, &config).map_err(|e| bad(format!("format {version} model: {e}")))?;
    let history: Vec<EpochLog> =
        serde_json::from_str(&get("history")?).map_err(|e| bad(format!("bad history metadata: {e}")))?;
    let id_info: serde_json::Value =
        serde_json::from_str(&get("ids")?).map_err(|e| bad(format!("bad ids metadata: {e}")))?;

    let mut state = HashMap::new();
    for (name, view) in st.tensors() {
        if name.starts_with(IDS_PREFIX) {
            continue;
        }
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::F64 => Kind::Double,
            Dtype::I64 => Kind::Int64,
            Dtype::U8 => Kind::Uint8,
            d => {
                return Err(bad(format!(
                    "tensor '{name}' has dtype {d:?}, which no fashionrec model saves (float32, float64, int64 or uint8)"
                )))
            }
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        check_finite(&name, view.dtype(), view.data()).map_err(bad)?;
        let t = Tensor::f_from_data_size(view.data(), &shape, kind).map_err(|e| bad(format!("tensor '{name}': {e}")))?;
        state.insert(name, t);
    }
    let decode = |who: &str| -> Result<IdMap> {
        let info = id_info.get(who).ok_or_else(|| bad(format!("bad ids metadata for {who}")))?;
        let tensor = |suffix: &str| {
            st.tensor(&format!("{IDS_PREFIX}{who}{suffix}")).map_err(|e| bad(format!("missing {who} ids: {e:?}")))
        };
        let i64s = |data: &[u8]| data.chunks_exact(8).map(|c| i64::from_le_bytes(crate::io::byte_array(c))).collect::<Vec<_>>();
        match info["kind"].as_str() {
            Some("range") => Ok(IdMap::Range(info["n"].as_u64().ok_or_else(|| bad(format!("bad {who} id count")))? as usize)),
            Some("int") => IdMap::from_int_ids(i64s(tensor("")?.data()), who),
            Some("str") => {
                let offsets = i64s(tensor(".offsets")?.data());
                let bytes = tensor(".bytes")?;
                let bytes = bytes.data();
                let ids = crate::io::strings_at_offsets(&offsets, bytes).map_err(|e| bad(format!("{who} ids: {e}")))?;
                IdMap::from_str_ids(ids, who)
            }
            _ => Err(bad(format!("bad ids metadata for {who}"))),
        }
    };
    let ids = IdMaps::new(decode("users")?, decode("items")?);
    model.restore(&state, ids, history, device).map_err(|e| bad(e.to_string()))?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A HybridBPR saved before `item_id_column`, `average_epochs` and `continuous_bins`
    /// existed (same format version) reads with the behaviour it was trained with, not today's
    /// defaults.
    #[test]
    fn fields_added_since_take_their_old_behaviour() {
        let saved = r#"{"factors": 8, "loss": "softmax"}"#;
        let read: Value = serde_json::from_str(&migrate_config("hybrid_bpr", FORMAT_VERSION, saved.into()).unwrap()).unwrap();
        assert_eq!((read["item_id_column"].clone(), read["average_epochs"].clone()), (json!(false), json!(0)));
        assert_eq!(read["continuous_bins"], json!(0), "no bucket columns in a file from before them");
        assert_eq!((read["loss"].clone(), read["factors"].clone()), (json!("softmax"), json!(8)), "what the file says is kept");
    }

    #[test]
    fn format_2_configurations_read_in_todays_names() {
        let old = [
            ("deep_triplet", r#"{"user_factors": 8, "item_factors": 16}"#),
            ("compatibility", r#"{"style_dim": 3, "negatives": "category"}"#),
            ("compatibility", r#"{"style_dim": 3, "negatives": "random"}"#),
            ("hybrid_bpr", r#"{"negatives": "rated_below", "sampler": {"kind": "uniform"}}"#),
            ("hybrid_bpr", r#"{"negatives": "sampled", "sampler": {"kind": "warp"}}"#),
            ("sampled_softmax", r#"{"dim": 8, "sampler": "log_uniform", "exponent": 0.5}"#),
            ("dvbpr", r#"{"k": 8, "lambda_cnn": 0.1, "lambda_fc": 0.2, "lambda_u": 0.5, "checkpoint_dir": "/gone", "resume": false}"#),
        ];
        for (kind, config) in old {
            // Refused as they are, read once migrated.
            assert!(create(kind, config).is_err(), "{kind} {config}");
            let new = migrate_config(kind, "2", config.to_string()).unwrap();
            let model = create(kind, &new).unwrap_or_else(|e| panic!("{kind} {new}: {e}"));
            let cfg: Value = serde_json::from_str(&model.config_json()).unwrap();
            match kind {
                "deep_triplet" => assert_eq!((cfg["factors"].as_u64(), cfg["user_factors"].as_u64()), (Some(16), Some(8))),
                "compatibility" => {
                    assert_eq!(cfg["factors"], 3);
                    let kind = if config.contains("category") { "category" } else { "uniform" };
                    assert_eq!(cfg["sampler"]["kind"], kind);
                }
                "hybrid_bpr" => {
                    let kind = if config.contains("rated_below") { "rated_below" } else { "warp" };
                    assert_eq!(cfg["sampler"]["kind"], kind);
                }
                "dvbpr" => {
                    assert_eq!((cfg["factors"].as_u64(), cfg["reg_cnn"].as_f64()), (Some(8), Some(0.1)));
                    assert_eq!((cfg["reg_fc"].as_f64(), cfg["reg_user"].as_f64()), (Some(0.2), Some(0.5)));
                }
                _ => {
                    assert_eq!(cfg["factors"], 8);
                    assert_eq!((cfg["sampler"]["kind"].as_str(), cfg["sampler"]["exponent"].as_f64()), (Some("log_uniform"), Some(0.5)));
                }
            }
        }
        // Today's files are read as written.
        let today: Value = serde_json::from_str(&migrate_config("compatibility", FORMAT_VERSION, "{\"style_dim\": 3}".into()).unwrap()).unwrap();
        assert_eq!(today, json!({"style_dim": 3}));
    }
}
