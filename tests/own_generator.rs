//! A fit never draws from libtorch's global generator (`nets::random`). Its own test binary,
//! so its own process: the unit tests of the library seed and draw from that generator in
//! parallel threads, which would move it under this check.

use fashionrec::data::synthetic::{synthetic, SyntheticConfig};
use fashionrec::data::SideInfo;
use fashionrec::models::{create, FitOptions};
use fashionrec::nets::random;
use fashionrec::train::Control;
use tch::{nn, Device, Kind, Tensor};

#[test]
fn layers_masks_and_fits_leave_libtorchs_generator_where_it_was() {
    let stream = || Tensor::rand([8], (Kind::Float, Device::Cpu));
    tch::manual_seed(5);
    let expected = (stream(), stream());
    tch::manual_seed(5);
    let first = stream();
    // Layers, a variable and a mask from the fit's generator.
    random::reseed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    random::linear(&vs.root(), 30, 20, Default::default()).unwrap();
    random::conv(&(vs.root() / "c"), 3, 4, [3, 3], Default::default()).unwrap();
    let _ = random::var(&vs.root(), "e", &[10, 4], nn::Init::Randn { mean: 0.0, stdev: 0.1 }).unwrap();
    let _ = random::dropout(&Tensor::ones([16, 8], (Kind::Float, Device::Cpu)), 0.5, true, 0).unwrap();
    // Whole fits of the models with networks and dropout.
    let train = synthetic(&SyntheticConfig { n_users: 40, n_items: 30, seed: 3, ..Default::default() }).unwrap();
    for (kind, cfg) in [
        ("deep_triplet", r#"{"factors": 8, "user_factors": 4, "hidden": [8], "dropout": 0.3, "epochs": 1, "threads": 1}"#),
        ("deep_triplet", r#"{"factors": 8, "user_factors": 4, "hidden": [8], "dropout": 0.3, "epochs": 1, "threads": 1, "optimizer": "sparse_adam"}"#),
        ("triplet", r#"{"factors": 8, "epochs": 1, "threads": 1}"#),
        ("bpr", r#"{"backend": "torch", "factors": 8, "epochs": 1, "threads": 1}"#),
    ] {
        let mut m = create(kind, cfg).unwrap();
        m.fit(&train, &SideInfo::default(), None, &mut |_| Control::Continue, &FitOptions::default()).unwrap();
    }
    assert!(first.equal(&expected.0));
    assert!(stream().equal(&expected.1), "a layer, a mask or a fit drew from libtorch's global generator");
}
