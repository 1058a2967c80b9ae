"""TripletModel and DeepTripletModel against fashionrec BPR on MovieLens 100k u1, one run.

Protocol of benches/bpr_movielens.py: train u1.base, test u1.test, positives rating >= 4 in
both; metrics over the test users with a positive; candidates = items not positive in train.
The triplet models' settings below were set before looking at u1.test (the seed notebook's
dimensions and margin; epochs and learning rate not tuned); `--tune` prints a grid on a
validation split of u1.base (20% of the training positives, seed 0) for choosing them there.

`--sparse` adds the models with `optimizer="sparse_adam"` at the seed's batch of 64 (the speed
bench's setting, benches/feature_models_speed.py): their learning rate and epochs are chosen on
the same validation split (best AUC over SPARSE_GRID), then they are fitted on u1.base and
measured on u1.test once.

    python benches/triplet_movielens.py [--data ../shared/data/ml-100k] [--tune] [--sparse]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import fashionrec as fr

METRICS = ["auc", "ndcg@10", "precision@10", "recall@10"]
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ml-100k"

#: The seed notebook's sizes and margin; epochs and learning rate set a priori (see --tune).
TRIPLET = dict(factors=64, similarity="cosine", margin=1.0, epochs=30, lr=0.01, batch_size=1024)
DEEP = dict(factors=64, user_factors=32, hidden=(128,), dropout=0.1, margin=1.0, epochs=30, lr=0.003, batch_size=1024)
#: With a learnt item bias and the dot product (the bias carries item popularity, which BPR-MF
#: has through its factors); chosen on the validation split by --tune (the grid below).
TRIPLET_BIAS = dict(factors=64, similarity="dot", item_bias=True, margin=3.0, reg=0.03, epochs=55, lr=0.003, batch_size=1024)
#: optimizer="sparse_adam" at the seed's batch of 64: the other settings as the dense models',
#: learning rate and epochs chosen on the validation split.
SPARSE_GRID = {
    "TripletModel": [dict(TRIPLET_BIAS, optimizer="sparse_adam", batch_size=64, lr=lr, epochs=e) for lr in (0.003, 0.01) for e in (10, 20, 40)],
    "DeepTripletModel": [dict(DEEP, optimizer="sparse_adam", batch_size=64, lr=lr, epochs=e) for lr in (0.003, 0.01) for e in (10, 20, 40)],
}
GRID = {
    "TripletModel": [dict(TRIPLET, epochs=e, lr=lr) for e in (15, 30) for lr in (0.003, 0.01, 0.03)]
    + [dict(TRIPLET_BIAS, margin=m, epochs=e) for m in (1.0, 3.0) for e in (30, 55)],
    "DeepTripletModel": [dict(DEEP, epochs=e, lr=lr) for e in (15, 30) for lr in (0.001, 0.003, 0.01)],
}


def run(cls, train, test, **params):
    start = time.perf_counter()
    model = cls(device="auto", seed=0, **params).fit(train, progress=False)
    seconds = time.perf_counter() - start
    return fr.evaluate(model, test, train=train, metrics=METRICS), seconds


def row(name, settings, res, sec):
    return f"| {name} | {settings} | {sec:.2f} | " + " | ".join(f"{res[m]:.4f}" for m in METRICS) + " |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("FASHIONREC_ML100K", str(DEFAULT_DATA)))
    p.add_argument("--tune", action="store_true", help="print the validation grid (u1.base split) first")
    p.add_argument("--sparse", action="store_true", help="also the sparse_adam models at batch 64, chosen on the split")
    args = p.parse_args()
    train, test = fr.datasets.movielens_100k(args.data, split="u1", min_rating=4)
    chosen = {}
    if args.sparse:
        fit_part, val = fr.split.random_split(train, 0.2, seed=0)
        print("| validation (u1.base split), sparse_adam at batch 64 | settings | fit s | " + " | ".join(METRICS) + " |")
        print("|---|---|---|" + "---|" * len(METRICS))
        for name, grid in SPARSE_GRID.items():
            best = None
            for params in grid:
                res, sec = run(getattr(fr, name), fit_part, val, **params)
                print(row(name, {k: params[k] for k in ("lr", "epochs")}, res, sec), flush=True)
                if best is None or res["auc"] > best[0]:
                    best = (res["auc"], params)
            chosen[name] = best[1]
        print()
    if args.tune:
        fit_part, val = fr.split.random_split(train, 0.2, seed=0)
        print("| validation (u1.base split) | settings | fit s | " + " | ".join(METRICS) + " |")
        print("|---|---|---|" + "---|" * len(METRICS))
        for name, grid in GRID.items():
            cls = getattr(fr, name)
            for params in grid:
                res, sec = run(cls, fit_part, val, **params)
                keys = ("similarity", "item_bias", "margin", "epochs", "lr")
                print(row(name, {k: params[k] for k in keys if k in params}, res, sec), flush=True)
        print()
    print("| model (u1.test) | settings | fit s | " + " | ".join(METRICS) + " |")
    print("|---|---|---|" + "---|" * len(METRICS))
    res, sec = run(fr.BPR, train, test, factors=64)
    print(row("fashionrec BPR", "defaults (factors=64)", res, sec), flush=True)
    res, sec = run(fr.TripletModel, train, test, **TRIPLET)
    print(row("TripletModel", TRIPLET, res, sec), flush=True)
    res, sec = run(fr.TripletModel, train, test, **TRIPLET_BIAS)
    print(row("TripletModel, dot + item bias", TRIPLET_BIAS, res, sec), flush=True)
    res, sec = run(fr.DeepTripletModel, train, test, **DEEP)
    print(row("DeepTripletModel", DEEP, res, sec), flush=True)
    for name, params in chosen.items():
        res, sec = run(getattr(fr, name), train, test, **params)
        print(row(f"{name}, sparse_adam, batch 64", params, res, sec), flush=True)
    print(f"\ncuda available: {fr.cuda_available()}")


if __name__ == "__main__":
    main()
