//! Tests of the triplet models.

use super::deep::{DeepParams, DeepTripletConfig, USERS};
use super::*;
use crate::data::synthetic::{synthetic, SyntheticConfig};
use crate::models::core::Model;
use crate::models::Recommender;
use crate::train::Control;

fn data() -> Interactions {
    synthetic(&SyntheticConfig { n_users: 80, n_items: 60, ..Default::default() }).unwrap()
}

fn fit(model: &mut dyn Recommender, train: &Interactions) -> FitReport {
    model.fit(train, &SideInfo::default(), None, &mut |_| Control::Continue, &Default::default()).unwrap()
}

#[test]
fn triplet_cosine_scores_are_cosines_and_training_lowers_the_loss() {
    let train = data();
    let mut m = Model::<Triplet>::from_json(r#"{"factors": 8, "epochs": 8, "lr": 0.05, "batch_size": 256, "device": "cpu", "threads": 1}"#).unwrap();
    let report = fit(&mut m, &train);
    let losses: Vec<f64> = report.history.iter().map(|h| h.loss).collect();
    assert!(losses.last().unwrap() < &(losses[0] * 0.9), "loss did not fall: {losses:?}");
    let s = m.score(&[0, 1, 2]).unwrap();
    assert_eq!(s.size(), [3, 60]);
    let max = s.abs().max().double_value(&[]);
    assert!(max <= 1.0 + 1e-5, "a cosine above 1: {max}");
    // score = normalised user . normalised item, computed independently here.
    let f = m.params().unwrap();
    let u = f.users.get(1);
    let i = f.items.get(7);
    let cos = (u.dot(&i) / (u.norm() * i.norm())).double_value(&[]);
    assert!((s.double_value(&[1, 7]) - cos).abs() < 1e-5);
    // The item bias of the factor layout stays zero.
    assert_eq!(f.item_bias.abs().sum(Kind::Float).double_value(&[]), 0.0);
}

#[test]
fn triplet_is_reproducible_with_one_thread() {
    let train = data();
    let run = || {
        let mut m = Model::<Triplet>::from_json(r#"{"factors": 4, "epochs": 2, "device": "cpu", "threads": 1, "similarity": "dot"}"#).unwrap();
        fit(&mut m, &train);
        m.score(&[3]).unwrap()
    };
    assert!(run().equal(&run()));
}

#[test]
fn deep_block_scores_match_pairwise_mlp() {
    let train = data();
    let mut m = Model::<DeepTriplet>::from_json(r#"{"epochs": 2, "hidden": [16, 8], "device": "cpu", "threads": 1}"#).unwrap();
    let report = fit(&mut m, &train);
    assert_eq!(report.history.len(), 2);
    let s = m.score(&[0, 5]).unwrap();
    assert_eq!(s.size(), [2, 60]);
    // The split first layer equals the MLP on the concatenation, without dropout.
    let p = m.params().unwrap();
    let x = Tensor::cat(&[p.users.get(5), p.items.get(11)], 0).unsqueeze(0);
    let direct = tch::no_grad(|| p.mlp.try_forward(&x, false).unwrap()).double_value(&[0, 0]);
    assert!((s.double_value(&[1, 11]) - direct).abs() < 1e-4);
    // Blocks: the first block's scores do not depend on which users come after.
    assert!(m.score(&[0]).unwrap().allclose(&s.narrow(0, 0, 1), 1e-6, 1e-6, false));
}

#[test]
fn deep_state_round_trips() {
    let train = data();
    let json = r#"{"epochs": 1, "device": "cpu", "threads": 1}"#;
    let mut m = Model::<DeepTriplet>::from_json(json).unwrap();
    fit(&mut m, &train);
    let state: HashMap<String, Tensor> = m.state().unwrap().into_iter().collect();
    assert!(state.contains_key("mlp.0.weight") && state.contains_key(USERS));
    let mut back = Model::<DeepTriplet>::from_json(json).unwrap();
    back.restore(&state, train.ids().clone(), vec![], Some("cpu")).unwrap();
    assert!(back.score(&[0, 1]).unwrap().equal(&m.score(&[0, 1]).unwrap()));
    let mut short = state;
    short.remove("mlp.0.bias");
    assert!(Model::<DeepTriplet>::from_json(json).unwrap().restore(&short, train.ids().clone(), vec![], Some("cpu")).is_err());
}

/// FNV-1a over the bits of every score and loss of small CPU fits with the dense Adam
/// (cosine, dot with bias and WARP, the deep model). Recorded before `TorchStep` gained
/// the sparse optimiser and before the model core (commit 3fccf38), so its dense path and
/// the core are shown unchanged; they hold for this libtorch build on x86_64 (rerun at
/// that commit on another platform).
#[test]
fn dense_adam_fits_keep_their_bits() {
    use crate::train::{fit_loop, LoopConfig};
    let train = data();
    let fnv = |h: u64, bytes: &[u8]| bytes.iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let hash = |json: &str| {
        let mut m = Model::<Triplet>::from_json(json).unwrap();
        let r = fit(&mut m, &train);
        let all: Vec<i64> = (0..80).collect();
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for s in crate::tensors::to_vec_f32(&m.score(&all).unwrap()).unwrap() {
            h = fnv(h, &s.to_bits().to_le_bytes());
        }
        r.history.iter().fold(h, |h, e| fnv(h, &e.loss.to_bits().to_le_bytes()))
    };
    let base = r#"{"factors": 8, "epochs": 2, "batch_size": 64, "device": "cpu", "threads": 1}"#;
    let dot = r#"{"factors": 8, "epochs": 2, "batch_size": 64, "device": "cpu", "threads": 1, "similarity": "dot", "item_bias": true, "reg": 0.01, "sampler": {"kind": "warp"}}"#;
    // The deep model through its step directly, its MLP set without libtorch's global
    // generator (which tests running in parallel share, and which seeds dropout masks:
    // none here).
    let deep: DeepTripletConfig =
        crate::models::core::parse_config("deep_triplet", r#"{"epochs": 2, "batch_size": 64, "hidden": [16], "dropout": 0.0, "reg": 0.01, "device": "cpu", "threads": 1}"#).unwrap();
    let p = DeepParams::new(&deep, 80, 60, Device::Cpu).unwrap();
    tch::no_grad(|| {
        for (k, (_, mut v)) in p.store.vs.variables().into_iter().collect::<std::collections::BTreeMap<_, _>>().into_iter().enumerate() {
            let n = v.numel() as i64;
            let x: Vec<f32> = (0..n).map(|j| ((j * 7919 + k as i64 * 104_729) as f32 * 0.618).sin() * 0.2).collect();
            v.copy_(&Tensor::from_slice(&x).view_as(&v));
        }
    });
    let step_cfg = StepConfig {
        loss: Loss::Margin(1.0),
        reduction: Reduction::Mean,
        optimizer: Optimizer::Adam,
        lr: Box::new(|_| 0.003),
        choice: deep.sampler.choice(),
        n_items: 60,
        shared_negatives: false,
        log_q: None,
    };
    let mut step = TorchStep::new(p.towers(true, deep.reg), &p.store.vs, step_cfg).unwrap();
    let sampler = TripleSampler::with_config(&train, 1, &deep.sampler, &SideInfo::default()).unwrap();
    let loop_cfg = LoopConfig { epochs: 2, batch_size: 64, seed: 0, threads: 1, start_epoch: 0, sync: None };
    let r = fit_loop(&mut step, &sampler, &loop_cfg, &mut || Ok(Default::default()), &mut |_, _| Ok(()), &mut |_| Control::Continue).unwrap();
    drop(step);
    let mut h = r.history.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, e| fnv(h, &e.loss.to_bits().to_le_bytes()));
    for (_, v) in p.store.vs.variables().into_iter().collect::<std::collections::BTreeMap<_, _>>() {
        for x in crate::tensors::to_vec_f32(&v.detach().contiguous()).unwrap() {
            h = fnv(h, &x.to_bits().to_le_bytes());
        }
    }
    let got = [hash(base), hash(dot), h];
    assert_eq!(got, [0x0729_e00f_8449_db45, 0x4eef_9009_a622_68c6, 0xf1ec_4a5f_b9d9_06ea], "{got:#x?}");
}

/// With sparse_adam both models learn (the loss falls), a user no batch holds keeps its
/// initial row (the sparse step never reads it), and the deep model's MLP still trains
/// (its weights on the dense Adam). That the rows move as the optimiser says is
/// `train::sparse_adam`'s tests.
#[test]
fn sparse_adam_fits_lower_the_loss_and_move_only_touched_rows() {
    // User 80 has no interactions: never in a batch.
    let base = data();
    let (mut us, mut is) = (Vec::new(), Vec::new());
    for u in 0..base.n_users() {
        for &i in base.user_items(u) {
            us.push(u as i64);
            is.push(i as i64);
        }
    }
    let train = Interactions::from_indices(&us, &is, None, Some(81), Some(60), crate::data::Duplicates::Sum, Default::default()).unwrap();
    let start = Factors::random(81, 60, 8, 0.05, 0, Device::Cpu).unwrap();
    for (similarity, bias, sampler) in [("cosine", false, "uniform"), ("dot", true, "warp")] {
        let json = format!(
            r#"{{"factors": 8, "epochs": 8, "lr": 0.05, "batch_size": 64, "similarity": "{similarity}", "item_bias": {bias}, "reg": 0.001,
                "sampler": {{"kind": "{sampler}"}}, "optimizer": "sparse_adam", "device": "cpu", "threads": 1}}"#
        );
        let mut m = Model::<Triplet>::from_json(&json).unwrap();
        let losses: Vec<f64> = fit(&mut m, &train).history.iter().map(|h| h.loss).collect();
        assert!(losses.last().unwrap() < &(losses[0] * 0.9), "{similarity}: loss did not fall: {losses:?}");
        let f = m.params().unwrap();
        assert!(f.users.get(80).equal(&start.users.get(80)), "an untouched user row moved");
        assert!(!f.users.get(0).equal(&start.users.get(0)));
        assert_eq!(f.item_bias.abs().sum(Kind::Float).double_value(&[]) > 0.0, bias);
    }
    let json = r#"{"epochs": 6, "batch_size": 64, "hidden": [16], "lr": 0.01, "optimizer": "sparse_adam", "device": "cpu", "threads": 1}"#;
    let mut m = Model::<DeepTriplet>::from_json(json).unwrap();
    let losses: Vec<f64> = fit(&mut m, &train).history.iter().map(|h| h.loss).collect();
    assert!(losses.last().unwrap() < &(losses[0] * 0.9), "deep: loss did not fall: {losses:?}");
    let init = DeepParams::new(m.config(), 81, 60, Device::Cpu).unwrap();
    let p = m.params().unwrap();
    assert!(p.users.get(80).equal(&init.users.get(80)), "an untouched user row moved");
    let (w, w0) = (p.mlp.first_layer_split(32).unwrap().0, init.mlp.first_layer_split(32).unwrap().0);
    assert!(!w.equal(&w0), "the MLP did not train");
    assert_eq!(m.score(&[0, 80]).unwrap().size(), [2, 60]);
}

#[test]
fn config_errors_name_the_parameter() {
    let err = |kind: &str, json: &str| crate::models::create(kind, json).err().unwrap().to_string();
    assert!(err("triplet", r#"{"similarity": "euclid"}"#).contains("similarity"));
    assert!(err("deep_triplet", r#"{"dropout": 1.0}"#).contains("dropout"));
    assert!(err("triplet", r#"{"margin": -1.0}"#).contains("margin"));
    let e = err("triplet", r#"{"sampler": {"kind": "warp", "typo": 1}}"#);
    assert!(e.contains("typo") && e.contains("sampler"), "{e}");
    assert!(err("deep_triplet", r#"{"optimizer": "adagrad"}"#).contains("optimizer"));
    let e = err("triplet", r#"{"epochs": 1.5}"#);
    assert!(e.starts_with("epochs: "), "{e}");
}

/// The native sparse step (native.rs) against the libtorch step with the same optimiser:
/// the same parameters after two epochs (float rounding apart) and the same losses, for
/// cosine and dot, with and without the item bias and L2.
#[test]
fn native_sparse_step_matches_the_libtorch_one() {
    use crate::train::{fit_loop, BatchStep, LoopConfig};
    let train = data();
    for (similarity, bias, reg) in [("cosine", false, 0.0), ("dot", true, 0.01), ("cosine", true, 0.001)] {
        let json = format!(
            r#"{{"factors": 8, "epochs": 2, "lr": 0.01, "batch_size": 64, "similarity": "{similarity}", "item_bias": {bias}, "reg": {reg},
                "optimizer": "sparse_adam", "margin": 0.5, "device": "cpu", "threads": 1}}"#
        );
        let cfg: TripletConfig = crate::models::core::parse_config("triplet", &json).unwrap();
        let sampler = TripleSampler::with_config(&train, 1, &cfg.sampler, &SideInfo::default()).unwrap();
        let loop_cfg = LoopConfig { epochs: 2, batch_size: 64, seed: 0, threads: 1, start_epoch: 0, sync: None };
        let run = |native: bool| {
            let p = Factors::random(80, 60, 8, 0.05, 0, Device::Cpu).unwrap();
            if bias {
                tch::no_grad(|| p.item_bias.shallow_clone().copy_(&(Tensor::arange(60, (Kind::Float, Device::Cpu)) * 0.01)));
            }
            let mut step: Box<dyn BatchStep<TripleSampler<'_>>> = if native {
                Box::new(super::native::NativeSparseStep::new(p.handles(), &cfg).unwrap())
            } else {
                let towers = TripletTowers { p: p.handles(), cosine: similarity == "cosine", bias, reg };
                Box::new(TorchStep::new(towers, &p.store.vs, margin_step(cfg.margin, &cfg.common, &cfg.sampler, 60, "sparse_adam").unwrap()).unwrap())
            };
            let r = fit_loop(step.as_mut(), &sampler, &loop_cfg, &mut || Ok(Default::default()), &mut |_, _| Ok(()), &mut |_| Control::Continue).unwrap();
            drop(step);
            (p, r.history.iter().map(|h| h.loss).collect::<Vec<_>>())
        };
        let ((a, la), (b, lb)) = (run(true), run(false));
        for (x, y) in [(&a.users, &b.users), (&a.items, &b.items), (&a.item_bias, &b.item_bias)] {
            assert!(x.allclose(y, 1e-4, 1e-5, false), "{similarity} bias={bias} reg={reg}: max diff {}", (x - y).abs().max().double_value(&[]));
        }
        for (x, y) in la.iter().zip(&lb) {
            assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0), "{similarity}: losses {la:?} vs {lb:?}");
        }
        assert!(!a.users.equal(&Factors::random(80, 60, 8, 0.05, 0, Device::Cpu).unwrap().users), "the step moved nothing");
    }
}

/// Scoring blocks are sized by bytes: wider layers or more items give fewer users a block,
/// never fewer than one.
#[test]
fn deep_scoring_blocks_are_sized_by_bytes() {
    use super::deep::users_per_block;
    let narrow = DeepTripletConfig::default();
    let wide = DeepTripletConfig { hidden: vec![4096, 4096], ..DeepTripletConfig::default() };
    assert!(users_per_block(&wide, 10_000) < users_per_block(&narrow, 10_000));
    assert!(users_per_block(&narrow, 100_000) < users_per_block(&narrow, 1_000));
    assert_eq!(users_per_block(&wide, usize::MAX / 2), 1);
}

/// The deep model's native sparse step (deep_native.rs) computes the libtorch step's
/// gradient: for a batch, the MLP's weight and bias gradients and the embedding rows'
/// (scattered into the tables) match autograd's of `TorchStep::losses`, with one and two
/// hidden layers, with and without L2, without dropout (whose masks come from different
/// generators). Compared before the optimiser on purpose: a first-layer bias gradient is a sum
/// of terms that cancel (a sample's positive and negative rows), so its last bits differ with
/// the order of summation and Adam's m / sqrt(v) turns those bits into lr-sized moves.
#[test]
fn deep_native_gradient_is_autograds() {
    use crate::train::torch_step::TorchStep;
    let train = data();
    // Margin 0: about half the samples have no loss (the backward skips them).
    for (hidden, reg, margin) in [("[16]", 0.0, 0.5), ("[16, 8]", 0.01, 0.5), ("[16, 8]", 0.01, 0.0)] {
        let json = format!(
            r#"{{"factors": 8, "user_factors": 6, "hidden": {hidden}, "reg": {reg}, "dropout": 0.0, "epochs": 2, "lr": 0.01,
                "batch_size": 64, "optimizer": "sparse_adam", "margin": {margin}, "device": "cpu", "threads": 1}}"#
        );
        let cfg: DeepTripletConfig = crate::models::core::parse_config("deep_triplet", &json).unwrap();
        let sampler = TripleSampler::with_config(&train, 1, &cfg.sampler, &SideInfo::default()).unwrap();
        let mut batch = Default::default();
        sampler.fill(&mut batch, 64, 0, 3);
        let p = DeepParams::new(&cfg, 80, 60, Device::Cpu).unwrap();
        let mut native = super::deep_native::NativeDeepStep::new(&p.store.vs, &p.users, &p.items, &p.mlp, cfg.margin, cfg.reg, cfg.common.lr).unwrap();
        let (loss, d_u, d_x) = native.gradients(&batch).unwrap();
        let step = TorchStep::new(p.towers(true, cfg.reg), &p.store.vs, margin_step(cfg.margin, &cfg.common, &cfg.sampler, 60, "sparse_adam").unwrap()).unwrap();
        let (data, total) = step.losses(&batch).unwrap();
        if margin == 0.0 {
            // Some samples with a loss and some without.
            let t = p.towers(false, 0.0);
            let u = t.user_vectors(&Tensor::from_slice(&batch.users), false).unwrap();
            let s = |i: &[i64]| t.match_scores(&u, &t.item_vectors(&Tensor::from_slice(i), false).unwrap().unsqueeze(1)).unwrap();
            let with_loss = (s(&batch.neg) - s(&batch.pos)).gt(0.0).sum(Kind::Int64).int64_value(&[]);
            assert!(0 < with_loss && with_loss < 64, "{with_loss} of 64 samples with a loss");
        }
        assert!((loss - data.double_value(&[])).abs() < 1e-4 * loss.max(1.0), "{hidden}: loss {loss} vs {data:?}");
        let linears = p.mlp.linears();
        let mut wrt = vec![p.users.shallow_clone(), p.items.shallow_clone()];
        for (w, b) in &linears {
            wrt.push(w.shallow_clone());
            wrt.push(b.as_ref().unwrap().shallow_clone());
        }
        let grads = Tensor::run_backward(&[&total], &wrt, false, false);
        let scatter = |g: &[f32], rows: &[i64], n: i64, width: i64| {
            Tensor::zeros([n, width], (Kind::Float, Device::Cpu)).index_add(0, &Tensor::from_slice(rows), &Tensor::from_slice(g).view([-1, width]))
        };
        let items: Vec<i64> = batch.pos.iter().chain(&batch.neg).copied().collect();
        let mut ours = vec![scatter(&d_u, &batch.users, 80, 6), scatter(&d_x, &items, 60, 8)];
        for (k, (w, _)) in linears.iter().enumerate() {
            let (dw, db) = native.layer_gradient(k);
            ours.push(Tensor::from_slice(dw).view_as(w));
            ours.push(Tensor::from_slice(db));
        }
        for (k, (x, y)) in ours.iter().zip(&grads).enumerate() {
            assert!(x.allclose(y, 1e-4, 1e-6, false), "{hidden} reg={reg}: gradient {k} max diff {}", (x - y).abs().max().double_value(&[]));
        }
        assert!(grads[2].abs().sum(Kind::Float).double_value(&[]) > 0.0, "no gradient to compare");
    }
}

/// The native step trains (the loss falls over the epochs), its state has the libtorch
/// step's names (a checkpoint of one resumes the other), and with dropout its fit is
/// repeatable while another seed's masks give other weights.
#[test]
fn deep_native_step_trains_with_its_own_dropout_masks() {
    use crate::train::torch_step::TorchStep;
    use crate::train::{fit_loop, BatchStep, LoopConfig};
    let train = data();
    let json = r#"{"factors": 8, "user_factors": 6, "hidden": [12], "reg": 0.001, "dropout": 0.3, "epochs": 6, "lr": 0.01,
                   "batch_size": 64, "optimizer": "sparse_adam", "margin": 0.5, "device": "cpu", "threads": 1}"#;
    let cfg: DeepTripletConfig = crate::models::core::parse_config("deep_triplet", json).unwrap();
    let sampler = TripleSampler::with_config(&train, 1, &cfg.sampler, &SideInfo::default()).unwrap();
    // Every run from the same start (the MLP's initialisation draws from libtorch's global
    // generator, which tests running beside this one reseed).
    let start = DeepParams::new(&cfg, 80, 60, Device::Cpu).unwrap();
    let run = |seed: u64| {
        let mut p = DeepParams::new(&cfg, 80, 60, Device::Cpu).unwrap();
        p.store.vs.copy(&start.store.vs).unwrap();
        let mut step = super::deep_native::NativeDeepStep::new(&p.store.vs, &p.users, &p.items, &p.mlp, cfg.margin, cfg.reg, cfg.common.lr).unwrap();
        let loop_cfg = LoopConfig { epochs: 6, batch_size: 64, seed, threads: 1, start_epoch: 0, sync: None };
        let r = fit_loop(&mut step, &sampler, &loop_cfg, &mut || Ok(Default::default()), &mut |_, _| Ok(()), &mut |_| Control::Continue).unwrap();
        let names: std::collections::BTreeSet<String> = step.state().into_iter().map(|(n, _)| n).collect();
        let mut vars: Vec<(String, Tensor)> = p.store.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        (vars, r.history.iter().map(|h| h.loss).collect::<Vec<_>>(), names)
    };
    let (a, losses, names) = run(0);
    assert!(losses.last().unwrap() < &(losses[0] * 0.9), "loss did not fall: {losses:?}");
    let (again, _, _) = run(0);
    assert!(a.iter().zip(&again).all(|((_, x), (_, y))| x.equal(y)), "the native fit is not repeatable");
    let (other, _, _) = run(1);
    assert!(a.iter().zip(&other).any(|((_, x), (_, y))| !x.equal(y)), "the seed changed nothing");
    let p = DeepParams::new(&cfg, 80, 60, Device::Cpu).unwrap();
    let torch = TorchStep::new(p.towers(true, cfg.reg), &p.store.vs, margin_step(cfg.margin, &cfg.common, &cfg.sampler, 60, "sparse_adam").unwrap()).unwrap();
    let torch_names: std::collections::BTreeSet<String> = torch.state().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, torch_names);
}
