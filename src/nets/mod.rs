//! Networks: each a struct implementing `nn::ModuleT`, parameters under a `VarStore` path.

pub mod embedder;
pub mod mlp;
