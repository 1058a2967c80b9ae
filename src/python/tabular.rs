//! Bindings: Delimited interaction files and id lists. OWNER: helper B.

use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
