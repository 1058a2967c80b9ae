//! BPR: matrix factorisation with an item bias, trained on sampled (user, positive, negative)
//! triples to maximise ln sigmoid(score(u, i) - score(u, j)) (Rendle et al. 2009).
//!
//! Two backends run the same algorithm (per-sample SGD with L2 on the touched rows):
//! * `native`: a lock-free (Hogwild) rayon kernel on the CPU, with no per-batch libtorch
//!   overhead; the fast path on CPU.
//! * `torch`: libtorch through tch, on CPU or CUDA; autograd on the gathered rows and a sparse
//!   `index_add_` update for SGD, or a dense Adam step.
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

mod kernel;
mod native;

use self::native::NativeSgd;
use super::core::{Common, FitCtx, ModelConfig, SizesFrom, Spec};
use super::factors::{FactorHandles, Factors};
use crate::data::{Interactions, SideInfo, SideNeeds};
use crate::error::{quote, Error, Result};
use crate::sampling::{SamplerConfig, TripleSampler};
use crate::tensors::parse_device;
use crate::train::torch_step::{Gathered, Loss, Optimizer, Reduction, StepConfig, TorchStep, TwoTower};
use crate::train::{BatchStep, FitReport};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BprConfig {
    /// Latent dimension.
    pub factors: usize,
    /// epochs, lr (per sample for SGD), batch_size (the libtorch backend's minibatch; the
    /// native kernel's work unit), seed, threads (sampling and the native kernel), device.
    #[serde(flatten)]
    pub common: Common,
    /// Learning rate at the last epoch, as a fraction of `lr` (linear decay; 1 keeps it constant).
    pub lr_final: f64,
    /// L2 weight on the factors of the rows a sample touches.
    pub reg: f64,
    /// L2 weight on the item biases a sample touches.
    pub bias_reg: f64,
    /// "sgd" or "adam".
    pub optimizer: String,
    /// Standard deviation of the initial factors.
    pub init_std: f64,
    /// "auto" (native on CPU with SGD, else torch), "native" or "torch".
    pub backend: String,
    /// Which negatives to train on (see `crate::sampling::negatives`).
    pub sampler: SamplerConfig,
}

impl Default for BprConfig {
    fn default() -> Self {
        BprConfig {
            factors: 64,
            // Chosen on a validation split of MovieLens 100k u1.base (benches/tune_bpr_defaults.py).
            common: Common::new(50, 0.1, 4096),
            lr_final: 0.1,
            reg: 0.02,
            bias_reg: 0.01,
            optimizer: "sgd".into(),
            init_std: 0.1,
            backend: "auto".into(),
            // WARP's margin is on the score scale: 4 was chosen for these factors on a
            // validation split of u1.base (benches/tune_warp.py); LightFM's 1 is too hard a
            // margin for BPR's log loss (NDCG@10 0.180 against 0.235 there).
            sampler: SamplerConfig { margin: 4.0, ..SamplerConfig::default() },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Native,
    Torch,
}

/// Each fraction (a dropout rate) must be in [0, 1), the error naming it.
pub(crate) fn check_fractions(values: &[(&str, f64)]) -> Result<()> {
    match values.iter().find(|&&(_, v)| !(0.0..1.0).contains(&v)) {
        Some((name, v)) => Err(Error::invalid(format!("{name} must be in [0, 1), got {v}"))),
        None => Ok(()),
    }
}

/// Each count must be at least 1 (widths, batch sizes, negatives), the error naming it.
pub(crate) fn check_counts(values: &[(&str, usize)]) -> Result<()> {
    match values.iter().find(|&&(_, v)| v == 0) {
        Some((name, _)) => Err(Error::invalid(format!("{name} must be at least 1"))),
        None => Ok(()),
    }
}

/// Checks that each named value is finite, >= 0 (> 0 where `strictly`) and within f32 (what
/// the kernels compute in: a finite f64 beyond it would become inf there).
pub(crate) fn check_weights(values: &[(&str, f64, bool)]) -> Result<()> {
    for &(name, v, strictly) in values {
        if !v.is_finite() || v.abs() > f32::MAX as f64 || v < 0.0 || (strictly && v == 0.0) {
            return Err(Error::invalid(format!("{name} must be a finite number {} 0, got {v}", if strictly { ">" } else { ">=" })));
        }
    }
    Ok(())
}

impl ModelConfig for BprConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        check_counts(&[("factors", self.factors)])?;
        check_weights(&[("init_std", self.init_std, true), ("reg", self.reg, false), ("bias_reg", self.bias_reg, false)])?;
        if !(self.lr_final > 0.0 && self.lr_final <= 1.0) {
            return bad(format!("lr_final must be in (0, 1], got {}", self.lr_final));
        }
        if !["sgd", "adam"].contains(&self.optimizer.as_str()) {
            return bad(format!("optimizer must be 'sgd' or 'adam', not {}", quote(&self.optimizer)));
        }
        if !["auto", "native", "torch"].contains(&self.backend.as_str()) {
            return bad(format!("backend must be 'auto', 'native' or 'torch', not {}", quote(&self.backend)));
        }
        self.sampler.validate()?;
        if self.backend == "native" && self.optimizer != "sgd" {
            return bad("the native backend implements SGD only; use backend='torch' for Adam".into());
        }
        Ok(())
    }

    fn needs(&self) -> SideNeeds {
        self.sampler.side_needs()
    }

    fn common(&self) -> Option<&Common> {
        Some(&self.common)
    }
}

impl BprConfig {
    /// The backend and device this configuration trains on, here.
    pub fn resolve(&self) -> Result<(Backend, Device)> {
        let device = parse_device(&self.common.device)?;
        let backend = match self.backend.as_str() {
            "native" if device != Device::Cpu => {
                return Err(Error::invalid(format!(
                    "the native backend runs on the CPU, but device {:?} was asked for",
                    self.common.device
                )))
            }
            "native" => Backend::Native,
            "torch" => Backend::Torch,
            _ if device == Device::Cpu && self.optimizer == "sgd" => Backend::Native,
            _ => Backend::Torch,
        };
        Ok((backend, device))
    }

    /// Learning rate of 0-based `epoch`: linear from `lr` to `lr * lr_final`.
    pub(super) fn lr_at(&self, epoch: usize) -> f64 {
        let epochs = self.common.epochs;
        let t = if epochs > 1 { epoch as f64 / (epochs - 1) as f64 } else { 0.0 };
        self.common.lr * (1.0 - t * (1.0 - self.lr_final))
    }
}

/// BPR-MF: factors with an item bias (the matrix-factorisation layout every factor model shares).
pub struct Bpr;

impl Spec for Bpr {
    type Config = BprConfig;
    type Params = Factors;

    fn build(c: &BprConfig, train: &Interactions, _: &SideInfo, device: Device) -> Result<Factors> {
        c.resolve()?;
        Factors::random(train.n_users(), train.n_items(), c.factors, c.init_std, c.common.seed, device)
    }

    fn train(c: &BprConfig, p: &Factors, train: &Interactions, side: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let sampler = TripleSampler::with_config(train, 1, &c.sampler, side)?;
        let mut step: Box<dyn BatchStep<TripleSampler<'_>> + '_> = match c.resolve()?.0 {
            Backend::Native => Box::new(NativeSgd::new(p, c, &sampler)?),
            Backend::Torch => Box::new(torch_step(p, c, train.n_items())?),
        };
        ctx.run(step.as_mut(), &sampler, &|u| p.score_block(&Tensor::from_slice(u).f_to_device(p.device())?))
    }

    fn param_count(c: &BprConfig, (n_users, n_items): (usize, usize), _: SizesFrom<'_>) -> Result<u128> {
        Ok(super::factors::factor_values(n_users, n_items, c.factors))
    }

    fn restore(c: &BprConfig, shape: (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<Factors> {
        Factors::from_state(state, shape, c.factors, device)
    }

    fn score_block(_: &BprConfig, p: &Factors, users: &Tensor) -> Result<Tensor> {
        p.score_block(users)
    }

    fn dot_factors(_: &BprConfig, p: &Factors, users: &Tensor) -> Result<Option<super::dot::DotFactors>> {
        Ok(Some(super::dot::DotFactors::of_factors(p, users)?))
    }

    fn item_vectors(_: &BprConfig, p: &Factors) -> Result<Tensor> {
        Ok(p.items.shallow_clone())
    }

    fn user_vectors(_: &BprConfig, p: &Factors) -> Result<Tensor> {
        Ok(p.users.shallow_clone())
    }
}

// ---------------------------------------------------------------------------------------------
// libtorch backend: the shared step over the factors.
// ---------------------------------------------------------------------------------------------

/// Matrix factorisation as two towers: rows of the user and item matrices, the item bias, L2
/// on the rows a batch touches (the native kernel's regularisation, so both learn the same).
struct MfTowers {
    p: FactorHandles,
    reg: f64,
    bias_reg: f64,
}

impl TwoTower for MfTowers {
    fn user_vectors(&self, users: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.p.users.f_index_select(0, users)?)
    }

    fn item_vectors(&self, items: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.p.items.f_index_select(0, items)?)
    }

    fn item_bias(&self, items: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.p.item_bias.f_index_select(0, &items.f_flatten(0, -1)?)?.f_view_as(items)?))
    }

    fn penalty(&self, g: &Gathered<'_>) -> Result<Option<Tensor>> {
        let sq = |t: &Tensor| t.f_square().and_then(|s| s.f_sum(Kind::Float));
        let rows = sq(g.u)? + sq(g.i_pos)? + sq(g.i_neg)?;
        let bias = |i: &Tensor| -> Result<Tensor> { Ok(sq(&self.p.item_bias.f_index_select(0, &i.f_flatten(0, -1)?)?)?) };
        Ok(Some(rows * (0.5 * self.reg) + (bias(g.pos)? + bias(g.neg)?) * (0.5 * self.bias_reg)))
    }
}

/// BPR on libtorch: SGD (dense gradients are zero outside the touched rows, so this is the
/// per-sample sparse update of the native kernel on the summed loss) or Adam.
fn torch_step(p: &Factors, cfg: &BprConfig, n_items: usize) -> Result<TorchStep<MfTowers>> {
    let c = cfg.clone();
    let step_cfg = StepConfig {
        loss: Loss::Bpr,
        reduction: Reduction::Sum,
        optimizer: if cfg.optimizer == "sgd" { Optimizer::Sgd } else { Optimizer::Adam },
        lr: Box::new(move |e| c.lr_at(e)),
        choice: cfg.sampler.choice(),
        n_items,
        shared_negatives: false,
        log_q: None,
    };
    TorchStep::new(MfTowers { p: p.handles(), reg: cfg.reg, bias_reg: cfg.bias_reg }, &p.store.vs, step_cfg)
}

#[cfg(test)]
mod tests {
    use super::*;



    #[test]
    fn config_validation() {
        let cfg = |json: &str| super::super::core::parse_config::<BprConfig>("bpr", json).unwrap();
        assert!(super::super::core::Model::<Bpr>::new(cfg(r#"{"lr": -1.0}"#)).is_err());
        assert!(BprConfig { optimizer: "rmsprop".into(), ..Default::default() }.validate().is_err());
        let e = BprConfig { backend: "native".into(), optimizer: "adam".into(), ..Default::default() }.validate();
        assert!(e.unwrap_err().to_string().contains("SGD only"));
        let c = cfg(r#"{"device": "cpu"}"#);
        assert_eq!(c.resolve().unwrap(), (Backend::Native, Device::Cpu));
        let c = cfg(r#"{"device": "cpu", "optimizer": "adam"}"#);
        assert_eq!(c.resolve().unwrap().0, Backend::Torch);
        let err = super::super::core::parse_config::<BprConfig>("bpr", r#"{"factorz": 3}"#).unwrap_err().to_string();
        assert!(err.contains("factorz"), "{err}");
    }


    #[test]
    fn device_top_k_matches_the_cpu_selection() {
        use crate::data::synthetic::{synthetic, SyntheticConfig};
        let data = synthetic(&SyntheticConfig { n_users: 30, n_items: 40, ..Default::default() }).unwrap();
        let p = Factors::random(30, 40, 8, 0.1, 3, Device::Cpu).unwrap();
        let users: Vec<i64> = (0..30).collect();
        let s = p.score_block(&Tensor::from_slice(&users)).unwrap();
        let cpu = crate::metrics::top_k_block(
            &crate::tensors::to_vec_f32(&s).unwrap(),
            40,
            &(0..30).collect::<Vec<u32>>(),
            35,
            Some(&data),
            None,
        )
        .unwrap();
        let dev = super::super::device_top_k(s.shallow_clone(), &users, 35, Some(&data), None).unwrap();
        assert_eq!(cpu, dev);
        // Only candidates (every third item): fewer than k remain, the rest is -1 / -inf.
        let cand: Vec<bool> = (0..40).map(|i| i % 3 == 0).collect();
        let idx: Vec<u32> = (0..30).collect();
        let cpu = crate::metrics::top_k_block(&crate::tensors::to_vec_f32(&s).unwrap(), 40, &idx, 20, Some(&data), Some(&cand)).unwrap();
        let dev = super::super::device_top_k(s, &users, 20, Some(&data), Some(&cand)).unwrap();
        assert_eq!(cpu, dev);
        assert!(cpu.0.iter().all(|&i| i == -1 || i % 3 == 0));
        assert!(cpu.0.iter().zip(&cpu.1).all(|(&i, &v)| (i == -1) == (v == f32::NEG_INFINITY)));
    }

    #[test]
    fn lr_decays_linearly() {
        let c = BprConfig { common: Common::new(5, 1.0, 16), lr_final: 0.2, ..Default::default() };
        assert!((c.lr_at(0) - 1.0).abs() < 1e-12 && (c.lr_at(4) - 0.2).abs() < 1e-12);
    }
}
