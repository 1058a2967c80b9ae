"""Accuracy metrics for any model, computed in Rust in parallel over users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

from . import _core
from ._ids import index_arg
from .interactions import Interactions

if TYPE_CHECKING:
    import pandas as pd

    from .models.base import Recommender

DEFAULT_METRICS = ("auc", "precision@10", "recall@10", "ndcg@10", "map@10", "hitrate@10")


def evaluate(
    model: Recommender,
    test: Interactions,
    *,
    train: Interactions | None = None,
    exclude: Iterable[Interactions] = (),
    metrics: Sequence[str] = DEFAULT_METRICS,
    users: Sequence | None = None,
    items: Sequence | None = None,
    sampled_negatives: int = 100,
    seed: int = 0,
    per_user: bool = False,
    progress: bool = False,
) -> dict[str, float] | pd.DataFrame:
    """Score ``model`` on the held-out interactions ``test``.

    For each user, the candidates are all items except those in ``train`` (and in every
    set of ``exclude``, e.g. a validation split); the user's ``test`` items among them are
    the positives. ``items`` (raw item ids) restricts the candidates, positives included, to
    those items: e.g. only cold items, or only warm ones. Metrics (names as in
    ``DEFAULT_METRICS``):

    * ``auc``: per-user ROC AUC over all candidates (ties count 1/2);
    * ``sampled_auc``: DVBPR's AUC, each positive against ``sampled_negatives`` random
      unobserved items (seeded by ``seed``);
    * ``precision@k``, ``recall@k``, ``ndcg@k`` (binary gains), ``map@k``, ``hitrate@k``.

    ``model`` may be an :class:`~fashionrec.Ensemble` (its mean scores are evaluated).
    Returns the mean of each metric over the users with at least one positive (restricted to
    raw ids ``users`` if given), plus ``"users"``, their number. With ``per_user=True``:
    a DataFrame indexed by raw user id with one column per metric. Scoring, the block loop
    and the metrics run in Rust with the GIL released.
    """
    for name, data in [("test", test), ("train", train), *(("exclude", x) for x in exclude)]:
        if data is not None and not isinstance(data, Interactions):
            raise TypeError(f"{name} must be an Interactions, not {type(data).__name__}")
    test = model._aligned(test, "test")
    excluded = [model._aligned(x, "train" if k == 0 and train is not None else "exclude")
                for k, x in enumerate(([train] if train is not None else []) + list(exclude))]
    names = _core.canonical_metrics(list(metrics))
    user_idx, candidates = _restrictions(test, users, items, "evaluate()")
    bar = _bar(progress)
    args = (test._core, [x._core for x in excluded], names, user_idx, candidates, sampled_negatives, seed, bar)
    result = model._core.evaluate(*args)
    return _summarise(test, names, result, per_user, bar)


def evaluate_scores(
    score: Callable[[np.ndarray], np.ndarray],
    test: Interactions,
    *,
    train: Interactions | None = None,
    exclude: Iterable[Interactions] = (),
    metrics: Sequence[str] = DEFAULT_METRICS,
    users: Sequence | None = None,
    items: Sequence | None = None,
    sampled_negatives: int = 100,
    seed: int = 0,
    per_user: bool = False,
    progress: bool = False,
) -> dict[str, float] | pd.DataFrame:
    """:func:`evaluate` for any scorer: ``score(user_indices)`` returns float32 scores of
    shape ``(len(user_indices), test.n_items)`` in ``test``'s item index order. Use it to
    measure models from other libraries under exactly the same protocol (the same Rust loop
    calls ``score`` block by block)."""
    names = _core.canonical_metrics(list(metrics))
    excluded = [x._core for x in ([train] if train is not None else []) + list(exclude)]
    user_idx, candidates = _restrictions(test, users, items, "evaluate_scores()")
    bar = _bar(progress)
    result = _core.evaluate_scorer(score, test._core, excluded, names, user_idx, candidates, sampled_negatives, seed, bar)
    return _summarise(test, names, result, per_user, bar)


def _restrictions(test: Interactions, users: Sequence | None, items: Sequence | None, call: str):
    user_idx = None
    if users is not None:
        user_idx = np.intersect1d(test._core.active_users(), index_arg(test._core.user_index, users, f"{call}: users")).astype(np.int64)
    candidates = None
    if items is not None:
        candidates = np.zeros(test.n_items, dtype=bool)
        candidates[index_arg(test._core.item_index, items, f"{call}: items")] = True
    return user_idx, candidates


class _Bar:
    def __init__(self):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=100, desc="evaluate", unit="%")

    def __call__(self, done: float) -> None:
        self._bar.n = round(100 * done)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _bar(progress: bool) -> _Bar | None:
    return _Bar() if progress else None


def _summarise(test: Interactions, names: list[str], result, per_user: bool, bar: _Bar | None):
    if bar is not None:
        bar.close()
    active, values = result
    table = dict(zip(names, values))
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
