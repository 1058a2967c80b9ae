//! Tests of the sampled softmax.

use super::*;
use crate::sampling::rng::stream_rng;

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
