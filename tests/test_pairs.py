"""Item-pair helpers: the pair split, pair metrics and the fashion compatibility set."""

from __future__ import annotations

import numpy as np
import pytest

import fashionrec as fr
from fashionrec.pairs import pair_metrics

from conftest import data_dir


def item_pairs(n_items=40, n_pairs=300, seed=0):
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n_items, n_pairs)
    j = (i + rng.integers(1, n_items, n_pairs)) % n_items
    ids = np.arange(100, 100 + n_items)
    return fr.Interactions.from_ids(ids[i], ids[j], user_ids=ids, item_ids=ids)


def unordered(x: fr.Interactions) -> set[tuple[int, int]]:
    u, i, _ = x._core.coo()
    return {(min(a, b), max(a, b)) for a, b in zip(u.tolist(), i.tolist())}


def test_pair_split_holds_out_pairs_and_their_reverses():
    pairs = item_pairs()
    # Add the reverse of some pairs: a pair and its reverse must land on the same side.
    u, i, _ = pairs._core.coo()
    both = fr.Interactions.from_ids(
        pairs.user_ids[np.concatenate([u, i[:50]])], pairs.item_ids[np.concatenate([i, u[:50]])], like=pairs, duplicates="max"
    )
    train, test = fr.split.pair_split(both, 0.25, seed=1)
    assert train.same_ids(both) and test.same_ids(both)
    assert len(train) + len(test) == len(both)
    assert not unordered(train) & unordered(test)
    n_unordered = len(unordered(both))
    assert len(unordered(test)) == round(0.25 * n_unordered)
    # Seeded.
    again = fr.split.pair_split(both, 0.25, seed=1)[1]
    assert unordered(again) == unordered(test)


def test_pair_split_rejects_bad_input():
    pairs = item_pairs()
    with pytest.raises(ValueError, match="test_fraction"):
        fr.split.pair_split(pairs, 1.0)
    users_items = fr.Interactions.from_arrays([0, 1, 2], [0, 0, 1])
    with pytest.raises(ValueError, match="same ids on both sides"):
        fr.split.pair_split(users_items, 0.5)
    with pytest.raises(TypeError):
        fr.split.pair_split("pairs", 0.5)


def test_pair_metrics():
    r = pair_metrics(np.array([0.9, 0.8, 0.4]), np.array([0.1, 0.6]))
    assert r["accuracy"] == pytest.approx(3 / 5)
    # Positive > negative in 5 of 6 comparisons (0.4 loses to 0.6 only).
    assert r["auc"] == pytest.approx(5 / 6)
    assert pair_metrics(np.array([0.5]), np.array([0.5]))["auc"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        pair_metrics(np.array([]), np.array([0.1]))
    with pytest.raises(ValueError, match="NaN"):
        pair_metrics(np.array([np.nan]), np.array([0.1]))


def test_fashion_compatibility_pairs_follow_the_rule():
    folder = data_dir("fashion-product-images-small")
    data = fr.datasets.fashion_compatibility(folder, max_items=600, image_size=8, seed=0)
    n = len(data.items)
    assert data.features.shape == (n, 8 * 8 * 3) and data.features.dtype == np.float32
    assert np.allclose(data.features.mean(0), 0, atol=1e-3)
    assert data.pairs.n_users == data.pairs.n_items == n
    i, j, _ = data.pairs._core.coo()
    assert data.compatible(i, j).all()
    assert len(unordered(data.pairs)) == len(data.pairs)  # one direction per unordered pair
    train, test = fr.split.pair_split(data.pairs, 0.2, seed=0)
    for kind in ("uniform", "category"):
        neg = data.negatives(test, kind, seed=1)
        qi, nj, _ = neg._core.coo()
        assert not data.compatible(qi, nj).any()
        assert set(qi.tolist()) <= set(test._core.coo()[0].tolist())
    cat_neg = data.negatives(test, "category", seed=1)
    # Same-category negatives share the category of some positive partner of their query.
    qi, nj, _ = cat_neg._core.coo()
    ti, tj, _ = test._core.coo()
    partner_cats = {}
    for a, b in zip(ti.tolist(), tj.tolist()):
        partner_cats.setdefault(a, set()).add(int(data.categories[b]))
    share = np.mean([int(data.categories[b]) in partner_cats[a] for a, b in zip(qi.tolist(), nj.tolist())])
    assert share > 0.95
