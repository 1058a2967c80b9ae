"""fashionrec BPR against implicit's BPR on MovieLens 100k u1, side by side in one run.

Protocol (as in ../shared/docs/reference-figures.md): train u1.base, test u1.test, positive
iff rating >= 4 in both; metrics over the test users with a positive; candidates are the
items not positive in train; 64 factors. Fit time is the wall time of the fit call, the
median of --repeats runs. Every model is scored by the same Rust metrics
(fashionrec.evaluate_scores), so only the models differ.

    python benches/bpr_movielens.py [--data ../shared/data/ml-100k] [--repeats 3] [--torch-backend]

Rows: popularity, fashionrec BPR (uniform negatives, the defaults), fashionrec BPR with
sampler="warp" (its defaults, chosen by benches/tune_warp.py on a split of u1.base), implicit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

import fashionrec as fr

METRICS = ["auc", "ndcg@10", "precision@10", "recall@10"]
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ml-100k"


def timed(fit, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, result


def run_fashionrec(train, test, repeats, **params):
    fit_s, times, model = timed(lambda: fr.BPR(factors=64, **params).fit(train, progress=False), repeats)
    res = fr.evaluate(model, test, train=train, metrics=METRICS)
    return fit_s, times, res


def run_popularity(train, test):
    model = fr.Popularity().fit(train)
    return fr.evaluate(model, test, train=train, metrics=METRICS)


def run_implicit(train, test, repeats, lr, reg, iterations, threads):
    import scipy.sparse as sp
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    indptr, indices, _ = train.to_csr()
    user_items = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=train.shape)

    def fit():
        m = BayesianPersonalizedRanking(
            factors=64, learning_rate=lr, regularization=reg, iterations=iterations,
            num_threads=threads, random_state=0,
        )
        m.fit(user_items, show_progress=False)
        return m

    fit_s, times, model = timed(fit, repeats)
    uf, itf = np.asarray(model.user_factors), np.asarray(model.item_factors)
    res = fr.evaluate_scores(lambda u: uf[u] @ itf.T, test, train=train, metrics=METRICS)
    return fit_s, times, res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("FASHIONREC_ML100K", str(DEFAULT_DATA)))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="threads for both libraries (0: all cores)")
    p.add_argument(
        "--torch-backend",
        action="store_true",
        help="also fit fashionrec BPR on its libtorch backend (CUDA when available, else CPU), "
        "to check it gives the native kernel's metrics",
    )
    args = p.parse_args()

    train, test = fr.datasets.movielens_100k(args.data, split="u1", min_rating=4)
    print(f"MovieLens 100k u1, rating >= 4: train {train!r}, test {test!r}")
    print(f"cores: {os.cpu_count()}, threads: {args.threads or 'all'}, fit time = median of {args.repeats}\n")

    rows = [("popularity", "", 0.0, [], run_popularity(train, test))]
    fs, ts, res = run_fashionrec(train, test, args.repeats, threads=args.threads)
    rows.append(("fashionrec BPR", "defaults (factors=64)", fs, ts, res))
    fs, ts, res = run_fashionrec(train, test, args.repeats, threads=args.threads, sampler="warp")
    rows.append(("fashionrec BPR", "defaults, sampler='warp'", fs, ts, res))
    if args.torch_backend:
        device = "cuda" if fr.cuda_available() else "cpu"
        fs, ts, res = run_fashionrec(train, test, args.repeats, threads=args.threads, backend="torch", device=device)
        rows.append(("fashionrec BPR", f"defaults, libtorch on {device}", fs, ts, res))
    fs, ts, res = run_implicit(train, test, args.repeats, 0.01, 0.01, 50, args.threads)
    rows.append(("implicit BPR", "lr 0.01, reg 0.01, 50 it", fs, ts, res))

    print(f"{'model':<16}{'settings':<30}{'fit s':>8}" + "".join(f"{m:>14}" for m in METRICS))
    for name, settings, fs, ts, res in rows:
        print(f"{name:<16}{settings:<30}{fs:>8.3f}" + "".join(f"{res[m]:>14.4f}" for m in METRICS))
    print(f"\nusers evaluated: {rows[0][4]['users']}")
    fr_row, warp_row, imp_row = rows[1], rows[2], rows[-1]
    print(f"WARP / uniform: NDCG@10 {warp_row[4]['ndcg@10'] / fr_row[4]['ndcg@10']:.3f}x, "
          f"fit time {warp_row[2] / fr_row[2]:.2f}x")
    print(f"fit time ratio fashionrec / implicit: {fr_row[2] / imp_row[2]:.2f} "
          f"(runs: fashionrec {[round(t, 3) for t in fr_row[3]]}, implicit {[round(t, 3) for t in imp_row[3]]})")


if __name__ == "__main__":
    main()
