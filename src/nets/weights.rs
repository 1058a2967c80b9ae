//! Named tensors on disk (safetensors) and into networks: reading checks each tensor's dtype
//! and shape against the network before anything is copied, so a wrong or truncated file is
//! an error naming the file and the tensor, never a libtorch panic.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// The tensors of a safetensors file (on the CPU) and its metadata.
#[derive(Debug)]
pub struct Named {
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

pub fn read(path: &Path) -> Result<Named> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, &e))?;
    // SAFETY: the map is read only while this function runs; the tensors are copies.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, &e))?;
    let bad = |m: String| Error::file(path, m);
    let st = SafeTensors::deserialize(&map).map_err(|e| bad(format!("not a safetensors file ({e:?})")))?;
    let (_, header) = SafeTensors::read_metadata(&map).map_err(|e| bad(format!("bad header: {e:?}")))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::F64 => Kind::Double,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::I64 => Kind::Int64,
            Dtype::U8 => Kind::Uint8,
            d => return Err(bad(format!("tensor '{name}' has unsupported dtype {d:?}"))),
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind).map_err(|e| bad(format!("tensor '{name}': {e}")))?;
        tensors.insert(name, t);
    }
    Ok(Named { tensors, metadata: header.metadata().clone().unwrap_or_default() })
}

/// A tensor's bytes on the CPU as safetensors writes them: these weights files, model files
/// and checkpoints (models/checkpoint.rs).
pub(crate) struct Owned {
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<u8>,
}

impl Owned {
    pub(crate) fn new(dtype: Dtype, shape: Vec<usize>, data: Vec<u8>) -> Self {
        Owned { dtype, shape, data }
    }

    /// A copy of `t` (any device) in float32, float64, int64 or uint8; `what` names it in the
    /// error for any other kind.
    pub(crate) fn of(t: &Tensor, what: &str) -> Result<Self> {
        let t = t.detach().to_device(Device::Cpu).contiguous();
        let dtype = match t.kind() {
            Kind::Float => Dtype::F32,
            Kind::Double => Dtype::F64,
            Kind::Int64 => Dtype::I64,
            Kind::Uint8 => Dtype::U8,
            k => return Err(Error::state(format!("cannot save {what} of kind {k:?}"))),
        };
        let numel = t.numel();
        let bytes = numel.checked_mul(t.kind().elt_size_in_bytes()).ok_or_else(|| Error::Memory(format!("{what}: {numel} elements are too many bytes to save")))?;
        let mut data = vec![0u8; bytes];
        t.f_copy_data_u8(&mut data, numel)?;
        Ok(Owned { dtype, shape: t.size().iter().map(|&d| d as usize).collect(), data })
    }
}

impl View for &Owned {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Write `tensors` (float32 / float64 / int64 / uint8, any device) and `metadata` to `path`, through a
/// temporary name, so a failed write never leaves a file that looks complete.
pub fn write(path: &Path, tensors: &[(String, Tensor)], metadata: HashMap<String, String>) -> Result<()> {
    let mut owned = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        owned.push((name.clone(), Owned::of(t, &format!("tensor '{name}'"))?));
    }
    let views = owned.iter().map(|(n, o)| (n.as_str(), o));
    crate::io::replace_with(path, |tmp| {
        safetensors::serialize_to_file(views, &Some(metadata), tmp).map_err(|e| match e {
            safetensors::SafeTensorError::IoError(io) => Error::io(path, &io),
            e => Error::file(path, format!("cannot write: {e:?}")),
        })
    })
}

/// Copy `src[prefix + name]` into each destination parameter `(name, tensor)`, converting the
/// dtype and device. Every destination must be found with its exact shape; entries of `src`
/// that no destination asks for are ignored (e.g. a classifier the network does not have).
/// Nothing is copied unless everything matches. `what` names the source in errors.
pub fn copy_into(dst: &[(String, Tensor)], src: &HashMap<String, Tensor>, prefix: &str, what: &str) -> Result<()> {
    let mut pairs = Vec::with_capacity(dst.len());
    let mut missing = Vec::new();
    for (name, d) in dst {
        let key = format!("{prefix}{name}");
        match src.get(&key) {
            None => missing.push(key),
            Some(s) if s.size() != d.size() => {
                return Err(Error::invalid(format!(
                    "{what}: tensor '{key}' has shape {:?}, the network expects {:?}",
                    s.size(),
                    d.size()
                )))
            }
            Some(s) if !matches!(s.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16) => {
                return Err(Error::invalid(format!("{what}: tensor '{key}' is {:?}, not floating point", s.kind())))
            }
            Some(s) => pairs.push((d, s)),
        }
    }
    if !missing.is_empty() {
        let shown: Vec<_> = missing.iter().take(5).map(|s| format!("'{s}'")).collect();
        let more = if missing.len() > 5 { format!(" and {} more", missing.len().saturating_sub(5)) } else { String::new() };
        return Err(Error::invalid(format!("{what}: missing {} tensors: {}{more}", missing.len(), shown.join(", "))));
    }
    tch::no_grad(|| -> Result<()> {
        for (d, s) in pairs {
            let mut d = d.shallow_clone();
            d.f_copy_(&s.f_to_device(d.device())?.f_to_kind(d.kind())?)?;
        }
        Ok(())
    })
}
