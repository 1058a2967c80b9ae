"""The seed notebooks' training loops, rewritten in plain PyTorch (TensorFlow is not
installable here), for the speed comparisons in benches/hybrid_speed.py and
benches/triplet_anime.py. The models and loops follow the notebooks; only Keras became torch.

* Hybrid BPR (the hybrid recommender notebook): user and item towers from side features
  (one embedding of width 32 per categorical column, continuous columns as they are, dense
  64-32-d), dot product, BPR loss, Adam; 100,000 iterations of `train_on_batch` on 16
  triplets built each iteration by a pandas row loop (a positive row, a negative the user
  rated <= 3 or else a random item, features looked up with `.loc`).
* Triplet model (the anime triplet-loss notebook): user and item embeddings of 64, cosine
  similarity, margin loss max(0, 1 + s(u, j) - s(u, i)), Adam, batches of 64 over every
  positive each epoch with a uniformly random negative item (the notebook's
  `sample_triplets`); the deep variant concatenates user (32) and item (64) embeddings into an
  MLP (one hidden layer of 128, ReLU, dropout 0.1, a ReLU output unit) giving the score.
"""

from __future__ import annotations

import random
import time

import numpy as np
import pandas as pd
import torch
from torch import nn


# ---------------------------------------------------------------------------------------------
# Hybrid BPR
# ---------------------------------------------------------------------------------------------


class SeedTower(nn.Module):
    """Embeddings of the categorical columns + raw continuous columns -> dense 64-32-d."""

    def __init__(self, cardinalities: list[int], n_continuous: int, embed: int = 32, out: int = 32):
        super().__init__()
        self.embs = nn.ModuleList(nn.Embedding(c, embed) for c in cardinalities)
        self.mlp = nn.Sequential(
            nn.Linear(len(cardinalities) * embed + n_continuous, 64), nn.ReLU(),
            nn.Linear(64, 32), nn.ReLU(),
            nn.Linear(32, out),
        )

    def forward(self, codes: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        parts = [e(codes[:, k]) for k, e in enumerate(self.embs)] + [cont]
        return self.mlp(torch.cat(parts, 1))


def encode(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[int], list[str], list[str]]:
    """Codes for the categorical (object / category) columns, as the notebook's LabelEncoder;
    numeric columns scaled to mean 0, std 1 (NaN -> 0)."""
    out = pd.DataFrame(index=frame.index)
    cats = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    conts = [c for c in frame.columns if c not in cats]
    cards = []
    for c in cats:
        codes, uniques = pd.factorize(frame[c].astype(str))
        out[c] = codes
        cards.append(len(uniques))
    for c in conts:
        x = frame[c].astype(np.float32)
        out[c] = ((x - x.mean()) / (x.std() or 1.0)).fillna(0.0)
    return out, cards, cats, conts


class SeedHybridBPR:
    """The notebook's model and `train_on_batch` loop."""

    def __init__(self, users: pd.DataFrame, items: pd.DataFrame, dim: int = 32, lr: float = 1e-3, seed: int = 0):
        torch.manual_seed(seed)
        self.rng = random.Random(seed)
        self.users, ucards, self.ucat, self.ucont = encode(users)
        self.items, icards, self.icat, self.icont = encode(items)
        self.user_tower = SeedTower(ucards, len(self.ucont), out=dim)
        self.item_tower = SeedTower(icards, len(self.icont), out=dim)
        params = list(self.user_tower.parameters()) + list(self.item_tower.parameters())
        self.opt = torch.optim.Adam(params, lr=lr)

    def batch(self, positives: pd.DataFrame, negatives_of: dict, all_items: np.ndarray, size: int):
        """The notebook's triplet builder: a row loop over sampled positives."""
        rows = positives.sample(size, random_state=self.rng.randrange(1 << 30))
        u_rows, i_rows, j_rows = [], [], []
        for _, r in rows.iterrows():
            negs = negatives_of.get(r["user_id"])
            j = self.rng.choice(negs) if negs else self.rng.choice(all_items)
            u_rows.append(self.users.loc[r["user_id"]])
            i_rows.append(self.items.loc[r["item_id"]])
            j_rows.append(self.items.loc[j])
        return [pd.DataFrame(x) for x in (u_rows, i_rows, j_rows)]

    def tensors(self, frame: pd.DataFrame, cat: list[str], cont: list[str]):
        codes = torch.from_numpy(frame[cat].to_numpy(np.int64, copy=True)) if cat else torch.zeros(len(frame), 0, dtype=torch.long)
        return codes, torch.from_numpy(frame[cont].to_numpy(np.float32, copy=True))

    def train_on_batch(self, u: pd.DataFrame, i: pd.DataFrame, j: pd.DataFrame) -> float:
        pu = self.user_tower(*self.tensors(u, self.ucat, self.ucont))
        qi = self.item_tower(*self.tensors(i, self.icat, self.icont))
        qj = self.item_tower(*self.tensors(j, self.icat, self.icont))
        loss = -torch.nn.functional.logsigmoid((pu * (qi - qj)).sum(1)).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def fit(self, positives: pd.DataFrame, negatives: pd.DataFrame, iterations: int, batch_size: int = 16) -> float:
        """Runs the loop; returns the wall time in seconds."""
        start = time.perf_counter()
        negatives_of = negatives.groupby("user_id")["item_id"].apply(list).to_dict()
        all_items = self.items.index.to_numpy()
        for _ in range(iterations):
            self.train_on_batch(*self.batch(positives, negatives_of, all_items, batch_size))
        return time.perf_counter() - start

    @torch.no_grad()
    def score(self, users: pd.DataFrame) -> np.ndarray:
        """Scores of feature rows (already encoded by this model's `encode`) for every item."""
        pu = self.user_tower(*self.tensors(users, self.ucat, self.ucont))
        qi = self.item_tower(*self.tensors(self.items, self.icat, self.icont))
        return (pu @ qi.T).numpy()


# ---------------------------------------------------------------------------------------------
# Triplet models
# ---------------------------------------------------------------------------------------------


class SeedTriplet(nn.Module):
    """User and item embeddings, cosine similarity."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        for e in (self.user, self.item):
            nn.init.uniform_(e.weight, -0.05, 0.05)  # Keras' default embedding init

    def similarity(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cosine_similarity(self.user(u), self.item(i), dim=-1)

    @torch.no_grad()
    def score(self, users: np.ndarray) -> np.ndarray:
        pu = torch.nn.functional.normalize(self.user(torch.as_tensor(users)), dim=1)
        qi = torch.nn.functional.normalize(self.item.weight, dim=1)
        return (pu @ qi.T).numpy()


class SeedDeepTriplet(nn.Module):
    """Concatenated user (32) and item (64) embeddings through an MLP that outputs the score."""

    def __init__(self, n_users: int, n_items: int, user_dim: int = 32, item_dim: int = 64,
                 hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.user = nn.Embedding(n_users, user_dim)
        self.item = nn.Embedding(n_items, item_dim)
        for e in (self.user, self.item):
            nn.init.uniform_(e.weight, -0.05, 0.05)
        self.mlp = nn.Sequential(
            nn.Linear(user_dim + item_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, 1), nn.ReLU(),
        )

    def similarity(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([self.user(u), self.item(i)], -1)).squeeze(-1)

    @torch.no_grad()
    def score(self, users: np.ndarray) -> np.ndarray:
        self.eval()
        n_items = self.item.num_embeddings
        items = torch.arange(n_items)
        out = np.empty((len(users), n_items), np.float32)
        for k, u in enumerate(users):
            out[k] = self.similarity(torch.full((n_items,), int(u)), items).numpy()
        self.train()
        return out


def fit_triplet_seed(model: nn.Module, users: np.ndarray, items: np.ndarray, n_items: int, epochs: int,
                     batch_size: int = 64, margin: float = 1.0, lr: float = 1e-3, seed: int = 0,
                     max_batches: int | None = None) -> tuple[float, int]:
    """The notebook's loop: each epoch, fresh random negatives for every positive, shuffled
    batches of `batch_size`, margin loss, Adam. Returns (seconds, batches run); `max_batches`
    stops early (to time a part of a long run)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start, done = time.perf_counter(), 0
    for _ in range(epochs):
        neg = rng.integers(0, n_items, size=len(users))  # sample_triplets: uniform random items
        order = rng.permutation(len(users))
        u_all, i_all, j_all = (torch.as_tensor(x[order]) for x in (users, items, neg))
        for b in range(0, len(users), batch_size):
            u, i, j = u_all[b : b + batch_size], i_all[b : b + batch_size], j_all[b : b + batch_size]
            loss = torch.relu(margin + model.similarity(u, j) - model.similarity(u, i)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if max_batches is not None and done >= max_batches:
                return time.perf_counter() - start, done
    return time.perf_counter() - start, done
