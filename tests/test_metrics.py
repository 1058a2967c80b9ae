import numpy as np
import pytest

import fashionrec as fr


def _reference(scores, train_rows, test_rows, k):
    """Plain numpy versions of the metrics, for one user at a time."""
    out = {"auc": [], f"precision@{k}": [], f"recall@{k}": [], f"ndcg@{k}": [], f"map@{k}": [], f"hitrate@{k}": []}
    for u, pos in enumerate(test_rows):
        pos = set(pos) - set(train_rows[u])
        if not pos:
            continue
        cand = [i for i in range(scores.shape[1]) if i not in set(train_rows[u])]
        neg = [i for i in cand if i not in pos]
        s = scores[u]
        wins = sum((s[p] > s[n]) + 0.5 * (s[p] == s[n]) for p in pos for n in neg)
        out["auc"].append(wins / (len(pos) * len(neg)))
        ranked = sorted(cand, key=lambda i: (-s[i], i))[:k]
        hits = [i in pos for i in ranked]
        out[f"precision@{k}"].append(sum(hits) / k)
        out[f"recall@{k}"].append(sum(hits) / len(pos))
        dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
        out[f"ndcg@{k}"].append(dcg / sum(1 / np.log2(r + 2) for r in range(min(k, len(pos)))))
        ap = sum(sum(hits[: r + 1]) / (r + 1) for r, h in enumerate(hits) if h)
        out[f"map@{k}"].append(ap / min(k, len(pos)))
        out[f"hitrate@{k}"].append(float(any(hits)))
    return {m: float(np.mean(v)) for m, v in out.items()}, len(out["auc"])


def test_metrics_match_a_plain_reference():
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 30
    data = fr.datasets.synthetic(n_users, n_items, mean_items_per_user=8, seed=4)
    train, test = fr.split.random_split(data, 0.3, seed=1)
    # Rounded scores make ties, which count 1/2 in AUC and break by item index in rankings.
    scores = np.round(rng.normal(size=(n_users, n_items)), 1).astype(np.float32)
    k = 5
    names = ["auc", f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"map@{k}", f"hitrate@{k}"]
    got = fr.evaluate_scores(lambda u: scores[u], test, train=train, metrics=names)
    rows = lambda x: [x._core.user_items(u).tolist() for u in range(n_users)]
    want, n = _reference(scores, rows(train), rows(test), k)
    assert got["users"] == n
    for name in names:
        assert got[name] == pytest.approx(want[name], abs=1e-9), name


def test_per_user_frame_and_sampled_auc(small, fitted):
    train, test = small
    frame = fr.evaluate(fitted, test, train=train, metrics=["auc", "sampled_auc", "P@5"], per_user=True)
    assert list(frame.columns) == ["auc", "sampled_auc", "precision@5"]
    assert frame.index.name == "user" and len(frame) == fr.evaluate(fitted, test, train=train)["users"]
    assert frame["sampled_auc"].between(0, 1).all()
    # The sampled AUC estimates the full one.
    assert abs(frame["sampled_auc"].mean() - frame["auc"].mean()) < 0.02
    again = fr.evaluate(fitted, test, train=train, metrics=["sampled_auc"], seed=0)
    assert again["sampled_auc"] == pytest.approx(frame["sampled_auc"].mean())
    other = fr.evaluate(fitted, test, train=train, metrics=["sampled_auc"], seed=1)
    assert other["sampled_auc"] != again["sampled_auc"]
    some = fr.evaluate(fitted, test, train=train, users=test.user_ids[:10])
    assert some["users"] <= 10


def test_metric_errors(small, fitted):
    train, test = small
    with pytest.raises(ValueError, match='unknown metric "mrr@10"'):
        fr.evaluate(fitted, test, train=train, metrics=["mrr@10"])
    nan_scores = lambda u: np.full((len(u), test.n_items), np.nan, np.float32)
    with pytest.raises(ValueError, match="is NaN"):
        fr.evaluate_scores(nan_scores, test, train=train)
    other = fr.datasets.synthetic(30, 20, seed=9)
    with pytest.raises(ValueError, match="other user/item ids"):
        fr.evaluate(fitted, other)
