"""Training throughput at scale, fashionrec BPR vs implicit's BPR, side by side in one run.

Synthetic implicit data as in ../shared/docs/reference-figures.md: 100,000 users x 50,000
items, 5,000,000 interactions, item popularity ~ rank^-0.8, 64 factors, one epoch (one pass
of 5M samples), whole fit call, best of --repeats.

    python benches/bpr_scale.py [--users 100000 --items 50000 --nnz 5000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fashionrec as fr


def data(n_users: int, n_items: int, nnz: int, seed: int = 0) -> fr.Interactions:
    rng = np.random.default_rng(seed)
    pop = np.arange(1, n_items + 1, dtype=np.float64) ** -0.8
    items = rng.choice(n_items, size=int(nnz * 1.1), p=pop / pop.sum())
    users = rng.integers(0, n_users, size=len(items))
    x = fr.Interactions.from_arrays(users, items, n_users=n_users, n_items=n_items)
    return x


def best(f, repeats):
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return min(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--nnz", type=int, default=5_000_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    x = data(args.users, args.items, args.nnz)
    n = len(x)
    print(f"{x!r}; one epoch = {n:,} samples, 64 factors, best of {args.repeats}")

    t_fr = best(lambda: fr.BPR(factors=64, epochs=1, device="cpu").fit(x, progress=False), args.repeats)
    print(f"fashionrec BPR   {t_fr:7.3f} s/epoch  {n / t_fr / 1e6:6.2f} M samples/s")
    try:
        import scipy.sparse as sp
        from implicit.cpu.bpr import BayesianPersonalizedRanking
    except ImportError:
        print("implicit not installed (pip install implicit scipy): no comparison")
        return
    indptr, indices, _ = x.to_csr()
    ui = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=x.shape)
    fit = lambda: BayesianPersonalizedRanking(factors=64, iterations=1, random_state=0).fit(ui, show_progress=False)
    t_im = best(fit, args.repeats)
    print(f"implicit BPR     {t_im:7.3f} s/epoch  {n / t_im / 1e6:6.2f} M samples/s")
    print(f"ratio fashionrec / implicit time: {t_fr / t_im:.2f}")


if __name__ == "__main__":
    main()
