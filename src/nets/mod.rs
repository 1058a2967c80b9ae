//! Networks: `nn::ModuleT` structs whose parameters live under a `VarStore` path.
//!
//! Image networks take the bank's uint8 (N, H, W, 3) pixels, already on the device, and
//! normalise them themselves: each backbone has its own convention ([-1, 1] for the
//! autoencoder, ImageNet mean/std for Inception), and the bank stays 4x smaller than floats.
//!
//! * [`mlp`]: a multi-layer perceptron (dense layers, ReLU, dropout).
//! * [`random`]: the fit's own random generator (initial parameters, dropout masks), never libtorch's.
//! * [`embedder`]: categorical + continuous feature columns to one vector.
//! * [`cnnf`]: CNN-F, DVBPR's network, with conv1 as a space-to-depth convolution.
//! * [`cae`]: a convolutional autoencoder (encoder to a latent vector, decoder back).
//! * [`inception`]: a headless Inception v3 with torchvision's parameter names.
//! * [`towers`]: image towers for the Siamese models (frozen backbone + trainable head).
//! * [`weights`]: reading and writing named tensors (safetensors), with checked names and shapes.
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

pub mod cae;
pub mod cnnf;
pub mod embedder;
pub mod gemm;
pub mod inception;
pub mod mlp;
pub mod random;
pub mod towers;
pub mod weights;

use tch::{nn, Device, Kind, Tensor};

use crate::error::{Error, Result};

/// An image network used as the item side of a two-tower model.
pub trait ImageTower: nn::ModuleT + Send {
    // input: uint8 (N, H, W, 3) on the device; normalisation belongs to the network
    fn out_dim(&self) -> i64;
    /// The weights under the model's L2 terms, by part ("conv", "fc"): the model weighs each.
    /// Its optimiser adds the term's gradient inside its update ([`crate::train::adam::Adam::l2`]),
    /// so the penalty is neither computed nor differentiated in the graph.
    fn penalised(&self) -> Vec<(&'static str, Vec<Tensor>)>;
    /// Parameters kept outside the caller's `VarStore` (a frozen backbone in its own store),
    /// by name: a model saves them beside its own, so a loaded model needs no weights file.
    /// The tower's constructor takes them back. Empty when everything is in the caller's store.
    fn frozen_state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
}

/// Per-channel `x * scale + shift` of a uint8 (N, H, W, 3) batch, as a float (N, 3, H, W)
/// channels-last view (the arithmetic runs on the contiguous NHWC data, then one permute).
#[derive(Debug)]
pub struct PixelAffine {
    scale: Tensor,
    shift: Tensor,
}

impl PixelAffine {
    pub fn new(scale: [f64; 3], shift: [f64; 3], device: Device) -> Self {
        let t = |v: [f64; 3]| Tensor::from_slice(&v.map(|x| x as f32)).to_device(device);
        PixelAffine { scale: t(scale), shift: t(shift) }
    }

    /// `x / 127.5 - 1`: pixels in [-1, 1].
    pub fn symmetric(device: Device) -> Self {
        Self::new([1.0 / 127.5; 3], [-1.0; 3], device)
    }

    pub fn apply(&self, xs: &Tensor) -> Tensor {
        let x = xs.to_kind(Kind::Float);
        let x = if x.device() == self.scale.device() {
            x * &self.scale + &self.shift
        } else {
            x * self.scale.to_device(xs.device()) + self.shift.to_device(xs.device())
        };
        x.permute([0, 3, 1, 2])
    }
}

/// Checks a batch is uint8 (N, size, size, 3): a wrong batch is an error here rather than a
/// libtorch panic deep in a convolution.
pub fn check_images(xs: &Tensor, size: i64, who: &str) -> Result<()> {
    let s = xs.size();
    if xs.kind() != Kind::Uint8 || !matches!(s.as_slice(), &[_, h, w, 3] if h == size && w == size) {
        return Err(Error::invalid(format!(
            "{who} takes uint8 images of shape (N, {size}, {size}, 3), got {:?} of shape {s:?}",
            xs.kind()
        )));
    }
    Ok(())
}

/// Values of a linear layer `in_dim` -> `out_dim`: its (out, in) weight and, with `bias`, its
/// bias (see [`crate::limits::values`]).
pub fn linear_values(in_dim: usize, out_dim: usize, bias: bool) -> u128 {
    crate::limits::values(&[out_dim, in_dim]).saturating_add(if bias { out_dim as u128 } else { 0 })
}
