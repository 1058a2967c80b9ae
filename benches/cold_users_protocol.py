"""The cold-user protocol on MovieLens 100k, shared by the cold-user benchmark and its check.

Protocol (../shared/docs/reference-figures.md, "Cold-start users on MovieLens 100k"):
positives = rating >= 4 in u.data; ``numpy.random.default_rng(seed).choice`` picks 20% of the
users with a positive (sorted ids; 188 of 942) and holds them out entirely; training = all
positives of the other users; held-out users are scored from gender, occupation and age
only; candidates = all 1682 items. Age buckets are MovieLens 1M's (<18, 18-24, 25-34, 35-44,
45-49, 50-55, 56+).

Run alone, it prints the two model-free baselines on the split, which reproduce the
reference figures (popularity 0.8750 / 0.4060, gender-age popularity 0.8735 / 0.4205 at
seed 0), so the protocol is the reference's:

    python benches/cold_users_protocol.py [--data ../shared/data/ml-100k] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import fashionrec as fr

METRICS = ["auc", "ndcg@10", "precision@10"]
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ml-100k"
AGE_EDGES = [18, 25, 35, 45, 50, 56]  # MovieLens 1M's age groups


@dataclass
class ColdSplit:
    """Warm training data and held-out cold users, with the side features of both."""

    train: fr.Interactions  # warm users x all items
    test: fr.Interactions  # cold users x all items (same item ids)
    users: pd.DataFrame  # gender, occupation, age, age_bucket; indexed by user id (all users)
    items: pd.DataFrame  # 19 genre flags + year; indexed by item id (all items)


def age_bucket(age: pd.Series) -> pd.Series:
    return pd.Series(np.digitize(age.to_numpy(), AGE_EDGES), index=age.index).astype(str)


def features(data: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """User (gender, occupation, age, age_bucket) and item (genres, year) tables by raw id."""
    users, items = fr.datasets.movielens_100k_features(data)
    users = users[["gender", "occupation", "age"]].copy()
    users["gender"] = users["gender"].astype(str)
    users["occupation"] = users["occupation"].astype(str)
    users["age_bucket"] = age_bucket(users["age"])
    genres = [c for c in items.columns if c not in ("title", "release_date", "video_release_date", "imdb_url")]
    item_table = items[genres].astype(np.float32)
    item_table["year"] = items["release_date"].dt.year.astype(np.float32)  # NaN where unknown
    return users, item_table


def positives(data: str | os.PathLike) -> pd.DataFrame:
    ratings = fr.datasets.read_movielens_ratings(Path(data) / "u.data")
    return ratings[ratings["rating"] >= 4]


def cold_users(pos: pd.DataFrame, fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Held-out users: a seeded random ``fraction`` of the users with a positive."""
    ids = np.sort(pos["user_id"].unique())
    return np.random.default_rng(seed).choice(ids, size=int(fraction * len(ids)), replace=False)


def split(data: str | os.PathLike, seed: int = 0, fraction: float = 0.2) -> ColdSplit:
    users, items = features(data)
    pos = positives(data)
    cold = cold_users(pos, fraction, seed)
    warm_rows = ~pos["user_id"].isin(cold)
    warm_ids = np.sort(pos.loc[warm_rows, "user_id"].unique())
    item_ids = items.index.to_numpy()
    train = fr.Interactions.from_pandas(pos[warm_rows], "user_id", "item_id", user_ids=warm_ids, item_ids=item_ids)
    test = fr.Interactions.from_pandas(pos[~warm_rows], "user_id", "item_id", user_ids=np.sort(cold), item_ids=item_ids)
    return ColdSplit(train, test, users, items)


def warm_validation(s: ColdSplit, seed: int = 1, fraction: float = 0.2) -> ColdSplit:
    """The same protocol inside the warm users (for tuning): never touches the cold users."""
    rows = s.train.to_pandas().rename(columns={"user": "user_id", "item": "item_id"})
    cold = cold_users(rows, fraction, seed)
    inner = ~rows["user_id"].isin(cold)
    item_ids = s.items.index.to_numpy()
    train = fr.Interactions.from_pandas(
        rows[inner], "user_id", "item_id", user_ids=np.sort(rows.loc[inner, "user_id"].unique()), item_ids=item_ids
    )
    test = fr.Interactions.from_pandas(rows[~inner], "user_id", "item_id", user_ids=np.sort(cold), item_ids=item_ids)
    return ColdSplit(train, test, s.users, s.items)


def popularity_scores(s: ColdSplit):
    counts = s.train.item_counts().astype(np.float32)
    return lambda idx: np.tile(counts, (len(idx), 1))


def group_popularity_scores(s: ColdSplit):
    """Popularity among the warm users of the same gender and age bucket (ties: overall)."""
    key = s.users["gender"] + "_" + s.users["age_bucket"]
    rows = s.train.to_pandas(raw_ids=False)
    train_keys = key.loc[s.train.user_ids].to_numpy()[rows["user"].to_numpy()]
    items = rows["item"].to_numpy()
    overall = s.train.item_counts().astype(np.float64)
    table = {
        k: np.bincount(items[train_keys == k], minlength=s.train.n_items) + overall * 1e-6
        for k in np.unique(train_keys)
    }
    test_keys = key.loc[s.test.user_ids].to_numpy()
    return lambda idx: np.stack([table.get(k, overall) for k in test_keys[idx]]).astype(np.float32)


def evaluate(score, s: ColdSplit) -> dict[str, float]:
    return fr.evaluate_scores(score, s.test, metrics=METRICS)


def row(name: str, res: dict[str, float]) -> str:
    return f"| {name} | " + " | ".join(f"{res[m]:.4f}" for m in METRICS) + f" | {res['users']} |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("FASHIONREC_ML100K", str(DEFAULT_DATA)))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    s = split(args.data, args.seed)
    print(f"split seed {args.seed}: {s.train.n_users} warm users ({len(s.train)} positives), "
          f"{s.test.n_users} cold users ({len(s.test)} positives), {s.train.n_items} items")
    print("| model | " + " | ".join(METRICS) + " | users |")
    print("|---|" + "---|" * (len(METRICS) + 1))
    print(row("popularity", evaluate(popularity_scores(s), s)))
    print(row("popularity within gender and age bucket", evaluate(group_popularity_scores(s), s)))


if __name__ == "__main__":
    main()
