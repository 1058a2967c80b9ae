//! The core end to end, without Python: data -> split -> fit (both backends) -> metrics ->
//! checkpoint round trip.

use fashionrec::data::split::leave_one_out;
use fashionrec::data::synthetic::{synthetic, SyntheticConfig};
use fashionrec::data::{Interactions, SideInfo};
use fashionrec::metrics::{evaluate_block, EvalOptions, Metric, Validation};
use fashionrec::models::{checkpoint, create, Recommender};
use fashionrec::tensors::to_vec_f32;
use fashionrec::train::{Control, Event};

fn data() -> Vec<Interactions> {
    let cfg = SyntheticConfig { n_users: 400, n_items: 300, mean_items_per_user: 20.0, seed: 11, ..Default::default() };
    leave_one_out(&synthetic(&cfg).unwrap(), false, 11).unwrap()
}

fn mean_metrics(model: &dyn Recommender, train: &Interactions, test: &Interactions) -> Vec<f64> {
    let users: Vec<u32> = test.active_users();
    let idx: Vec<i64> = users.iter().map(|&u| u as i64).collect();
    let scores = to_vec_f32(&model.score(&idx).unwrap()).unwrap();
    let metrics = [Metric::Auc, Metric::Ndcg(10)];
    let out = evaluate_block(&scores, &users, test, &[train], &metrics, EvalOptions::default(), None).unwrap();
    out.iter().map(|v| v.iter().sum::<f64>() / v.len() as f64).collect()
}

fn fit(kind: &str, config: &str, train: &Interactions) -> Box<dyn Recommender> {
    let mut model = create(kind, config).unwrap();
    let mut epochs = 0;
    model
        .fit(train, &SideInfo::default(), None, &mut |e: &Event<'_>| {
            if let Event::EpochEnd(log) = e {
                assert!(log.loss.is_finite());
                epochs += 1;
            }
            Control::Continue
        }, &Default::default())
        .unwrap();
    assert_eq!(epochs, model.history().len());
    model
}

#[test]
fn bpr_beats_popularity_on_both_backends() {
    let parts = data();
    let (train, test) = (&parts[0], &parts[1]);
    let pop = mean_metrics(fit("popularity", "{}", train).as_ref(), train, test);
    let native = fit("bpr", r#"{"factors": 16, "epochs": 30, "device": "cpu"}"#, train);
    let torch = fit("bpr", r#"{"factors": 16, "epochs": 30, "device": "cpu", "backend": "torch"}"#, train);
    let (n, t) = (mean_metrics(native.as_ref(), train, test), mean_metrics(torch.as_ref(), train, test));
    assert!(n[0] > pop[0] + 0.05, "native AUC {} vs popularity {}", n[0], pop[0]);
    assert!((n[0] - t[0]).abs() < 0.02, "native AUC {} vs torch {}", n[0], t[0]);
    let h = native.history();
    assert!(h.last().unwrap().loss < h[0].loss);
}

#[test]
fn observer_can_stop_training() {
    let parts = data();
    let mut model = create("bpr", r#"{"factors": 8, "epochs": 50, "device": "cpu"}"#).unwrap();
    let report = model
        .fit(&parts[0], &SideInfo::default(), None, &mut |e: &Event<'_>| match e {
            Event::EpochEnd(log) if log.epoch == 4 => Control::Stop,
            _ => Control::Continue,
        }, &Default::default())
        .unwrap();
    assert!(report.stopped);
    assert_eq!(model.history().len(), 4);
    assert!(model.score(&[0, 1]).is_ok());
}

#[test]
fn validation_metrics_are_logged_every_epoch() {
    let parts = data();
    let (train, test) = (&parts[0], &parts[1]);
    let v = Validation {
        data: test,
        exclude: vec![train],
        metrics: vec![Metric::Auc, Metric::Ndcg(10)],
        options: EvalOptions::default(),
    };
    let mut model = create("bpr", r#"{"factors": 16, "epochs": 5, "device": "cpu"}"#).unwrap();
    model.fit(train, &SideInfo::default(), Some(&v), &mut |_: &Event<'_>| Control::Continue, &Default::default()).unwrap();
    let h = model.history();
    assert_eq!(h.len(), 5);
    let auc: Vec<f64> = h.iter().map(|l| l.metrics["val_auc"]).collect();
    assert!(h.iter().all(|l| l.metrics.contains_key("val_ndcg@10")));
    // The logged value after the last epoch is the model's final score.
    let last = mean_metrics(model.as_ref(), train, test);
    assert!((auc[4] - last[0]).abs() < 1e-12, "{auc:?} vs {last:?}");
    assert!(auc[4] > auc[0]);
}

#[test]
fn checkpoint_round_trip_is_exact() {
    let parts = data();
    let model = fit("bpr", r#"{"factors": 8, "epochs": 3, "device": "cpu", "threads": 1}"#, &parts[0]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    checkpoint::save(model.as_ref(), &path).unwrap();
    let loaded = checkpoint::load(&path, None).unwrap();
    assert_eq!(loaded.kind(), "bpr");
    assert_eq!(loaded.config_json(), model.config_json());
    assert_eq!(loaded.history(), model.history());
    let a = to_vec_f32(&model.score(&[0, 5, 9]).unwrap()).unwrap();
    let b = to_vec_f32(&loaded.score(&[0, 5, 9]).unwrap()).unwrap();
    assert_eq!(a, b);
    assert!(loaded.ids().unwrap().same_as(parts[0].ids()));

    // Any changed byte of the data (or of the metadata) is caught by the checksum.
    let good = std::fs::read(&path).unwrap();
    for at in [good.len() - 1, good.len() / 2] {
        let mut bad = good.clone();
        bad[at] ^= 0x04;
        std::fs::write(&path, &bad).unwrap();
        let err = checkpoint::load(&path, None).err().unwrap().to_string();
        assert!(err.contains("m.safetensors") && err.contains("checksum"), "{err}");
    }

    std::fs::write(&path, b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    let err = checkpoint::load(&path, None).err().unwrap().to_string();
    assert!(err.contains("m.safetensors") && err.contains("not a fashionrec model"), "{err}");
}
