//! The process group of a distributed fit: Python's torch.distributed behind the core's
//! [`Collective`] seam.
//!
//! The core's tensors are handed to `fashionrec.distributed._Group` as (address, elements,
//! dtype, device); it wraps the same memory as a torch tensor without a copy (a buffer on
//! the CPU, `__cuda_array_interface__` on a GPU) and calls torch.distributed on it. The
//! GIL is taken for the call only. This keeps the extension free of libtorch_python (tch's
//! `python-extension` would link it and tie the abi3 wheel to one CPython's headers).

use pyo3::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::train::distributed::Collective;

pub struct PyCollective {
    group: PyObject,
    rank: usize,
    world: usize,
}

impl PyCollective {
    /// A seam over `group` (a `fashionrec.distributed._Group`).
    pub fn new(py: Python<'_>, group: PyObject) -> PyResult<Self> {
        let rank: usize = group.getattr(py, "rank")?.extract(py)?;
        let world: usize = group.getattr(py, "world_size")?.extract(py)?;
        Ok(PyCollective { group, rank, world })
    }

    /// `method(address, numel, dtype, device, *extra)` on the group, for contiguous tensors.
    fn call(&self, method: &str, t: &Tensor, extra: Option<(&Tensor, usize)>) -> Result<()> {
        let spec = |t: &Tensor| -> Result<(usize, i64, &'static str, String)> {
            if !t.is_contiguous() {
                return Err(Error::state("process group: a tensor to send is not contiguous"));
            }
            let dtype = match t.kind() {
                Kind::Float => "float32",
                Kind::Double => "float64",
                Kind::Int64 => "int64",
                Kind::Int => "int32",
                Kind::Uint8 => "uint8",
                Kind::Int8 => "int8",
                Kind::Half => "float16",
                Kind::BFloat16 => "bfloat16",
                other => return Err(Error::state(format!("process group: no collective for {other:?} tensors"))),
            };
            let device = match t.device() {
                Device::Cuda(i) => format!("cuda:{i}"),
                _ => "cpu".to_string(),
            };
            Ok((t.data_ptr() as usize, t.numel() as i64, dtype, device))
        };
        let a = spec(t)?;
        let b = extra.map(|(o, root)| spec(o).map(|s| (s, root))).transpose()?;
        Python::with_gil(|py| {
            let g = self.group.bind(py);
            match (method, b) {
                ("all_gather", Some((o, _))) => g.call_method1(method, (a.0, a.1, a.2, a.3, o.0, o.1)),
                ("broadcast", Some((_, root))) => g.call_method1(method, (a.0, a.1, a.2, a.3, root)),
                _ => g.call_method1(method, (a.0, a.1, a.2, a.3)),
            }
            .map(|_| ())
            .map_err(|e| Error::state(format!("process group ({method} on rank {}): {e}", self.rank)))
        })
    }
}

impl Collective for PyCollective {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        self.call("all_reduce", t, None)
    }
    fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        self.call("broadcast", t, Some((t, root)))
    }
    fn all_gather(&self, t: &Tensor, out: &Tensor) -> Result<()> {
        self.call("all_gather", t, Some((out, 0)))
    }
    fn barrier(&self) -> Result<()> {
        Python::with_gil(|py| self.group.bind(py).call_method0("barrier").map(|_| ()))
            .map_err(|e| Error::state(format!("process group (barrier on rank {}): {e}", self.rank)))
    }
}
