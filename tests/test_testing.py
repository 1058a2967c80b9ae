"""fashionrec.testing: the assertions pass on good models and fail with the figures."""

import numpy as np
import pytest

import fashionrec as fr
from fashionrec.testing import assert_metrics, assert_recommendations_valid, assert_same_scores


def test_assert_metrics_passes_and_returns_what_it_measured(small, fitted):
    train, test = small
    direct = fr.evaluate(fitted, test, train=train, metrics=["auc", "ndcg@10"])
    got = assert_metrics(fitted, test, train=train, expected={"auc": direct["auc"], "NDCG@10": 0.0})
    assert got["auc"] == direct["auc"] and got["ndcg@10"] == direct["ndcg@10"]
    assert_metrics(fitted, test, train=train, expected={"auc": direct["auc"]}, tolerance=1e-9, compare="close")


def test_assert_metrics_message_shows_every_metric(small, fitted):
    train, test = small
    m = fr.evaluate(fitted, test, train=train, metrics=["auc", "ndcg@10"])
    with pytest.raises(AssertionError) as e:
        assert_metrics(fitted, test, train=train, expected={"auc": 0.5, "ndcg@10": m["ndcg@10"] + 0.1}, tolerance=0.01)
    text = str(e.value)
    assert "1 of 2 metrics" in text and f"{m['users']} test users" in text
    auc_line = next(line for line in text.splitlines() if line.strip().startswith("auc"))
    ndcg_line = next(line for line in text.splitlines() if line.strip().startswith("ndcg@10"))
    assert auc_line.rstrip().endswith("ok") and f"{m['auc']:.4f}" in auc_line
    assert ndcg_line.rstrip().endswith("FAILED") and f"{m['ndcg@10']:.4f}" in ndcg_line and "-0.1000" in ndcg_line
    # "close" fails above the band too.
    with pytest.raises(AssertionError, match="auc .*FAILED"):
        assert_metrics(fitted, test, train=train, expected={"auc": m["auc"] - 0.05}, tolerance=0.01, compare="close")


def test_assert_metrics_takes_a_score_function_and_checks_its_arguments(small, fitted):
    train, test = small
    rng = np.random.default_rng(0)

    def random_scores(users):
        return rng.random((len(users), test.n_items), dtype=np.float32)

    with pytest.raises(AssertionError, match="random_scores"):
        assert_metrics(random_scores, test, train=train, expected={"auc": 0.8})
    with pytest.raises(ValueError, match="at least one metric"):
        assert_metrics(fitted, test, expected={})
    with pytest.raises(ValueError, match="tolerance names metrics not in expected"):
        assert_metrics(fitted, test, expected={"auc": 0.5}, tolerance={"ndcg@10": 0.1})
    with pytest.raises(ValueError, match="compare"):
        assert_metrics(fitted, test, expected={"auc": 0.5}, compare="above")


def test_assert_same_scores(tmp_path, small, fitted):
    path = tmp_path / "m.safetensors"
    fitted.save(path)
    assert assert_same_scores(fitted, fr.load(path), atol=0) == 0.0
    other = fr.BPR(factors=16, epochs=20, device="cpu", seed=2).fit(small[0], progress=False)
    with pytest.raises(AssertionError) as e:
        assert_same_scores(fitted, other, users=fitted.user_ids[:5])
    text = str(e.value)
    assert "of 1000 scores differ" in text and "worst |a - b|" in text
    # The worst place it names is the real one.
    a, b = fitted.score(fitted.user_ids[:5]), other.score(fitted.user_ids[:5])
    r, c = np.unravel_index(np.argmax(np.abs(a - b)), a.shape)
    assert f"user {int(fitted.user_ids[r])}, item {int(fitted.item_ids[c])}" in text
    assert f"{np.abs(a - b).max():.6g}" in text


def test_assert_same_scores_on_arrays_nan_and_ids():
    a = np.array([[1.0, np.nan], [3.0, 4.0]], dtype=np.float32)
    assert assert_same_scores(a, a.copy(), atol=0) == 0.0
    b = a.copy()
    b[1, 1] = 4.5
    assert assert_same_scores(a, b, atol=0.6) == pytest.approx(0.5)
    with pytest.raises(AssertionError, match=r"1 of 4 scores differ.*row 1, column 1: a = 4, b = 4.5"):
        assert_same_scores(a, b, atol=0.1)
    c = a.copy()
    c[0, 1] = 2.0
    with pytest.raises(AssertionError, match="worst .* = inf at row 0, column 1"):
        assert_same_scores(a, c)
    small_a = fr.BPR(factors=2, epochs=1).fit(fr.Interactions.from_arrays([0, 1], [0, 1]), progress=False)
    small_b = fr.BPR(factors=2, epochs=1).fit(fr.Interactions.from_arrays([0, 1], [0, 2]), progress=False)
    with pytest.raises(AssertionError, match="other item ids"):
        assert_same_scores(small_a, small_b)


def test_assert_recommendations_valid(small, fitted):
    train, _ = small
    users = fitted.user_ids[:20]
    items, scores = assert_recommendations_valid(fitted, users, k=7, exclude=train)
    assert items.shape == (20, 7)
    assert_recommendations_valid(fitted, users[:3], k=5)


def test_assert_recommendations_valid_catches_broken_recommend(small, fitted, monkeypatch):
    train, _ = small
    user = fitted.user_ids[0]
    good_items, good_scores = fitted.recommend([user], k=5, exclude=train)
    deeper, deeper_scores = fitted.recommend([user], k=6, exclude=train)
    seen = train.items_of(user)

    def broken(items, scores):
        monkeypatch.setattr(fitted, "recommend", lambda *a, **kw: (items, scores))

    broken(np.array([[seen[0], *good_items[0, 1:]]]), good_scores)
    with pytest.raises(AssertionError, match=f"item {int(seen[0])} is in exclude"):
        assert_recommendations_valid(fitted, [user], k=5, exclude=train)
    broken(good_items[:, ::-1].copy(), good_scores[:, ::-1].copy())
    with pytest.raises(AssertionError, match="not in decreasing order"):
        assert_recommendations_valid(fitted, [user], k=5, exclude=train)
    broken(good_items, good_scores + 1)
    with pytest.raises(AssertionError, match="recommend says .* score says"):
        assert_recommendations_valid(fitted, [user], k=5, exclude=train)
    # A top-5 that skips the best candidate (shifted by one) leaves out a better item.
    broken(deeper[:, 1:].copy(), deeper_scores[:, 1:].copy())
    with pytest.raises(AssertionError, match="above the last recommended .* but was left out"):
        assert_recommendations_valid(fitted, [user], k=5, exclude=train)
