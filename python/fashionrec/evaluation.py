"""Accuracy metrics for any model, computed in Rust in parallel over users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

from . import _core
from .interactions import Interactions

if TYPE_CHECKING:
    import pandas as pd

    from .models.base import Recommender

#: Score blocks are cut to about this many float32 values (256 MB).
_BLOCK_VALUES = 1 << 26

DEFAULT_METRICS = ("auc", "precision@10", "recall@10", "ndcg@10", "map@10", "hitrate@10")


def evaluate(
    model: Recommender,
    test: Interactions,
    *,
    train: Interactions | None = None,
    exclude: Iterable[Interactions] = (),
    metrics: Sequence[str] = DEFAULT_METRICS,
    users: Sequence | None = None,
    sampled_negatives: int = 100,
    seed: int = 0,
    per_user: bool = False,
    progress: bool = False,
) -> dict[str, float] | pd.DataFrame:
    """Score ``model`` on the held-out interactions ``test``.

    For each user, the candidates are all items except those in ``train`` (and in every
    set of ``exclude``, e.g. a validation split); the user's ``test`` items among them are
    the positives. Metrics (names as in ``DEFAULT_METRICS``):

    * ``auc``: per-user ROC AUC over all candidates (ties count 1/2);
    * ``sampled_auc``: DVBPR's AUC, each positive against ``sampled_negatives`` random
      unobserved items (seeded by ``seed``);
    * ``precision@k``, ``recall@k``, ``ndcg@k`` (binary gains), ``map@k``, ``hitrate@k``.

    Returns the mean of each metric over the users with at least one positive (restricted to
    raw ids ``users`` if given), plus ``"users"``, their number. With ``per_user=True``:
    a DataFrame indexed by raw user id with one column per metric.
    """
    for name, data in [("test", test), ("train", train), *(("exclude", x) for x in exclude)]:
        if data is not None:
            if not isinstance(data, Interactions):
                raise TypeError(f"{name} must be an Interactions, not {type(data).__name__}")
            model._check_same_ids(data, name)
    return evaluate_scores(
        model._score_indices,
        test,
        train=train,
        exclude=exclude,
        metrics=metrics,
        users=users,
        sampled_negatives=sampled_negatives,
        seed=seed,
        per_user=per_user,
        progress=progress,
    )


def evaluate_scores(
    score: Callable[[np.ndarray], np.ndarray],
    test: Interactions,
    *,
    train: Interactions | None = None,
    exclude: Iterable[Interactions] = (),
    metrics: Sequence[str] = DEFAULT_METRICS,
    users: Sequence | None = None,
    sampled_negatives: int = 100,
    seed: int = 0,
    per_user: bool = False,
    progress: bool = False,
) -> dict[str, float] | pd.DataFrame:
    """:func:`evaluate` for any scorer: ``score(user_indices)`` returns float32 scores of
    shape ``(len(user_indices), test.n_items)`` in ``test``'s item index order. Use it to
    measure models from other libraries under exactly the same protocol."""
    names = _core.canonical_metrics(list(metrics))
    exclude = list(exclude)
    excluded = [x._core for x in ([train] if train is not None else []) + exclude]
    active = test._core.active_users()
    if users is not None:
        active = np.intersect1d(active, test.user_index(users))
    step = max(1, _BLOCK_VALUES // max(test.n_items, 1))
    blocks = [active[i : i + step] for i in range(0, len(active), step)]
    if progress:
        from tqdm.auto import tqdm

        blocks = tqdm(blocks, desc="evaluate", unit="block")
    columns: list[list[np.ndarray]] = [[] for _ in names]
    for block in blocks:
        scores = np.ascontiguousarray(score(block), dtype=np.float32)
        if scores.shape != (len(block), test.n_items):
            raise ValueError(f"score() returned shape {scores.shape}, expected {(len(block), test.n_items)}")
        values = _core.evaluate_block(scores, block, test._core, excluded, names, sampled_negatives, seed)
        for col, v in zip(columns, values):
            col.append(v)
    table = {n: (np.concatenate(c) if c else np.zeros(0)) for n, c in zip(names, columns)}
    # Users whose test items are all excluded have no positive: NaN in every metric.
    has_positive = ~np.isnan(table[names[0]]) if names else np.zeros(len(active), bool)
    if per_user:
        import pandas as pd

        frame = pd.DataFrame(table, index=pd.Index(test.user_ids[active], name="user"))
        return frame[has_positive]
    out = {n: float(np.nanmean(v[has_positive])) if has_positive.any() else float("nan") for n, v in table.items()}
    out["users"] = int(has_positive.sum())
    return out


__all__ = ["DEFAULT_METRICS", "evaluate", "evaluate_scores"]
