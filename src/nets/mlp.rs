//! A multi-layer perceptron: Linear layers with ReLU (and dropout, while training) between
//! them. The dense towers of the feature models (HybridBPR's 64-32-d stack) and the deep
//! triplet model's scoring head are each one `Mlp`.
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use tch::{nn, Tensor};

use crate::error::{Error, Result};
use crate::nets::random;

/// Linear -> ReLU -> dropout -> ... -> Linear (ReLU after the last layer too with
/// `relu_last`). Parameters under `path/"0"`, `path/"1"`, ... (weight, bias).
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
    dropout: f64,
    relu_last: bool,
    in_dim: i64,
}

impl Mlp {
    /// `widths` are the output sizes of the layers, the last one being the network's output;
    /// `dropout` (in [0, 1)) applies after each hidden activation while training.
    pub fn new(path: &nn::Path, in_dim: i64, widths: &[i64], dropout: f64, relu_last: bool) -> Result<Self> {
        if in_dim < 1 {
            return Err(Error::invalid(format!("MLP input size must be at least 1, got {in_dim}")));
        }
        if widths.is_empty() {
            return Err(Error::invalid("an MLP needs at least one layer"));
        }
        if let Some(w) = widths.iter().find(|&&w| w < 1) {
            return Err(Error::invalid(format!("MLP layer sizes must be at least 1, got {w} in {widths:?}")));
        }
        if !(0.0..1.0).contains(&dropout) {
            return Err(Error::invalid(format!("dropout must be in [0, 1), got {dropout}")));
        }
        let mut layers = Vec::with_capacity(widths.len());
        let mut d = in_dim;
        for (k, &w) in widths.iter().enumerate() {
            layers.push(random::linear(&(path / k.to_string()), d, w, Default::default())?);
            d = w;
        }
        Ok(Mlp { layers, dropout, relu_last, in_dim })
    }

    pub fn in_dim(&self) -> i64 {
        self.in_dim
    }

    pub fn out_dim(&self) -> i64 {
        self.layers.last().map_or(self.in_dim, |l| l.ws.size().first().copied().unwrap_or(0))
    }

    /// A handle on the same parameters (tch tensors are `Send` but not `Sync`: a training
    /// step owns its own handles).
    pub fn shallow_clone(&self) -> Self {
        let layers = self.layers.iter().map(|l| nn::Linear { ws: l.ws.shallow_clone(), bs: l.bs.as_ref().map(Tensor::shallow_clone) }).collect();
        Mlp { layers, dropout: self.dropout, relu_last: self.relu_last, in_dim: self.in_dim }
    }

    /// Handles on each layer's (weight (out, in), bias (out)), first layer first: for steps
    /// that compute the network's gradient themselves (the deep triplet model's native step).
    pub fn linears(&self) -> Vec<(Tensor, Option<Tensor>)> {
        self.layers.iter().map(|l| (l.ws.shallow_clone(), l.bs.as_ref().map(Tensor::shallow_clone))).collect()
    }

    /// The dropout probability after each hidden activation while training.
    pub fn dropout(&self) -> f64 {
        self.dropout
    }

    /// The first layer's weight split by input columns, `[..split]` and `[split..]`, and its
    /// bias: with x = [a, b], layer 0 is a W_a^T + b W_b^T + bias, so a model scoring every
    /// (user, item) pair computes each side's part once and broadcasts the sum
    /// ([`Self::forward_after_first`] runs the rest).
    pub fn first_layer_split(&self, split: i64) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let l = self.first_layer()?;
        if split < 0 || split > self.in_dim {
            return Err(Error::invalid(format!("split {split} outside the MLP input of {}", self.in_dim)));
        }
        Ok((l.ws.f_narrow(1, 0, split)?, l.ws.f_narrow(1, split, self.in_dim - split)?, l.bs.as_ref().map(Tensor::shallow_clone)))
    }

    /// The network from the pre-activation output of the first layer on.
    pub fn forward_after_first(&self, pre: &Tensor, train: bool) -> Result<Tensor> {
        self.run_from(1, pre.shallow_clone(), train)
    }

    /// The forward pass with libtorch errors (a wrong input width, a device mismatch) as
    /// errors instead of panics: what models call on user-influenced input.
    pub fn try_forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let width = xs.size().last().copied().unwrap_or(0);
        if width != self.in_dim {
            return Err(Error::invalid(format!(
                "MLP input has {width} columns, the network takes {}",
                self.in_dim
            )));
        }
        let l = self.first_layer()?;
        let pre = xs.f_linear(&l.ws, l.bs.as_ref())?;
        self.run_from(1, pre, train)
    }

    fn first_layer(&self) -> Result<&nn::Linear> {
        self.layers.first().ok_or_else(|| Error::state("an MLP without layers"))
    }

    /// Layers `first..` on `h`, the pre-activation output of layer `first - 1`.
    fn run_from(&self, first: usize, mut h: Tensor, train: bool) -> Result<Tensor> {
        let last = self.layers.len() - 1;
        for (k, layer) in self.layers.iter().enumerate().skip(first - 1) {
            if k >= first {
                h = h.f_linear(&layer.ws, layer.bs.as_ref())?;
            }
            if k < last || self.relu_last {
                h = h.f_relu()?;
            }
            if k < last && self.dropout > 0.0 && train {
                h = random::dropout(&h, self.dropout, train, 0)?;
            }
        }
        Ok(h)
    }
}

/// Values of an [`Mlp`] from `in_dim` through layers of `widths` (each a weight and a bias),
/// counted without building it.
pub fn mlp_values(in_dim: usize, widths: &[usize]) -> u128 {
    let ins = std::iter::once(in_dim).chain(widths.iter().copied());
    crate::limits::total(ins.zip(widths).map(|(i, &o)| super::linear_values(i, o, true)))
}

impl nn::ModuleT for Mlp {
    // tch's ModuleT cannot return an error: models call the fallible forward on user input,
    // and `error::guarded` turns a panic here into an error, never an abort.
    #[allow(clippy::panic, reason = "ModuleT::forward_t is infallible by signature")]
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self.try_forward(xs, train) {
            Ok(t) => t,
            // ModuleT cannot return an error; models use `try_forward` on user input.
            Err(e) => panic!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::ModuleT, nn::OptimizerConfig, Device, Kind};

    #[test]
    fn shapes_and_names() {
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::new(&(vs.root() / "tower"), 10, &[64, 32, 8], 0.2, false).unwrap();
        assert_eq!((mlp.in_dim(), mlp.out_dim()), (10, 8));
        let y = mlp.forward_t(&Tensor::randn([5, 10], (Kind::Float, Device::Cpu)), true);
        assert_eq!(y.size(), [5, 8]);
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        assert_eq!(names, ["tower.0.bias", "tower.0.weight", "tower.1.bias", "tower.1.weight", "tower.2.bias", "tower.2.weight"]);
    }

    #[test]
    fn relu_last_and_linear_output() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let x = Tensor::randn([200, 4], (Kind::Float, Device::Cpu));
        let relu = Mlp::new(&(vs.root() / "a"), 4, &[6, 3], 0.0, true).unwrap();
        let lin = Mlp::new(&(vs.root() / "b"), 4, &[6, 3], 0.0, false).unwrap();
        assert!(relu.forward_t(&x, false).min().double_value(&[]) >= 0.0);
        assert!(lin.forward_t(&x, false).min().double_value(&[]) < 0.0);
    }

    #[test]
    fn dropout_only_while_training() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::new(&vs.root(), 8, &[256, 4], 0.5, false).unwrap();
        let x = Tensor::randn([3, 8], (Kind::Float, Device::Cpu));
        let eval1 = mlp.forward_t(&x, false);
        let eval2 = mlp.forward_t(&x, false);
        assert!(eval1.equal(&eval2), "evaluation must be deterministic");
        let train = mlp.forward_t(&x, true);
        assert!(!train.allclose(&eval1, 1e-6, 1e-6, false), "dropout had no effect while training");
    }

    #[test]
    fn dropout_keeps_one_minus_p_scaled_and_repeats_with_the_seed() {
        let x = Tensor::ones([400, 500], (Kind::Float, Device::Cpu));
        random::reseed(7);
        let a = random::dropout(&x, 0.3, true, 0).unwrap();
        random::reseed(7);
        let b = random::dropout(&x, 0.3, true, 0).unwrap();
        assert!(a.equal(&b), "the same seed gives the same mask");
        let kept = a.gt(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        assert!((kept - 0.7).abs() < 0.005, "kept fraction {kept}");
        let values = a.masked_select(&a.gt(0.0));
        assert!(values.allclose(&Tensor::full([1], 1.0 / 0.7, (Kind::Float, Device::Cpu)), 1e-6, 1e-6, false));
        // The mean is preserved in expectation; the gradient flows through the kept elements.
        assert!((a.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 0.01);
        let c = random::dropout(&x, 0.3, true, 0).unwrap();
        assert!(!a.equal(&c), "the next call draws a new mask");
    }

    #[test]
    fn learns_xor() {
        // Not linearly separable: only a working hidden layer + ReLU fits it.
        random::reseed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::new(&vs.root(), 2, &[16, 1], 0.0, false).unwrap();
        let x = Tensor::from_slice(&[0f32, 0., 0., 1., 1., 0., 1., 1.]).reshape([4, 2]);
        let y = Tensor::from_slice(&[0f32, 1., 1., 0.]).reshape([4, 1]);
        let mut opt = nn::Adam::default().build(&vs, 0.05).unwrap();
        for _ in 0..500 {
            let loss = mlp.forward_t(&x, true).binary_cross_entropy_with_logits::<Tensor>(&y, None, None, tch::Reduction::Mean);
            opt.backward_step(&loss);
        }
        let pred = mlp.forward_t(&x, false).gt(0.0).to_kind(Kind::Float);
        assert!(pred.equal(&y), "MLP did not fit XOR: {pred}");
    }

    #[test]
    fn split_first_layer_matches_the_full_pass() {
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = Mlp::new(&vs.root(), 5, &[7, 3, 1], 0.0, false).unwrap();
        let a = Tensor::randn([4, 2], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        let full = mlp.forward_t(&Tensor::cat(&[&a, &b], 1), false);
        let (wa, wb, bias) = mlp.first_layer_split(2).unwrap();
        let pre = a.matmul(&wa.tr()) + b.matmul(&wb.tr()) + bias.unwrap();
        assert!(mlp.forward_after_first(&pre, false).unwrap().allclose(&full, 1e-5, 1e-6, false));
        let twin = mlp.shallow_clone();
        assert!(twin.forward_t(&Tensor::cat(&[&a, &b], 1), false).equal(&full));
    }

    #[test]
    fn bad_arguments_are_errors() {
        let vs = nn::VarStore::new(Device::Cpu);
        assert!(Mlp::new(&vs.root(), 0, &[4], 0.0, false).is_err());
        assert!(Mlp::new(&vs.root(), 3, &[], 0.0, false).is_err());
        assert!(Mlp::new(&vs.root(), 3, &[4, 0], 0.0, false).is_err());
        assert!(Mlp::new(&vs.root(), 3, &[4], 1.0, false).is_err());
        let mlp = Mlp::new(&vs.root(), 3, &[4], 0.0, false).unwrap();
        let err = mlp.try_forward(&Tensor::zeros([2, 5], (Kind::Float, Device::Cpu)), false).unwrap_err();
        assert!(err.to_string().contains("5 columns"), "{err}");
    }
}
