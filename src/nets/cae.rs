//! A convolutional autoencoder for item images. The encoder halves the image `depth` times
//! (4x4 convolutions, stride 2, ReLU; `channels` doubling from the first layer) and maps the
//! last feature map to a `latent` vector with one linear layer; the decoder mirrors it with
//! transposed convolutions and ends in tanh, so reconstructions are in [-1, 1], the range the
//! encoder normalises its uint8 input to (x / 127.5 - 1).
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic; integer layer sizes come from a CaeShape, whose image size, depth and widths validate() bounds")]

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use super::{random, PixelAffine};
use crate::error::{Error, Result};

/// The autoencoder's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaeShape {
    /// Size of the code.
    pub latent: i64,
    /// Input images are image_size x image_size; divisible by 2^depth.
    pub image_size: i64,
    /// Channels of the first convolution (doubled at each further one, at most 512).
    pub channels: i64,
    /// Number of stride-2 convolutions.
    pub depth: i64,
}

impl Default for CaeShape {
    fn default() -> Self {
        CaeShape { latent: 128, image_size: 64, channels: 32, depth: 4 }
    }
}

impl CaeShape {
    pub fn check(&self) -> Result<()> {
        if !(1..=65536).contains(&self.latent) {
            return Err(Error::invalid(format!("latent must be in 1..=65536, got {}", self.latent)));
        }
        if !(1..=6).contains(&self.depth) {
            return Err(Error::invalid(format!("depth must be in 1..=6, got {}", self.depth)));
        }
        if !(1..=512).contains(&self.channels) {
            return Err(Error::invalid(format!("channels must be in 1..=512, got {}", self.channels)));
        }
        let stride = 1 << self.depth;
        if self.image_size < stride || self.image_size % stride != 0 || self.image_size > 4096 {
            return Err(Error::invalid(format!(
                "image_size must be a multiple of 2^depth = {stride} (at most 4096), got {}",
                self.image_size
            )));
        }
        Ok(())
    }

    /// Channels after convolution `i` (0-based).
    fn width(&self, i: i64) -> i64 {
        (self.channels << i).min(512)
    }

    /// (channels, side) of the last feature map.
    fn bottleneck(&self) -> (i64, i64) {
        (self.width(self.depth - 1), self.image_size >> self.depth)
    }
}

fn down(p: nn::Path, c_in: i64, c_out: i64) -> Result<nn::Conv2D> {
    random::conv(&p, c_in, c_out, [4, 4], nn::ConvConfigND::<[i64; 2]> { stride: [2, 2], padding: [1, 1], ..Default::default() })
}

fn up(p: nn::Path, c_in: i64, c_out: i64) -> Result<nn::ConvTranspose2D> {
    random::conv_transpose2d(&p, c_in, c_out, 4, nn::ConvTransposeConfig { stride: 2, padding: 1, ..Default::default() })
}

/// uint8 (N, S, S, 3) -> (N, latent).
#[derive(Debug)]
pub struct CaeEncoder {
    normalise: PixelAffine,
    convs: Vec<nn::Conv2D>,
    fc: nn::Linear,
    shape: CaeShape,
}

impl CaeEncoder {
    /// Under `p`: "conv{i}" and "fc". The shape must have passed [`CaeShape::check`].
    pub fn new(p: &nn::Path, shape: &CaeShape) -> Result<Self> {
        let convs = (0..shape.depth)
            .map(|i| down(p / format!("conv{i}"), if i == 0 { 3 } else { shape.width(i - 1) }, shape.width(i)))
            .collect::<Result<_>>()?;
        let (c, s) = shape.bottleneck();
        let fc = random::linear(&(p / "fc"), c * s * s, shape.latent, Default::default())?;
        Ok(CaeEncoder { normalise: PixelAffine::symmetric(p.device()), convs, fc, shape: shape.clone() })
    }

    pub fn shape(&self) -> &CaeShape {
        &self.shape
    }

    /// The network's input in [-1, 1], (N, 3, S, S): the reconstruction target.
    pub fn normalise(&self, xs: &Tensor) -> Tensor {
        self.normalise.apply(xs)
    }

    /// The code of already normalised images.
    pub fn encode_normalised(&self, x: &Tensor) -> Tensor {
        let x = self.convs.iter().fold(x.shallow_clone(), |x, c| x.apply(c).relu());
        x.flatten(1, -1).apply(&self.fc)
    }

    pub fn weights(&self) -> impl Iterator<Item = &Tensor> {
        self.convs.iter().map(|c| &c.ws).chain(std::iter::once(&self.fc.ws))
    }
}

impl ModuleT for CaeEncoder {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        self.encode_normalised(&self.normalise(xs))
    }
}

/// (N, latent) -> (N, 3, S, S) in [-1, 1].
#[derive(Debug)]
pub struct CaeDecoder {
    fc: nn::Linear,
    deconvs: Vec<nn::ConvTranspose2D>,
    shape: CaeShape,
}

impl CaeDecoder {
    /// Under `p`: "fc" and "deconv{i}" (deconv{i} undoes conv{i}).
    pub fn new(p: &nn::Path, shape: &CaeShape) -> Result<Self> {
        let (c, s) = shape.bottleneck();
        let fc = random::linear(&(p / "fc"), shape.latent, c * s * s, Default::default())?;
        let deconvs = (0..shape.depth)
            .rev()
            .map(|i| up(p / format!("deconv{i}"), shape.width(i), if i == 0 { 3 } else { shape.width(i - 1) }))
            .collect::<Result<_>>()?;
        Ok(CaeDecoder { fc, deconvs, shape: shape.clone() })
    }
}

impl ModuleT for CaeDecoder {
    fn forward_t(&self, z: &Tensor, _train: bool) -> Tensor {
        let (c, s) = self.shape.bottleneck();
        let mut x = z.apply(&self.fc).relu().view([-1, c, s, s]);
        let last = self.deconvs.len() - 1;
        for (i, d) in self.deconvs.iter().enumerate() {
            x = x.apply(d);
            x = if i < last { x.relu() } else { x.tanh() };
        }
        x
    }
}

/// Encoder ("encoder.*") and decoder ("decoder.*").
#[derive(Debug)]
pub struct ConvAutoencoder {
    pub encoder: CaeEncoder,
    pub decoder: CaeDecoder,
}

impl ConvAutoencoder {
    pub fn new(p: &nn::Path, shape: &CaeShape) -> Result<Self> {
        Ok(ConvAutoencoder { encoder: CaeEncoder::new(&(p / "encoder"), shape)?, decoder: CaeDecoder::new(&(p / "decoder"), shape)? })
    }

    /// Mean squared error of the reconstruction in [-1, 1] units, per image: (N,).
    pub fn loss(&self, xs: &Tensor, train: bool) -> Tensor {
        let target = self.encoder.normalise(xs);
        let recon = self.decoder.forward_t(&self.encoder.encode_normalised(&target), train);
        (recon - target).square().mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float)
    }
}

impl ModuleT for ConvAutoencoder {
    /// Reconstructions in [-1, 1], (N, 3, S, S).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.decoder.forward_t(&self.encoder.forward_t(xs, train), train)
    }
}

/// Reconstructions in [-1, 1] (N, 3, S, S) as uint8 images (N, S, S, 3).
pub fn to_pixels(recon: &Tensor) -> Tensor {
    ((recon.permute([0, 2, 3, 1]) + 1.0) * 127.5).round().clamp(0.0, 255.0).to_kind(Kind::Uint8).contiguous()
}

impl CaeShape {
    /// Values of the encoder of this shape ([`CaeEncoder`]: its convolutions and the linear
    /// layer to the code), counted without building it.
    pub fn encoder_values(&self) -> u128 {
        let n = |x: i64| usize::try_from(x).unwrap_or(0);
        let convs = (0..self.depth).map(|i| {
            let (c_in, c_out) = (if i == 0 { 3 } else { self.width(i - 1) }, self.width(i));
            crate::limits::values(&[n(c_out), n(c_in), 4, 4]).saturating_add(n(c_out) as u128)
        });
        let (c, s) = self.bottleneck();
        let flat = usize::try_from(crate::limits::values(&[n(c), n(s), n(s)])).unwrap_or(usize::MAX);
        crate::limits::total(convs.chain([super::linear_values(flat, n(self.latent), true)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn images(n: i64, size: i64) -> Tensor {
        Tensor::randint(256, [n, size, size, 3], (Kind::Uint8, Device::Cpu))
    }

    #[test]
    fn shape_check_needs_a_multiple_of_the_stride_product() {
        let ok = |image_size, depth| CaeShape { image_size, depth, ..Default::default() }.check();
        assert!(ok(32, 4).is_ok() && ok(64, 4).is_ok() && ok(224, 4).is_ok() && ok(224, 5).is_ok());
        let err = ok(30, 4).unwrap_err().to_string();
        assert!(err.contains("multiple of 2^depth = 16"), "{err}");
        assert!(ok(8, 4).is_err(), "smaller than the stride product");
        assert!(CaeShape { latent: 0, ..Default::default() }.check().is_err());
    }

    #[test]
    fn encodes_and_reconstructs_at_several_sizes() {
        for (size, depth) in [(32, 4), (64, 3), (224, 4)] {
            let shape = CaeShape { latent: 8, image_size: size, channels: 4, depth };
            let vs = nn::VarStore::new(Device::Cpu);
            let net = ConvAutoencoder::new(&vs.root(), &shape).unwrap();
            let xs = images(2, size);
            assert_eq!(net.encoder.forward_t(&xs, false).size(), [2, 8]);
            let recon = net.forward_t(&xs, false);
            assert_eq!(recon.size(), [2, 3, size, size]);
            assert!(recon.abs().max().double_value(&[]) <= 1.0, "tanh output");
            let pixels = to_pixels(&recon);
            assert_eq!((pixels.size(), pixels.kind()), (vec![2, size, size, 3], Kind::Uint8));
            assert_eq!(net.loss(&xs, false).size(), [2]);
        }
    }

    #[test]
    fn input_is_normalised_to_plus_minus_one() {
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = CaeEncoder::new(&vs.root(), &CaeShape { latent: 4, image_size: 16, channels: 2, depth: 2 }).unwrap();
        let xs = Tensor::from_slice(&[0u8, 255, 51]).view([1, 1, 1, 3]).expand([1, 16, 16, 3], false).contiguous();
        let x = enc.normalise(&xs);
        assert_eq!(x.size(), [1, 3, 16, 16]);
        let got: Vec<f32> = Vec::try_from(x.get(0).mean_dim([1i64, 2].as_slice(), false, Kind::Float)).unwrap();
        let want = [-1.0, 1.0, 51.0 / 127.5 - 1.0];
        assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?}");
    }
}
