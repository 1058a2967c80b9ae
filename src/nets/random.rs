//! The fit's own random generator: every random tensor a fit makes (initial parameters,
//! dropout masks, feature dropout) is drawn here, never from libtorch's global generator.
//!
//! Why: libtorch's generator is process-wide, shared with the caller's `torch.manual_seed`
//! stream and with fits in other threads; two fits in two threads interleaved their draws, so
//! neither was repeatable (and a caller's stream moved under it). Here each thread has its own
//! stream, started by [`reseed`] (a fit before building its networks, a step before each
//! batch), so what a fit draws depends on its seed alone: not on other threads, not on torch.
//! Values are made on the CPU in chunks, each chunk from its own stream (so they do not depend
//! on rayon's scheduling), then copied to the tensor's device.
//!
//! The layer constructors ([`linear`], [`conv`], [`var`]) are tch's, given constant inits (no
//! draw) and then filled from this stream following the `nn::Init` asked for. `clippy.toml`
//! disallows tch's drawing functions in the crate, so a new network cannot go back to them.

use std::cell::Cell;

use rand::{Rng as _, RngCore};
use rand_distr::StandardNormal;
use rayon::prelude::*;
use tch::{nn, Device, Tensor};

use crate::error::{Error, Result};
use crate::sampling::rng::{stream_rng, sub_seed, Rng};

/// The stream of a generator's draws under its seed (apart from the sampler's streams).
const TENSORS: u64 = 8;

thread_local! {
    /// This thread's (seed, draws made since it was seeded).
    static STREAM: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Starts this thread's stream at `seed`: what is drawn next depends on `seed` alone.
pub fn reseed(seed: u64) {
    STREAM.with(|s| s.set((seed, 0)));
}

/// The seed of this thread's next draw.
fn next_seed() -> u64 {
    STREAM.with(|s| {
        let (seed, n) = s.get();
        s.set((seed, n.wrapping_add(1)));
        sub_seed(seed, TENSORS, n)
    })
}

/// Values per chunk; each chunk has its own stream.
const CHUNK: usize = 1 << 14;

/// `shape`'s number of values, refused when it cannot be a buffer.
fn count(shape: &[i64]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)))
        .ok_or_else(|| Error::invalid(format!("cannot draw a random tensor of shape {shape:?}")))
}

/// A float CPU tensor of `shape`, each value `draw(rng)` from one draw of this thread's stream.
fn values(shape: &[i64], what: &str, draw: impl Fn(&mut Rng) -> f32 + Sync) -> Result<Tensor> {
    let n = count(shape)?;
    crate::limits::bytes_for(what, n, 4)?;
    let mut v: Vec<f32> = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::Memory(format!("cannot allocate {what} of {n} values")))?;
    v.resize(n, 0.0);
    let seed = next_seed();
    v.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
        let mut rng = stream_rng(seed, 0, c as u64);
        chunk.iter_mut().for_each(|x| *x = draw(&mut rng));
    });
    Ok(Tensor::from_slice(&v).f_view(shape)?)
}

/// A uniform value in [0, 1) from the top 24 bits of a draw (every float step of the range).
fn unit(rng: &mut Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Uniform values in [lo, up) of `shape` on `device`.
pub fn uniform(shape: &[i64], lo: f64, up: f64, device: Device) -> Result<Tensor> {
    let (lo, width) = (lo as f32, (up - lo) as f32);
    Ok(values(shape, "a uniform random tensor", |r| lo + width * unit(r))?.f_to_device(device)?)
}

/// Normal values of `shape` on `device`.
pub fn normal(shape: &[i64], mean: f64, stdev: f64, device: Device) -> Result<Tensor> {
    let (mean, stdev) = (mean as f32, stdev as f32);
    Ok(values(shape, "a normal random tensor", |r| mean + stdev * r.sample::<f32, _>(StandardNormal))?.f_to_device(device)?)
}

/// `init`'s values for a tensor of `shape` (tch's meaning of each `nn::Init`), or `None` for
/// a constant (no draw).
fn drawn(init: nn::Init, shape: &[i64], device: Device) -> Result<Option<Tensor>> {
    Ok(match init {
        nn::Init::Const(_) => None,
        nn::Init::Uniform { lo, up } => Some(uniform(shape, lo, up, device)?),
        nn::Init::Randn { mean, stdev } => Some(normal(shape, mean, stdev, device)?),
        nn::Init::Kaiming { dist, fan, non_linearity } => {
            let std = non_linearity.gain() / (fan.for_weight_dims(shape).max(1) as f64).sqrt();
            Some(match dist {
                nn::init::NormalOrUniform::Uniform => uniform(shape, -(3f64.sqrt() * std), 3f64.sqrt() * std, device)?,
                nn::init::NormalOrUniform::Normal => normal(shape, 0.0, std, device)?,
            })
        }
        nn::Init::Orthogonal { .. } => return Err(Error::invalid("an orthogonal initialisation is not supported")),
    })
}

/// Fills `t` (a parameter) by `init`: a constant, or values drawn from this thread's stream.
fn fill(t: &Tensor, init: nn::Init) -> Result<()> {
    match init {
        nn::Init::Const(c) => tch::no_grad(|| t.shallow_clone().f_fill_(c).map(drop))?,
        _ => {
            if let Some(values) = drawn(init, &t.size(), t.device())? {
                tch::no_grad(|| t.shallow_clone().f_copy_(&values))?;
            }
        }
    }
    Ok(())
}

/// A trainable variable `name` under `p`, initialised by `init` from this thread's stream.
pub fn var(p: &nn::Path, name: &str, shape: &[i64], init: nn::Init) -> Result<Tensor> {
    #[allow(clippy::disallowed_methods)] // the one place that creates variables: zeros, no draw
    let v = p.f_var(name, shape, nn::Init::Const(0.0))?;
    fill(&v, init)?;
    Ok(v)
}

/// tch's `nn::linear` with its initialisation drawn from this thread's stream (weights by
/// `cfg.ws_init`, Kaiming uniform by default; bias by `cfg.bs_init`, else uniform in
/// ±1/sqrt(in_dim), as tch and torch do).
pub fn linear(p: &nn::Path, in_dim: i64, out_dim: i64, cfg: nn::LinearConfig) -> Result<nn::Linear> {
    let bs = if cfg.bias {
        let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
        let init = cfg.bs_init.unwrap_or(nn::Init::Uniform { lo: -bound, up: bound });
        Some(var(p, "bias", &[out_dim], init)?)
    } else {
        None
    };
    Ok(nn::Linear { ws: var(p, "weight", &[out_dim, in_dim], cfg.ws_init)?, bs })
}

/// tch's `nn::conv` (any number of dimensions) with its initialisation drawn from this
/// thread's stream: tch builds the layer with constant inits (no draw), then the weight and
/// bias are filled by `cfg.ws_init` / `cfg.bs_init`.
pub fn conv<ND: AsRef<[i64]> + Copy>(p: &nn::Path, c_in: i64, c_out: i64, k: ND, cfg: nn::ConvConfigND<ND>) -> Result<nn::Conv<ND>> {
    let constant = nn::ConvConfigND { ws_init: nn::Init::Const(0.0), bs_init: nn::Init::Const(0.0), ..cfg };
    #[allow(clippy::disallowed_methods)] // constant inits: no draw; filled below
    let layer = nn::conv(p, c_in, c_out, k, constant);
    fill_layer(&layer.ws, layer.bs.as_ref(), cfg.ws_init, cfg.bs_init)?;
    Ok(layer)
}

/// tch's `nn::conv_transpose2d`, initialised from this thread's stream as [`conv`].
pub fn conv_transpose2d(p: &nn::Path, c_in: i64, c_out: i64, k: i64, cfg: nn::ConvTransposeConfig) -> Result<nn::ConvTranspose2D> {
    let constant = nn::ConvTransposeConfig { ws_init: nn::Init::Const(0.0), bs_init: nn::Init::Const(0.0), ..cfg };
    #[allow(clippy::disallowed_methods)] // constant inits: no draw; filled below
    let layer = nn::conv_transpose2d(p, c_in, c_out, k, constant);
    fill_layer(&layer.ws, layer.bs.as_ref(), cfg.ws_init, cfg.bs_init)?;
    Ok(layer)
}

/// A layer's weight and bias (made with zeros) filled by their inits.
fn fill_layer(ws: &Tensor, bs: Option<&Tensor>, ws_init: nn::Init, bs_init: nn::Init) -> Result<()> {
    fill(ws, ws_init)?;
    bs.map_or(Ok(()), |b| fill(b, bs_init))
}

/// Inverted dropout: each value of `x` kept with probability 1 - `p` and scaled by
/// 1 / (1 - p), the mask drawn from this thread's stream. With `blocks` > 0 and the step
/// training on a share of a global batch (`train::distributed::with_share`), `x` holds
/// `blocks` blocks of this process's samples and the mask is the global batch's (drawn whole,
/// this process's rows of each block kept), so the ranks together apply the single process's.
pub fn dropout(x: &Tensor, p: f64, train: bool, blocks: i64) -> Result<Tensor> {
    if !train || p == 0.0 {
        return Ok(x.shallow_clone());
    }
    if !(0.0..1.0).contains(&p) {
        return Err(Error::invalid(format!("dropout must be in [0, 1), got {p}")));
    }
    // Drop where a 32-bit draw is below p * 2^32.
    let threshold = (p * 4_294_967_296.0) as u64;
    let scale = (1.0 / (1.0 - p)) as f32;
    let keep = |r: &mut Rng| if u64::from(r.next_u32()) < threshold { 0.0 } else { scale };
    let shape = x.size();
    let mask = match crate::train::distributed::global_rows(&shape, blocks) {
        None => values(&shape, "a dropout mask", keep)?,
        Some((global_shape, rows)) => {
            values(&global_shape, "a dropout mask", keep)?.f_index_select(0, &Tensor::from_slice(&rows))?
        }
    };
    Ok(x.f_mul(&mask.f_to_kind(x.kind())?.f_to_device(x.device())?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn draws_depend_on_the_seed_alone_and_follow_tchs_inits() {
        // (That libtorch's global generator is left alone: tests/own_generator.rs, in a
        // process of its own.)
        let draw = || {
            reseed(11);
            let vs = nn::VarStore::new(Device::Cpu);
            let l = linear(&vs.root(), 300, 70, Default::default()).unwrap();
            let c = conv(&(vs.root() / "c"), 3, 8, [3, 3], Default::default()).unwrap();
            let e = var(&vs.root(), "e", &[50, 4], nn::Init::Randn { mean: 0.0, stdev: 0.1 }).unwrap();
            let d = dropout(&Tensor::ones([64, 40], (Kind::Float, Device::Cpu)), 0.5, true, 0).unwrap();
            (l.ws, l.bs.unwrap(), c.ws, c.bs.unwrap(), e, d)
        };
        let a = draw();
        let b = draw();
        assert!(a.0.equal(&b.0) && a.4.equal(&b.4) && a.5.equal(&b.5), "the same seed drew different values");
        let (ws, bs, cw, cb, e, d) = a;
        // tch's meanings: Kaiming uniform bound sqrt(6 / fan_in), bias ±1/sqrt(fan_in),
        // conv bias 0, the normal's standard deviation, dropout's keep rate and scale.
        let bound = (6.0f64 / 300.0).sqrt();
        assert!(ws.abs().max().double_value(&[]) <= bound && ws.abs().max().double_value(&[]) > 0.9 * bound);
        assert!(bs.abs().max().double_value(&[]) <= 1.0 / 300f64.sqrt());
        assert!(cw.abs().max().double_value(&[]) <= (6.0f64 / 27.0).sqrt());
        assert_eq!(cb.abs().sum(Kind::Float).double_value(&[]), 0.0);
        let sd = e.std(true).double_value(&[]);
        assert!((sd - 0.1).abs() < 0.02, "normal stdev {sd}");
        let kept = d.gt(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        assert!((kept - 0.5).abs() < 0.05, "kept {kept}");
        assert_eq!(d.max().double_value(&[]), 2.0);
        reseed(12);
        let other = var(&nn::VarStore::new(Device::Cpu).root(), "e", &[50, 4], nn::Init::Randn { mean: 0.0, stdev: 0.1 }).unwrap();
        assert!(!other.equal(&e), "another seed drew the same values");
    }

    /// The distributions themselves, on 400k values (about 10 chunks, so the chunks' streams
    /// are in it): the normal's moments and its mass within one sd, the uniform's mean and
    /// variance.
    #[test]
    fn normal_and_uniform_have_their_moments() {
        reseed(21);
        let n = normal(&[400_000], 0.5, 2.0, Device::Cpu).unwrap().to_kind(Kind::Double);
        let z = (&n - 0.5) / 2.0;
        let mean = z.mean(Kind::Double).double_value(&[]);
        let var = z.square().mean(Kind::Double).double_value(&[]);
        let kurt = z.pow_tensor_scalar(4).mean(Kind::Double).double_value(&[]);
        let within = z.abs().lt(1.0).to_kind(Kind::Double).mean(Kind::Double).double_value(&[]);
        assert!(mean.abs() < 0.006 && (var - 1.0).abs() < 0.01 && (kurt - 3.0).abs() < 0.05, "{mean} {var} {kurt}");
        assert!((within - 0.6827).abs() < 0.003, "{within}");
        let u = uniform(&[400_000], -3.0, 1.0, Device::Cpu).unwrap().to_kind(Kind::Double);
        let (m, v) = (u.mean(Kind::Double).double_value(&[]), u.var(false).double_value(&[]));
        assert!((m + 1.0).abs() < 0.01 && (v - 16.0 / 12.0).abs() < 0.01, "{m} {v}");
        assert!(u.min().double_value(&[]) >= -3.0 && u.max().double_value(&[]) < 1.0);
    }

    #[test]
    fn a_shares_mask_is_the_global_batchs() {
        let x = Tensor::rand([12, 5], (Kind::Float, Device::Cpu)) + 1.0;
        reseed(3);
        let whole = dropout(&x, 0.5, true, 2).unwrap();
        // Rows 2..4 of each of the 2 blocks of 6: this process's share of a global batch of 6.
        let keep = Tensor::from_slice(&[2i64, 3, 8, 9]);
        let part = x.index_select(0, &keep);
        reseed(3);
        let shared = crate::train::distributed::with_share((2..4, 6), || dropout(&part, 0.5, true, 2)).unwrap();
        assert!(shared.equal(&whole.index_select(0, &keep)));
        assert!(dropout(&x, 0.5, false, 2).unwrap().equal(&x));
        assert!(dropout(&x, 1.5, true, 0).is_err());
    }
}
