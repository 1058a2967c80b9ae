//! A headless Inception v3: torchvision's `inception_v3` up to the global average pool, with
//! its parameter names ("Conv2d_1a_3x3.conv.weight", "Mixed_5b.branch1x1.bn.running_mean",
//! ...), so a torchvision state dict converted to safetensors
//! (`fashionrec.io.convert_inception_weights`) loads as is. The auxiliary classifier and the
//! final `fc` are not built; their entries in a weights file are ignored.
//!
//! Input: uint8 (N, H, W, 3) pixels, H = W >= 75 (299 for the ImageNet weights' own size).
//! The network normalises them as torchvision's ImageNet weights expect: x / 255, then
//! ImageNet mean/std, then (with `transform_input`, which the ImageNet weights set) back to
//! (x - 0.5) / 0.5 per channel, all folded into one per-channel affine map.
//! Output: (N, 2048) pooled features.
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use std::collections::HashMap;

use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::weights::copy_into;
use super::PixelAffine;
use crate::error::{Error, Result};

/// Features out of the backbone.
pub const FEATURES: i64 = 2048;
/// Values the backbone holds (every conv weight and batch norm's weight, bias, running mean
/// and running variance): fixed by the architecture, whatever the input size; a test counts
/// a built one.
pub const BACKBONE_VALUES: u128 = 21_820_000;
/// The smallest input torchvision's architecture takes (the last 3x3 stride-2 reductions
/// need a 3x3 map).
pub const MIN_SIZE: i64 = 75;
const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// Named parameters of the backbone, relative to its root, filled while building it.
type Params = Vec<(String, Tensor)>;

/// Conv (no bias) + batch norm (eps 1e-3) + ReLU: torchvision's `BasicConv2d`.
#[derive(Debug)]
struct BasicConv {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl BasicConv {
    /// The conv `name` of block `p` (registered as `prefix` + `name`).
    #[allow(clippy::too_many_arguments)]
    fn new(p: &nn::Path, prefix: &str, name: &str, c_in: i64, c_out: i64, k: [i64; 2], pad: [i64; 2], stride: i64, reg: &mut Params) -> Self {
        // Zeros, not a random draw: every weight is loaded from the user's file before use.
        let cfg = nn::ConvConfigND::<[i64; 2]> { stride: [stride, stride], padding: pad, bias: false, ws_init: nn::Init::Const(0.0), ..Default::default() };
        #[allow(clippy::disallowed_methods)] // a constant init: no draw (see nets::random)
        let conv = nn::conv(p / name / "conv", c_in, c_out, k, cfg);
        let bn_cfg = nn::BatchNormConfig { eps: 1e-3, ws_init: nn::Init::Const(1.0), ..Default::default() };
        let bn = nn::batch_norm2d(p / name / "bn", c_out, bn_cfg);
        let name = format!("{prefix}{name}");
        reg.push((format!("{name}.conv.weight"), conv.ws.shallow_clone()));
        // An affine batch norm (the config's default) has both: skipping a missing one would
        // only leave it out of the weights file's names, which the loader then reports.
        for (field, t) in [("weight", bn.ws.as_ref()), ("bias", bn.bs.as_ref())] {
            if let Some(t) = t {
                reg.push((format!("{name}.bn.{field}"), t.shallow_clone()));
            }
        }
        reg.push((format!("{name}.bn.running_mean"), bn.running_mean.shallow_clone()));
        reg.push((format!("{name}.bn.running_var"), bn.running_var.shallow_clone()));
        BasicConv { conv, bn }
    }

    /// A stem conv: square kernel `k`, padding `pad`.
    #[allow(clippy::too_many_arguments)]
    fn stem(p: &nn::Path, name: &str, c_in: i64, c_out: i64, k: i64, pad: i64, stride: i64, reg: &mut Params) -> Self {
        Self::new(p, "", name, c_in, c_out, [k, k], [pad, pad], stride, reg)
    }
}

impl ModuleT for BasicConv {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv).apply_t(&self.bn, train).relu()
    }
}

fn max_pool(xs: &Tensor) -> Tensor {
    xs.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false)
}

/// torchvision's `F.avg_pool2d(x, 3, stride=1, padding=1)` (padding counted).
fn avg_pool(xs: &Tensor) -> Tensor {
    xs.avg_pool2d([3, 3], [1, 1], [1, 1], false, true, None)
}

/// Runs `convs` one after the other.
fn chain(xs: &Tensor, convs: &[BasicConv], train: bool) -> Tensor {
    convs.iter().fold(xs.shallow_clone(), |x, c| c.forward_t(&x, train))
}

/// The five kinds of mixed block (torchvision's InceptionA..E).
#[derive(Debug)]
enum Mixed {
    /// 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1
    A { b1: BasicConv, b5: [BasicConv; 2], b3: [BasicConv; 3], pool: BasicConv },
    /// 3x3/2 | 1x1-3x3-3x3/2 | maxpool
    B { b3: BasicConv, b3dbl: [BasicConv; 3] },
    /// 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool-1x1
    C { b1: BasicConv, b7: [BasicConv; 3], b7dbl: [BasicConv; 5], pool: BasicConv },
    /// 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool
    D { b3: [BasicConv; 2], b7: [BasicConv; 4] },
    /// 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | avgpool-1x1
    E { b1: BasicConv, b3: BasicConv, b3ab: [BasicConv; 2], b3dbl: [BasicConv; 2], b3dbl_ab: [BasicConv; 2], pool: BasicConv },
}

impl Mixed {
    fn a(root: &nn::Path, block: &str, c_in: i64, c_pool: i64, reg: &mut Params) -> Self {
        let (p, pre) = (root / block, format!("{block}."));
        let mut c = |name: &str, i, o, k, pad| BasicConv::new(&p, &pre, name, i, o, [k, k], [pad, pad], 1, reg);
        Mixed::A {
            b1: c("branch1x1", c_in, 64, 1, 0),
            b5: [c("branch5x5_1", c_in, 48, 1, 0), c("branch5x5_2", 48, 64, 5, 2)],
            b3: [c("branch3x3dbl_1", c_in, 64, 1, 0), c("branch3x3dbl_2", 64, 96, 3, 1), c("branch3x3dbl_3", 96, 96, 3, 1)],
            pool: c("branch_pool", c_in, c_pool, 1, 0),
        }
    }

    fn b(root: &nn::Path, block: &str, c_in: i64, reg: &mut Params) -> Self {
        let (p, pre) = (root / block, format!("{block}."));
        let mut c = |name: &str, i, o, k, pad, s| BasicConv::new(&p, &pre, name, i, o, [k, k], [pad, pad], s, reg);
        Mixed::B {
            b3: c("branch3x3", c_in, 384, 3, 0, 2),
            b3dbl: [c("branch3x3dbl_1", c_in, 64, 1, 0, 1), c("branch3x3dbl_2", 64, 96, 3, 1, 1), c("branch3x3dbl_3", 96, 96, 3, 0, 2)],
        }
    }

    fn c(root: &nn::Path, block: &str, c_in: i64, c7: i64, reg: &mut Params) -> Self {
        let (p, pre) = (root / block, format!("{block}."));
        let mut c = |name: &str, i, o, k: [i64; 2], pad: [i64; 2]| BasicConv::new(&p, &pre, name, i, o, k, pad, 1, reg);
        let (one, row, col) = ([1, 1], [1, 7], [7, 1]);
        let (p0, prow, pcol) = ([0, 0], [0, 3], [3, 0]);
        Mixed::C {
            b1: c("branch1x1", c_in, 192, one, p0),
            b7: [c("branch7x7_1", c_in, c7, one, p0), c("branch7x7_2", c7, c7, row, prow), c("branch7x7_3", c7, 192, col, pcol)],
            b7dbl: [
                c("branch7x7dbl_1", c_in, c7, one, p0),
                c("branch7x7dbl_2", c7, c7, col, pcol),
                c("branch7x7dbl_3", c7, c7, row, prow),
                c("branch7x7dbl_4", c7, c7, col, pcol),
                c("branch7x7dbl_5", c7, 192, row, prow),
            ],
            pool: c("branch_pool", c_in, 192, one, p0),
        }
    }

    fn d(root: &nn::Path, block: &str, c_in: i64, reg: &mut Params) -> Self {
        let (p, pre) = (root / block, format!("{block}."));
        let mut c = |name: &str, i, o, k: [i64; 2], pad: [i64; 2], s| BasicConv::new(&p, &pre, name, i, o, k, pad, s, reg);
        Mixed::D {
            b3: [c("branch3x3_1", c_in, 192, [1, 1], [0, 0], 1), c("branch3x3_2", 192, 320, [3, 3], [0, 0], 2)],
            b7: [
                c("branch7x7x3_1", c_in, 192, [1, 1], [0, 0], 1),
                c("branch7x7x3_2", 192, 192, [1, 7], [0, 3], 1),
                c("branch7x7x3_3", 192, 192, [7, 1], [3, 0], 1),
                c("branch7x7x3_4", 192, 192, [3, 3], [0, 0], 2),
            ],
        }
    }

    fn e(root: &nn::Path, block: &str, c_in: i64, reg: &mut Params) -> Self {
        let (p, pre) = (root / block, format!("{block}."));
        let mut c = |name: &str, i, o, k: [i64; 2], pad: [i64; 2]| BasicConv::new(&p, &pre, name, i, o, k, pad, 1, reg);
        Mixed::E {
            b1: c("branch1x1", c_in, 320, [1, 1], [0, 0]),
            b3: c("branch3x3_1", c_in, 384, [1, 1], [0, 0]),
            b3ab: [c("branch3x3_2a", 384, 384, [1, 3], [0, 1]), c("branch3x3_2b", 384, 384, [3, 1], [1, 0])],
            b3dbl: [c("branch3x3dbl_1", c_in, 448, [1, 1], [0, 0]), c("branch3x3dbl_2", 448, 384, [3, 3], [1, 1])],
            b3dbl_ab: [c("branch3x3dbl_3a", 384, 384, [1, 3], [0, 1]), c("branch3x3dbl_3b", 384, 384, [3, 1], [1, 0])],
            pool: c("branch_pool", c_in, 192, [1, 1], [0, 0]),
        }
    }
}

impl ModuleT for Mixed {
    fn forward_t(&self, x: &Tensor, tr: bool) -> Tensor {
        let parts = match self {
            Mixed::A { b1, b5, b3, pool } => {
                vec![b1.forward_t(x, tr), chain(x, b5, tr), chain(x, b3, tr), pool.forward_t(&avg_pool(x), tr)]
            }
            Mixed::B { b3, b3dbl } => vec![b3.forward_t(x, tr), chain(x, b3dbl, tr), max_pool(x)],
            Mixed::C { b1, b7, b7dbl, pool } => {
                vec![b1.forward_t(x, tr), chain(x, b7, tr), chain(x, b7dbl, tr), pool.forward_t(&avg_pool(x), tr)]
            }
            Mixed::D { b3, b7 } => vec![chain(x, b3, tr), chain(x, b7, tr), max_pool(x)],
            Mixed::E { b1, b3, b3ab, b3dbl, b3dbl_ab, pool } => {
                let m = b3.forward_t(x, tr);
                let d = chain(x, b3dbl, tr);
                vec![
                    b1.forward_t(x, tr),
                    b3ab[0].forward_t(&m, tr),
                    b3ab[1].forward_t(&m, tr),
                    b3dbl_ab[0].forward_t(&d, tr),
                    b3dbl_ab[1].forward_t(&d, tr),
                    pool.forward_t(&avg_pool(x), tr),
                ]
            }
        };
        Tensor::cat(&parts, 1)
    }
}

/// Inception v3 from the pixels to the pooled 2048 features.
#[derive(Debug)]
pub struct InceptionV3 {
    normalise: PixelAffine,
    stem: [BasicConv; 5],
    mixed: Vec<Mixed>,
    params: Params,
}

impl InceptionV3 {
    /// The network under `p`, randomly initialised (load weights with [`Self::load`]).
    /// `transform_input` as torchvision's flag of that name (true for its ImageNet weights).
    pub fn new(p: &nn::Path, transform_input: bool) -> Self {
        let mut params = Params::new();
        let r = &mut params;
        let stem = [
            BasicConv::stem(p, "Conv2d_1a_3x3", 3, 32, 3, 0, 2, r),
            BasicConv::stem(p, "Conv2d_2a_3x3", 32, 32, 3, 0, 1, r),
            BasicConv::stem(p, "Conv2d_2b_3x3", 32, 64, 3, 1, 1, r),
            BasicConv::stem(p, "Conv2d_3b_1x1", 64, 80, 1, 0, 1, r),
            BasicConv::stem(p, "Conv2d_4a_3x3", 80, 192, 3, 0, 1, r),
        ];
        let mixed = vec![
            Mixed::a(p, "Mixed_5b", 192, 32, r),
            Mixed::a(p, "Mixed_5c", 256, 64, r),
            Mixed::a(p, "Mixed_5d", 288, 64, r),
            Mixed::b(p, "Mixed_6a", 288, r),
            Mixed::c(p, "Mixed_6b", 768, 128, r),
            Mixed::c(p, "Mixed_6c", 768, 160, r),
            Mixed::c(p, "Mixed_6d", 768, 160, r),
            Mixed::c(p, "Mixed_6e", 768, 192, r),
            Mixed::d(p, "Mixed_7a", 768, r),
            Mixed::e(p, "Mixed_7b", 1280, r),
            Mixed::e(p, "Mixed_7c", 2048, r),
        ];
        InceptionV3 { normalise: PixelAffine::new_imagenet(transform_input, p.device()), stem, mixed, params }
    }

    /// The parameters and buffers by torchvision name (shallow clones).
    pub fn named_parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// The convolution weights (for an L2 penalty when the backbone is trained).
    pub fn conv_weights(&self) -> impl Iterator<Item = &Tensor> {
        self.params.iter().filter(|(n, _)| n.ends_with(".conv.weight")).map(|(_, t)| t)
    }

    /// Copy weights from `tensors` (names as torchvision's, after `prefix`). `what` names the
    /// source in errors.
    pub fn load(&self, tensors: &HashMap<String, Tensor>, prefix: &str, what: &str) -> Result<()> {
        copy_into(&self.params, tensors, prefix, what)
    }

    /// Checks an image size is one the network takes.
    pub fn check_size(image_size: i64) -> Result<()> {
        if image_size < MIN_SIZE {
            return Err(Error::invalid(format!(
                "image_size={image_size} is too small for Inception v3: it needs at least {MIN_SIZE} pixels (299 is its own size)"
            )));
        }
        Ok(())
    }
}

impl PixelAffine {
    /// torchvision's preprocessing for its ImageNet weights: x / 255, (x - mean) / std, then
    /// with `transform_input` the model's own `x * std / 0.5 + (mean - 0.5) / 0.5`.
    fn new_imagenet(transform_input: bool, device: tch::Device) -> Self {
        let mut scale = [0.0; 3];
        let mut shift = [0.0; 3];
        for (((scale, shift), &m), &s) in scale.iter_mut().zip(&mut shift).zip(&IMAGENET_MEAN).zip(&IMAGENET_STD) {
            let (a, b) = (1.0 / (255.0 * s), -m / s);
            (*scale, *shift) = if transform_input {
                let (ta, tb) = (s / 0.5, (m - 0.5) / 0.5);
                (a * ta, b * ta + tb)
            } else {
                (a, b)
            };
        }
        PixelAffine::new(scale, shift, device)
    }
}

impl ModuleT for InceptionV3 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let x = self.normalise.apply(xs);
        let [c1a, c2a, c2b, c3b, c4a] = &self.stem;
        let x = c2b.forward_t(&c2a.forward_t(&c1a.forward_t(&x, train), train), train);
        let x = max_pool(&x);
        let x = max_pool(&c4a.forward_t(&c3b.forward_t(&x, train), train));
        let x = self.mixed.iter().fold(x, |x, m| m.forward_t(&x, train));
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}
