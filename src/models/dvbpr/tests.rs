//! DVBPR end to end on tiny generated images: fit, score, save / load, resume, the towers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tch::{nn, Device, Tensor};

use super::net::{build_net, lock, Pretrained};
use super::*;
use crate::data::Duplicates;
use crate::images::bank::{BankSpec, ImageBank, OnError};
use crate::images::decode::tests::tiny_png;
use crate::images::resize::Filter;
use crate::images::source::ImageSource;
use crate::models::cae::CaeConfig;
use crate::models::core::Common;
use crate::models::{FitOptions, Recommender};
use crate::nets::inception::InceptionV3;

/// 24 items, red (even) or blue (odd) 2x2 patches upsampled to 32x32; item 23 has a
/// broken file when `broken`. 12 users: even users like red items, odd users blue ones.
fn data(dir: &Path, broken: bool) -> (Interactions, SideInfo) {
    let paths = (0..24)
        .map(|i| {
            let (r, b) = if i % 2 == 0 { (200u8, 20u8) } else { (20, 200) };
            let v = (i * 3) as u8;
            let mut png = tiny_png(&[r, v, b, r, 40, b, r, v, b, r, 90, b]);
            if broken && i == 23 {
                png.truncate(20);
            }
            let p = dir.join(format!("{i}.png"));
            std::fs::write(&p, png).unwrap();
            p
        })
        .collect();
    let spec = BankSpec { height: 32, width: 32, filter: Filter::Bilinear, reduce: true };
    let on_error = if broken { OnError::Skip } else { OnError::Raise };
    let (bank, _) = ImageBank::build(&ImageSource::files(paths), spec, on_error, crate::images::DEFAULT_MAX_PIXELS, None, 1, &mut |_, _| true).unwrap();
    let (mut us, mut is) = (Vec::new(), Vec::new());
    for u in 0..12i64 {
        // Items 0..20 are warm (interacted with); 20..24 are cold.
        for i in (0..20i64).filter(|i| i % 2 == u % 2).take(6) {
            us.push(u);
            is.push(i);
        }
    }
    if broken {
        us.push(0);
        is.push(23);
    }
    let train = Interactions::from_indices(&us, &is, None, Some(12), Some(24), Duplicates::Sum, Default::default()).unwrap();
    let images = ItemImages::new(Arc::new(bank), None).unwrap();
    (train, SideInfo { images: Some(images), ..Default::default() })
}

type Dvbpr = Model<super::Dvbpr>;

fn config(epochs: usize) -> DvbprConfig {
    DvbprConfig {
        factors: 4,
        image_size: 32,
        common: Common { device: "cpu".into(), ..Common::new(epochs, 1e-3, 16) },
        embed_batch: 10,
        ..Default::default()
    }
}

fn options(checkpoint: Option<&Path>, resume: bool) -> FitOptions {
    FitOptions { checkpoint_dir: checkpoint.map(Path::to_path_buf), resume, group: None }
}

fn fit_with(cfg: DvbprConfig, train: &Interactions, side: &SideInfo, options: &FitOptions) -> Result<Dvbpr> {
    let mut m = Dvbpr::new(cfg)?;
    m.fit(train, side, None, &mut |_| Control::Continue, options)?;
    Ok(m)
}

#[test]
fn fits_scores_cold_items_saves_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (train, side) = data(dir.path(), false);
    let full = fit_with(config(3), &train, &side, &options(Some(&dir.path().join("a")), false)).unwrap();
    let s = full.score(&[0, 1]).unwrap();
    assert_eq!(s.size(), vec![2, 24]);
    assert_eq!(full.item_vectors().unwrap().size(), vec![24, 4]);
    assert_eq!(full.history().len(), 3);
    assert!(full.history().iter().all(|h| h.loss.is_finite()));
    // Interrupted after 2 epochs, then resumed to 3: bit for bit the uninterrupted fit (its
    // dropout masks come from this thread's generator, seeded per epoch).
    let ck = dir.path().join("b");
    let mut part = Dvbpr::new(config(3)).unwrap();
    let stop_after_2 = &mut |ev: &crate::train::Event<'_>| match ev {
        crate::train::Event::EpochEnd(log) if log.epoch == 2 => Control::Stop,
        _ => Control::Continue,
    };
    part.fit(&train, &side, None, stop_after_2, &options(Some(&ck), false)).unwrap();
    let resumed = fit_with(config(3), &train, &side, &options(Some(&ck), true)).unwrap();
    assert_eq!(resumed.history().len(), 3);
    assert_eq!(resumed.history()[..2], part.history()[..]);
    let loss = |m: &Dvbpr| m.history().iter().map(|h| h.loss).collect::<Vec<_>>();
    assert_eq!(loss(&resumed), loss(&full));
    assert!(resumed.score(&[0, 1]).unwrap().equal(&s), "the resumed fit differs from the uninterrupted one");
    // Other settings do not resume from that checkpoint.
    let mut other = config(3);
    other.common.lr = 5e-4;
    let e = fit_with(other, &train, &side, &options(Some(&ck), true)).err().unwrap().to_string();
    assert!(e.contains("other settings"), "{e}");
    // Saved and loaded: same scores, without the images.
    let path = dir.path().join("m.safetensors");
    crate::models::checkpoint::save(&full, &path).unwrap();
    let back = crate::models::checkpoint::load(&path, Some("cpu")).unwrap();
    assert!(back.score(&[0, 1]).unwrap().equal(&s));
    // New images embed as the catalogue's did.
    let new = full.embed_new_items(&side).unwrap();
    assert!((new - full.item_vectors().unwrap()).abs().max().double_value(&[]) < 1e-5);
}

#[test]
fn cae_tower_freezes_a_given_encoder_and_saves_it() {
    let dir = tempfile::tempdir().unwrap();
    let (train, side) = data(dir.path(), false);
    let cae_cfg = CaeConfig { latent: 6, image_size: 32, channels: 4, depth: 3, epochs: 1, lr: 1e-2, batch_size: 8, device: "cpu".into(), seed: 0 };
    let mut cae = Autoencoder::new(cae_cfg).unwrap();
    cae.fit(&side.images.as_ref().unwrap().bank, &mut |_| Control::Continue).unwrap();
    let encoder = cae.encoder_state().unwrap();

    let mut m = Dvbpr::new(DvbprConfig { tower: "cae".into(), ..config(2) }).unwrap();
    m.set_encoder(&cae).unwrap();
    let c = m.config();
    assert_eq!((c.latent, c.cae_channels, c.cae_depth), (6, 4, 3), "the encoder's shape");
    m.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap();
    assert!(m.pretrain_history().is_empty(), "given, not pretrained");
    // Trained: the head and the user vectors only; the encoder is saved unchanged.
    let trained: Vec<String> = m.params().unwrap().trainable().into_iter().map(|(n, _)| n).collect();
    assert!(trained.contains(&"theta".to_string()) && trained.iter().all(|n| n == "theta" || n.starts_with("tower.head.")), "{trained:?}");
    let state = m.state().unwrap();
    let frozen: Vec<_> = state.iter().filter_map(|(n, t)| n.strip_prefix(FROZEN).map(|n| (n, t))).collect();
    assert_eq!(frozen.len(), encoder.len());
    assert!(frozen.iter().all(|(n, t)| t.equal(&encoder[*n])));
    let path = dir.path().join("m.safetensors");
    crate::models::checkpoint::save(&m, &path).unwrap();
    let back = crate::models::checkpoint::load(&path, Some("cpu")).unwrap();
    assert!(back.score(&[0, 1]).unwrap().equal(&m.score(&[0, 1]).unwrap()));

    // Without an encoder, fit pretrains one on the bank.
    let mut p = Dvbpr::new(DvbprConfig { tower: "cae".into(), latent: 5, cae_channels: 4, cae_depth: 2, pretrain_epochs: 2, ..config(1) }).unwrap();
    p.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap();
    assert_eq!(p.pretrain_history().len(), 2);
    assert_eq!(p.item_vectors().unwrap().size(), [24, 4]);

    let mut cnnf = Dvbpr::new(config(1)).unwrap();
    assert!(cnnf.set_encoder(&cae).unwrap_err().to_string().contains("tower='cae'"));
    let mut wide = Dvbpr::new(DvbprConfig { tower: "cae".into(), image_size: 64, ..config(1) }).unwrap();
    assert!(wide.set_encoder(&cae).unwrap_err().to_string().contains("takes 32x32 images"));
}

/// Frozen: the backbone outside the model's store, saved as frozen state, only the head's
/// fc penalty; fine-tuned: in the store, trained, its conv weights under reg_cnn.
#[test]
fn inception_tower_frozen_or_fine_tuned() {
    let vs = nn::VarStore::new(Device::Cpu);
    let backbone = InceptionV3::new(&vs.root(), true);
    let w: HashMap<String, Tensor> = backbone.named_parameters().iter().map(|(n, t)| (n.clone(), t.detach().copy())).collect();
    let source = Pretrained { map: &w, prefix: "", what: "test weights".into() };
    for train_backbone in [false, true] {
        let cfg = DvbprConfig { tower: "inception_v3".into(), image_size: 75, weights: Some("w.safetensors".into()), train_backbone, ..config(1) };
        let net = build_net(&cfg, Device::Cpu, (3, 5), Some(&source)).unwrap();
        let in_store = net.trainable().iter().filter(|(n, _)| n.starts_with("tower.backbone.")).count();
        assert_eq!(in_store > 0, train_backbone);
        assert_eq!(net.store.buffers.iter().any(|(n, _)| n.starts_with(FROZEN)), !train_backbone);
        let parts: Vec<_> = lock(&net.tower).penalised().into_iter().map(|p| p.0).collect();
        assert_eq!(parts, if train_backbone { vec!["fc", "conv"] } else { vec!["fc"] });
    }
    let e = Dvbpr::new(DvbprConfig { tower: "inception_v3".into(), image_size: 75, ..Default::default() }).err().unwrap().to_string();
    assert!(e.contains("needs weights="), "{e}");
    let e = Dvbpr::new(DvbprConfig { tower: "inception_v3".into(), image_size: 64, weights: Some("w".into()), ..Default::default() });
    assert!(e.err().unwrap().to_string().contains("at least 75"));
    assert!(Dvbpr::new(DvbprConfig { weights: Some("w".into()), ..Default::default() }).is_err(), "weights for cnnf");
}

#[test]
fn bad_input_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (train, side) = data(dir.path(), true);
    let mut m = Dvbpr::new(config(1)).unwrap();
    let e = m.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap_err().to_string();
    assert!(e.contains("training item 23 has no image"), "{e}");
    let mut m = Dvbpr::new(DvbprConfig { image_size: 64, ..config(1) }).unwrap();
    let e = m.fit(&train, &side, None, &mut |_| Control::Continue, &Default::default()).unwrap_err().to_string();
    assert!(e.contains("32x32") && e.contains("image_size=64"), "{e}");
    let e = m.fit(&train, &SideInfo::default(), None, &mut |_| Control::Continue, &Default::default()).unwrap_err().to_string();
    assert!(e.contains("needs images"), "{e}");
    assert!(Dvbpr::new(DvbprConfig { tower: "vgg".into(), ..Default::default() }).is_err());
    assert!(Dvbpr::new(DvbprConfig { image_size: 16, ..Default::default() }).err().unwrap().to_string().contains("too small"));
}

/// DVBPR's parameter count against its stores (built, saved, restored): CNN-F, the CAE tower
/// (its frozen encoder saved as buffers), Inception v3 frozen and fine-tuned.
#[test]
fn counts_equal_the_stores() {
    use crate::models::core::count_tests::{assert_counts, assert_counts_of};
    let dir = tempfile::tempdir().unwrap();
    let (train, side) = data(dir.path(), false);
    let none = |_: &str| false;
    for (factors, fc_width) in [(4, 8), (3, 17)] {
        assert_counts::<super::Dvbpr>(&DvbprConfig { factors, fc_width, ..config(1) }, &train, &side, &none);
    }
    let cae_cfg = CaeConfig { latent: 6, image_size: 32, channels: 4, depth: 3, epochs: 1, lr: 1e-2, batch_size: 8, device: "cpu".into(), seed: 0 };
    let mut cae = Autoencoder::new(cae_cfg).unwrap();
    cae.fit(&side.images.as_ref().unwrap().bank, &mut |_| Control::Continue).unwrap();
    for head in [None, Some(crate::nets::towers::HeadConfig { hidden: 0, dropout: 0.5 })] {
        let cfg = DvbprConfig { tower: "cae".into(), head, ..config(1) }.with_encoder(&cae).unwrap();
        assert_counts::<super::Dvbpr>(&cfg, &train, &side, &none);
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let backbone = InceptionV3::new(&vs.root(), true);
    let w: HashMap<String, Tensor> = backbone.named_parameters().iter().map(|(n, t)| (n.clone(), t.detach().copy())).collect();
    assert_eq!(w.values().map(|t| t.numel() as u128).sum::<u128>(), crate::nets::inception::BACKBONE_VALUES);
    let source = Pretrained { map: &w, prefix: "", what: "test weights".into() };
    for train_backbone in [false, true] {
        let cfg = DvbprConfig { tower: "inception_v3".into(), image_size: 75, weights: Some("w.safetensors".into()), train_backbone, ..config(1) };
        let net = build_net(&cfg, Device::Cpu, (train.n_users(), train.n_items()), Some(&source)).unwrap();
        assert_counts_of::<super::Dvbpr>(&cfg, &train, &side, &net, &none);
    }
}
