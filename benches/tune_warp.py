"""How the WARP sampler's defaults were chosen: a grid over its margin and max_sampled on a
validation split of MovieLens 100k u1.base (20% of the positives held out at random, as in
tune_bpr_defaults.py; never u1.test), with BPR's other defaults. Each setting is the mean of
2 seeds; uniform sampling is printed first for reference.

    python benches/tune_warp.py [--data ../shared/data/ml-100k]
"""

from __future__ import annotations

import argparse
import itertools
import time

import fashionrec as fr
from bpr_movielens import DEFAULT_DATA


def score(fit_part, val, sampler, seeds=(0, 1)):
    ndcg = auc = secs = 0.0
    for s in seeds:
        t = time.perf_counter()
        model = fr.BPR(factors=64, sampler=sampler, seed=s).fit(fit_part, progress=False)
        secs += time.perf_counter() - t
        res = fr.evaluate(model, val, train=fit_part, metrics=["auc", "ndcg@10"])
        ndcg += res["ndcg@10"]
        auc += res["auc"]
    n = len(seeds)
    return ndcg / n, auc / n, secs / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    args = p.parse_args()
    base, _ = fr.datasets.movielens_100k(args.data, split="u1", min_rating=4)
    fit_part, val = fr.split.random_split(base, 0.2, seed=1)
    print(f"{'ndcg@10':>8} {'auc':>7} {'fit s':>6}  sampler")
    print("%8.4f %7.4f %6.2f  uniform" % score(fit_part, val, "uniform"))
    for margin, max_sampled in itertools.product([0.5, 1.0, 2.0, 4.0, 8.0], [10, 30]):
        sampler = {"kind": "warp", "margin": margin, "max_sampled": max_sampled}
        print("%8.4f %7.4f %6.2f  " % score(fit_part, val, sampler) + str(sampler), flush=True)


if __name__ == "__main__":
    main()
