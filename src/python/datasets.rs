//! Bindings: DVBPR data sets (npy + pickle) and their writer.

use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
