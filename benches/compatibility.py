"""Visual compatibility on the fashion-product set: fashionrec CompatibilityModel against
plain PyTorch versions of the same model, side by side in one run.

Data: fr.datasets.fashion_compatibility (pairs by a known rule over usage, season, gender and
outfit slot; features = 16x16 photos' raw pixels, standardised). 20% of the unordered pairs
are held out with fr.split.pair_split (disjoint from training); the PyTorch mini-batch
reference stops by accuracy on a further 10% carved from the training pairs (never the held-out
ones). Held-out negatives: one per held-out positive, the same query item with a random
product or one of the positive partner's articleType, never one that goes with it.

Model (McAuley et al. 2015): p(i goes with j) = sigmoid(c - ||E1 x_i - E2 x_j||^2)
("euclidean") or sigmoid(c + <E1 x_i, E2 x_j>) ("inner"), log loss on positive pairs and as
many sampled negatives.

Rows:
* seed loop: the seed notebook's training rewritten in PyTorch, one pair per step (a
  positive or a negative, alternately), Adam, 50,000 steps; pairs/s and its held-out
  accuracy;
* PyTorch mini-batch: the same model, batches of 256 positives + 256 negatives, Adam,
  trained to convergence (best validation epoch, patience 5);
* fashionrec CompatibilityModel with the same settings, its epochs chosen the same way (accuracy
  on the validation pairs, a doubling schedule).

    python benches/compatibility.py [--data ../shared/data/fashion-product-images-small]
        [--distance euclidean] [--negatives category] [--seed-steps 50000] [--skip-fashionrec]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import fashionrec as fr
from fashionrec.pairs import pair_metrics

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fashion-product-images-small"


class Compatibility(torch.nn.Module):
    """The compatibility model in plain PyTorch."""

    def __init__(self, dim: int, style_dim: int, distance: str, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        scale = 1.0 / np.sqrt(dim)
        self.e1 = torch.nn.Parameter(torch.randn(dim, style_dim, generator=g) * scale)
        self.e2 = torch.nn.Parameter(torch.randn(dim, style_dim, generator=g) * scale)
        self.c = torch.nn.Parameter(torch.zeros(()))
        self.distance = distance

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        a, b = x1 @ self.e1, x2 @ self.e2
        if self.distance == "euclidean":
            return self.c - (a - b).square().sum(-1)
        return self.c + (a * b).sum(-1)


class NegativeDraw:
    """Training negatives for positive (i, j): the same i with a random product, or one of
    j's category (the seed's 'difficult' negatives)."""

    def __init__(self, categories: np.ndarray, kind: str, rng: np.random.Generator):
        self.kind, self.rng, self.n = kind, rng, len(categories)
        order = np.argsort(categories, kind="stable")
        self.members = order
        self.start = np.searchsorted(categories[order], np.arange(categories.max() + 2))
        self.cat = categories

    def __call__(self, j: np.ndarray) -> np.ndarray:
        if self.kind == "uniform":
            return self.rng.integers(0, self.n, len(j))
        c = self.cat[j]
        lo, hi = self.start[c], self.start[c + 1]
        return self.members[lo + (self.rng.random(len(j)) * (hi - lo)).astype(np.int64)]


def seed_loop(x, qi, pj, draw, distance, style_dim, steps, lr, seed):
    """One pair per step, as the seed notebook trained: returns (model, pairs/s). One torch
    thread (faster than several for one pair's tiny ops, and immune to a busy core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _seed_loop(x, qi, pj, draw, distance, style_dim, steps, lr, seed)
    finally:
        torch.set_num_threads(threads)


def _seed_loop(x, qi, pj, draw, distance, style_dim, steps, lr, seed):
    torch.manual_seed(seed)
    model = Compatibility(x.shape[1], style_dim, distance, seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(qi), steps)
    negs = draw(pj[pick])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    t = time.perf_counter()
    for s in range(steps):
        k = pick[s]
        label = float(s % 2 == 0)
        j = pj[k] if label else negs[s]
        logit = model(x[qi[k] : qi[k] + 1], x[j : j + 1])
        loss = bce(logit, torch.tensor([label]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, steps / (time.perf_counter() - t)


def minibatch(x, qi, pj, draw, distance, style_dim, lr, batch, max_epochs, patience, val, seed):
    """Mini-batch Adam until validation accuracy stops improving: (best model, epochs, pairs/s)."""
    torch.manual_seed(seed)
    model = Compatibility(x.shape[1], style_dim, distance, seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    best, best_state, best_epoch, since = -1.0, None, 0, 0
    pairs, seconds = 0, 0.0
    for epoch in range(1, max_epochs + 1):
        t = time.perf_counter()
        perm = rng.permutation(len(qi))
        for s in range(0, len(perm), batch):
            b = perm[s : s + batch]
            i = torch.from_numpy(np.concatenate([qi[b], qi[b]]))
            j = torch.from_numpy(np.concatenate([pj[b], draw(pj[b])]))
            y = torch.cat([torch.ones(len(b)), torch.zeros(len(b))])
            loss = bce(model(x[i], x[j]), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            pairs += 2 * len(b)
        seconds += time.perf_counter() - t
        acc = evaluate(model, x, *val)["accuracy"]
        if acc > best:
            best, best_epoch, since = acc, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= patience:
                break
    model.load_state_dict(best_state)
    return model, best_epoch, pairs / seconds


def evaluate(model, x, pos, neg):
    with torch.no_grad():
        p = torch.sigmoid(model(x[pos[0]], x[pos[1]])).numpy()
        n = torch.sigmoid(model(x[neg[0]], x[neg[1]])).numpy()
    return pair_metrics(p, n)


def coo(pairs):
    i, j, _ = pairs._core.coo()
    return i.astype(np.int64), j.astype(np.int64)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("FASHIONREC_PRODUCTS", str(DEFAULT_DATA)))
    p.add_argument("--distance", default="euclidean", choices=["euclidean", "inner"])
    p.add_argument("--negatives", default="category", choices=["uniform", "category"])
    p.add_argument("--factors", type=int, default=5, help="dimension of the style space")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed-steps", type=int, default=50_000)
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--max-items", type=int, default=None)
    p.add_argument("--skip-fashionrec", action="store_true")
    p.add_argument("--model-seeds", type=int, default=1,
                   help="also fit seeds 1..n-1 at the chosen epochs and print their held-out accuracy (the seed spread)")
    args = p.parse_args()

    data = fr.datasets.fashion_compatibility(args.data, max_items=args.max_items, seed=0)
    train_all, test = fr.split.pair_split(data.pairs, 0.2, seed=0)
    fit, val = fr.split.pair_split(train_all, 0.1, seed=1)
    kind = args.negatives
    test_sets = (coo(test), coo(data.negatives(test, kind, seed=2)))
    val_sets = (coo(val), coo(data.negatives(val, kind, seed=3)))
    x = torch.from_numpy(data.features)
    print(f"{len(data.items):,} products, {x.shape[1]} pixel features, {len(data.pairs):,} pairs: "
          f"{len(fit):,} train, {len(val):,} validation, {len(test):,} held out; negatives {kind}, "
          f"distance {args.distance}, factors {args.factors}; torch threads {torch.get_num_threads()}")

    rows = []
    qi, pj = coo(fit)
    draw = NegativeDraw(data.categories, kind, np.random.default_rng(0))
    m, pps = seed_loop(x, qi, pj, draw, args.distance, args.factors, args.seed_steps, args.lr, 0)
    rows.append((f"seed loop in PyTorch (1 pair/step, {args.seed_steps:,} steps)", pps, evaluate(m, x, *test_sets), ""))
    m, epochs, pps = minibatch(x, qi, pj, draw, args.distance, args.factors, args.lr, args.batch,
                               args.max_epochs, 5, val_sets, 0)
    rows.append(("PyTorch mini-batch, to convergence", pps, evaluate(m, x, *test_sets), f"best epoch {epochs}"))

    if not args.skip_fashionrec:
        # Its epochs chosen as the reference's: by accuracy on the same validation pairs (a
        # doubling schedule, stopping when it stops improving), never on the held-out pairs.
        def fit_fr(n_epochs, seed=0):
            model = fr.CompatibilityModel(factors=args.factors, distance=args.distance, sampler=kind,
                                          lr=args.lr, batch_size=args.batch, epochs=n_epochs, device="cpu", seed=seed)
            t = time.perf_counter()
            model.fit(fit, item_features=data.features, categories=data.categories, progress=False)
            return model, time.perf_counter() - t

        val_neg = data.negatives(val, kind, seed=3)
        best = None
        n_epochs = 5
        while n_epochs <= args.max_epochs:
            model, secs = fit_fr(n_epochs)
            acc = fr.pair_metrics(model.score_pairs(val), model.score_pairs(val_neg))["accuracy"]
            print(f"fashionrec, {n_epochs} epochs: validation accuracy {acc:.4f}", flush=True)
            if best is not None and acc <= best[0]:
                break
            best = (acc, n_epochs, model, secs)
            n_epochs *= 2
        _, n_epochs, model, secs = best
        pps = 2 * len(fit) * n_epochs / secs
        res = fr.pair_metrics(model.score_pairs(test), model.score_pairs(data.negatives(test, kind, seed=2)))
        rows.append((f"fashionrec CompatibilityModel ({n_epochs} epochs, chosen on validation)",
                     pps, res, f"fit {secs:.1f} s"))
        test_neg = data.negatives(test, kind, seed=2)
        accs = [res["accuracy"]] + [
            fr.pair_metrics(m.score_pairs(test), m.score_pairs(test_neg))["accuracy"]
            for m, _ in (fit_fr(n_epochs, seed) for seed in range(1, args.model_seeds))
        ]
        if len(accs) > 1:
            print(f"held-out accuracy, model seeds 0-{len(accs) - 1} at {n_epochs} epochs: "
                  + ", ".join(f"{a:.4f}" for a in accs), flush=True)

    print("\n| model | pairs/s | held-out accuracy | held-out AUC | note |")
    print("|---|---|---|---|---|")
    for label, pps, r, note in rows:
        print(f"| {label} | {pps:,.0f} | {r['accuracy']:.4f} | {r['auc']:.4f} | {note} |")
    if len(rows) == 3:
        print(f"\nfashionrec vs seed loop: {rows[2][1] / rows[0][1]:.0f}x the pairs/s; "
              f"accuracy {rows[2][2]['accuracy']:.4f} vs PyTorch to convergence {rows[1][2]['accuracy']:.4f}")


if __name__ == "__main__":
    main()
