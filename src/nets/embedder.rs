//! A categorical + continuous feature embedder: one embedding table per categorical column
//! (code 0 = unknown / unseen value), continuous columns standardised with the training rows'
//! mean and standard deviation (kept in the `VarStore`, so they are saved with the model),
//! all concatenated and through shared dense layers into the latent space.
//!
//! HybridBPR's user and item towers are each one `FeatureEmbedder` (the seed notebook's
//! embedding 32, dense 64-32-d).
#![allow(clippy::arithmetic_side_effects, reason = "tensor / float arithmetic (tch operators and var-store paths); integer sizes are the model's configuration, checked when it is built")]

use tch::{nn, Kind, Tensor};

use super::mlp::Mlp;
use super::random;
use crate::error::{Error, Result};

/// The shape of an embedder.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedderSpec {
    /// Codes per categorical column, unknown (0) included: codes are 0..cardinality.
    pub cardinalities: Vec<i64>,
    /// Number of continuous columns.
    pub n_continuous: i64,
    /// Width of each categorical column's embedding.
    pub embed_dim: i64,
    /// Hidden dense layers (ReLU), then a linear layer to `out_dim`.
    pub hidden: Vec<i64>,
    pub out_dim: i64,
    /// Dropout after each hidden layer while training.
    pub dropout: f64,
}

impl EmbedderSpec {
    /// Width of the concatenated input of the dense layers.
    pub fn concat_dim(&self) -> i64 {
        self.cardinalities.len() as i64 * self.embed_dim + self.n_continuous
    }
}

/// Mean and standard deviation of each continuous column over the training rows. NaN values
/// are left out of both; a constant (or all-NaN) column gets std 1, so it scales to 0.
#[derive(Debug, Clone, PartialEq)]
pub struct ContinuousStats {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl ContinuousStats {
    /// Statistics of the `rows` (all when None) of a row-major (n_rows, cols) matrix.
    pub fn fit(data: &[f32], cols: usize, rows: Option<&[usize]>) -> Result<Self> {
        if cols == 0 {
            return Ok(ContinuousStats { mean: vec![], std: vec![] });
        }
        if data.len() % cols != 0 {
            return Err(Error::invalid(format!("{} values do not make rows of {cols} columns", data.len())));
        }
        let n_rows = data.len() / cols;
        let all: Vec<usize>;
        let rows = match rows {
            Some(r) => r,
            None => {
                all = (0..n_rows).collect();
                &all
            }
        };
        if let Some(&bad) = rows.iter().find(|&&r| r >= n_rows) {
            return Err(Error::invalid(format!("row {bad} out of range for {n_rows} feature rows")));
        }
        // f64 accumulators: the sums of squares of thousands of rows lose digits in f32.
        // Per column: values seen, their sum and their sum of squares.
        let mut acc = vec![(0f64, 0f64, 0f64); cols];
        for &r in rows {
            // r < n_rows (checked above), so the row is whole.
            let row = data.get(r * cols..(r + 1) * cols).unwrap_or_default();
            for (c, (&x, (n, s, s2))) in row.iter().zip(&mut acc).enumerate() {
                if x.is_nan() {
                    continue;
                }
                if x.is_infinite() {
                    return Err(Error::invalid(format!("continuous feature column {c} is infinite in row {r}")));
                }
                *n += 1.0;
                *s += x as f64;
                *s2 += x as f64 * x as f64;
            }
        }
        let mut mean = vec![0f32; cols];
        let mut std = vec![1f32; cols];
        for ((&(n, s, s2), mean), std) in acc.iter().zip(&mut mean).zip(&mut std) {
            if n > 0.0 {
                let m = s / n;
                let var = (s2 / n - m * m).max(0.0);
                *mean = m as f32;
                if var.sqrt() > 1e-12 {
                    *std = var.sqrt() as f32;
                }
            }
        }
        Ok(ContinuousStats { mean, std })
    }
}

#[derive(Debug)]
pub struct FeatureEmbedder {
    spec: EmbedderSpec,
    tables: Vec<Tensor>,
    mean: Tensor,
    std: Tensor,
    dense: Mlp,
}

/// Initial embeddings ~ N(0, 0.05^2), the scale of Keras' default uniform(-0.05, 0.05).
const EMBED_INIT: nn::Init = nn::Init::Randn { mean: 0.0, stdev: 0.05 };

impl FeatureEmbedder {
    /// Parameters under `path`: `cat{k}` tables, `mean`/`std` (not trained) and `dense.*`.
    /// `stats` must have `n_continuous` columns when given (None: mean 0, std 1, as before a
    /// restore overwrites them).
    pub fn new(path: &nn::Path, spec: EmbedderSpec, stats: Option<&ContinuousStats>) -> Result<Self> {
        if let Some(&c) = spec.cardinalities.iter().find(|&&c| c < 1) {
            return Err(Error::invalid(format!("a categorical column needs at least 1 code, got {c}")));
        }
        if spec.n_continuous < 0 || spec.embed_dim < 1 {
            return Err(Error::invalid(format!(
                "embedder sizes: {} continuous columns, embedding width {}",
                spec.n_continuous, spec.embed_dim
            )));
        }
        if spec.concat_dim() == 0 {
            return Err(Error::invalid("a feature embedder needs at least one categorical or continuous column"));
        }
        let tables = spec
            .cardinalities
            .iter()
            .enumerate()
            .map(|(k, &card)| random::var(path, &format!("cat{k}"), &[card, spec.embed_dim], EMBED_INIT))
            .collect::<Result<Vec<_>>>()?;
        let k = spec.n_continuous as usize;
        let (mean, std) = match stats {
            Some(s) if s.mean.len() != k || s.std.len() != k => {
                return Err(Error::invalid(format!(
                    "continuous statistics have {} columns, the embedder takes {k}",
                    s.mean.len()
                )))
            }
            Some(s) => (s.mean.clone(), s.std.clone()),
            None => (vec![0f32; k], vec![1f32; k]),
        };
        let dev = path.device();
        let mean = path.add("mean", Tensor::from_slice(&mean).to_device(dev), false);
        let std = path.add("std", Tensor::from_slice(&std).to_device(dev), false);
        let mut widths = spec.hidden.clone();
        widths.push(spec.out_dim);
        let dense = Mlp::new(&(path / "dense"), spec.concat_dim(), &widths, spec.dropout, false)?;
        Ok(FeatureEmbedder { spec, tables, mean, std, dense })
    }

    /// A handle on the same parameters (for a training step that owns its own handles).
    pub fn shallow_clone(&self) -> Self {
        FeatureEmbedder {
            spec: self.spec.clone(),
            tables: self.tables.iter().map(Tensor::shallow_clone).collect(),
            mean: self.mean.shallow_clone(),
            std: self.std.shallow_clone(),
            dense: self.dense.shallow_clone(),
        }
    }

    pub fn spec(&self) -> &EmbedderSpec {
        &self.spec
    }

    pub fn out_dim(&self) -> i64 {
        self.spec.out_dim
    }

    /// Checks host-side codes, row-major (n_rows, n_categorical), before they go to a device
    /// (where an out-of-range index is an unrecoverable device assert, not an error).
    pub fn check_codes(&self, codes: &[i64]) -> Result<()> {
        let c = self.spec.cardinalities.len();
        if c == 0 {
            return if codes.is_empty() { Ok(()) } else { Err(Error::invalid("codes given for an embedder without categorical columns")) };
        }
        if codes.len() % c != 0 {
            return Err(Error::invalid(format!("{} codes do not make rows of {c} categorical columns", codes.len())));
        }
        for (row, codes) in codes.chunks_exact(c).enumerate() {
            for (column, (&code, &card)) in codes.iter().zip(&self.spec.cardinalities).enumerate() {
                if code < 0 || code >= card {
                    return Err(Error::invalid(format!(
                        "code {code} of categorical column {column} (row {row}) is outside 0..{card}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Embeds rows: `codes` int64 (N, n_categorical) checked by [`Self::check_codes`],
    /// `continuous` float (N, n_continuous) raw (scaled here; NaN counts as the mean).
    pub fn embed(&self, codes: &Tensor, continuous: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let mut parts = Vec::with_capacity(self.tables.len() + 1);
        for (k, table) in self.tables.iter().enumerate() {
            let col = codes.f_select(1, k as i64)?;
            parts.push(Tensor::f_embedding(table, &col, -1, false, false)?);
        }
        if self.spec.n_continuous > 0 {
            let x = continuous.ok_or_else(|| Error::invalid("this embedder needs continuous features"))?;
            let scaled = ((x.f_to_kind(Kind::Float)? - &self.mean) / &self.std).f_nan_to_num(0.0, None, None)?;
            parts.push(scaled);
        }
        let h = Tensor::f_cat(&parts, 1)?;
        self.dense.try_forward(&h, train)
    }
}

impl nn::ModuleT for FeatureEmbedder {
    /// Input packed as one float tensor (N, n_categorical + n_continuous): the codes first
    /// (exact in f32 below 2^24), then the raw continuous columns. Models call [`Self::embed`].
    // tch's ModuleT cannot return an error: models call the fallible forward on user input,
    // and `error::guarded` turns a panic here into an error, never an abort.
    #[allow(clippy::panic, reason = "ModuleT::forward_t is infallible by signature")]
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let c = self.spec.cardinalities.len() as i64;
        let codes = xs.narrow(1, 0, c).to_kind(Kind::Int64);
        let cont = (self.spec.n_continuous > 0).then(|| xs.narrow(1, c, self.spec.n_continuous));
        match self.embed(&codes, cont.as_ref(), train) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::ModuleT, nn::OptimizerConfig, Device};

    fn spec() -> EmbedderSpec {
        EmbedderSpec { cardinalities: vec![3, 5], n_continuous: 2, embed_dim: 4, hidden: vec![16, 8], out_dim: 6, dropout: 0.0 }
    }

    #[test]
    fn stats_skip_nan_and_guard_constant_columns() {
        let data = [1f32, 5., f32::NAN, 5., 3., 5.];
        let s = ContinuousStats::fit(&data, 2, None).unwrap();
        assert_eq!(s.mean, [2.0, 5.0]);
        assert_eq!(s.std, [1.0, 1.0]); // column 0: values 1, 3 -> std 1; column 1 constant -> 1
        let only_first = ContinuousStats::fit(&data, 2, Some(&[0])).unwrap();
        assert_eq!(only_first.mean, [1.0, 5.0]);
        assert!(ContinuousStats::fit(&data, 2, Some(&[3])).is_err());
        assert!(ContinuousStats::fit(&[f32::INFINITY], 1, None).is_err());
        assert!(ContinuousStats::fit(&data, 4, None).is_err());
    }

    #[test]
    fn embeds_and_scales_with_stored_stats() {
        let vs = nn::VarStore::new(Device::Cpu);
        let stats = ContinuousStats { mean: vec![10.0, 0.0], std: vec![2.0, 1.0] };
        let e = FeatureEmbedder::new(&(vs.root() / "users"), spec(), Some(&stats)).unwrap();
        let codes = Tensor::from_slice(&[0i64, 4, 2, 1]).reshape([2, 2]);
        let cont = Tensor::from_slice(&[10f32, 0., 12., f32::NAN]).reshape([2, 2]);
        let out = e.embed(&codes, Some(&cont), false).unwrap();
        assert_eq!(out.size(), [2, 6]);
        assert!(bool::try_from(out.isfinite().all()).unwrap(), "NaN must scale to 0, not propagate");
        // The scaled continuous part equals (x - mean) / std, with NaN -> 0.
        let scaled = ((&cont - &e.mean) / &e.std).nan_to_num(0.0, None, None);
        assert!(scaled.allclose(&Tensor::from_slice(&[0f32, 0., 1., 0.]).reshape([2, 2]), 1e-6, 1e-6, false));
        let names: std::collections::BTreeSet<String> = vs.variables().into_keys().collect();
        for n in ["users.cat0", "users.cat1", "users.mean", "users.std", "users.dense.0.weight", "users.dense.2.bias"] {
            assert!(names.contains(n), "missing {n} in {names:?}");
        }
        assert_eq!(vs.trainable_variables().len(), 2 + 6, "mean/std must not be trained");
    }

    #[test]
    fn packed_module_input_matches_embed() {
        let vs = nn::VarStore::new(Device::Cpu);
        let e = FeatureEmbedder::new(&vs.root(), spec(), None).unwrap();
        let codes = Tensor::from_slice(&[1i64, 3, 2, 0]).reshape([2, 2]);
        let cont = Tensor::from_slice(&[0.5f32, -1., 2., 3.]).reshape([2, 2]);
        let packed = Tensor::cat(&[codes.to_kind(Kind::Float), cont.shallow_clone()], 1);
        assert!(e.forward_t(&packed, false).equal(&e.embed(&codes, Some(&cont), false).unwrap()));
    }

    #[test]
    fn categorical_only_and_continuous_only() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cat = EmbedderSpec { n_continuous: 0, ..spec() };
        let e = FeatureEmbedder::new(&(vs.root() / "a"), cat, None).unwrap();
        assert_eq!(e.embed(&Tensor::from_slice(&[2i64, 4]).reshape([1, 2]), None, false).unwrap().size(), [1, 6]);
        let cont = EmbedderSpec { cardinalities: vec![], ..spec() };
        let e = FeatureEmbedder::new(&(vs.root() / "b"), cont, None).unwrap();
        let empty = Tensor::zeros([3, 0], (Kind::Int64, Device::Cpu));
        let x = Tensor::ones([3, 2], (Kind::Float, Device::Cpu));
        assert_eq!(e.embed(&empty, Some(&x), false).unwrap().size(), [3, 6]);
        assert!(e.embed(&empty, None, false).is_err());
        let none = EmbedderSpec { cardinalities: vec![], n_continuous: 0, ..spec() };
        assert!(FeatureEmbedder::new(&(vs.root() / "c"), none, None).is_err());
    }

    #[test]
    fn codes_are_checked_before_use() {
        let vs = nn::VarStore::new(Device::Cpu);
        let e = FeatureEmbedder::new(&vs.root(), spec(), None).unwrap();
        assert!(e.check_codes(&[0, 4, 2, 1]).is_ok());
        let err = e.check_codes(&[0, 4, 3, 1]).unwrap_err().to_string();
        assert!(err.contains("column 0") && err.contains("row 1"), "{err}");
        assert!(e.check_codes(&[0, -1]).is_err());
        assert!(e.check_codes(&[0, 1, 2]).is_err());
        // An unchecked out-of-range code on the CPU is a libtorch error, not a crash.
        assert!(e.embed(&Tensor::from_slice(&[7i64, 0]).reshape([1, 2]), Some(&Tensor::zeros([1, 2], (Kind::Float, Device::Cpu))), false).is_err());
    }

    #[test]
    fn learns_a_feature_interaction() {
        // Target depends on a categorical column and the sign of a continuous one: the embedder
        // must use both inputs (and the scaling: the continuous values sit around 100).
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let s = EmbedderSpec { cardinalities: vec![4], n_continuous: 1, embed_dim: 4, hidden: vec![16], out_dim: 1, dropout: 0.0 };
        let raw: Vec<f32> = (0..64).map(|r| 100.0 + if r % 2 == 0 { 1.0 } else { -1.0 } * (1 + r % 5) as f32).collect();
        let stats = ContinuousStats::fit(&raw, 1, None).unwrap();
        let e = FeatureEmbedder::new(&vs.root(), s, Some(&stats)).unwrap();
        let codes: Vec<i64> = (0..64).map(|r| (r / 2) % 4).collect();
        let y: Vec<f32> = (0..64).map(|r| (((r / 2) % 4 >= 2) ^ (r % 2 == 0)) as i32 as f32).collect();
        let codes = Tensor::from_slice(&codes).reshape([64, 1]);
        let cont = Tensor::from_slice(&raw).reshape([64, 1]);
        let y = Tensor::from_slice(&y).reshape([64, 1]);
        let mut opt = nn::Adam::default().build(&vs, 0.03).unwrap();
        for _ in 0..300 {
            let loss = e.embed(&codes, Some(&cont), true).unwrap().binary_cross_entropy_with_logits::<Tensor>(&y, None, None, tch::Reduction::Mean);
            opt.backward_step(&loss);
        }
        let pred = e.embed(&codes, Some(&cont), false).unwrap().gt(0.0).to_kind(Kind::Float);
        assert!(pred.equal(&y), "the embedder did not fit the target");
        assert_eq!(Vec::<f32>::try_from(&e.mean).unwrap(), stats.mean, "training must not move the stored mean");
    }
}
