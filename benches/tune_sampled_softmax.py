"""How SampledSoftmax's defaults were chosen: on a split carved from the ASOS train parquet
only (20% of its rows held out at random, seed 0), never on the valid parquet.

Each setting is fitted on the other 80% and scored on the held-out 20% with the benchmark's
protocol (candidates = all products minus the user's rows in the 80%; metrics over the
held-out users with a row in the 80%). Popularity on the same split is the bar.

    python benches/tune_sampled_softmax.py [--data ../shared/data/asos-dsf2020]
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

import numpy as np

import fashionrec as fr

METRICS = ["hitrate@10", "ndcg@10", "auc"]
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "asos-dsf2020"

GRID = {
    "sampler": ["uniform", "popularity"],
    "lr": [0.003, 0.01],
    "epochs": [1, 3],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("FASHIONREC_ASOS", str(DEFAULT_DATA)))
    args = p.parse_args()
    train, _ = fr.datasets.asos(args.data)
    fit, held = fr.split.random_split(train, 0.2, seed=0)
    has_row = np.diff(fit.to_csr()[0]) > 0
    users = held.user_ids[np.intersect1d(held._core.active_users(), np.flatnonzero(has_row))]

    def measure(score):
        r = fr.evaluate_scores(score, held, train=fit, metrics=METRICS, users=users)
        return r["hitrate@10"], r["ndcg@10"], r["auc"]

    print("| setting | HitRate@10 | NDCG@10 | AUC |")
    print("|---|---|---|---|")
    h, n, a = measure(fr.Popularity().fit(fit)._score_indices)
    print(f"| popularity | {h:.4f} | {n:.4f} | {a:.4f} |", flush=True)
    keys = list(GRID)
    for values in itertools.product(*GRID.values()):
        params = dict(zip(keys, values))
        model = fr.SampledSoftmax(device="cpu", **params).fit(fit, progress=False)
        h, n, a = measure(model._score_indices)
        print(f"| {params} | {h:.4f} | {n:.4f} | {a:.4f} |", flush=True)


if __name__ == "__main__":
    main()
