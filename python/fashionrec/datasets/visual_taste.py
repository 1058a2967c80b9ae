"""Users whose tastes are visual attributes, for measuring image-based recommenders.

Real catalogues with photos and no interactions (the fashion-product images) become a
recommendation task with a known answer: each synthetic user likes a few (colour, article
type) combinations, and interacts with random items of those combinations. A model that
sees the photos can rank items it never saw in training (cold items); a model that learns
one vector per item from interactions (BPR-MF) cannot.

:func:`visual_taste` builds the task from any item table; :func:`synthetic_catalogue` makes
a small catalogue of generated images (coloured shapes) for tests and notebooks when the
real photos are absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd

from ..interactions import Interactions


class VisualTaste(NamedTuple):
    """A visual-taste task. Every Interactions has the whole catalogue as its items
    (``item_ids``), so cold items have an index (and no training interaction)."""

    #: Warm interactions minus one validation and one test item per user.
    train: Interactions
    #: One held-out warm item per user (for choosing settings).
    validation: Interactions
    #: One held-out warm item per user.
    test: Interactions
    #: Every interaction with a cold item (never in train).
    cold_test: Interactions
    #: Raw ids of the cold items (no interaction in train, validation or test).
    cold_items: np.ndarray
    #: Raw ids of the warm items.
    warm_items: np.ndarray
    #: Per user: the liked attribute combinations, as "value1|value2" strings.
    tastes: pd.Series


def visual_taste(
    items: pd.DataFrame,
    *,
    attributes: Sequence[str] = ("baseColour", "articleType"),
    n_users: int = 1000,
    tastes_per_user: int = 2,
    items_per_user: int = 20,
    min_group: int = 20,
    cold_fraction: float = 0.2,
    seed: int = 0,
) -> VisualTaste:
    """Synthetic users over the catalogue ``items`` (a DataFrame indexed by item id, with the
    ``attributes`` columns).

    Items are grouped by their combination of attribute values; items missing a value, and
    groups with fewer than ``min_group`` items, are left out of the catalogue. Each user picks ``tastes_per_user``
    groups (each group with probability proportional to its size) and interacts with
    ``items_per_user`` distinct items drawn uniformly from the union of its groups. A random
    ``cold_fraction`` of the catalogue's items are cold: their interactions form
    ``cold_test`` and never appear in training. Of each user's warm interactions, one goes
    to ``validation`` and one to ``test`` (users with fewer than 3 warm items keep them all
    in train).
    """
    if len(attributes) == 0:
        raise ValueError("attributes: name at least one column of items that tastes are made of")
    missing = [a for a in attributes if a not in items.columns]
    if missing:
        raise ValueError(f"attributes: items has no column {missing[0]!r} (columns: {list(items.columns)})")
    if not 0.0 <= cold_fraction < 1.0:
        raise ValueError(f"cold_fraction must be in [0, 1), got {cold_fraction}")
    if n_users < 1 or items_per_user < 3 or tastes_per_user < 1:
        raise ValueError("n_users must be >= 1, items_per_user >= 3 and tastes_per_user >= 1")
    rng = np.random.default_rng(seed)
    items = items.dropna(subset=list(attributes))
    key = items[attributes[0]].astype(object).astype(str)
    for a in attributes[1:]:
        key = key + "|" + items[a].astype(object).astype(str)
    sizes = key.value_counts()
    groups = sizes[sizes >= min_group].index.to_numpy()
    if len(groups) < tastes_per_user:
        raise ValueError(f"only {len(groups)} attribute combinations have >= {min_group} items; lower min_group")
    catalogue = key[key.isin(groups)]
    item_ids = catalogue.index.to_numpy()
    members = {g: catalogue.index[catalogue.to_numpy() == g].to_numpy() for g in groups}
    weights = sizes[groups].to_numpy(dtype=float)
    cold = rng.random(len(item_ids)) < cold_fraction
    cold_set = set(item_ids[cold].tolist())

    users, chosen, tastes = [], [], []
    for u in range(n_users):
        picks = rng.choice(len(groups), size=tastes_per_user, replace=False, p=weights / weights.sum())
        liked = np.concatenate([members[groups[g]] for g in picks])
        n = min(items_per_user, len(liked))
        chosen.append(rng.choice(liked, size=n, replace=False))
        users.append(np.full(n, u))
        tastes.append(", ".join(groups[g] for g in picks))
    users = np.concatenate(users)
    chosen = np.concatenate(chosen)
    is_cold = np.fromiter((i in cold_set for i in chosen.tolist()), bool, len(chosen))

    # Warm interactions: one validation and one test item per user with at least 3.
    order = rng.permutation(int((~is_cold).sum()))
    wu, wi = users[~is_cold][order], chosen[~is_cold][order]
    part = np.zeros(len(wu), dtype=np.int8)  # 0 train, 1 validation, 2 test
    seen: dict[int, int] = {}
    counts = np.bincount(wu, minlength=n_users)
    for k, u in enumerate(wu.tolist()):
        c = seen.get(u, 0)
        if counts[u] >= 3 and c < 2:
            part[k] = c + 1
        seen[u] = c + 1
    user_ids = np.arange(n_users)

    def build(u, i):
        return Interactions.from_ids(u, i, user_ids=user_ids, item_ids=item_ids)

    return VisualTaste(
        train=build(wu[part == 0], wi[part == 0]),
        validation=build(wu[part == 1], wi[part == 1]),
        test=build(wu[part == 2], wi[part == 2]),
        cold_test=build(users[is_cold], chosen[is_cold]),
        cold_items=item_ids[cold],
        warm_items=item_ids[~cold],
        tastes=pd.Series(tastes, index=pd.Index(user_ids, name="user"), name="tastes"),
    )


COLOURS = {
    "Red": (200, 30, 40),
    "Blue": (30, 60, 200),
    "Green": (40, 160, 60),
    "Yellow": (230, 200, 40),
    "Black": (25, 25, 25),
    "White": (235, 235, 235),
}
SHAPES = ("Disc", "Square", "Stripes", "Triangle")


def synthetic_catalogue(n_items: int = 600, size: int = 32, *, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A catalogue of generated product images: each item is a ``colour`` shape (disc,
    square, stripes or triangle) of a random size and place on a light, noisy background.
    Returns ``(items, images)``: a DataFrame indexed by item id 0..n-1 with columns
    ``baseColour`` and ``articleType`` (the shape), and uint8 images (n, size, size, 3)."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    colour = rng.integers(0, len(names), n_items)
    shape = rng.integers(0, len(SHAPES), n_items)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.empty((n_items, size, size, 3), np.uint8)
    for k in range(n_items):
        bg = rng.integers(150, 220)
        img = np.full((size, size, 3), bg, np.float32) + rng.normal(0, 12, (size, size, 3))
        cy, cx = rng.uniform(0.35, 0.65, 2)
        r = rng.uniform(0.2, 0.35)
        s = SHAPES[shape[k]]
        if s == "Disc":
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        elif s == "Square":
            mask = (abs(yy - cy) < r) & (abs(xx - cx) < r)
        elif s == "Stripes":
            mask = ((xx * 6 + rng.uniform()) % 1 < 0.5) & (abs(yy - cy) < r + 0.1)
        else:
            mask = (yy - cy + r > 0) & (yy - cy < r) & (abs(xx - cx) < (yy - cy + r) / 2)
        img[mask] = np.asarray(COLOURS[names[colour[k]]], np.float32) + rng.normal(0, 10, (int(mask.sum()), 3))
        images[k] = np.clip(img, 0, 255).astype(np.uint8)
    items = pd.DataFrame(
        {"baseColour": [names[c] for c in colour], "articleType": [SHAPES[s] for s in shape]},
        index=pd.Index(np.arange(n_items), name="id"),
    )
    return items, images


__all__ = ["VisualTaste", "synthetic_catalogue", "visual_taste"]
