"""ASOS workshop data: fashionrec SampledSoftmax against popularity, implicit and a plain
PyTorch version of the workshop model, side by side in one run.

Protocol (../shared/docs/reference-figures.md, ASOS table): train = every row of the train
parquet, test = the valid parquet; metrics over the valid users with a train row; candidates
= all products minus the user's train products. Every model is scored by the same Rust
metrics code (fashionrec.evaluate_scores), so only the models differ. Timings are the wall
time of one training epoch, measured in this run on this machine.

    python benches/asos_softmax.py [--data ../shared/data/asos-dsf2020] [--no-implicit]
        [--skip-fashionrec] [--torch-epochs 2]

The plain PyTorch model is the workshop's: user and product embeddings (dim 64), each
positive against 100 negatives drawn uniformly per row, softmax cross-entropy with the
positive first, Adam (lr 0.01, 2 epochs: the reference's tuned settings), batch 1024.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import fashionrec as fr

METRICS = ["hitrate@10", "ndcg@10", "auc"]
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "asos-dsf2020"
REFERENCE = {  # ../shared/docs/reference-figures.md (same protocol, settings tuned on a split of train)
    "popularity": (0.0349, 0.0126, 0.777),
    "implicit 0.7.3 ALS (64 factors, reg 10)": (0.0349, 0.0137, 0.730),
    "implicit 0.7.3 BPR (64 factors, lr 0.1, 400 it)": (0.0207, 0.0102, 0.628),
    "plain PyTorch workshop model (tuned)": (0.0265, 0.0111, 0.700),
}


class WorkshopModel(torch.nn.Module):
    """The ASOS workshop model in plain PyTorch: dot product of user and product embeddings."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64):
        super().__init__()
        self.users = torch.nn.Embedding(n_users, dim)
        self.items = torch.nn.Embedding(n_items, dim)
        # Keras' Embedding default (the workshop used Keras): uniform(-0.05, 0.05).
        torch.nn.init.uniform_(self.users.weight, -0.05, 0.05)
        torch.nn.init.uniform_(self.items.weight, -0.05, 0.05)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # users (B,), items (B, 1 + N) -> logits (B, 1 + N)
        return (self.users(users).unsqueeze(1) * self.items(items)).sum(-1)


def train_workshop(train: fr.Interactions, epochs: int, lr: float = 0.01, n_neg: int = 100,
                   batch: int = 1024, dim: int = 64, seed: int = 0):
    """Returns (model, seconds per epoch)."""
    torch.manual_seed(seed)
    indptr, indices, _ = train.to_csr()
    users = torch.from_numpy(np.repeat(np.arange(train.n_users), np.diff(indptr)).astype(np.int64))
    pos = torch.from_numpy(indices.astype(np.int64))
    model = WorkshopModel(train.n_users, train.n_items, dim)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    epoch_s = []
    for _ in range(epochs):
        t = time.perf_counter()
        perm = torch.randperm(len(pos), generator=g)
        for s in range(0, len(pos), batch):
            b = perm[s : s + batch]
            neg = torch.randint(train.n_items, (len(b), n_neg), generator=g)
            logits = model(users[b], torch.cat([pos[b].unsqueeze(1), neg], 1))
            loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(b), dtype=torch.long))
            opt.zero_grad()
            loss.backward()
            opt.step()
        epoch_s.append(time.perf_counter() - t)
    return model, float(np.median(epoch_s))


def user_items_csr(train: fr.Interactions):
    import scipy.sparse as sp

    indptr, indices, _ = train.to_csr()
    return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=train.shape)


def run_implicit(train, name):
    if name == "als":
        from implicit.cpu.als import AlternatingLeastSquares

        m = AlternatingLeastSquares(factors=64, regularization=10.0, random_state=0)
    else:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        m = BayesianPersonalizedRanking(factors=64, learning_rate=0.1, iterations=400, random_state=0)
    t = time.perf_counter()
    m.fit(user_items_csr(train), show_progress=False)
    return m, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("FASHIONREC_ASOS", str(DEFAULT_DATA)))
    p.add_argument("--no-implicit", action="store_true", help="skip implicit (quote the reference figures)")
    p.add_argument("--skip-fashionrec", action="store_true", help="only the baselines (protocol check)")
    p.add_argument("--torch-epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    train, valid = fr.datasets.asos(args.data)
    # Valid users with a train row (in this release all of them have one).
    has_train = np.diff(train.to_csr()[0]) > 0
    users = valid.user_ids[np.intersect1d(valid._core.active_users(), np.flatnonzero(has_train))]
    print(f"train {len(train):,} rows, {train.n_users:,} users x {train.n_items:,} products; "
          f"valid {len(valid):,} rows; {len(users):,} valid users with a train row; torch threads {torch.get_num_threads()}")

    def measure(score):
        r = fr.evaluate_scores(score, valid, train=train, metrics=METRICS, users=users)
        return r["hitrate@10"], r["ndcg@10"], r["auc"], r["users"]

    rows: list[tuple[str, str, tuple, str]] = []
    pop = fr.Popularity().fit(train)
    rows.append(("popularity", "measured", measure(pop._score_indices), ""))

    if not args.no_implicit:
        try:
            import implicit  # noqa: F401

            for name, label in [("als", "implicit 0.7.3 ALS (64 factors, reg 10)"),
                                ("bpr", "implicit 0.7.3 BPR (64 factors, lr 0.1, 400 it)")]:
                m, fit_s = run_implicit(train, name)
                uf, itf = np.asarray(m.user_factors), np.asarray(m.item_factors)
                rows.append((label, "measured", measure(lambda u: uf[u] @ itf.T), f"fit {fit_s:.1f} s"))
        except ImportError:
            print("implicit is not installed (pip install implicit==0.7.3): its rows are the reference figures")
            args.no_implicit = True

    wm, torch_epoch_s = train_workshop(train, args.torch_epochs)
    with torch.no_grad():
        U, V = wm.users.weight.numpy().copy(), wm.items.weight.numpy().copy()
    rows.append(("plain PyTorch workshop model (dim 64, 1 + 100 uniform negatives, Adam 0.01, "
                 f"{args.torch_epochs} epochs)", "measured", measure(lambda u: U[u] @ V.T),
                 f"{torch_epoch_s:.2f} s/epoch"))

    ss_epoch_s = None
    if not args.skip_fashionrec:
        model = fr.SampledSoftmax(device="cpu")
        model.fit(train, progress=False)
        ss_epoch_s = float(np.median(model.history_["seconds"]))
        rows.append((f"fashionrec SampledSoftmax (defaults: {model.get_params()})", "measured",
                     measure(model._score_indices), f"{ss_epoch_s:.2f} s/epoch"))

    print("\n| model | source | HitRate@10 | NDCG@10 | AUC | time |")
    print("|---|---|---|---|---|---|")
    for label, src, (h, n, a, *_), t in rows:
        print(f"| {label} | {src} | {h:.4f} | {n:.4f} | {a:.3f} | {t} |")
    for label, (h, n, a) in REFERENCE.items():
        if label == "popularity" or (not args.no_implicit and label.startswith("implicit")):
            continue
        print(f"| {label} | reference figure | {h:.4f} | {n:.4f} | {a:.3f} | |")
    if ss_epoch_s is not None:
        print(f"\nepoch time: PyTorch workshop {torch_epoch_s:.2f} s, SampledSoftmax {ss_epoch_s:.2f} s: "
              f"{torch_epoch_s / ss_epoch_s:.1f}x")
        best = rows[-1][2]
        refs = list(REFERENCE.values()) + [r[2][:3] for r in rows[:-1]]
        beats = all(best[1] > r[1] and best[2] > r[2] for r in refs)
        print(f"SampledSoftmax beats every reference and measured baseline on NDCG@10 and AUC: {beats}")


if __name__ == "__main__":
    main()
