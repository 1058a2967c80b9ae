//! Sizes and counts that come from a user or a file, checked before anything is allocated
//! or started.
//!
//! A size passed from Python (`n_users`, `factors`, `k`) or read from a file (`item_num` in a
//! pickle) can ask for more memory than the machine has. Rust's allocator aborts the process
//! when an allocation fails, and on Linux a large zeroed allocation "succeeds" and then gets
//! the process killed when it is touched; either way the interpreter dies. So every such size
//! goes through [`bytes_for`] (checked arithmetic, then a comparison with [`budget`]) and the
//! buffer is made by [`try_filled`] (a fallible reservation), giving an [`Error::Memory`]
//! that names what asked.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The most bytes one buffer may take: the machine's physical memory, or less when the
/// process's address space (`ulimit -v`) or data segment is limited.
pub fn budget() -> u64 {
    static PHYSICAL: OnceLock<u64> = OnceLock::new();
    let physical = *PHYSICAL.get_or_init(|| {
        // SAFETY: sysconf only reads system configuration.
        let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
        if pages > 0 && size > 0 {
            (pages as u64).saturating_mul(size as u64)
        } else {
            u64::MAX
        }
    });
    // Read each time: a test (or a user) may lower the limit after the first call.
    [libc::RLIMIT_AS, libc::RLIMIT_DATA].into_iter().map(soft_limit).fold(physical, u64::min)
}

fn soft_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(resource, &mut lim) } == 0 && lim.rlim_cur != libc::RLIM_INFINITY {
        lim.rlim_cur
    } else {
        u64::MAX
    }
}

/// The most threads a `threads` / `workers` argument may ask for. Fixed, not the core count,
/// so a configuration valid on one machine (a saved model's) is valid on every other.
pub const MAX_THREADS: usize = 1024;

/// Error unless `n` (0 = one per core) is at most [`MAX_THREADS`]; `name` is the argument.
pub fn check_threads(name: &str, n: usize) -> Result<()> {
    if n > MAX_THREADS {
        return Err(Error::invalid(format!(
            "{name} must be between 0 (one per core) and {MAX_THREADS}, got {n}"
        )));
    }
    Ok(())
}

/// Human-readable bytes ("1.5 GiB").
pub fn show_bytes(n: u128) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u < units.len().saturating_sub(1) {
        x /= 1024.0;
        u = u.saturating_add(1);
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{x:.1} {}", units.get(u).copied().unwrap_or_default())
    }
}

/// Bytes of `count` elements of `elem` bytes, refused (naming `what`) when the product
/// overflows or exceeds [`budget`]. `what` says which argument or field asked, e.g.
/// "n_users=10000000000000 (the user index)".
pub fn bytes_for(what: &str, count: usize, elem: usize) -> Result<usize> {
    // Two usizes: the product fits in u128 (saturating only says so to the lint).
    let bytes = (count as u128).saturating_mul(elem as u128);
    let budget = budget();
    if bytes > budget as u128 || bytes > isize::MAX as u128 {
        return Err(Error::Memory(format!(
            "{what} needs {} ({count} x {elem} bytes), more than the {} of memory this process may use",
            show_bytes(bytes),
            show_bytes(budget as u128)
        )));
    }
    Ok(bytes as usize)
}

/// Checked `a * b` for sizes (element counts), naming `what` on overflow.
pub fn mul(what: &str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| Error::Memory(format!("{what}: {a} x {b} elements cannot be addressed")))
}

/// A vector of `n` copies of `value`, or an error naming `what` when it cannot be had.
pub fn try_filled<T: Clone>(what: &str, n: usize, value: T) -> Result<Vec<T>> {
    let mut v = try_with_capacity(what, n)?;
    v.resize(n, value);
    Ok(v)
}

/// An empty vector with room for `n` elements, or an error naming `what`.
pub fn try_with_capacity<T>(what: &str, n: usize) -> Result<Vec<T>> {
    let bytes = bytes_for(what, n, std::mem::size_of::<T>())?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::Memory(format!("{what}: could not allocate {} for {n} elements", show_bytes(bytes as u128)))
    })?;
    Ok(v)
}

/// The number of values of a tensor of shape `dims`, in u128 and saturating: a product past
/// it is more than any memory, and compares so. For counting a model's parameters from its
/// settings before anything is allocated (`Spec::param_count`).
pub fn values(dims: &[usize]) -> u128 {
    dims.iter().fold(1u128, |n, &d| n.saturating_mul(d as u128))
}

/// The sum of value counts, saturating as [`values`].
pub fn total(counts: impl IntoIterator<Item = u128>) -> u128 {
    counts.into_iter().fold(0u128, u128::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_cannot_fit() {
        let e = try_filled::<u64>("n_users=10000000000000", 10_000_000_000_000, 0).unwrap_err();
        assert!(matches!(e, Error::Memory(_)));
        assert!(e.to_string().contains("n_users=10000000000000"), "{e}");
        assert!(bytes_for("k", usize::MAX, 8).is_err());
        assert!(mul("rows x dim", usize::MAX, 2).is_err());
        assert_eq!(values(&[usize::MAX, usize::MAX, 2]), u128::MAX);
        assert_eq!(total([u128::MAX, 1]), u128::MAX);
    }

    #[test]
    fn gives_what_fits() {
        assert_eq!(try_filled("small", 3, 7u8).unwrap(), vec![7, 7, 7]);
        assert_eq!(bytes_for("small", 3, 4).unwrap(), 12);
        assert_eq!((values(&[3, 4]), values(&[]), total([2, 5])), (12, 1, 7));
        assert!(budget() > 1 << 20);
    }
}
