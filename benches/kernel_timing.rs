//! Times the pieces of a BPR epoch on synthetic data shaped like MovieLens 100k (943 x 1682,
//! ~45k interactions): sampling alone, and whole 50-epoch fits (best of 5 runs).
//!
//!     cargo bench --bench kernel_timing
use std::time::Instant;

use fashionrec::data::synthetic::{synthetic, SyntheticConfig};
use fashionrec::models::bpr::{Bpr, BprConfig};
use fashionrec::models::Recommender;
use fashionrec::sampling::{TripleBatch, TripleSampler};
use fashionrec::train::Control;

fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let cfg = SyntheticConfig { n_users: 943, n_items: 1682, mean_items_per_user: 47.0, ..Default::default() };
    let data = synthetic(&cfg).unwrap();
    let samples = 50.0 * data.nnz() as f64;
    println!("{} interactions; ns per sample over 50 epochs, best of 5", data.nnz());
    let s = TripleSampler::new(&data, 1).unwrap();
    let mut b = TripleBatch::default();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let dt = best_of(5, || pool.install(|| (0..50).for_each(|e| s.fill(&mut b, data.nnz(), 0, e))));
        println!("{threads} threads: sampling only {:.1}", dt * 1e9 / samples);
        for bs in [4096, 65536] {
            let cfg = BprConfig { device: "cpu".into(), threads, batch_size: bs, ..Default::default() };
            let dt = best_of(5, || {
                Bpr::new(cfg.clone()).unwrap().fit(&data, &fashionrec::data::SideInfo::default(), None, &mut |_| Control::Continue).unwrap();
            });
            println!("{threads} threads: fit, batch {bs:>5}: {:.1}", dt * 1e9 / samples);
        }
    }
}
