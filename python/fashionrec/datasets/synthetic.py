"""Seeded synthetic implicit feedback, generated in Rust: data for the demo and the tests
that needs no download."""

from __future__ import annotations

from .. import _core
from ..interactions import Interactions
from ..split import random_split


def synthetic(
    n_users: int = 2000,
    n_items: int = 1500,
    *,
    mean_items_per_user: float = 30.0,
    factors: int = 8,
    taste: float = 3.0,
    popularity: float = 0.7,
    seed: int = 0,
) -> Interactions:
    """Users pick items with probability proportional to ``exp(taste * u.v / sqrt(factors) -
    popularity * ln(rank))``, without replacement: a hidden low-rank taste plus a long-tailed
    popularity, like real implicit feedback. Each user has at least 5 items; ids are the
    indices 0..n-1."""
    return Interactions(
        _core.synthetic_interactions(n_users, n_items, mean_items_per_user, factors, taste, popularity, seed)
    )


def demo(seed: int = 0) -> tuple[Interactions, Interactions]:
    """The demo data: 2,000 users x 1,500 items (about 60,000 interactions), split 80/20 at
    random. Returns ``(train, test)``."""
    return random_split(synthetic(seed=seed), 0.2, seed=seed)
