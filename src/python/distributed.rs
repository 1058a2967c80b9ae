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

    /// `method(*args)` on the group, the GIL held for the call only.
    fn call<A>(&self, method: &str, args: A) -> Result<()>
    where
        A: for<'py> pyo3::call::PyCallArgs<'py>,
    {
        Python::with_gil(|py| self.group.bind(py).call_method1(method, args).map(|_| ()))
            .map_err(|e| Error::state(format!("process group ({method} on rank {}): {e}", self.rank)))
    }
}

/// A contiguous tensor as the group reads it: (address, elements, dtype, device).
fn spec(t: &Tensor) -> Result<(usize, i64, &'static str, String)> {
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
}

impl Collective for PyCollective {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        self.call("all_reduce", spec(t)?)
    }
    fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        let (address, numel, dtype, device) = spec(t)?;
        self.call("broadcast", (address, numel, dtype, device, root))
    }
    fn all_gather(&self, t: &Tensor, out: &Tensor) -> Result<()> {
        let ((address, numel, dtype, device), (out_address, out_numel, ..)) = (spec(t)?, spec(out)?);
        self.call("all_gather", (address, numel, dtype, device, out_address, out_numel))
    }
    fn barrier(&self) -> Result<()> {
        self.call("barrier", ())
    }
}
