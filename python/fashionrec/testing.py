"""Assertions for guarding recommenders with pytest (or any test runner), and writers of
test data in the seed data sets' layouts (:func:`write_pngs`, :func:`write_anime_ratings`).

Each helper raises ``AssertionError`` with a message that shows the figures: what was
expected, what was measured, and where the worst difference is. They return what they
measured, so a test can go on checking it.

Example (a pytest test of a trained model)::

    import fashionrec as fr
    from fashionrec.testing import assert_metrics, assert_same_scores

    def test_bpr_quality(train, test):
        model = fr.BPR(factors=64, seed=0).fit(train, progress=False)
        assert_metrics(model, test, train=train, expected={"auc": 0.93, "ndcg@10": 0.40}, tolerance=0.005)

    def test_saved_model_scores_the_same(tmp_path, model):
        model.save(tmp_path / "m.safetensors")
        assert_same_scores(model, fr.load(tmp_path / "m.safetensors"), atol=0)
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

import numpy as np

from ._ids import image_array, numbers
from ._files import replacing
from .evaluation import evaluate, evaluate_scores
from .interactions import Interactions

if TYPE_CHECKING:
    import pandas as pd

    from .models.base import Recommender

Compare = Literal["at_least", "close"]

#: Users scored per block in assert_same_scores (bounds the memory of two score blocks).
_BLOCK_VALUES = 1 << 24


def assert_metrics(
    model: Recommender | Callable[[np.ndarray], np.ndarray],
    test: Interactions,
    *,
    expected: Mapping[str, float],
    train: Interactions | None = None,
    tolerance: float | Mapping[str, float] = 0.0,
    compare: Compare = "at_least",
    **evaluate_options: Any,
) -> dict[str, float]:
    """Evaluate ``model`` on ``test`` (as :func:`fashionrec.evaluate`, candidates exclude
    ``train``) and check every metric of ``expected``.

    ``compare="at_least"`` (a regression guard): each measured value must be at least
    ``expected - tolerance``. ``compare="close"`` (a reproduction): each must be within
    ``tolerance`` of the expected value. ``tolerance`` is one number or one per metric.
    ``model`` may also be a scoring function of user indices, as for
    :func:`fashionrec.evaluate_scores`. Other keywords (``exclude``, ``users``, ``seed``,
    ``sampled_negatives``) go to the evaluation. ``expected`` may be an earlier result of
    :func:`fashionrec.evaluate` (its ``"users"`` entry is ignored).

    Returns the measured metrics. On failure the message lists every expected metric with
    its measured value and difference, and marks the ones that failed.
    """
    # A result of fr.evaluate may serve as expected: its "users" count is not a metric.
    expected = {name: value for name, value in expected.items() if name != "users"}
    if not expected:
        raise ValueError("expected must name at least one metric, e.g. {'auc': 0.9}")
    if compare not in ("at_least", "close"):
        raise ValueError(f"compare must be 'at_least' or 'close', not {compare!r}")
    tolerances = _per_metric(tolerance, expected)
    names = list(expected)
    if callable(model) and not hasattr(model, "_score_indices"):
        measured = evaluate_scores(model, test, train=train, metrics=names, **evaluate_options)
        what = getattr(model, "__name__", "score function")
    else:
        measured = evaluate(model, test, train=train, metrics=names, **evaluate_options)
        what = repr(model)
    # evaluate() canonicalises names ("NDCG@10" -> "ndcg@10"); look each one up that way.
    from . import _core

    canonical = dict(zip(names, _core.canonical_metrics(names)))
    lines, failed = [], 0
    for name in names:
        want, tol = float(expected[name]), tolerances[name]
        got = float(measured[canonical[name]])
        if compare == "at_least":
            ok = got >= want - tol
            rule = f">= {want:.4f}" + (f" - {tol:g}" if tol else "")
        else:
            ok = abs(got - want) <= tol
            rule = f"{want:.4f} +- {tol:g}"
        ok = ok and not math.isnan(got)
        failed += not ok
        lines.append(f"  {name:<14}{rule:<24}{got:>10.4f}{got - want:>+10.4f}   {'ok' if ok else 'FAILED'}")
    if failed:
        header = f"  {'metric':<14}{'expected':<24}{'measured':>10}{'diff':>10}"
        raise AssertionError(
            f"{failed} of {len(names)} metrics of {what} on {measured.get('users', '?')} test users "
            f"out of range:\n{header}\n" + "\n".join(lines)
        )
    return measured


def assert_same_scores(
    model_a: Recommender | np.ndarray,
    model_b: Recommender | np.ndarray,
    *,
    users: Sequence[Any] | None = None,
    atol: float = 1e-6,
    rtol: float = 0.0,
) -> float:
    """Check that two models (or two score arrays) give the same scores.

    Models must share their user and item ids (e.g. a model and its saved-and-loaded copy, or
    the same model trained on two devices). ``users``: raw user ids to score (default: every
    user, in blocks). Elements pass when ``|a - b| <= atol + rtol * |b|`` (NaN only matches
    NaN). Returns the largest absolute difference. On failure the message gives how many
    scores differ, the worst difference, its user and item and both values there.
    """
    from .models import Recommender

    for name, m in (("model_a", model_a), ("model_b", model_b)):
        if not isinstance(m, (Recommender, np.ndarray)):
            raise TypeError(f"{name} must be a fitted model or an array of scores, not {type(m).__name__}")
    if atol < 0 or rtol < 0:
        raise ValueError(f"atol and rtol must not be negative, got atol={atol}, rtol={rtol}")
    if isinstance(model_a, np.ndarray) != isinstance(model_b, np.ndarray):
        raise TypeError("model_a and model_b must both be models or both be score arrays")
    if isinstance(model_a, np.ndarray):
        a, b = numbers(model_a, "model_a", finite=False), numbers(model_b, "model_b", finite=False)
        if a.shape != b.shape:
            raise AssertionError(f"score arrays differ in shape: {a.shape} vs {b.shape}")
        return _compare_block(a, b, atol, rtol, lambda r: f"row {r}", lambda c: f"column {c}", _Worst()).report(a.size)
    _check_same_ids(model_a, model_b)
    ids = model_a.user_ids if users is None else np.asarray(users)
    item_ids = model_a.item_ids
    step = max(1, _BLOCK_VALUES // max(model_a.n_items, 1))
    worst, total = _Worst(), 0
    for start in range(0, len(ids), step):
        block = ids[start : start + step]
        a, b = model_a.score(block), model_b.score(block)
        total += a.size
        _compare_block(a, b, atol, rtol, lambda r, block=block: f"user {_show(block[r])}", lambda c: f"item {_show(item_ids[c])}", worst)
    return worst.report(total)


def assert_recommendations_valid(
    model: Recommender,
    users: Sequence[Any],
    k: int = 10,
    *,
    exclude: Interactions | None = None,
    atol: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """Check ``model.recommend(users, k, exclude=exclude)`` against ``model.score``.

    For every user: ``k`` slots (or as many as there are candidates, the rest padded with
    -1 / None and score -inf), known item ids, no item twice, none of the user's ``exclude``
    items, scores in decreasing order and equal (within ``atol``) to ``model.score`` for
    those items, and no left-out candidate scoring above the last one recommended. Returns
    ``(items, scores)``. The message names the first user and item that break a rule.
    """
    users = list(users)
    items, scores = model.recommend(users, k=k, exclude=exclude)
    if exclude is not None:  # in the model's ids (its catalogue may have grown from side data)
        exclude = model._aligned(exclude, "exclude")
    expected_shape = (len(users), min(k, model.n_items))
    if items.shape != expected_shape or scores.shape != expected_shape:
        raise AssertionError(f"recommend returned items {items.shape}, scores {scores.shape}; expected {expected_shape}")
    column = {_key(i): c for c, i in enumerate(model.item_ids)}
    full = model.score(users)
    for row, user in enumerate(users):
        candidates = np.ones(model.n_items, dtype=bool)
        seen: set = set()
        if exclude is not None:  # same ids as the model: an item index is a score column
            excluded = exclude._core.user_items(int(exclude.user_index([user])[0]))
            candidates[excluded] = False
            seen = {_key(i) for i in model.item_ids[excluded]}
        n_slots = min(expected_shape[1], int(candidates.sum()))
        found, got = items[row], scores[row]
        pad = found[n_slots:]
        if not all(p is None or p == -1 for p in pad) or not np.isneginf(got[n_slots:]).all():
            raise AssertionError(f"user {_show(user)}: {n_slots} candidates, but the slots after them are not padding: {_show(pad)}")
        found, got = found[:n_slots], got[:n_slots]
        cols = []
        for rank, item in enumerate(found):
            c = column.get(_key(item))
            if c is None:
                raise AssertionError(f"user {_show(user)}, rank {rank + 1}: item {_show(item)} is not one of the model's items")
            if _key(item) in seen:
                raise AssertionError(f"user {_show(user)}, rank {rank + 1}: item {_show(item)} is in exclude")
            if c in cols:
                raise AssertionError(f"user {_show(user)}, rank {rank + 1}: item {_show(item)} recommended twice")
            cols.append(c)
        if np.any(np.diff(got) > 0):
            raise AssertionError(f"user {_show(user)}: scores not in decreasing order: {got!r}")
        true = full[row, cols]
        bad = np.flatnonzero(~np.isclose(got, true, atol=atol, rtol=0))
        if bad.size:
            r = int(bad[0])
            raise AssertionError(
                f"user {_show(user)}, rank {r + 1}, item {_show(found[r])}: recommend says {got[r]:.6g}, score says {true[r]:.6g}"
            )
        left = candidates.copy()
        left[cols] = False
        if n_slots and left.any():
            best_left = int(np.argmax(np.where(left, full[row], -np.inf)))
            if full[row, best_left] > got[-1] + atol:
                raise AssertionError(
                    f"user {_show(user)}: item {_show(model.item_ids[best_left])} scores {full[row, best_left]:.6g}, above the "
                    f"last recommended ({_show(found[-1])}, {got[-1]:.6g}), but was left out"
                )
    return items, scores


# -- helpers ---------------------------------------------------------------------------------


def _per_metric(tolerance: float | Mapping[str, float], expected: Mapping[str, float]) -> dict[str, float]:
    if isinstance(tolerance, Mapping):
        unknown = set(tolerance) - set(expected)
        if unknown:
            raise ValueError(f"tolerance names metrics not in expected: {sorted(unknown)}")
        out = {name: float(tolerance.get(name, 0.0)) for name in expected}
    else:
        out = {name: float(tolerance) for name in expected}
    for name, tol in out.items():
        if not tol >= 0:
            raise ValueError(f"tolerance for {name} must be >= 0, not {tol}")
    return out


def _check_same_ids(a: Recommender, b: Recommender) -> None:
    for what, x, y in (("user", a.user_ids, b.user_ids), ("item", a.item_ids, b.item_ids)):
        if len(x) != len(y) or not all(_key(p) == _key(q) for p, q in zip(x, y)):
            diff = next((k for k, (p, q) in enumerate(zip(x, y)) if _key(p) != _key(q)), min(len(x), len(y)))
            raise AssertionError(
                f"the models have other {what} ids ({len(x)} vs {len(y)}; first difference at index {diff}): "
                "compare models fitted on the same data"
            )


def _show(x: Any) -> str:
    """An id as the user wrote it (42, 'u3'), not as numpy shows it (np.int64(42))."""
    if isinstance(x, np.ndarray):
        return repr([_key(v) for v in x])
    return repr(_key(x))


def _key(x: Any) -> Any:
    """A hashable, comparable form of a raw id (numpy scalars become Python values)."""
    return x.item() if isinstance(x, np.generic) else x


class _Worst:
    """The largest difference seen so far, and where."""

    def __init__(self) -> None:
        self.diff, self.where, self.values, self.bad = 0.0, "", (0.0, 0.0), 0

    def report(self, total: int) -> float:
        if self.bad:
            a, b = self.values
            raise AssertionError(
                f"{self.bad} of {total} scores differ beyond the tolerance; worst |a - b| = {self.diff:.6g} "
                f"at {self.where}: a = {a:.6g}, b = {b:.6g}"
            )
        return self.diff


def _compare_block(
    a: np.ndarray, b: np.ndarray, atol: float, rtol: float, row: Callable, col: Callable, worst: _Worst
) -> _Worst:
    if a.shape != b.shape:
        raise AssertionError(f"score blocks differ in shape: {a.shape} vs {b.shape}")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a64 - b64)
    # A NaN on one side only is the worst possible difference; NaN on both sides matches.
    diff = np.where(nan_a | nan_b, np.where(nan_a & nan_b, 0.0, np.inf), diff)
    diff = np.where(np.isnan(diff), 0.0, diff)  # inf - inf of equal infinities
    bad = diff > atol + rtol * np.abs(np.nan_to_num(b64))
    worst.bad += int(bad.sum())
    if diff.size:
        flat = int(np.argmax(diff))
        if diff.flat[flat] > worst.diff or (worst.bad and not worst.where):
            r, c = np.unravel_index(flat, diff.shape) if diff.ndim == 2 else (0, flat)
            worst.diff = float(diff.flat[flat])
            worst.where = f"{row(r)}, {col(c)}" if diff.ndim == 2 else f"index {flat}"
            worst.values = (float(a64.flat[flat]), float(b64.flat[flat]))
    return worst


# -- test data -----------------------------------------------------------------------------


def write_pngs(images: np.ndarray, folder: str | os.PathLike, ids: Sequence | None = None) -> list[Path]:
    """Write uint8 (n, H, W, 3) images as ``<id>.png`` files in ``folder`` (uncompressed
    deflate, no dependency); returns the paths in order. For building an ImageBank."""
    images = image_array(images, "images", 4)
    ids = list(range(len(images))) if ids is None else list(ids)
    if len(ids) != len(images):
        raise ValueError(f"ids: {len(ids)} ids for {len(images)} images")
    for k, i in enumerate(ids):
        name = str(i)
        if not name or name in (".", "..") or any(c in name for c in "/\\\x00"):
            raise ValueError(f"ids[{k}]: {name!r} cannot be a file name (it would leave the folder or is empty)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in zip(ids, images):
        h, w, _ = img.shape
        raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

        def chunk(tag: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

        png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        png += chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")
        p = folder / f"{i}.png"
        with replacing(p) as tmp:
            tmp.write_bytes(png)
        paths.append(p)
    return paths


def write_anime_ratings(
    path: str | os.PathLike,
    items: pd.DataFrame,
    n_users: int = 1000,
    *,
    mean_ratings: float = 106.0,
    unrated: float = 0.19,
    popularity: float = 1.0,
    seed: int = 0,
) -> Path:
    """Write ``fashionrec.datasets.synthetic_anime_ratings`` as a rating.csv (header ``user_id,anime_id,rating``,
    LF line ends); returns the path. With the real anime.csv, 73,516 users (as in the real
    data) give about 7.6M rows (the real file: 7.8M).

    Example::

        fr.testing.write_anime_ratings("/tmp/rating.csv", items, n_users=2000, seed=0)
        data = fr.datasets.anime("anime.csv", "/tmp/rating.csv")
    """
    from .datasets.anime import synthetic_anime_ratings
    from .io._tabular import write_int_csv

    frame = synthetic_anime_ratings(
        items, n_users, mean_ratings=mean_ratings, unrated=unrated, popularity=popularity, seed=seed
    )
    return write_int_csv(path, {c: frame[c].to_numpy() for c in frame.columns})


__all__ = ["assert_metrics", "assert_recommendations_valid", "assert_same_scores", "write_anime_ratings", "write_pngs"]
