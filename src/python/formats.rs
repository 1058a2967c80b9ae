//! Bindings: McAuley image features (.b) and Amazon metadata. OWNER: helper A.

use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
