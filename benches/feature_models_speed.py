"""Training speed of HybridBPR, TripletModel and DeepTripletModel against the seed notebooks'
own loops rewritten in plain PyTorch (benches/seed_loops.py), same data and model settings,
side by side in one run.

* Hybrid BPR on MovieLens 100k (u.data): positives rating >= 4, negatives the user's items
  rated <= 3 (random items for users with none); user features gender, occupation (embedded)
  and age, item features the 19 genres; embedding 32, dense 64-32-32, BPR, Adam 1e-3. The
  seed: 100,000 `train_on_batch` iterations of 16 triplets built by a pandas row loop (1.6M
  triplets). fashionrec: `sampler="rated_below"`, the same 1.6M triplets as whole epochs.
* Triplet models on anime.csv with generated ratings (rating.csv is not available:
  `fr.testing.write_anime_ratings`), the seed's filters (TV, rating >= 6 positive, anime with
  >= 10 ratings); embedding 64, margin 1, cosine; deep: 32 + 64 -> MLP 128 (dropout 0.1) -> 1.
  The seed: each epoch, every positive with a random negative, batches of 64, Adam.
  fashionrec: the dense Adam at batches 64 and 1024, and `optimizer="sparse_adam"` (a
  different optimiser, torch.optim.SparseAdam's: only the batch's embedding rows move) at 64.

The seed loops are slow: by default a part of each is timed (--hybrid-iterations,
--triplet-batches) and the full run's time is that rate times its length (said in the
output); pass --full to run them whole. fashionrec always trains the whole run.

    python benches/feature_models_speed.py [--data ../shared/data] [--full]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seed_loops  # noqa: E402

import fashionrec as fr  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SEED_ITERATIONS = 100_000
SEED_BATCH = 16


def movielens(folder: Path):
    ratings = fr.datasets.read_movielens_ratings(folder / "u.data")
    users, items = fr.datasets.movielens_100k_features(folder)
    users = users[["gender", "occupation", "age"]].astype({"gender": str, "occupation": str})
    genres = [c for c in items.columns if c not in ("title", "release_date", "video_release_date", "imdb_url")]
    return ratings, users, items[genres].astype(np.float32)


def bench_hybrid(folder: Path, iterations: int, our_batches: list[int]) -> None:
    ratings, users, items = movielens(folder)
    pos, neg = ratings[ratings.rating >= 4], ratings[ratings.rating <= 3]
    print(f"\n## Hybrid BPR, MovieLens 100k: {len(pos)} positives, {len(neg)} rated <= 3")
    seed = seed_loops.SeedHybridBPR(users, items, dim=32, lr=1e-3, seed=0)
    seconds = seed.fit(pos, neg, iterations, SEED_BATCH)
    per_it = seconds / iterations
    seed_total = per_it * SEED_ITERATIONS
    note = "measured" if iterations >= SEED_ITERATIONS else f"{iterations} iterations timed, x{SEED_ITERATIONS // iterations}"
    print("| loop | batch | triplets | seconds | vs seed |\n|---|---|---|---|---|")
    print(f"| seed loop, PyTorch ({note}) | {SEED_BATCH} | {SEED_ITERATIONS * SEED_BATCH:,} | {seed_total:.1f} | 1.0x |", flush=True)
    train = fr.Interactions.from_pandas(ratings, "user_id", "item_id", "rating", user_ids=users.index.to_numpy(), item_ids=items.index.to_numpy())
    epochs = math.ceil(SEED_ITERATIONS * SEED_BATCH / len(pos))
    for batch in our_batches:
        model = fr.HybridBPR(factors=32, embed_dim=32, hidden=(64, 32), item_bias=False, sampler="rated_below",
                             min_rating=4, epochs=epochs, lr=1e-3, batch_size=batch, device="auto", seed=0)
        start = time.perf_counter()
        model.fit(train, user_features=users, item_features=items, progress=False)
        ours = time.perf_counter() - start
        print(f"| fashionrec HybridBPR ({model.device}) | {batch} | {epochs * len(pos):,} | {ours:.1f} | {seed_total / ours:.1f}x |", flush=True)


def anime(folder: Path, n_users: int, tmp: Path):
    items = fr.datasets.anime(folder / "anime.csv").items
    path = fr.testing.write_anime_ratings(tmp / "rating.csv", items, n_users=n_users, seed=0)
    data = fr.datasets.anime(folder / "anime.csv", path, min_rating=6, types=["TV"], min_item_ratings=10)
    return data.ratings


def bench_triplets(folder: Path, n_users: int, epochs: int, seed_batches: int, full: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        train = anime(folder, n_users, Path(tmp))
    indptr, indices, _ = train.to_csr()
    users = np.repeat(np.arange(train.n_users), np.diff(indptr)).astype(np.int64)
    items = indices.astype(np.int64)
    print(f"\n## Triplet models, anime (generated ratings, {n_users} users): {len(train):,} positives, "
          f"{train.n_users:,} users x {train.n_items:,} anime, {epochs} epochs")
    print("| model | loop | batch | seconds for the run | vs seed |\n|---|---|---|---|---|")
    batches_per_epoch = math.ceil(len(users) / 64)
    for name, seed_model, ours in [
        ("TripletModel", lambda: seed_loops.SeedTriplet(train.n_users, train.n_items, 64),
         lambda b, opt: fr.TripletModel(factors=64, margin=1.0, similarity="cosine", epochs=epochs, lr=1e-3, batch_size=b,
                                        optimizer=opt, device="auto", seed=0)),
        ("DeepTripletModel", lambda: seed_loops.SeedDeepTriplet(train.n_users, train.n_items),
         lambda b, opt: fr.DeepTripletModel(epochs=epochs, lr=1e-3, batch_size=b, optimizer=opt, device="auto", seed=0)),
    ]:
        limit = None if full else seed_batches
        seconds, done = seed_loops.fit_triplet_seed(seed_model(), users, items, train.n_items, epochs, 64, max_batches=limit)
        seed_total = seconds / done * batches_per_epoch * epochs
        note = "measured" if done >= batches_per_epoch * epochs else f"{done} batches timed, scaled to {batches_per_epoch * epochs}"
        print(f"| {name} | seed loop, PyTorch ({note}) | 64 | {seed_total:.1f} | 1.0x |", flush=True)
        floor = dense_adam_floor(seed_model(), batches_per_epoch * epochs)
        print(f"| {name} | dense Adam alone, torch fused=True, {torch.get_num_threads()} and 2 threads "
              f"(the seed's optimiser: a lower bound for any loop at this batch) | 64 | "
              f"{floor[0]:.1f} / {floor[1]:.1f} | {seed_total / floor[0]:.1f}x / {seed_total / floor[1]:.1f}x |", flush=True)
        # The dense Adam (the seed's optimiser) beside the row-sparse one at the seed's batch.
        for b, opt in ((64, "adam"), (64, "sparse_adam"), (1024, "adam")):
            model = ours(b, opt)
            start = time.perf_counter()
            model.fit(train, progress=False)
            t = time.perf_counter() - start
            print(f"| {name} | fashionrec ({model.device}, {opt}) | {b} | {t:.1f} | {seed_total / t:.1f}x |", flush=True)


def dense_adam_floor(model: torch.nn.Module, steps: int) -> tuple[float, float]:
    """Seconds for `steps` dense Adam updates of `model`'s parameters alone (random dense
    gradients, no forward or backward), with torch's one-pass fused CPU Adam, on the current
    thread count and on 2. The seed's Keras Adam updates every row every step (its moments
    decay even where the gradient is zero), so any loop with that optimiser at batch 64 pays
    at least this."""
    params = list(model.parameters())
    for q in params:
        q.grad = torch.randn_like(q) * 1e-3
    out = []
    before = torch.get_num_threads()
    for threads in (before, 2):
        torch.set_num_threads(threads)
        opt = torch.optim.Adam(params, lr=1e-3, fused=True)
        for _ in range(20):
            opt.step()
        timed = min(steps, 2000)
        start = time.perf_counter()
        for _ in range(timed):
            opt.step()
        out.append((time.perf_counter() - start) / timed * steps)
    torch.set_num_threads(before)
    return out[0], out[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("FASHIONREC_DATA", str(DEFAULT_DATA)))
    p.add_argument("--hybrid-iterations", type=int, default=1000, help="seed iterations timed (of 100,000)")
    p.add_argument("--hybrid-batches", type=int, nargs="+", default=[16, 1024], help="fashionrec batch sizes")
    p.add_argument("--anime-users", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=5, help="triplet models' epochs")
    p.add_argument("--triplet-batches", type=int, default=3000, help="seed batches timed")
    p.add_argument("--full", action="store_true", help="run the seed loops whole")
    p.add_argument("--only", choices=["hybrid", "triplet"], default=None)
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch threads of the seed loops (1: their small batches run fastest on one, "
                        "measured on 2 cores; 0 keeps torch's default)")
    args = p.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    data = Path(args.data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; cuda available: {fr.cuda_available()}")
    if args.only in (None, "hybrid"):
        bench_hybrid(data / "ml-100k", SEED_ITERATIONS if args.full else args.hybrid_iterations, args.hybrid_batches)
    if args.only in (None, "triplet"):
        bench_triplets(data / "anime-recommendations", args.anime_users, args.epochs, args.triplet_batches, args.full)


if __name__ == "__main__":
    main()
