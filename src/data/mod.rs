//! The data model: id maps, interactions (CSR), splits and the built-in synthetic data.

pub mod idmap;
pub mod interactions;
pub mod split;
pub mod synthetic;

pub use idmap::{IdKind, IdMap, RawIds};
pub use interactions::{Columns, Csr, Duplicates, IdMaps, Interactions, Unknown};
pub mod side;
pub use side::{CategoricalColumn, DenseMatrix, FeatureTable, ItemImages, Need, SideInfo, SideNeeds, Vocab};
