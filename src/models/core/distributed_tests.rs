//! Training on several processes, with thread ranks ([`ThreadGroup`]) in place of
//! torch.distributed: two ranks give the parameters of one process with the same global batch.

use std::sync::Arc;

use crate::data::synthetic::{synthetic, SyntheticConfig};
use crate::data::{Interactions, SideInfo};
use crate::models::{create, FitOptions, Recommender};
use crate::train::distributed::{Collective, ProcessGroup, ThreadGroup};
use crate::train::{Control, EpochLog};

fn data() -> Interactions {
    synthetic(&SyntheticConfig { n_users: 60, n_items: 40, ..Default::default() }).unwrap()
}

fn fit(kind: &str, cfg: &str, train: &Interactions, group: Option<Arc<dyn Collective>>) -> crate::Result<Box<dyn Recommender>> {
    let mut m = create(kind, cfg)?;
    let options = FitOptions { group: group.map(ProcessGroup), ..Default::default() };
    m.fit(train, &SideInfo::default(), None, &mut |_| Control::Continue, &options)?;
    Ok(m)
}

/// Each rank's fitted model, the ranks on threads.
fn fit_ranks(kind: &str, cfg: &str, trains: Vec<Interactions>) -> Vec<crate::Result<Box<dyn Recommender>>> {
    let groups = ThreadGroup::group(trains.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .into_iter()
            .zip(trains)
            .map(|(g, train)| s.spawn(move || fit(kind, cfg, &train, Some(Arc::new(g) as Arc<dyn Collective>))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn max_diff(a: &dyn Recommender, b: &dyn Recommender) -> f64 {
    let (sa, sb) = (a.state().unwrap(), b.state().unwrap());
    assert_eq!(sa.len(), sb.len());
    sa.iter()
        .zip(&sb)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            let d = (ta - tb).abs().max().double_value(&[]);
            d
        })
        .fold(0.0, f64::max)
}

fn losses(h: &[EpochLog]) -> Vec<f64> {
    h.iter().map(|l| l.loss).collect()
}

/// Two ranks against one process, for the steps of every kind: SGD (BPR on libtorch), dense
/// Adam with a mean loss (the triplet models), the row-sparse Adam (the libtorch step's and
/// the triplet's native one), the sampled softmax's own step with per-row negatives, and
/// ranks whose share of a batch is empty; the deep triplet's MLP, initialised from each
/// thread's own generator (`nets::random`: threads as ranks draw what processes would).
#[test]
fn two_ranks_train_as_one_process() {
    let train = data();
    let cases = [
        ("bpr", r#"{"backend": "torch", "factors": 8, "epochs": 2, "batch_size": 64, "threads": 1, "lr": 0.05}"#),
        ("triplet", r#"{"factors": 8, "epochs": 2, "batch_size": 32, "threads": 1}"#),
        ("triplet", r#"{"factors": 8, "epochs": 2, "batch_size": 33, "threads": 1, "optimizer": "sparse_adam"}"#),
        ("triplet", r#"{"factors": 8, "epochs": 2, "batch_size": 32, "threads": 1, "optimizer": "sparse_adam", "sampler": {"kind": "warp", "max_sampled": 5}}"#),
        ("sampled_softmax", r#"{"factors": 8, "epochs": 2, "batch_size": 31, "threads": 1, "n_negatives": 5, "shared_negatives": false}"#),
        ("sampled_softmax", r#"{"factors": 8, "epochs": 2, "batch_size": 32, "threads": 1, "n_negatives": 5}"#),
        ("deep_triplet", r#"{"factors": 8, "user_factors": 4, "hidden": [8], "dropout": 0.0, "epochs": 2, "batch_size": 32, "threads": 1}"#),
        ("deep_triplet", r#"{"factors": 8, "user_factors": 4, "hidden": [8], "dropout": 0.0, "epochs": 2, "batch_size": 33, "threads": 1, "optimizer": "sparse_adam"}"#),
        // 1069 interactions: the last batch of each epoch has 1 sample, rank 1's share none.
        ("triplet", r#"{"factors": 8, "epochs": 2, "batch_size": 1068, "threads": 1}"#),
        ("triplet", r#"{"factors": 8, "epochs": 2, "batch_size": 1068, "threads": 1, "optimizer": "sparse_adam"}"#),
        ("bpr", r#"{"backend": "torch", "factors": 8, "epochs": 2, "batch_size": 1068, "threads": 1}"#),
        ("sampled_softmax", r#"{"factors": 8, "epochs": 2, "batch_size": 1068, "threads": 1, "n_negatives": 5}"#),
    ];
    for (kind, cfg) in cases {
        let one = fit(kind, cfg, &train, None).unwrap_or_else(|e| panic!("{kind} {cfg}: {e}"));
        let ranks = fit_ranks(kind, cfg, vec![train.clone(), train.clone()]);
        let ranks: Vec<_> = ranks.into_iter().map(|r| r.unwrap_or_else(|e| panic!("{kind} {cfg}: {e}"))).collect();
        // Float sums in another order (the ranks' halves, then their sum): 1e-4 after two
        // epochs of Adam on parameters of size ~0.1-1.
        for r in &ranks {
            let d = max_diff(one.as_ref(), r.as_ref());
            assert!(d < 1e-4, "{kind} {cfg}: parameters differ by {d}");
            let (a, b) = (losses(one.history()), losses(r.history()));
            assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-4 * x.abs().max(1.0)), "{kind}: losses {a:?} vs {b:?}");
        }
        assert_eq!(max_diff(ranks[0].as_ref(), ranks[1].as_ref()), 0.0, "{kind}: the ranks differ");
    }
}

#[test]
fn ranks_with_other_data_fail_on_every_rank() {
    let other = synthetic(&SyntheticConfig { n_users: 60, n_items: 40, seed: 9, ..Default::default() }).unwrap();
    let cfg = r#"{"factors": 4, "epochs": 1, "threads": 1}"#;
    for r in fit_ranks("triplet", cfg, vec![data(), other]) {
        let e = r.err().expect("the fit must fail").to_string();
        assert!(e.contains("differ between ranks"), "{e}");
    }
}

#[test]
fn the_native_bpr_kernel_asks_for_the_torch_backend() {
    let cfg = r#"{"factors": 4, "epochs": 1, "threads": 1}"#;
    for r in fit_ranks("bpr", cfg, vec![data(), data()]) {
        let e = r.err().expect("the fit must fail").to_string();
        assert!(e.contains("backend='torch'"), "{e}");
    }
}

/// A stop on one rank (its callback, Ctrl-C) stops every rank after the same step.
#[test]
fn a_stop_on_one_rank_stops_all() {
    let train = data();
    let groups = ThreadGroup::group(2);
    let cfg = r#"{"factors": 4, "epochs": 5, "threads": 1}"#;
    let reports: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = groups
            .into_iter()
            .map(|g| {
                let train = &train;
                s.spawn(move || {
                    let rank = g.rank();
                    let mut m = create("triplet", cfg).unwrap();
                    let options = FitOptions { group: Some(ProcessGroup(Arc::new(g))), ..Default::default() };
                    let mut obs = |ev: &crate::train::Event<'_>| match ev {
                        crate::train::Event::EpochEnd(log) if rank == 1 && log.epoch == 2 => Control::Stop,
                        _ => Control::Continue,
                    };
                    m.fit(train, &SideInfo::default(), None, &mut obs, &options).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in reports {
        assert!(r.stopped);
        assert_eq!(r.history.len(), 2);
    }
}
