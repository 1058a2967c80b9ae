//! Times BPR's native kernel from Rust, without Python: sampling alone and whole fits, in ns
//! per sample, best of 5 runs.
//!
//! * MovieLens 100k's shape (943 x 1682, ~45k interactions, 50 epochs): everything in cache.
//! * benches/bpr_scale.py's shape (100,000 x 50,000, ~5M interactions, one epoch): the
//!   factors, the interactions and the sampler's tables far beyond the cache, where the kernel
//!   waits on memory (see src/sampling/ahead.rs).
//!
//!     cargo bench --bench kernel_timing
use std::time::Instant;

use fashionrec::data::synthetic::{synthetic, SyntheticConfig};
use fashionrec::data::{Interactions, SideInfo};
use fashionrec::models::{create, FitOptions};
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

fn time(name: &str, data: &Interactions, epochs: usize) {
    let samples = (epochs * data.nnz()) as f64;
    println!("{name}: {} interactions; ns per sample over {epochs} epoch(s), best of 5", data.nnz());
    let s = TripleSampler::new(data, 1).unwrap();
    let mut b = TripleBatch::default();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let dt = best_of(5, || pool.install(|| (0..epochs as u64).for_each(|e| s.fill(&mut b, data.nnz(), 0, e))));
        println!("  {threads} threads: sampling only {:.1}", dt * 1e9 / samples);
        let config = format!(r#"{{"device": "cpu", "threads": {threads}, "epochs": {epochs}}}"#);
        let dt = best_of(5, || {
            let mut model = create("bpr", &config).unwrap();
            model.fit(data, &SideInfo::default(), None, &mut |_| Control::Continue, &FitOptions::default()).unwrap();
        });
        println!("  {threads} threads: whole fit {:.1}", dt * 1e9 / samples);
    }
}

/// bpr_scale.py's generator: uniform users, items with popularity ~ rank^-0.8 (drawn by the
/// continuous inverse CDF, rank = n * v^5), duplicates merged.
fn scale_data(n_users: usize, n_items: usize, draws: usize) -> Interactions {
    use fashionrec::data::{Columns, Duplicates};
    use fashionrec::sampling::rng::{below, stream_rng};
    let mut rng = stream_rng(0, 0, 0);
    let users: Vec<i64> = (0..draws).map(|_| below(&mut rng, n_users as u64) as i64).collect();
    let items: Vec<i64> = (0..draws)
        .map(|_| {
            let v = below(&mut rng, 1 << 53) as f64 / (1u64 << 53) as f64;
            ((n_items as f64 * v.powi(5)) as i64).min(n_items as i64 - 1)
        })
        .collect();
    Interactions::from_indices(&users, &items, None, Some(n_users), Some(n_items), Duplicates::Sum, Columns::default()).unwrap()
}

fn main() {
    let small = SyntheticConfig { n_users: 943, n_items: 1682, mean_items_per_user: 47.0, ..Default::default() };
    time("MovieLens 100k's shape", &synthetic(&small).unwrap(), 50);
    time("bpr_scale's shape", &scale_data(100_000, 50_000, 5_500_000), 1);
}
