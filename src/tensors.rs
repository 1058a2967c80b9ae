//! Small bridges between Rust buffers and libtorch tensors.

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// A CPU tensor viewing `data` without a copy.
///
/// # Safety
/// The tensor (and every view of it) must not outlive `data`, and nothing may write to
/// `data` while it lives.
pub unsafe fn view_i64(data: &[i64]) -> Tensor {
    Tensor::from_blob(data.as_ptr() as *const u8, &[data.len() as i64], &[], Kind::Int64, Device::Cpu)
}

/// A CPU tensor viewing a (rows, cols) row-major f32 buffer without a copy.
///
/// # Safety
/// As for [`view_i64`]; the tensor may write through to `data` if used in place.
pub unsafe fn view_f32(data: &[f32], rows: usize, cols: usize) -> Tensor {
    debug_assert_eq!(Some(data.len()), rows.checked_mul(cols));
    Tensor::from_blob(data.as_ptr() as *const u8, &[rows as i64, cols as i64], &[], Kind::Float, Device::Cpu)
}

/// Set by tests to run the GPU code paths on CPU tensors (see [`gpu_path`]).
static GPU_PATHS_ON_CPU: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether work on `device` takes the code written for GPUs (tensor-op optimisers instead of
/// the fused CPU passes, libtorch's dropout, top-k and masks on the device, the resident
/// image bank): on CUDA, or everywhere once [`set_gpu_paths_on_cpu`] turned it on. The one
/// switch every device branch asks, so CI (which has no GPU) runs those branches on CPU
/// tensors and compares them with the CPU paths.
pub fn gpu_path(device: Device) -> bool {
    device.is_cuda() || GPU_PATHS_ON_CPU.load(std::sync::atomic::Ordering::Relaxed)
}

/// Turns the GPU code paths on (or off) for CPU tensors, process-wide: for tests.
pub fn set_gpu_paths_on_cpu(on: bool) {
    GPU_PATHS_ON_CPU.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The device named by `name`: "cpu", "cuda", "cuda:N", or "auto" (CUDA when available).
pub fn parse_device(name: &str) -> Result<Device> {
    check_device_name(name)?;
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" | "gpu" => cuda(0),
        _ => cuda(cuda_ordinal(name).unwrap_or_default()),
    }
}

fn cuda_ordinal(name: &str) -> Option<usize> {
    name.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok())
}

/// Error unless `name` is a device name (whether that device exists here is not checked:
/// a configuration names a device before it is used, possibly on another machine).
pub fn check_device_name(name: &str) -> Result<()> {
    if matches!(name, "cpu" | "auto" | "cuda" | "gpu") || cuda_ordinal(name).is_some() {
        return Ok(());
    }
    Err(Error::invalid(format!("device must be 'auto', 'cpu', 'cuda' or 'cuda:N', not {}", crate::error::quote(name))))
}

fn cuda(n: usize) -> Result<Device> {
    let count = tch::Cuda::device_count() as usize;
    if n >= count {
        let have = if count == 0 { "no CUDA device is available".to_string() } else { format!("{count} CUDA devices") };
        return Err(Error::invalid(format!("device 'cuda:{n}' asked for, but {have}; use device='cpu' or 'auto'")));
    }
    Ok(Device::Cuda(n))
}

pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A tensor's elements as f32, copied out into a buffer sized through the memory budget (a
/// result that fits as a tensor may not fit twice: the copy is refused with a MemoryError,
/// never an abort).
pub fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    let mut v = crate::limits::try_filled("a result copied out of libtorch", t.numel(), 0.0f32)?;
    copy_f32_into(t, &mut v)?;
    Ok(v)
}

/// Copies a tensor's elements (as f32, in row-major order) into `out`, which must hold
/// exactly that many: the one way results leave libtorch for a caller's buffer.
pub fn copy_f32_into(t: &Tensor, out: &mut [f32]) -> Result<()> {
    let t = t.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
    if t.numel() != out.len() {
        return Err(Error::state(format!("a result of {} values for a buffer of {}", t.numel(), out.len())));
    }
    t.f_copy_data(out, out.len())?;
    Ok(())
}

/// The size of dimension `dim` of `t`, or an error giving its shape (a tensor with fewer
/// dimensions than the code expects: a saved state or an argument of another shape).
pub fn size_at(t: &Tensor, dim: usize) -> Result<i64> {
    let size = t.size();
    size.get(dim).copied().ok_or_else(|| Error::state(format!("a tensor of shape {size:?} has no dimension {dim}")))
}

/// A CPU tensor holding a copy of `data` with `shape`.
pub fn from_f32(data: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(data).reshape(shape)
}

/// The elements of a contiguous f32 CPU tensor, for kernels that read parameters in place.
/// The caller must not write the tensor while the slice lives (native steps read it, then
/// update it through their optimisers after the last read).
pub fn cpu_f32_slice<'a>(t: &'a Tensor, what: &str) -> Result<&'a [f32]> {
    let p = cpu_f32_ptr(t, what)?;
    // SAFETY: `p` points at the tensor's `numel` contiguous floats (checked by cpu_f32_ptr),
    // which live as long as the borrow of `t`; no writer while the slice lives (the contract).
    Ok(unsafe { std::slice::from_raw_parts(p, t.numel()) })
}

/// Checks a tensor is a contiguous f32 CPU tensor with `numel` elements and returns its
/// data pointer, for kernels that update parameters in place (Hogwild SGD).
pub fn cpu_f32_ptr(t: &Tensor, what: &str) -> Result<*mut f32> {
    if t.device() != Device::Cpu || t.kind() != Kind::Float || !t.is_contiguous() {
        return Err(Error::state(format!(
            "{what}: expected a contiguous float32 CPU tensor, got {:?} on {:?}",
            t.kind(),
            t.device()
        )));
    }
    Ok(t.data_ptr() as *mut f32)
}
