//! CNN-F (Chatfield et al. 2014), the image network of DVBPR (Kang et al. 2017):
//! conv 11x11x64 stride 4, max-pool 2, conv 5x5x256, max-pool 2, conv 3x3x256 x 3, max-pool 2,
//! fc 4096, fc 4096, fc k; ReLU after every layer but the last; dropout 0.5 on the two fc 4096
//! layers at train time only. Convolutions are padded "same" (11x11 by 5, 5x5 by 2, 3x3 by 1),
//! so a 224x224 image reaches the fc layers as 256 x 7 x 7, a 64x64 one as 256 x 2 x 2.
//!
//! Input: uint8 (N, H, W, 3), normalised inside to [-1, 1] (`x / 127.5 - 1`, the seed's
//! `(x / 255 - 0.5) * 2`).
//!
//! conv1 (11x11, stride 4, 3 input channels) is a poor shape for convolution kernels: few input
//! channels and a large stride. With `space_to_depth` it runs as the exactly equivalent
//! stride-1 3x3 convolution over 48 channels: the padded image is cut into 4x4 blocks whose 48
//! values become channels, and the 11x11 kernel, zero-padded to 12x12, is cut the same way.
//! The parameter stays the plain (64, 3, 11, 11) weight (saved, penalised and initialised as
//! such); the rearrangement is part of the forward pass, so gradients reach it unchanged.
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic; integer layer sizes follow the fixed CNN-F architecture from the image size CnnF::new checks")]

use tch::{nn, Kind, Tensor};

use super::{random, ImageTower};
use crate::error::{Error, Result};

/// Shape and execution options of a [`CnnF`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CnnFConfig {
    pub height: i64,
    pub width: i64,
    /// Output dimension (DVBPR's k).
    pub out_dim: i64,
    /// Width of the two hidden fc layers: 4096 in CNN-F; smaller only for quick CPU runs.
    pub fc_width: i64,
    /// conv1 as the equivalent space-to-depth convolution (see the module notes).
    pub space_to_depth: bool,
    /// Keep activations channels-last (NHWC in memory), the layout tensor cores prefer.
    pub channels_last: bool,
    /// Compute convolutions and fc layers in bfloat16 (weights stay float32; the output is
    /// float32). Meant for CUDA; on the CPU it is slower.
    pub bf16: bool,
}

impl CnnFConfig {
    pub fn new(height: i64, width: i64, out_dim: i64) -> Self {
        CnnFConfig { height, width, out_dim, fc_width: FC_WIDTH, space_to_depth: true, channels_last: false, bf16: false }
    }
}

/// Width of CNN-F's two hidden fc layers.
pub const FC_WIDTH: i64 = 4096;
const CONV: [(i64, i64, i64); 5] = [(64, 11, 4), (256, 5, 1), (256, 3, 1), (256, 3, 1), (256, 3, 1)];
const DROPOUT: f64 = 0.5;
/// conv1's block size in the space-to-depth form (its stride).
const BLOCK: i64 = 4;

#[derive(Debug)]
pub struct CnnF {
    cfg: CnnFConfig,
    conv: Vec<nn::Conv2D>,
    fc: Vec<nn::Linear>,
    /// Spatial size after the last pooling: (h, w).
    final_hw: (i64, i64),
}

/// Output size of a "same"-padded convolution (odd kernel k, padding k/2) then of a 2x2 pool.
fn conv_out(n: i64, k: i64, stride: i64) -> i64 {
    // Padding minus kernel first (-1 for an odd kernel): `n + 2 * (k / 2)` would overflow for
    // an image size near i64::MAX, which a user can pass.
    n.saturating_add(2 * (k / 2) - k) / stride + 1
}

impl CnnF {
    /// A new network with PyTorch's default initialisation, its parameters under `path`
    /// ("conv1".."conv5", "fc1".."fc3", each with "weight" and "bias").
    pub fn new(path: &nn::Path, cfg: CnnFConfig) -> Result<Self> {
        if cfg.out_dim < 1 || cfg.fc_width < 1 {
            return Err(Error::invalid(format!(
                "the CNN-F output size and fc width must be at least 1, got {} and {}",
                cfg.out_dim, cfg.fc_width
            )));
        }
        let final_hw = Self::final_size(cfg.height, cfg.width)?;
        let mut conv = Vec::new();
        let mut c_in = 3;
        for (i, &(c_out, k, stride)) in CONV.iter().enumerate() {
            let c = nn::ConvConfigND::<[i64; 2]> { stride: [stride, stride], padding: [k / 2, k / 2], ..Default::default() };
            conv.push(random::conv(&(path / format!("conv{}", i + 1)), c_in, c_out, [k, k], c)?);
            c_in = c_out;
        }
        let flat = 256 * final_hw.0 * final_hw.1;
        let fw = cfg.fc_width;
        let sizes = [(flat, fw), (fw, fw), (fw, cfg.out_dim)];
        let fc = sizes
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| random::linear(&(path / format!("fc{}", i + 1)), a, b, Default::default()))
            .collect::<Result<_>>()?;
        Ok(CnnF { cfg, conv, fc, final_hw })
    }

    /// The spatial size reaching fc1 for (height, width) images; an error when an image is
    /// too small to survive the three poolings.
    pub fn final_size(height: i64, width: i64) -> Result<(i64, i64)> {
        let f = |n: i64| conv_out(n, 11, 4) / 8;
        let (h, w) = (f(height), f(width));
        if height < 1 || width < 1 || h < 1 || w < 1 {
            return Err(Error::invalid(format!(
                "image_size {height}x{width} is too small for CNN-F: it needs at least 29x29 pixels"
            )));
        }
        Ok((h, w))
    }

    pub fn config(&self) -> &CnnFConfig {
        &self.cfg
    }

    /// Number of inputs of fc1 (256 x final height x final width).
    pub fn fc_inputs(&self) -> i64 {
        256 * self.final_hw.0 * self.final_hw.1
    }

    /// phi of a uint8 (N, H, W, 3) batch: float32 (N, out_dim). Dropout only when `train`.
    pub fn f_forward(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        let size = images.size();
        if images.kind() != Kind::Uint8 || !matches!(size.as_slice(), &[_, h, w, 3] if (h, w) == (self.cfg.height, self.cfg.width)) {
            return Err(Error::invalid(format!(
                "CNN-F takes uint8 images of shape (N, {}, {}, 3), got {:?} {:?}",
                self.cfg.height,
                self.cfg.width,
                images.kind(),
                size
            )));
        }
        let kind = if self.cfg.bf16 { Kind::BFloat16 } else { Kind::Float };
        let w = |t: &Tensor| t.f_to_kind(kind);
        // Normalise in NHWC (one pass over the bytes), before any padding: padding is zero in
        // normalised units, as for a plain padded convolution.
        let x = images.f_to_kind(kind)?.f_mul_scalar(1.0 / 127.5)?.f_sub_scalar(1.0)?;
        let c1 = self.conv.first().ok_or_else(|| Error::state("CNN-F without convolutions"))?;
        let bias1 = c1.bs.as_ref().map(w).transpose()?;
        let mut x = if self.cfg.space_to_depth {
            let (xs, ws) = space_to_depth(&x, &w(&c1.ws)?)?;
            self.layout(xs)?.f_conv2d(&ws, bias1.as_ref(), [1, 1], [0, 0], [1, 1], 1)?
        } else {
            self.layout(x.f_permute([0, 3, 1, 2])?)?.f_conv2d(&w(&c1.ws)?, bias1.as_ref(), [4, 4], [5, 5], [1, 1], 1)?
        };
        x = x.f_relu()?.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)?;
        for (i, c) in self.conv.iter().enumerate().skip(1) {
            let k = crate::tensors::size_at(&c.ws, 2)?;
            x = x.f_conv2d(&w(&c.ws)?, c.bs.as_ref().map(w).transpose()?.as_ref(), [1, 1], [k / 2, k / 2], [1, 1], 1)?;
            x = x.f_relu()?;
            if i == 1 || i == 4 {
                x = x.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)?;
            }
        }
        // (C, H, W) order whatever the memory layout, as a plain flatten of NCHW.
        let mut x = x.f_flatten(1, -1)?;
        for (i, l) in self.fc.iter().enumerate() {
            x = x.f_linear(&w(&l.ws)?, l.bs.as_ref().map(w).transpose()?.as_ref())?;
            if i < 2 {
                // DVBPR's batches are its positives then its negatives: two blocks of samples.
                x = random::dropout(&x.f_relu()?, DROPOUT, train, 2)?;
            }
        }
        Ok(x.f_to_kind(Kind::Float)?)
    }

    /// An NCHW tensor in the configured memory layout.
    fn layout(&self, x: Tensor) -> Result<Tensor> {
        Ok(if self.cfg.channels_last { channels_last(&x)? } else { x.f_contiguous()? })
    }

    fn weights(&self) -> (Vec<&Tensor>, Vec<&Tensor>) {
        (self.conv.iter().map(|c| &c.ws).collect(), self.fc.iter().map(|l| &l.ws).collect())
    }
}

/// An NCHW tensor stored channels-last (NHWC in memory), still indexed as NCHW.
fn channels_last(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])?)
}

/// conv1 in space-to-depth form: for normalised NHWC images `x` (N, H, W, 3) and the plain
/// (64, 3, 11, 11) weight, the NCHW input (N, 48, Hb, Wb) and the (64, 48, 3, 3) weight whose
/// stride-1 convolution equals `conv2d(x, weight, stride 4, padding 5)` exactly.
///
/// Output position o reads padded rows 4o..4o+10, i.e. blocks o, o+1, o+2 of 4 rows with the
/// kernel zero-padded to 12 rows; the input is padded by 5 before and up to 4 (Ho + 2) rows in
/// all after (the extra rows meet only the kernel's zero 12th row).
pub fn space_to_depth(x: &Tensor, weight: &Tensor) -> Result<(Tensor, Tensor)> {
    let s = x.size();
    let &[n, h, w, c] = s.as_slice() else {
        return Err(Error::invalid(format!("space_to_depth takes an NHWC batch, got shape {s:?}")));
    };
    let (ho, wo) = (conv_out(h, 11, 4), conv_out(w, 11, 4));
    let (hb, wb) = (ho + 2, wo + 2);
    let (pad_h, pad_w) = (BLOCK * hb - h - 5, BLOCK * wb - w - 5);
    // constant_pad_nd pads from the last dimension: (C), (W), (H).
    let xs = x
        .f_constant_pad_nd([0, 0, 5, pad_w, 5, pad_h])?
        .f_reshape([n, hb, BLOCK, wb, BLOCK, c])?
        .f_permute([0, 1, 3, 2, 4, 5])?
        .f_reshape([n, hb, wb, BLOCK * BLOCK * c])?
        .f_permute([0, 3, 1, 2])?;
    let o = crate::tensors::size_at(weight, 0)?;
    let ws = weight
        .f_constant_pad_nd([0, 1, 0, 1])?
        .f_reshape([o, c, 3, BLOCK, 3, BLOCK])?
        .f_permute([0, 3, 5, 1, 2, 4])?
        .f_reshape([o, BLOCK * BLOCK * c, 3, 3])?;
    Ok((xs, ws))
}

impl nn::ModuleT for CnnF {
    /// Panics on bad input or a libtorch error; the models call [`CnnF::f_forward`].
    // tch's ModuleT cannot return an error: models call the fallible forward on user input,
    // and `error::guarded` turns a panic here into an error, never an abort.
    #[allow(clippy::panic, reason = "ModuleT::forward_t is infallible by signature")]
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.f_forward(xs, train).unwrap_or_else(|e| panic!("CNN-F forward: {e}"))
    }
}

impl ImageTower for CnnF {
    fn out_dim(&self) -> i64 {
        self.cfg.out_dim
    }

    fn penalised(&self) -> Vec<(&'static str, Vec<Tensor>)> {
        let (conv, fc) = self.weights();
        let own = |ws: Vec<&Tensor>| ws.into_iter().map(Tensor::shallow_clone).collect();
        vec![("conv", own(conv)), ("fc", own(fc))]
    }
}

/// Values of a [`CnnF`] for (height, width) images, `out_dim` outputs and hidden fc layers of
/// `fc_width`, counted without building it (0 for images too small for it, which it refuses;
/// saturating, see [`crate::limits::values`]: beyond 2^32 pixels a side, fc1 alone has more
/// than 2^62 values).
pub fn cnnf_values(height: usize, width: usize, out_dim: usize, fc_width: usize) -> u128 {
    const HUGE: u64 = 1 << 32;
    if height as u64 > HUGE || width as u64 > HUGE {
        return u128::MAX;
    }
    let (h, w) = (height as i64, width as i64);
    let Ok((fh, fw)) = CnnF::final_size(h, w) else { return 0 };
    let mut c_in = 3;
    let mut convs = Vec::with_capacity(CONV.len());
    for &(c_out, k, _) in &CONV {
        convs.push(crate::limits::values(&[c_out as usize, c_in as usize, k as usize, k as usize]).saturating_add(c_out as u128));
        c_in = c_out;
    }
    let flat = crate::limits::values(&[256, fh as usize, fw as usize]);
    let flat = usize::try_from(flat).unwrap_or(usize::MAX);
    let fc = [(flat, fc_width), (fc_width, fc_width), (fc_width, out_dim)].map(|(a, b)| super::linear_values(a, b, true));
    crate::limits::total(convs.into_iter().chain(fc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::ModuleT, Device};

    #[test]
    fn space_to_depth_equals_the_plain_strided_convolution() {
        tch::manual_seed(0);
        for (h, w) in [(224, 224), (64, 64), (37, 50), (33, 29)] {
            let x = Tensor::rand([2, h, w, 3], (Kind::Double, Device::Cpu)) * 2.0 - 1.0;
            let weight = Tensor::randn([64, 3, 11, 11], (Kind::Double, Device::Cpu));
            let plain = x.permute([0, 3, 1, 2]).conv2d(&weight, None::<Tensor>, [4, 4], [5, 5], [1, 1], 1);
            let (xs, ws) = space_to_depth(&x, &weight).unwrap();
            let s2d = xs.contiguous().conv2d(&ws, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
            assert_eq!(plain.size(), s2d.size(), "{h}x{w}");
            let err = (&plain - &s2d).abs().max().double_value(&[]);
            assert!(err < 1e-10, "{h}x{w}: max difference {err}");
        }
    }

    #[test]
    fn both_conv1_forms_give_the_same_network_output_and_gradient() {
        // Input and weights from this thread's own generator: libtorch's global one is shared
        // with the tests running beside this one, which made the tolerances below flaky.
        random::reseed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut net = CnnF::new(&vs.root(), CnnFConfig::new(64, 48, 8)).unwrap();
        let x = random::uniform(&[3, 64, 48, 3], 0.0, 256.0, Device::Cpu).unwrap().floor().to_kind(Kind::Uint8);
        let run = |net: &CnnF| {
            for mut v in vs.trainable_variables() {
                v.zero_grad();
            }
            let y = net.f_forward(&x, false).unwrap();
            y.square().sum(Kind::Float).backward();
            (y.detach(), net.conv[0].ws.grad().copy())
        };
        let (a, ga) = run(&net);
        net.cfg.space_to_depth = false;
        let (b, gb) = run(&net);
        net.cfg.channels_last = true;
        let (c, _) = run(&net);
        assert_eq!(a.size(), vec![3, 8]);
        let rel = |p: &Tensor, q: &Tensor| ((p - q).abs().max() / q.abs().max()).double_value(&[]);
        assert!(rel(&a, &b) < 1e-4 && rel(&c, &b) < 1e-4, "{} {}", rel(&a, &b), rel(&c, &b));
        assert!(rel(&ga, &gb) < 1e-3, "{}", rel(&ga, &gb));
    }

    #[test]
    fn shapes_follow_the_image_size_and_bad_input_is_an_error() {
        let vs = nn::VarStore::new(Device::Cpu);
        assert_eq!(CnnF::final_size(224, 224).unwrap(), (7, 7));
        assert_eq!(CnnF::final_size(64, 64).unwrap(), (2, 2));
        assert_eq!(CnnF::final_size(32, 32).unwrap(), (1, 1));
        assert!(CnnF::final_size(28, 64).unwrap_err().to_string().contains("too small"));
        // An image size near i64::MAX (a user can pass one) gives a size, not an overflow.
        assert_eq!(CnnF::final_size(i64::MAX, 64).unwrap(), (((i64::MAX - 1) / 4 + 1) / 8, 2));
        let net = CnnF::new(&vs.root(), CnnFConfig::new(32, 32, 5)).unwrap();
        assert_eq!(net.fc_inputs(), 256);
        assert_eq!(net.out_dim(), 5);
        let names: Vec<_> = vs.variables().keys().cloned().collect();
        assert!(names.contains(&"conv1.weight".to_string()) && names.contains(&"fc3.bias".to_string()), "{names:?}");
        assert_eq!(vs.variables()["conv1.weight"].size(), vec![64, 3, 11, 11]);
        let bad = Tensor::zeros([2, 32, 32, 3], (Kind::Float, Device::Cpu));
        assert!(net.f_forward(&bad, false).unwrap_err().to_string().contains("uint8"));
        let bad = Tensor::zeros([2, 31, 32, 3], (Kind::Uint8, Device::Cpu));
        assert!(net.f_forward(&bad, false).is_err());
    }

    /// The architecture written out with plain libtorch calls on the same parameters.
    #[test]
    fn matches_a_plain_reference_forward() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = CnnF::new(&vs.root(), CnnFConfig::new(40, 36, 6)).unwrap();
        let x = Tensor::randint(256, [2, 40, 36, 3], (Kind::Uint8, Device::Cpu));
        let v = vs.variables();
        let conv = |x: &Tensor, i: usize, s: i64, p: i64| {
            x.conv2d(&v[&format!("conv{i}.weight")], Some(&v[&format!("conv{i}.bias")]), [s, s], [p, p], [1, 1], 1).relu()
        };
        let fc = |x: &Tensor, i: usize| x.linear(&v[&format!("fc{i}.weight")], Some(&v[&format!("fc{i}.bias")]));
        let h = (x.to_kind(Kind::Float) / 255.0 - 0.5) * 2.0;
        let h = conv(&h.permute([0, 3, 1, 2]), 1, 4, 5).max_pool2d_default(2);
        let h = conv(&h, 2, 1, 2).max_pool2d_default(2);
        let h = conv(&conv(&conv(&h, 3, 1, 1), 4, 1, 1), 5, 1, 1).max_pool2d_default(2);
        let h = fc(&fc(&fc(&h.flatten(1, -1), 1).relu(), 2).relu(), 3);
        let y = net.f_forward(&x, false).unwrap();
        let err = ((&y - &h).abs().max() / h.abs().max()).double_value(&[]);
        assert!(err < 1e-4, "{err}");
    }

    #[test]
    fn dropout_only_in_training_and_the_penalised_are_the_weights() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = CnnF::new(&vs.root(), CnnFConfig::new(32, 32, 4)).unwrap();
        let x = Tensor::randint(256, [4, 32, 32, 3], (Kind::Uint8, Device::Cpu));
        let (e1, e2) = (net.forward_t(&x, false), net.forward_t(&x, false));
        assert!(e1.equal(&e2));
        let t1 = net.forward_t(&x, true);
        assert!(!t1.equal(&e1));
        let p = net.penalised();
        assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec!["conv", "fc"]);
        let vars = vs.variables();
        let ptrs = |prefix: &str, n: usize| (1..=n).map(|i| vars[&format!("{prefix}{i}.weight")].data_ptr()).collect::<Vec<_>>();
        assert_eq!(p[0].1.iter().map(Tensor::data_ptr).collect::<Vec<_>>(), ptrs("conv", 5));
        assert_eq!(p[1].1.iter().map(Tensor::data_ptr).collect::<Vec<_>>(), ptrs("fc", 3));
    }
}
