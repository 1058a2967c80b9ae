//! The configuration every model shares: the [`Common`] fields, and reading a model's
//! configuration from JSON over its defaults with errors that name the field.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::Device;

use crate::data::SideNeeds;
use crate::error::{Error, Result};
use crate::tensors::parse_device;
use crate::train::LoopConfig;

/// The fields every trained model's configuration has, flattened into it (the JSON stays flat:
/// `{"factors": 64, "epochs": 20, ...}`), validated here once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Common {
    /// Passes over the training data.
    pub epochs: usize,
    /// Learning rate.
    pub lr: f64,
    /// Samples per step.
    pub batch_size: usize,
    /// Seeds the initial parameters and every sampled batch.
    pub seed: u64,
    /// CPU threads for sampling and parallel steps; 0 uses every core.
    pub threads: usize,
    /// "auto", "cpu", "cuda" or "cuda:N".
    pub device: String,
}

impl Common {
    /// The usual settings with this model's `epochs`, `lr` and `batch_size`.
    pub fn new(epochs: usize, lr: f64, batch_size: usize) -> Self {
        Common { epochs, lr, batch_size, seed: 0, threads: 0, device: "auto".into() }
    }

    pub fn validate(&self) -> Result<()> {
        // f32 is what the kernels compute in: a finite f64 beyond it would become inf there.
        if !self.lr.is_finite() || self.lr <= 0.0 || self.lr > f32::MAX as f64 {
            return Err(Error::invalid(format!("lr must be a finite number > 0, got {}", self.lr)));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size must be at least 1"));
        }
        crate::limits::check_threads("threads", self.threads)?;
        crate::tensors::check_device_name(&self.device)
    }

    pub fn device(&self) -> Result<Device> {
        parse_device(&self.device)
    }

    pub fn loop_config(&self) -> LoopConfig {
        LoopConfig { epochs: self.epochs, batch_size: self.batch_size, seed: self.seed, threads: self.threads, start_epoch: 0, sync: None }
    }
}

/// A model's configuration as the core reads it, whatever the model: the check of the
/// model's own fields, the side data a fit uses, and the common fields. Implemented by each
/// `Config` of a [`super::Spec`], so the model's `Spec` holds only building, training and
/// scoring.
pub trait ModelConfig: Serialize + DeserializeOwned + Default + Clone + Send + Sync {
    /// Checks the model's own fields (the common ones are checked by the core), errors naming
    /// them.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    /// The side data a fit uses (checked against what it is given before building).
    fn needs(&self) -> SideNeeds {
        SideNeeds::default()
    }
    /// The common fields (None: a model without training, as popularity).
    fn common(&self) -> Option<&Common>;
}

/// Characters of a configuration error's reason kept at most.
const QUOTE_CHARS: usize = 300;

/// A configuration of model `kind` from JSON: keys not given take the model's defaults, an
/// unknown key is an error listing the known ones, and a bad value names its field's path
/// ("epochs", "sampler.kind"). Nested objects (`sampler`) are taken whole: their own missing
/// keys take their type's defaults.
pub fn parse_config<C: Serialize + DeserializeOwned + Default>(kind: &str, json: &str) -> Result<C> {
    let given: Value =
        serde_json::from_str(json).map_err(|e| Error::invalid(format!("{kind} configuration is not JSON: {e}")))?;
    let Value::Object(given) = given else {
        return Err(Error::invalid(format!("{kind} configuration must be a JSON object, not {given}")));
    };
    let Ok(Value::Object(mut merged)) = serde_json::to_value(C::default()) else {
        return Err(Error::state(format!("{kind}: the default configuration is not an object")));
    };
    for (key, value) in given {
        if !merged.contains_key(&key) {
            let known: Vec<&str> = merged.keys().map(String::as_str).collect();
            return Err(Error::invalid(format!("unknown parameter {key:?} for {kind} (known: {})", known.join(", "))));
        }
        merged.insert(key, value);
    }
    let named = |e: serde_path_to_error::Error<serde_json::Error>| {
        let reason = e.inner().to_string();
        let reason = reason.trim_end_matches(" at line 0 column 0");
        // A wrong-typed value is quoted in the reason: a huge one is cut.
        let reason = match reason.char_indices().nth(QUOTE_CHARS) {
            Some((cut, _)) => format!("{}... ({} characters in all)", &reason[..cut], reason.chars().count()),
            None => reason.to_string(),
        };
        Error::invalid(format!("{}: {reason}", e.path()))
    };
    // Serde reports no path inside a flattened struct: the common fields are read on their
    // own first, so their errors name them too.
    if merged.contains_key("epochs") && merged.contains_key("device") {
        serde_path_to_error::deserialize::<_, Common>(Value::Object(merged.clone())).map_err(named)?;
    }
    serde_path_to_error::deserialize(Value::Object(merged)).map_err(named)
}

/// The configuration as JSON (every field).
#[allow(clippy::expect_used, reason = "a configuration (numbers, strings, lists) always serialises to JSON")]
pub fn config_json<C: Serialize>(config: &C) -> String {
    serde_json::to_string(config).expect("a configuration serialises to JSON")
}

/// `e` with the model's settings that set its sizes and steps said, when they are what most
/// likely caused it: a memory error (parameters or batches too large for memory: the integer
/// settings, largest first) or a diverged loss (the real-valued ones). Any other error is
/// returned as it is. Used by the core's fit wrapper for every model, so that such an error
/// names the argument to change.
pub fn with_sizes<C: Serialize>(e: Error, name: &str, cfg: &C) -> Error {
    let Ok(Value::Object(fields)) = serde_json::to_value(cfg) else { return e };
    let largest = |v: &Value| -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::Array(a) => a.iter().filter_map(Value::as_f64).reduce(f64::max),
            _ => None,
        }
    };
    let pick = |ints: bool| -> String {
        let mut shown: Vec<(f64, String)> = fields
            .iter()
            .filter(|(k, _)| k.as_str() != "seed" && k.as_str() != "threads" && k.as_str() != "epochs")
            .filter(|(_, v)| match v {
                Value::Number(n) => n.is_f64() != ints,
                Value::Array(a) => ints && !a.is_empty() && a.iter().all(|x| x.is_u64() || x.is_i64()),
                _ => false,
            })
            .filter_map(|(k, v)| largest(v).map(|m| (m.abs(), format!("{k}={v}"))))
            .collect();
        shown.sort_by(|a, b| b.0.total_cmp(&a.0));
        shown.into_iter().take(4).map(|(_, s)| s).collect::<Vec<_>>().join(", ")
    };
    match e {
        Error::Memory(m) => Error::Memory(format!("{m}: {name}'s sizes are set by {}", pick(true))),
        Error::InvalidInput(m) if m.starts_with("a tensor size") => Error::invalid(format!("{m}: {name}'s sizes are set by {}", pick(true))),
        Error::State(m) if m.starts_with("training diverged") => Error::State(format!("{m} ({name} was set to {})", pick(false))),
        other => other,
    }
}

/// The integer settings of `cfg` (numbers and lists of numbers, in nested settings too, named
/// by their path: `head.hidden`) that `count` grows with, as "name=value, ...": each one
/// doubled in turn and `count` asked again. For messages naming the settings that multiply
/// into a model's size (and not the others: seed, batch_size).
pub fn sizing_settings<C: Serialize + DeserializeOwned>(cfg: &C, count: impl Fn(&C) -> Result<u128>) -> String {
    let (Ok(root @ Value::Object(_)), Ok(base)) = (serde_json::to_value(cfg), count(cfg)) else { return String::new() };
    let doubled = |v: &Value| -> Option<Value> {
        let grow = |x: &Value| x.as_u64().map(|x| Value::from(x.saturating_mul(2).max(1)));
        match v {
            Value::Number(_) => grow(v),
            Value::Array(a) if !a.is_empty() => a.iter().map(grow).collect::<Option<Vec<_>>>().map(Value::Array),
            _ => None,
        }
    };
    // Every number or list of numbers, by its path of keys.
    let mut leaves: Vec<(Vec<String>, Value)> = Vec::new();
    let mut stack: Vec<(Vec<String>, &Value)> = vec![(Vec::new(), &root)];
    while let Some((path, v)) = stack.pop() {
        match v {
            Value::Object(fields) => {
                for (k, child) in fields.iter().rev() {
                    let mut p = path.clone();
                    p.push(k.clone());
                    stack.push((p, child));
                }
            }
            _ => leaves.push((path, v.clone())),
        }
    }
    let grows = |path: &[String], v: &Value| -> Option<bool> {
        let mut probe = root.clone();
        *path.iter().try_fold(&mut probe, |at, k| at.get_mut(k))? = doubled(v)?;
        Some(count(&serde_json::from_value(probe).ok()?).ok()? != base)
    };
    leaves.iter().filter(|(p, v)| grows(p, v) == Some(true)).map(|(p, v)| format!("{}={v}", p.join("."))).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Head {
        hidden: Vec<usize>,
        dropout: f64,
    }

    #[derive(Serialize, Deserialize)]
    struct Cfg {
        factors: usize,
        seed: u64,
        head: Head,
    }

    /// Top-level and nested settings the size grows with are named (by their path), the
    /// others (seed, a float, an empty list) are not.
    #[test]
    fn sizing_settings_names_nested_settings_by_path() {
        let count = |c: &Cfg| -> Result<u128> { Ok((c.factors * c.head.hidden.iter().sum::<usize>().max(1)) as u128) };
        let cfg = Cfg { factors: 8, seed: 3, head: Head { hidden: vec![64, 32], dropout: 0.5 } };
        assert_eq!(sizing_settings(&cfg, count), "factors=8, head.hidden=[64,32]");
        let flat = Cfg { head: Head { hidden: vec![], dropout: 0.5 }, ..cfg };
        assert_eq!(sizing_settings(&flat, count), "factors=8");
    }
}
