"""Train/validation/test splits. Every part shares the input's id maps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _core
from .interactions import Duplicates, Interactions, UnknownIds

if TYPE_CHECKING:
    import pandas as pd


def leave_one_out(
    data: Interactions, *, validation: bool = True, seed: int = 0
) -> tuple[Interactions, ...]:
    """Hold out one random item per user for test and, with ``validation``, one more for
    validation (the DVBPR protocol). Users with too few items to hold one out (fewer than
    2, or 3 with validation) keep all of them in train; nothing is dropped.

    Returns ``(train, validation, test)``, or ``(train, test)`` without validation.
    """
    return tuple(Interactions(p) for p in _core.leave_one_out(data._core, validation, seed))


def random_split(
    data: Interactions, test_fraction: float = 0.2, *, seed: int = 0
) -> tuple[Interactions, Interactions]:
    """Send exactly ``round(test_fraction * len(data))`` random interactions to test.
    Returns ``(train, test)``."""
    train, test = _core.random_split(data._core, test_fraction, seed)
    return Interactions(train), Interactions(test)


def from_frames(
    train: pd.DataFrame,
    test: pd.DataFrame,
    user_col: str = "user_id",
    item_col: str = "item_id",
    value_col: str | None = None,
    *,
    user_ids: Any = None,
    item_ids: Any = None,
    unknown: UnknownIds = "error",
    duplicates: Duplicates = "sum",
) -> tuple[Interactions, Interactions]:
    """Given train and test frames: the id maps come from the train frame (or from the
    catalogues ``user_ids`` / ``item_ids``); a test id that train does not know is a
    ValueError naming the column and row, or with ``unknown="drop"`` its row is dropped
    with a warning. Returns ``(train, test)``."""
    tr = Interactions.from_pandas(
        train, user_col, item_col, value_col, user_ids=user_ids, item_ids=item_ids, duplicates=duplicates
    )
    te = Interactions.from_pandas(test, user_col, item_col, value_col, like=tr, unknown=unknown, duplicates=duplicates)
    return tr, te


def pair_split(
    pairs: Interactions, test_fraction: float = 0.2, *, seed: int = 0
) -> tuple[Interactions, Interactions]:
    """Split item-item pairs (an Interactions whose both sides are the item catalogue, e.g.
    compatibility pairs) so that no held-out pair is in training: a pair and its reverse,
    (i, j) and (j, i), are one pair and go to the same side. Exactly
    ``round(test_fraction * n)`` of the ``n`` unordered pairs are held out (with all their
    directions). Returns ``(train, test)``, sharing ``pairs``' ids.

    McAuley's compatibility notebook evaluated on pairs it had also trained on; this split
    is what keeps the held-out accuracy honest.
    """
    import numpy as np

    if not isinstance(pairs, Interactions):
        raise TypeError(f"pairs must be an Interactions, not {type(pairs).__name__}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if not np.array_equal(pairs.user_ids, pairs.item_ids):
        raise ValueError("pairs must have the same ids on both sides (an item x item Interactions)")
    i, j, v = pairs._core.coo()
    key = np.minimum(i, j) * np.int64(pairs.n_items) + np.maximum(i, j)
    unique, which = np.unique(key, return_inverse=True)
    n_test = int(round(test_fraction * len(unique)))
    if not 0 < n_test < len(unique):
        raise ValueError(
            f"test_fraction={test_fraction} of {len(unique)} pairs leaves {n_test} held out: both sides need one"
        )
    held = np.zeros(len(unique), bool)
    held[np.random.default_rng(seed).permutation(len(unique))[:n_test]] = True
    test = held[which]

    def part(mask):
        vals = None if v is None else v[mask]
        return Interactions.from_ids(pairs.user_ids[i[mask]], pairs.item_ids[j[mask]], vals, like=pairs)

    return part(~test), part(test)


__all__ = ["from_frames", "leave_one_out", "pair_split", "random_split"]
