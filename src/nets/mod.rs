//! Networks: each a struct implementing `nn::ModuleT`, parameters under a `VarStore` path.

pub mod cnnf;

use tch::{nn, Tensor};

/// A network that maps images to vectors (DVBPR's phi). Input: uint8 (N, H, W, 3) on the
/// network's device; normalisation belongs to the network, so the image bank stays uint8.
pub trait ImageTower: nn::ModuleT + Send {
    /// Length of the output vectors.
    fn out_dim(&self) -> i64;
    /// Named sums of squared weights for weight decay, e.g. ("conv", ...), ("fc", ...).
    fn penalties(&self) -> Vec<(&'static str, Tensor)>;
}
