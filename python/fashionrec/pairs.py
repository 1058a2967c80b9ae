"""Held-out metrics of item-pair classifiers (compatibility models): accuracy and AUC of the
scores of positive pairs against those of negative pairs."""

from __future__ import annotations

import numpy as np

from ._ids import numbers


def pair_metrics(positive: np.ndarray, negative: np.ndarray, *, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy and ROC AUC of a pair classifier.

    ``positive`` / ``negative``: its scores (probabilities for ``threshold=0.5``) of pairs
    that go together and of pairs that do not. ``accuracy`` is the share of all pairs on the
    right side of ``threshold`` (positives above, negatives at or below); ``auc`` the
    probability that a positive outscores a negative (ties count 1/2). Also returns the
    counts. NaN scores are a ValueError.
    """
    pos = numbers(positive, "positive").ravel()
    neg = numbers(negative, "negative").ravel()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"need positive and negative scores, got {len(pos)} and {len(neg)}")
    correct = (pos > threshold).sum() + (neg <= threshold).sum()
    both = np.concatenate([pos, neg])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both))
    sorted_vals = both[order]
    # Average ranks over ties (1-based).
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    auc = (ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg))
    return {
        "accuracy": float(correct / (len(pos) + len(neg))),
        "auc": float(auc),
        "positives": int(len(pos)),
        "negatives": int(len(neg)),
    }


__all__ = ["pair_metrics"]
