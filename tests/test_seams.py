"""The groundwork every model builds on: side data in fit, negative samplers, recommend and
evaluate in Rust, concurrent reads, failed fits."""

import threading

import numpy as np
import pandas as pd
import pytest

import fashionrec as fr


@pytest.fixture(scope="module")
def data():
    x = fr.datasets.synthetic(n_users=300, n_items=200, seed=3)
    return fr.split.random_split(x, test_fraction=0.2, seed=1)


@pytest.mark.parametrize("backend", ["native", "torch"])
@pytest.mark.parametrize("sampler", ["uniform", "popularity", "warp", "best_of_n"])
def test_every_model_free_and_model_aware_sampler_trains(data, sampler, backend):
    train, test = data
    model = fr.BPR(factors=16, epochs=8, device="cpu", backend=backend, sampler=sampler, seed=0)
    model.fit(train, progress=False)
    auc = fr.evaluate(model, test, train=train, metrics=["auc"])["auc"]
    assert auc > 0.75, (sampler, backend, auc)
    assert np.isfinite(model.history_["loss"]).all()


def test_category_and_cosine_samplers_need_their_side_data(data):
    train, test = data
    cats = {int(i): int(i) % 5 for i in train.item_ids}
    with pytest.raises(ValueError, match="needs categories="):
        fr.BPR(epochs=1, sampler="category").fit(train, progress=False)
    with pytest.raises(ValueError, match="does not use categories="):
        fr.BPR(epochs=1).fit(train, categories=cats, progress=False)
    model = fr.BPR(factors=8, epochs=3, device="cpu", sampler="category").fit(train, categories=cats, progress=False)
    assert model.n_items == train.n_items
    feats = np.random.default_rng(0).normal(size=(train.n_items, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="needs item_features="):
        fr.BPR(epochs=1, sampler="cosine").fit(train, progress=False)
    fr.BPR(factors=8, epochs=2, device="cpu", sampler={"kind": "cosine", "n_candidates": 5}).fit(
        train, item_features=feats, progress=False
    )
    with pytest.raises(ValueError, match=r"\(200, n_features\)|n_features"):
        fr.BPR(epochs=1, sampler="cosine").fit(train, item_features=feats[:10], progress=False)


def test_bad_sampler_names_the_option():
    with pytest.raises(ValueError, match="sampler must be one of"):
        fr.BPR(sampler="hardest")
    with pytest.raises(ValueError, match="max_sampled"):
        fr.BPR(sampler={"kind": "warp", "max_sampled": 0})


def test_side_data_keyed_by_id_grows_the_catalogue_with_cold_items():
    df = pd.DataFrame({"user": ["a", "a", "b", "c"], "item": [10, 11, 11, 12]})
    train = fr.Interactions.from_pandas(df, "user", "item")
    # Categories know two more items (13, 14) that nobody interacted with: cold items.
    cats = pd.Series({10: "shoe", 11: "shoe", 12: "bag", 13: "bag", 14: "hat"})
    model = fr.BPR(factors=4, epochs=2, device="cpu", sampler="category").fit(train, categories=cats, progress=False)
    assert list(model.item_ids) == [10, 11, 12, 13, 14]
    assert model.score(["a"]).shape == (1, 5)
    items, _ = model.recommend("a", k=3, exclude=train)  # train is re-expressed in the grown ids
    assert set(items) == {12, 13, 14}
    missing = pd.Series({10: "shoe", 11: "shoe"})
    with pytest.raises(ValueError, match=r"categories has no row for 1 item\(s\) of the data: 12"):
        fr.BPR(epochs=1, sampler="category").fit(train, categories=missing, progress=False)


def test_recommend_in_rust_matches_score_and_sort(data):
    train, _ = data
    model = fr.BPR(factors=8, epochs=3, device="cpu").fit(train, progress=False)
    users = train.user_ids[:20]
    items, scores = model.recommend(users, k=7, exclude=train)
    s = model.score(users)
    for r, u in enumerate(users):
        seen = set(train.items_of(u).tolist())
        cand = [(s[r, j], -j) for j in range(train.n_items) if train.item_ids[j] not in seen]
        best = sorted(cand, reverse=True)[:7]
        assert list(scores[r]) == pytest.approx([c[0] for c in best])


def test_evaluate_and_evaluate_scores_run_the_same_loop(data):
    train, test = data
    model = fr.BPR(factors=8, epochs=3, device="cpu").fit(train, progress=False)
    a = fr.evaluate(model, test, train=train, metrics=["auc", "ndcg@10"])
    b = fr.evaluate_scores(model._score_indices, test, train=train, metrics=["auc", "ndcg@10"])
    assert a == b
    warm = train.item_ids[:100]
    c = fr.evaluate(model, test, train=train, metrics=["auc"], items=warm)
    assert c["users"] <= a["users"] and c["auc"] != a["auc"]
    per_user = fr.evaluate(model, test, train=train, metrics=["auc"], per_user=True)
    assert len(per_user) == a["users"]


def test_reading_calls_run_concurrently(data):
    train, _ = data
    model = fr.BPR(factors=8, epochs=2, device="cpu").fit(train, progress=False)
    errors, outs = [], []

    def work():
        try:
            for _ in range(20):
                outs.append(model.recommend(train.user_ids[:50], k=5)[0].shape)
                model.score(train.user_ids[:50])
        except Exception as e:  # pragma: no cover - the assertion below shows it
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(outs) == 80


def test_a_failed_fit_leaves_the_model_unfitted(data):
    train, _ = data
    model = fr.BPR(factors=8, epochs=3, lr=1e30, init_std=1e10, device="cpu")
    with pytest.raises(Exception, match="diverged|not finite|inf|nan"):
        model.fit(train, progress=False)
    assert not model.is_fitted


def test_vectors_for_plots(data):
    train, _ = data
    model = fr.BPR(factors=8, epochs=1, device="cpu").fit(train, progress=False)
    assert model.item_vectors().shape == (train.n_items, 8)
    assert model.user_vectors().shape == (train.n_users, 8)
    with pytest.raises(ValueError, match="cannot score new users"):
        model.score(train.user_ids[:2], user_features=pd.DataFrame({"g": ["x", "y"]}, index=train.user_ids[:2]))


DOT_MODELS = {
    "bpr": lambda: fr.BPR(factors=8, epochs=2, device="cpu"),
    "sampled_softmax": lambda: fr.SampledSoftmax(factors=8, epochs=2, device="cpu"),
    "triplet_cosine": lambda: fr.TripletModel(factors=8, epochs=2, device="cpu"),
    "triplet_dot_bias": lambda: fr.TripletModel(factors=8, epochs=2, similarity="dot", item_bias=True, device="cpu"),
    "hybrid": lambda: fr.HybridBPR(factors=8, embed_dim=4, hidden=(8,), epochs=2, device="cpu"),
    "deep_triplet": lambda: fr.DeepTripletModel(factors=8, epochs=1, device="cpu"),  # not a dot model: its block loop
}


@pytest.mark.parametrize("kind", sorted(DOT_MODELS))
def test_blocked_scores_recommend_and_evaluate_agree_to_the_bit(data, kind):
    train, test = data
    side = {}
    if kind == "hybrid":
        feats = np.random.default_rng(0).normal(size=(train.n_items, 4))
        side["item_features"] = pd.DataFrame(feats, index=train.item_ids, columns=list("abcd"))
        feats = np.random.default_rng(1).normal(size=(train.n_users, 3))
        side["user_features"] = pd.DataFrame(feats, index=train.user_ids, columns=list("xyz"))
    model = DOT_MODELS[kind]().fit(train, progress=False, **side)
    users = train.user_ids[:37]
    s = model.score(users)
    if kind not in ("deep_triplet", "hybrid"):
        # A dot model's scores of a user do not depend on the block it is scored in (HybridBPR's
        # user tower, an MLP in libtorch, may round differently in another batch).
        np.testing.assert_array_equal(model.score(users[5:6])[0], s[5])
        np.testing.assert_array_equal(model.score(users[::-1])[::-1], s)
    items, scores = model.recommend(users, k=9, exclude=train)
    for r, u in enumerate(users):
        row = s[r].copy()
        row[np.isin(model.item_ids, train.items_of(u))] = -np.inf
        best = np.lexsort((np.arange(len(row)), -row))[:9]  # score down, then the lower index
        assert list(items[r]) == list(model.item_ids[best]), (kind, u)
        np.testing.assert_array_equal(scores[r], row[best])
    metrics = ["ndcg@10", "precision@5", "map@10", "recall@20", "hitrate@3"]
    a = fr.evaluate(model, test, train=train, metrics=metrics, per_user=True)
    b = fr.evaluate_scores(model._score_indices, test, train=train, metrics=metrics, per_user=True)
    pd.testing.assert_frame_equal(a, b)
    warm = train.item_ids[::3]
    a = fr.evaluate(model, test, train=train, metrics=metrics, items=warm)
    assert a == fr.evaluate_scores(model._score_indices, test, train=train, metrics=metrics, items=warm)
