"""Inference at scale, fashionrec vs implicit, side by side in one run: recommend (with and
without excluding the training items), evaluate NDCG@10, similar_items, score.

Data: benches/bpr_scale.py's generator (100,000 users x 50,000 items, 2,000,000 interactions
drawn, item popularity ~ rank^-0.8), split 80/20 at random (fr.split.random_split, seed 0). Model:
fashionrec BPR with 64 factors fitted for --epochs (the model's size matters here, not its
quality); implicit's BayesianPersonalizedRanking is given the same numbers (its user factors
[U, 1], item factors [V, b]: implicit keeps the item bias as a last factor), so both rank the
same scores. Every figure is the best of --repeats, both libraries on every core.

    python benches/recommend_scale.py [--users 100000 --items 50000 --nnz 2000000 --queries 20000]

Rows: recommend k=10 for --queries users with the train items excluded (implicit:
recommend(userids, user_items[userids], N=10)); the same without exclusion
(filter_already_liked_items=False); fr.evaluate(model, test, train=train, metrics=["ndcg@10"])
vs implicit.evaluation.ndcg_at_k(model, train, test, K=10) over every test user;
similar_items of --queries items, k=10 (implicit: its own cosine over its factors, the bias
column included); model.score of 5,000 users vs numpy's U @ V.T + b. "speed-up" is the
reference's seconds over fashionrec's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpr_scale import data  # noqa: E402

import fashionrec as fr  # noqa: E402


def best(f, repeats):
    out, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = f()
        out.append(time.perf_counter() - t)
    return min(out), value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--nnz", type=int, default=2_000_000)
    p.add_argument("--queries", type=int, default=20_000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import scipy.sparse as sp
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from implicit.evaluation import ndcg_at_k

    x = data(args.users, args.items, args.nnz)
    train, test = fr.split.random_split(x, 0.2, seed=0)
    model = fr.BPR(factors=64, epochs=args.epochs, device="cpu").fit(train, progress=False)
    print(f"{train!r} (train), {len(test):,} test interactions; BPR 64 factors, {args.epochs} epoch(s); "
          f"best of {args.repeats}; {os.cpu_count()} cores; fashionrec {fr.__file__}")

    def csr(d):
        indptr, indices, _ = d.to_csr()
        return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=d.shape)

    ui, ti = csr(train), csr(test)
    U, V, b = model.user_factors, model.item_factors, model.item_bias
    im = BayesianPersonalizedRanking(factors=64, random_state=0)
    im.user_factors = np.ascontiguousarray(np.hstack([U, np.ones((len(U), 1), np.float32)]))
    im.item_factors = np.ascontiguousarray(np.hstack([V, b[:, None]]))

    users = np.arange(min(args.queries, args.users))
    rows = []

    t_fr, (fr_items, _) = best(lambda: model.recommend(users, k=10, exclude=train), args.repeats)
    t_im, (im_items, _) = best(lambda: im.recommend(users, ui[users], N=10), args.repeats)
    same = np.mean([set(a) == set(c) for a, c in zip(fr_items, im_items)])
    rows.append(("recommend k=10, train excluded", t_fr, "implicit", t_im, f"same top-10 sets: {same:.4f}"))

    t_fr, (fr_items, _) = best(lambda: model.recommend(users, k=10), args.repeats)
    t_im, (im_items, _) = best(lambda: im.recommend(users, ui[users], N=10, filter_already_liked_items=False),
                               args.repeats)
    same = np.mean([set(a) == set(c) for a, c in zip(fr_items, im_items)])
    rows.append(("recommend k=10, no exclusion", t_fr, "implicit", t_im, f"same top-10 sets: {same:.4f}"))

    t_fr, ev = best(lambda: fr.evaluate(model, test, train=train, metrics=["ndcg@10"]), args.repeats)
    t_im, nd = best(lambda: ndcg_at_k(im, ui, ti, K=10, show_progress=False), args.repeats)
    rows.append(("evaluate ndcg@10, all test users", t_fr, "implicit ndcg_at_k", t_im,
                 f"ndcg fr {ev['ndcg@10']:.5f} ({ev['users']} users), implicit {nd:.5f}"))

    q = np.arange(min(args.queries, args.items))
    t_fr, _ = best(lambda: model.similar_items(q, k=10), args.repeats)
    t_im, _ = best(lambda: im.similar_items(q, N=11), args.repeats)
    rows.append((f"similar_items k=10, {len(q):,} items", t_fr, "implicit", t_im, "implicit: cosine incl. bias column"))

    few = users[:5000]
    t_fr, s = best(lambda: model.score(few), args.repeats)
    t_np, ref = best(lambda: U[few] @ V.T + b, args.repeats)
    err = float(np.abs(s - ref).max())
    rows.append((f"score {len(few):,} users (full rows)", t_fr, "numpy U@V.T+b", t_np, f"max |diff| {err:.2e}"))

    print(f"\n{'task':38} {'fashionrec s':>12}  {'reference':20} {'ref s':>8} {'speed-up':>8}  note")
    for name, a, ref_name, r, note in rows:
        print(f"{name:38} {a:12.3f}  {ref_name:20} {r:8.3f} {r / a:8.2f}x  {note}")


if __name__ == "__main__":
    main()
