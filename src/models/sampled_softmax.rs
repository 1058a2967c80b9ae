//! Sampled softmax (the ASOS workshop model): user and item embeddings with an item bias;
//! each positive (user, item) is scored against N sampled negatives and trained with the
//! cross-entropy of the positive, first among the 1 + N logits.
//!
//! * Negatives are drawn from a proposal q (uniform, popularity^exponent, or log-uniform over
//!   popularity ranks), once per batch and shared by every row (a (B, d) x (d, N) product, the
//!   fast path on any device) or per row. A negative equal to the row's positive (an
//!   accidental hit) is masked out.
//! * With `logq_correction`, every logit has ln q(item) subtracted, so the sampled loss
//!   estimates the full softmax's (Bengio & Senecal 2008; Yi et al. 2019). Under a uniform q
//!   it is a constant and changes nothing.
//! * The update is the row-sparse Adam of `train::sparse_adam` (TF's lazy form, which is
//!   torch.optim.SparseAdam's): only the rows a batch touches move, and their
//!   moments; the per-batch cost is O((B + N) d + B N) whatever the catalogue size.
//! * The item bias starts at ln(1 + training count): the full-softmax optimum when the
//!   embeddings carry nothing, so a model starts from popularity and learns what users add.
//! * Users are a free embedding each (the workshop model) or, with `users = "item_average"`,
//!   the mean of a second ("context") embedding of the items in their training history, the
//!   positive left out (FISM, Kabbur et al. 2013). On very sparse data (ASOS: 3.8 rows a
//!   user) a free user vector is fitted to one or two items; the average shares what every
//!   user of an item taught it. The user table then holds the averages over the whole
//!   history, refreshed at each end of epoch, so scoring, recommending and saving are as for
//!   free embeddings.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::core::{Common, FitCtx, ParamStore, Spec};
use super::factors::{FactorHandles, Factors};
use crate::data::{Interactions, SideInfo};
use crate::error::{Error, Result};
use crate::sampling::rng::{below, stream_rng, Rng};
use crate::sampling::{SamplerConfig, TripleBatch, TripleSampler};
use crate::train::sparse_adam::{unique_inverse, EpsAt, SparseAdam};
use crate::train::{BatchStep, FitReport};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SampledSoftmaxConfig {
    /// Embedding dimension.
    pub factors: usize,
    /// "embedding" (a free vector per user) or "item_average" (the mean of the history's
    /// context embeddings).
    pub users: String,
    /// Negatives per positive (shared by the batch's rows, or per row).
    pub n_negatives: usize,
    /// Proposal of the negatives: "uniform", "popularity" ((count + 1)^exponent, the
    /// sampler's `exponent`) or "log_uniform" (Zipf over popularity ranks, as TensorFlow's
    /// log-uniform candidate sampler).
    pub sampler: SamplerConfig,
    /// Subtract ln q(item) from every logit.
    pub logq_correction: bool,
    /// A learnt per-item bias.
    pub item_bias: bool,
    /// One draw of negatives per batch, shared by its rows (else one per row).
    pub shared_negatives: bool,
    /// epochs, lr (row-sparse Adam), batch_size (positives per step), seed, threads
    /// (sampling), device.
    #[serde(flatten)]
    pub common: Common,
    /// L2 weight on the user and positive-item rows of each sample.
    pub reg: f64,
    /// Standard deviation of the initial embeddings.
    pub init_std: f64,
}

impl Default for SampledSoftmaxConfig {
    fn default() -> Self {
        SampledSoftmaxConfig {
            factors: 64,
            users: "item_average".into(),
            n_negatives: 100,
            // Chosen on a split carved from the ASOS train parquet (benches/tune_sampled_softmax.py).
            sampler: SamplerConfig { kind: "popularity".into(), exponent: 0.75, ..SamplerConfig::default() },
            logq_correction: true,
            item_bias: true,
            shared_negatives: true,
            common: Common::new(5, 0.003, 1024),
            reg: 0.0,
            init_std: 0.01,
        }
    }
}

impl SampledSoftmaxConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(m));
        for (name, v) in [("factors", self.factors), ("n_negatives", self.n_negatives)] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if self.n_negatives > 1 << 20 {
            return bad(format!("n_negatives must be at most 2^20, got {}", self.n_negatives));
        }
        super::bpr::check_weights(&[("init_std", self.init_std, true), ("reg", self.reg, false)])?;
        if !["embedding", "item_average"].contains(&self.users.as_str()) {
            return bad(format!("users must be 'embedding' or 'item_average', not {:?}", self.users));
        }
        self.sampler.validate_kinds(&["uniform", "popularity", "log_uniform"])?;
        Ok(())
    }
}

/// The negatives' proposal distribution over items: draws and ln q.
///
/// Its CDF search is kept rather than the sampling module's `AliasTable` (the same
/// distribution, other draws): with the alias table, `benches/asos_softmax.py --no-implicit`
/// gave HitRate@10 0.0502 / NDCG@10 0.0202 / AUC 0.789 against README's 0.0513 / 0.0205 /
/// 0.790 (one run; no seed-to-seed noise measured to call that unchanged).
pub struct Proposal {
    /// Cumulative probabilities (None: uniform).
    cdf: Option<Vec<f64>>,
    /// ln q(item), as a tensor on the training device.
    pub log_q: Tensor,
    n_items: usize,
}

impl Proposal {
    pub fn new(kind: &str, exponent: f64, counts: &[u32], device: Device) -> Result<Self> {
        let n = counts.len();
        if n == 0 {
            return Err(Error::invalid("no items to sample negatives from"));
        }
        let weights: Option<Vec<f64>> = match kind {
            "uniform" => None,
            // +1 keeps never-seen items reachable.
            "popularity" => Some(counts.iter().map(|&c| (c as f64 + 1.0).powf(exponent)).collect()),
            "log_uniform" => {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by_key(|&i| (std::cmp::Reverse(counts[i]), i));
                let mut w = vec![0.0; n];
                for (rank, &i) in order.iter().enumerate() {
                    w[i] = ((rank as f64 + 2.0) / (rank as f64 + 1.0)).ln();
                }
                Some(w)
            }
            other => return Err(Error::invalid(format!("unknown sampler {other:?}"))),
        };
        let (cdf, log_q) = match weights {
            None => (None, vec![-(n as f32).ln(); n]),
            Some(w) => {
                let total: f64 = w.iter().sum();
                let mut acc = 0.0;
                let cdf = w.iter().map(|x| { acc += x / total; acc }).collect();
                (Some(cdf), w.iter().map(|x| (x / total).ln() as f32).collect())
            }
        };
        Ok(Proposal { cdf, log_q: Tensor::from_slice(&log_q).to_device(device), n_items: n })
    }

    #[inline]
    pub fn draw(&self, rng: &mut Rng) -> i64 {
        match &self.cdf {
            None => below(rng, self.n_items as u64) as i64,
            Some(cdf) => {
                let u: f64 = rand::Rng::random(rng);
                cdf.partition_point(|&c| c < u).min(self.n_items - 1) as i64
            }
        }
    }
}

/// Users as the average of their history's context embeddings.
pub struct ItemAverage<'a> {
    pub train: &'a Interactions,
    /// (n_items, d) context embeddings.
    pub context: Tensor,
}

impl ItemAverage<'_> {
    /// Every user's vector: the mean context row of the whole history (zero when empty).
    pub fn all_users(&self) -> Result<Tensor> {
        let (mut items, mut offsets) = (Vec::with_capacity(self.train.nnz()), Vec::with_capacity(self.train.n_users()));
        for u in 0..self.train.n_users() {
            offsets.push(items.len() as i64);
            items.extend(self.train.user_items(u).iter().map(|&i| i as i64));
        }
        mean_bags(&self.context, &items, &offsets)
    }

    /// Writes every user's vector into `users` (the table scoring and saving read).
    fn write_users(&self, users: &Tensor) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            users.shallow_clone().f_copy_(&self.all_users()?)?;
            Ok(())
        })
    }
}

/// The mean of `table`'s rows `items[offsets[b]..offsets[b + 1]]` for each bag b (zero for an
/// empty bag), as one `embedding_bag` (a gather-reduce kernel, where an `index_add` runs a
/// small op per row on the CPU).
fn mean_bags(table: &Tensor, items: &[i64], offsets: &[i64]) -> Result<Tensor> {
    let dev = table.device();
    let t = |v: &[i64]| Tensor::from_slice(v).f_to_device(dev);
    const MEAN: i64 = 1;
    let (out, ..) = Tensor::f_embedding_bag::<Tensor>(table, &t(items)?, &t(offsets)?, false, MEAN, false, None, false)?;
    Ok(out)
}

/// One training step's worth of state: parameters, moments, proposal, running loss.
pub struct SoftmaxStep<'a> {
    p: FactorHandles,
    cfg: &'a SampledSoftmaxConfig,
    proposal: Proposal,
    /// Row-sparse Adam over users (or the context rows), items and biases.
    adam: SparseAdam,
    average: Option<ItemAverage<'a>>,
    loss: Tensor,
    negs: Vec<i64>,
}

impl<'a> SoftmaxStep<'a> {
    pub fn new(params: &Factors, cfg: &'a SampledSoftmaxConfig, proposal: Proposal, average: Option<ItemAverage<'a>>) -> Result<Self> {
        let p = params.handles();
        let first = match &average {
            Some(a) => ("context", a.context.shallow_clone()),
            None => ("users", p.users.shallow_clone()),
        };
        let tables = vec![(first.0.to_string(), first.1), ("items".into(), p.items.shallow_clone()), ("item_bias".into(), p.item_bias.shallow_clone())];
        // TensorFlow's lazy Adam, the form the workshop model was tuned with (it is also
        // torch.optim.SparseAdam's), named so the step's choice is explicit.
        let adam = SparseAdam::new(tables, cfg.common.lr)?.with_eps_at(EpsAt::Uncorrected);
        let loss = Tensor::zeros([], (Kind::Double, p.device));
        Ok(SoftmaxStep { p, cfg, proposal, adam, average, loss, negs: Vec::new() })
    }

    /// The batch's user vectors (B, d), the leaf holding the rows they come from and those
    /// rows' indices in the table the leaf updates (users, or context items).
    fn users(&self, users: &[i64], pos: &[i64]) -> Result<(Tensor, Tensor, Vec<i64>)> {
        let dev = self.p.device;
        let t = |v: &[i64]| Tensor::from_slice(v).to_device(dev);
        let leaf = |w: &Tensor, r: &Tensor| -> Result<Tensor> { Ok(w.f_index_select(0, r)?.detach().set_requires_grad(true)) };
        let Some(avg) = &self.average else {
            let (rows, inv) = unique_inverse(users);
            let w = leaf(&self.p.users, &t(&rows))?;
            return Ok((w.f_index_select(0, &t(&inv))?, w, rows));
        };
        // Each row's history without (one copy of) its positive, as bags.
        let (mut items, mut offsets) = (Vec::new(), Vec::with_capacity(users.len()));
        for (&u, &p) in users.iter().zip(pos) {
            offsets.push(items.len() as i64);
            let mut skipped = false;
            for &j in avg.train.user_items(u as usize) {
                if !skipped && j as i64 == p {
                    skipped = true;
                    continue;
                }
                items.push(j as i64);
            }
        }
        let (rows, inv) = unique_inverse(&items);
        let w = leaf(&avg.context, &t(&rows))?;
        Ok((mean_bags(&w, &inv, &offsets)?, w, rows))
    }

    /// Draw this batch's negatives from `rng`: N shared, or N per row.
    fn draw_negatives(&mut self, rows: usize, rng: &mut Rng) {
        let n = self.cfg.n_negatives * if self.cfg.shared_negatives { 1 } else { rows };
        self.negs.clear();
        self.negs.extend((0..n).map(|_| self.proposal.draw(rng)));
    }

    /// Train on positives (users[b], pos[b]); negatives from stream `stream` of the seed.
    pub fn train(&mut self, users: &[i64], pos: &[i64], stream: u64) -> Result<()> {
        let b = users.len();
        if b == 0 {
            return Ok(());
        }
        let mut rng = stream_rng(self.cfg.common.seed, stream, u64::MAX);
        self.draw_negatives(b, &mut rng);
        let dev = self.p.device;
        let n = self.cfg.n_negatives as i64;
        let items: Vec<i64> = pos.iter().chain(self.negs.iter()).copied().collect();
        let (i_host, i_inv) = unique_inverse(&items);
        let t = |v: &[i64]| Tensor::from_slice(v).to_device(dev);
        let (i_rows, i_inv) = (t(&i_host), t(&i_inv));
        let leaf = |w: &Tensor, r: &Tensor| -> Result<Tensor> { Ok(w.f_index_select(0, r)?.detach().set_requires_grad(true)) };
        let (u, uw, u_rows) = self.users(users, pos)?; // (B, d)
        let iw = leaf(&self.p.items, &i_rows)?;
        let bw = if self.cfg.item_bias { Some(leaf(&self.p.item_bias, &i_rows)?) } else { None };
        let pos_inv = i_inv.narrow(0, 0, b as i64);
        let neg_inv = i_inv.narrow(0, b as i64, i_inv.size()[0] - b as i64);
        let vp = iw.f_index_select(0, &pos_inv)?; // (B, d)
        let vn = iw.f_index_select(0, &neg_inv)?; // (N, d) or (B * N, d)
        let mut lp = (&u * &vp).sum_dim_intlist(1, false, Kind::Float); // (B,)
        let mut ln = if self.cfg.shared_negatives {
            u.f_matmul(&vn.tr())? // (B, N)
        } else {
            (u.unsqueeze(1) * vn.view([b as i64, n, -1])).sum_dim_intlist(2, false, Kind::Float)
        };
        let neg_items = t(&self.negs);
        let neg_items = if self.cfg.shared_negatives { neg_items.unsqueeze(0) } else { neg_items.view([b as i64, n]) };
        if let Some(bw) = &bw {
            lp = lp + bw.f_index_select(0, &pos_inv)?;
            ln = ln + bw.f_index_select(0, &neg_inv)?.view([-1, n]);
        }
        if self.cfg.logq_correction && self.cfg.sampler.kind != "uniform" {
            let lq = &self.proposal.log_q;
            lp = lp - lq.f_index_select(0, &t(pos))?;
            ln = ln - lq.f_index_select(0, &neg_items.flatten(0, -1))?.view([-1, n]);
        }
        let pos_t = t(pos).unsqueeze(1);
        let ln = ln.masked_fill(&neg_items.eq_tensor(&pos_t), f64::NEG_INFINITY);
        let logits = Tensor::cat(&[lp.unsqueeze(1), ln], 1);
        let data_loss = (logits.logsumexp([1], false) - logits.select(1, 0)).sum(Kind::Float);
        let mut total = data_loss.shallow_clone();
        if self.cfg.reg > 0.0 {
            total = total + (u.square().sum(Kind::Float) + vp.square().sum(Kind::Float)) * (0.5 * self.cfg.reg);
        }
        (total / b as f64).f_backward()?;
        tch::no_grad(|| -> Result<()> {
            // Every table counts the step (the user rows may be none: item-average users
            // whose history is only the positive); the bias only when it is learnt.
            let u_grad = if u_rows.is_empty() { Tensor::new() } else { uw.grad() };
            self.adam.update(0, &u_rows, &u_grad)?;
            self.adam.update(1, &i_host, &iw.grad())?;
            if let Some(bw) = &bw {
                self.adam.update(2, &i_host, &bw.grad())?;
            }
            self.loss += data_loss.detach().to_kind(Kind::Double);
            Ok(())
        })
    }

}

/// The shared loop's sampler supplies the positives (a uniformly drawn stored interaction,
/// as for BPR); the step draws its own negatives from the proposal, on the batch's stream.
impl BatchStep<TripleSampler<'_>> for SoftmaxStep<'_> {
    fn step(&mut self, batch: &TripleBatch) -> Result<()> {
        self.train(&batch.users, &batch.pos, 0)
    }

    fn sample_and_step(
        &mut self,
        source: &TripleSampler<'_>,
        batch: &mut TripleBatch,
        size: usize,
        seed: u64,
        batch_index: u64,
    ) -> Result<()> {
        source.fill(batch, size, seed, batch_index);
        self.train(&batch.users, &batch.pos, batch_index)
    }

    fn take_loss(&mut self) -> Result<f64> {
        let v = self.loss.f_double_value(&[])?;
        self.loss = Tensor::zeros([], (Kind::Double, self.p.device));
        Ok(v)
    }

    fn intra_op_threads(&self) -> Option<i32> {
        (self.p.device == Device::Cpu).then_some(1)
    }

    /// The row-sparse Adam's moments and step counts, and (item-average users) the context
    /// embeddings.
    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = self.adam.state();
        if let Some(avg) = &self.average {
            out.push(("context".to_string(), avg.context.shallow_clone()));
        }
        out
    }

    fn restore_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.adam.restore(state)?;
        if let Some(avg) = &self.average {
            let saved = state.get("context").ok_or_else(|| Error::state("checkpoint has no 'context'"))?;
            tch::no_grad(|| avg.context.shallow_clone().f_copy_(saved))?;
        }
        Ok(())
    }

    /// With item-average users, the user table becomes the averages (for validation and
    /// scoring).
    fn end_epoch(&mut self, _epoch: usize) -> Result<()> {
        match &self.average {
            Some(avg) => avg.write_users(&self.p.users),
            None => Ok(()),
        }
    }
}

/// Starting parameters: N(0, init_std^2) embeddings, bias ln(1 + count) (or 0 without bias).
pub fn initial_factors(train: &Interactions, cfg: &SampledSoftmaxConfig, device: Device) -> Result<Factors> {
    let f = Factors::random(train.n_users(), train.n_items(), cfg.factors, cfg.init_std, cfg.common.seed, device)?;
    if cfg.item_bias {
        super::factors::set_log_popularity(&f.item_bias, train)?;
    }
    Ok(f)
}


/// SampledSoftmax: factors trained by the sampled softmax and a row-sparse Adam.
pub struct SampledSoftmax;

impl Spec for SampledSoftmax {
    const KIND: &'static str = "sampled_softmax";
    const NAME: &'static str = "SampledSoftmax";
    type Config = SampledSoftmaxConfig;
    type Params = Factors;

    fn common(c: &SampledSoftmaxConfig) -> Option<&Common> {
        Some(&c.common)
    }

    fn validate(c: &SampledSoftmaxConfig) -> Result<()> {
        c.validate()
    }

    fn build(c: &SampledSoftmaxConfig, train: &Interactions, _: &SideInfo, device: Device) -> Result<Factors> {
        initial_factors(train, c, device)
    }

    fn train(c: &SampledSoftmaxConfig, params: &Factors, train: &Interactions, _: &SideInfo, ctx: FitCtx<'_>) -> Result<FitReport> {
        let device = params.device();
        // Positives only: the step draws the negatives (one uniform negative per positive is
        // drawn by the sampler and unused).
        let sampler = TripleSampler::new(train, 1)?;
        let proposal = Proposal::new(&c.sampler.kind, c.sampler.exponent, &train.item_counts(), device)?;
        let average = if c.users == "item_average" {
            // Drawn like the item factors (seeded, independent of the device).
            let ctx = Factors::random(1, train.n_items(), c.factors, c.init_std, c.common.seed ^ 0x5eed_c0de, device)?;
            Some(ItemAverage { train, context: ctx.items.detach() })
        } else {
            None
        };
        if let Some(a) = &average {
            // Validation before the first end of epoch never happens, but scoring a model
            // fitted for 0 steps must not see the random user table.
            a.write_users(&params.users)?;
        }
        let mut step = SoftmaxStep::new(params, c, proposal, average)?;
        ctx.run(&mut step, &sampler, &|u| params.score_block(&Tensor::from_slice(u).f_to_device(device)?))
    }

    fn store(p: &Factors) -> &ParamStore {
        &p.store
    }

    fn restore(c: &SampledSoftmaxConfig, shape: (usize, usize), state: &HashMap<String, Tensor>, device: Device) -> Result<Factors> {
        Factors::from_state(state, shape, c.factors, device)
    }

    fn score_block(_: &SampledSoftmaxConfig, p: &Factors, users: &Tensor) -> Result<Tensor> {
        p.score_block(users)
    }

    fn item_vectors(_: &SampledSoftmaxConfig, p: &Factors) -> Result<Tensor> {
        Ok(p.items.shallow_clone())
    }

    fn user_vectors(_: &SampledSoftmaxConfig, p: &Factors) -> Result<Tensor> {
        Ok(p.users.shallow_clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_are_distributions() {
        let counts = [5u32, 0, 1, 10];
        for kind in ["uniform", "popularity", "log_uniform"] {
            let p = Proposal::new(kind, 0.75, &counts, Device::Cpu).unwrap();
            let q: Vec<f32> = Vec::<f32>::try_from(p.log_q.exp()).unwrap();
            assert!((q.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{kind}");
            let mut rng = stream_rng(1, 2, 3);
            let mut seen = [0usize; 4];
            for _ in 0..20_000 {
                seen[p.draw(&mut rng) as usize] += 1;
            }
            for i in 0..4 {
                assert!((seen[i] as f32 / 20_000.0 - q[i]).abs() < 0.02, "{kind} item {i}");
            }
        }
        let lu = Proposal::new("log_uniform", 0.0, &counts, Device::Cpu).unwrap();
        let q: Vec<f32> = Vec::<f32>::try_from(lu.log_q).unwrap();
        assert!(q[3] > q[0] && q[0] > q[2] && q[2] > q[1], "ranked by popularity");
        assert!(Proposal::new("zipf", 0.0, &counts, Device::Cpu).is_err());
    }

    #[test]
    fn fits_and_beats_chance_on_synthetic_data() {
        use crate::data::synthetic::{synthetic, SyntheticConfig};
        let data = synthetic(&SyntheticConfig { n_users: 200, n_items: 120, ..Default::default() }).unwrap();
        for (shared, users) in [(true, "embedding"), (false, "embedding"), (true, "item_average"), (false, "item_average")] {
            let json = format!(
                r#"{{"users": "{users}", "factors": 8, "n_negatives": 20, "epochs": 3, "batch_size": 256, "shared_negatives": {shared},
                    "sampler": {{"kind": "popularity"}}, "device": "cpu", "threads": 1}}"#
            );
            let mut m = crate::models::create("sampled_softmax", &json).unwrap();
            let r = m.fit(&data, &SideInfo::default(), None, &mut |_| crate::train::Control::Continue, &Default::default()).unwrap();
            assert_eq!(r.history.len(), 3);
            assert!(r.history[2].loss < r.history[0].loss, "shared={shared}: {:?}", r.history);
            assert_eq!(m.score(&[0, 1]).unwrap().size(), vec![2, 120]);
        }
    }

    /// FNV-1a over the bits of every score and every epoch's loss of a small CPU fit, for each
    /// form of the model. The constants were recorded on the code before the row-sparse Adam
    /// moved to `train::sparse_adam` (commit 3fccf38's `LazyAdam`), so the move is shown to keep
    /// SampledSoftmax's results bit for bit. They hold for this libtorch build on x86_64 (its
    /// float32 matmul); on another platform, rerun the test at that commit to get its values.
    #[test]
    fn fit_is_bit_identical_to_the_lazy_adam_it_replaced() {
        use crate::data::synthetic::{synthetic, SyntheticConfig};
        let data = synthetic(&SyntheticConfig { n_users: 150, n_items: 90, ..Default::default() }).unwrap();
        let fnv = |h: u64, bytes: &[u8]| bytes.iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        let mut got = Vec::new();
        for (shared, users, bias, reg) in [(true, "embedding", true, 0.0), (false, "embedding", false, 0.01), (true, "item_average", true, 0.01), (false, "item_average", true, 0.0)] {
            let json = format!(
                r#"{{"users": "{users}", "factors": 8, "n_negatives": 15, "epochs": 2, "batch_size": 128, "shared_negatives": {shared},
                    "item_bias": {bias}, "reg": {reg}, "sampler": {{"kind": "popularity"}}, "device": "cpu", "threads": 1}}"#
            );
            let mut m = crate::models::create("sampled_softmax", &json).unwrap();
            let r = m.fit(&data, &SideInfo::default(), None, &mut |_| crate::train::Control::Continue, &Default::default()).unwrap();
            let all: Vec<i64> = (0..150).collect();
            let scores = crate::tensors::to_vec_f32(&m.score(&all).unwrap()).unwrap();
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            for s in scores {
                h = fnv(h, &s.to_bits().to_le_bytes());
            }
            for e in &r.history {
                h = fnv(h, &e.loss.to_bits().to_le_bytes());
            }
            got.push(h);
        }
        let want: [u64; 4] = [0xe9ff_4e2a_62a3_0c0e, 0x8e11_5143_692f_cbe7, 0x4823_5c98_2235_fd65, 0xf7ab_e848_47c9_b0f0];
        assert_eq!(got, want, "{got:#x?}");
    }

    #[test]
    fn item_average_users_are_the_mean_of_their_history() {
        // Two users, three items: user 0 has items 0 and 2, user 1 item 1.
        let train = Interactions::from_indices(&[0, 0, 1], &[0, 2, 1], None, Some(2), Some(3), crate::data::Duplicates::Sum, Default::default()).unwrap();
        let context = Tensor::from_slice(&[1.0f32, 2.0, 10.0, 20.0, 3.0, 6.0]).view([3, 2]);
        let avg = ItemAverage { train: &train, context };
        let all = avg.all_users().unwrap();
        assert_eq!(Vec::<f32>::try_from(all.flatten(0, -1)).unwrap(), vec![2.0, 4.0, 10.0, 20.0]);
        // In training the positive is left out: user 0 predicting item 2 is item 0's row; user
        // 1's only item leaves nothing (a zero vector: the bias alone scores it).
        let cfg = SampledSoftmaxConfig::default();
        let f = Factors::random(2, 3, 2, 0.1, 0, Device::Cpu).unwrap();
        let step = SoftmaxStep::new(&f, &cfg, Proposal::new("uniform", 0.0, &[1, 1, 1], Device::Cpu).unwrap(), Some(avg)).unwrap();
        let (u, _, rows) = step.users(&[0, 1], &[2, 1]).unwrap();
        assert_eq!(Vec::<f32>::try_from(u.flatten(0, -1)).unwrap(), vec![1.0, 2.0, 0.0, 0.0]);
        assert_eq!(Vec::<i64>::try_from(rows).unwrap(), vec![0]);
    }
}
