//! A model's tensors, saved and restored with one check of names, shapes, dtypes and values.

use std::collections::HashMap;

use tch::{nn, Device, Kind, Tensor};

use crate::error::{Error, Result};

/// A model's tensors: trained variables in a `VarStore`, and buffers saved beside them (item
/// features, vocabularies, counts, embeddings derived after training). State and restore check
/// names, shapes and dtypes here, for every model.
pub struct ParamStore {
    pub vs: nn::VarStore,
    pub buffers: Vec<(String, Tensor)>,
}

/// A model's parameters as the core reads them, whatever the model (see [`super::Spec`]'s
/// `Params`).
pub trait ModelParams: Send {
    /// The trained variables and buffers: state, load, the device scoring runs on.
    fn store(&self) -> &ParamStore;
    /// The learnt per-item parameters: tables whose first dimension is the item index (item
    /// factors, item biases, item id embeddings), not side data or what is derived from it.
    /// At the end of every fit the core zeroes the rows of cold items (no training
    /// interaction) in each, before [`super::Spec::finish`]: a cold item is scored from side
    /// data only, or the same constant for all (see [`super::zero_cold_items`]).
    fn item_tables(&self) -> Vec<Tensor> {
        Vec::new()
    }
    /// The per-item bias of a model that scores an item from its own parameters alone (no
    /// item side data), added to its score. At the end of every fit a cold item's is set below
    /// the lowest score a trained item can have (see [`super::floor_cold_bias`]), so cold items
    /// rank last; the model's `user_vectors` and `item_vectors` must be the vectors its score
    /// multiplies (they bound that product). A model that scores cold items from
    /// side data lists its bias in `item_tables` instead (zero: a cold item is scored as a new
    /// item).
    fn item_bias(&self) -> Option<Tensor> {
        None
    }
}

/// A bare store is its own parameters (popularity's counts: no per-item table is learnt).
impl ModelParams for ParamStore {
    fn store(&self) -> &ParamStore {
        self
    }
}

impl ParamStore {
    pub fn new(device: Device) -> Self {
        ParamStore { vs: nn::VarStore::new(device), buffers: Vec::new() }
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// A buffer by name.
    pub fn buffer(&self, name: &str) -> Result<&Tensor> {
        self.buffers.iter().find(|(n, _)| n == name).map(|(_, t)| t).ok_or_else(|| Error::state(format!("no buffer '{name}'")))
    }

    /// Sets (or replaces) a buffer.
    pub fn set_buffer(&mut self, name: &str, t: Tensor) {
        match self.buffers.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = t,
            None => self.buffers.push((name.to_string(), t)),
        }
    }

    /// Variables (by name) then buffers: what a model file and a checkpoint hold.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars.extend(self.buffers.iter().map(|(n, t)| (n.clone(), t.shallow_clone())));
        vars
    }

    /// Copies every variable and buffer from `saved` (each must be there with the same shape
    /// and a float or integer dtype as the model's; float values finite).
    pub fn load(&self, saved: &HashMap<String, Tensor>) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let vars = self.vs.variables();
        let all = vars.iter().map(|(n, t)| (n.as_str(), t)).chain(self.buffers.iter().map(|(n, t)| (n.as_str(), t)));
        for (name, own) in all {
            let t = checked(saved, name, own.size().as_slice(), own.kind())?;
            own.shallow_clone().f_copy_(&t.f_to_device(own.device())?)?;
        }
        Ok(())
    }
}

/// `saved[name]`, checked to have `shape` (empty: any) and to convert to `kind` without loss
/// of meaning (float to float, integer to integer), float values finite.
pub fn checked<'a>(saved: &'a HashMap<String, Tensor>, name: &str, shape: &[i64], kind: Kind) -> Result<&'a Tensor> {
    let t = saved.get(name).ok_or_else(|| Error::state(format!("saved model has no tensor '{name}'")))?;
    if !shape.is_empty() && t.size() != shape {
        return Err(Error::state(format!("saved tensor '{name}' has shape {:?}, the model {shape:?}", t.size())));
    }
    let float = |k: Kind| matches!(k, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16);
    if float(t.kind()) != float(kind) {
        return Err(Error::state(format!("saved tensor '{name}' holds {} values, not {}", kind_name(t.kind()), kind_name(kind))));
    }
    if float(kind) && t.numel() > 0 && t.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
        return Err(Error::state(format!("saved tensor '{name}' holds NaN or infinite values")));
    }
    Ok(t)
}

/// numpy's name of a dtype, for messages.
fn kind_name(k: Kind) -> String {
    match k {
        Kind::Float => "float32".into(),
        Kind::Double => "float64".into(),
        Kind::Half => "float16".into(),
        Kind::Int64 => "int64".into(),
        Kind::Int => "int32".into(),
        Kind::Uint8 => "uint8".into(),
        other => format!("{other:?}"),
    }
}
