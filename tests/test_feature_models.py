"""HybridBPR, TripletModel and DeepTripletModel: fit, score, cold users, save / load, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fashionrec as fr


@pytest.fixture(scope="module")
def data():
    x = fr.datasets.synthetic(n_users=300, n_items=200, seed=5)
    return fr.split.random_split(x, test_fraction=0.2, seed=2)


@pytest.fixture(scope="module")
def taste():
    """Users of two groups who like disjoint halves of the catalogue; the group is a user
    feature and the half an item feature, so features alone predict the positives."""
    rng = np.random.default_rng(0)
    n_users, n_items = 240, 120
    group = rng.integers(0, 2, n_users)
    rows = []
    for u in range(n_users):
        half = np.arange(n_items // 2) + group[u] * (n_items // 2)
        for i in rng.choice(half, 12, replace=False):
            rows.append((u, int(i)))
    df = pd.DataFrame(rows, columns=["user", "item"])
    users = pd.DataFrame(
        {"group": np.where(group == 1, "b", "a"), "age": rng.normal(35, 10, n_users)}, index=np.arange(n_users)
    )
    items = pd.DataFrame(
        {"half": (np.arange(n_items) >= n_items // 2).astype(np.float32), "noise": rng.normal(size=n_items)},
        index=np.arange(n_items),
    )
    warm = df[df.user < 200]
    cold = df[df.user >= 200]
    train = fr.Interactions.from_pandas(warm, "user", "item", item_ids=np.arange(n_items))
    test = fr.Interactions.from_pandas(cold, "user", "item", user_ids=np.arange(200, n_users), item_ids=np.arange(n_items))
    return train, test, users, items


@pytest.mark.parametrize(
    "cls, sampler",
    [(fr.TripletModel, s) for s in ("uniform", "popularity", "warp", "best_of_n")]
    + [(fr.DeepTripletModel, s) for s in ("uniform", "warp")],
)
def test_triplet_models_learn_with_the_samplers(data, cls, sampler):
    train, test = data
    model = cls(epochs=10, batch_size=256, device="cpu", sampler=sampler, seed=0, threads=1)
    model.fit(train, progress=False)
    res = fr.evaluate(model, test, train=train, metrics=["auc", "ndcg@10"])
    assert res["auc"] > 0.75, (cls.__name__, sampler, res)
    assert np.isfinite(model.history_["loss"]).all()
    assert model.history_["loss"][-1] < model.history_["loss"][0]


@pytest.mark.parametrize("cls", [fr.TripletModel, fr.DeepTripletModel])
def test_triplet_models_fit_and_score_with_sparse_adam(data, cls):
    # torch.optim.SparseAdam's row-sparse update (a different optimiser from the dense Adam):
    # it learns, scores every item, and the setting survives save/load through the config.
    train, test = data
    model = cls(optimizer="sparse_adam", epochs=10, batch_size=64, device="cpu", seed=0, threads=1)
    model.fit(train, progress=False)
    assert model.history_["loss"][-1] < model.history_["loss"][0]
    s = model.score(train.user_ids[:4])
    assert s.shape == (4, train.n_items) and np.isfinite(s).all()
    res = fr.evaluate(model, test, train=train, metrics=["auc"])
    assert res["auc"] > 0.7, (cls.__name__, res)
    assert model.get_params()["optimizer"] == "sparse_adam"
    with pytest.raises(ValueError, match="optimizer"):
        cls(optimizer="adagrad")


def test_deep_triplet_runs_with_best_of_n(data):
    # It trains (finite, falling loss) but on this small synthetic set the hardest-of-10
    # negatives are the popular items and the MLP does not get past popularity: no AUC claim.
    train, _ = data
    model = fr.DeepTripletModel(epochs=3, batch_size=256, device="cpu", sampler="best_of_n", seed=0, threads=1)
    model.fit(train, progress=False)
    assert np.isfinite(model.history_["loss"]).all()


def test_triplet_similarities_and_vectors(data):
    train, _ = data
    model = fr.TripletModel(factors=8, epochs=3, device="cpu", seed=1).fit(train, progress=False)
    s = model.score(train.user_ids[:4])
    assert s.shape == (4, train.n_items) and np.abs(s).max() <= 1 + 1e-5  # cosines
    v = model.item_vectors()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    items, sims = model.similar_items(train.item_ids[0], k=3)
    assert len(items) == 3 and train.item_ids[0] not in items
    dot = fr.TripletModel(factors=8, epochs=3, similarity="dot", device="cpu", seed=1).fit(train, progress=False)
    assert np.abs(dot.score(train.user_ids[:4])).max() > 0


@pytest.mark.parametrize("cls", [fr.TripletModel, fr.DeepTripletModel, fr.HybridBPR])
def test_save_load_gives_identical_scores(data, taste, tmp_path, cls):
    if cls is fr.HybridBPR:
        train, _, users, items = taste
        model = cls(epochs=2, device="cpu").fit(train, user_features=users.loc[train.user_ids], item_features=items, progress=False)
    else:
        train, _ = data
        model = cls(epochs=2, device="cpu").fit(train, progress=False)
    path = tmp_path / "m.safetensors"
    model.save(path)
    back = fr.load(path)
    assert type(back) is cls
    np.testing.assert_array_equal(back.score(train.user_ids[:5]), model.score(train.user_ids[:5]))
    items_a, _ = model.recommend(train.user_ids[:3], k=5, exclude=train)
    items_b, _ = back.recommend(train.user_ids[:3], k=5, exclude=train)
    np.testing.assert_array_equal(items_a, items_b)


def test_hybrid_scores_cold_users_from_features(taste):
    train, test, users, items = taste
    model = fr.HybridBPR(factors=8, embed_dim=4, hidden=(16,), epochs=15, lr=0.01, batch_size=256, device="cpu", seed=0)
    model.fit(train, user_features=users.loc[train.user_ids], item_features=items, progress=False)
    cold_ids = test.user_ids
    scores = model.score(cold_ids, user_features=users.loc[cold_ids])
    assert scores.shape == (len(cold_ids), train.n_items)
    res = fr.evaluate_scores(lambda idx: scores[idx], test, metrics=["auc"])
    # The half a user likes is decided by one feature; inside it, positives are random. Perfect
    # halves give AUC (60 + 48 / 2) / 108 = 0.78 (popularity: about 0.5).
    assert res["auc"] > 0.72, res
    liked_b = (users.loc[cold_ids, "group"] == "b").to_numpy()
    upper = items.loc[model.item_ids, "half"].to_numpy() == 1
    gap = scores[:, upper].mean(1) - scores[:, ~upper].mean(1)
    assert (np.sign(gap) == np.where(liked_b, 1, -1)).all(), "a cold user's liked half is not scored higher"
    # A value never seen in training is the unknown code, not an error.
    odd = users.loc[cold_ids[:2]].assign(group="z")
    assert np.isfinite(model.score(cold_ids[:2], user_features=odd)).all()
    # Other columns than fit's are an error naming them.
    with pytest.raises(ValueError, match="differ from fit"):
        model.score(cold_ids[:2], user_features=users.loc[cold_ids[:2], ["group"]])


def test_hybrid_softmax_id_embeddings_and_cosine_sampler(taste):
    train, test, users, items = taste
    u = users.loc[train.user_ids]
    soft = fr.HybridBPR(factors=8, loss="softmax", n_negatives=50, epochs=5, device="cpu").fit(
        train, user_features=u, item_features=items, progress=False
    )
    assert np.isfinite(soft.history_["loss"]).all()
    hybrid = fr.HybridBPR(factors=8, id_embeddings=True, epochs=3, device="cpu", sampler="cosine").fit(
        train, user_features=u, item_features=items, progress=False
    )
    assert hybrid.score(train.user_ids[:2]).shape == (2, train.n_items)
    ids_only = fr.HybridBPR(factors=8, id_embeddings=True, epochs=2, device="cpu").fit(train, progress=False)
    with pytest.raises(ValueError, match="without user_features"):
        ids_only.score(test.user_ids[:1], user_features=users.loc[test.user_ids[:1]])
    with pytest.raises(ValueError, match="needs user_features="):
        fr.HybridBPR(epochs=1).fit(train, item_features=items, progress=False)


def test_hybrid_full_softmax_starts_from_popularity_and_learns_the_features(taste):
    train, test, users, items = taste
    u = users.loc[train.user_ids]
    # No epochs of training moves nothing: the scores are the log-popularity start.
    start = fr.HybridBPR(factors=8, loss="full_softmax", item_bias_init="log_popularity", epochs=1, lr=1e-9, device="cpu")
    start.fit(train, user_features=u, item_features=items, progress=False)
    bias = start._core.state()["item_bias"]
    np.testing.assert_allclose(bias, np.log1p(train.item_counts()), rtol=1e-5)
    model = fr.HybridBPR(factors=8, embed_dim=4, hidden=(16,), loss="full_softmax", item_bias_init="log_popularity",
                         epochs=15, lr=0.01, batch_size=256, device="cpu", seed=0)
    model.fit(train, user_features=u, item_features=items, progress=False)
    assert model.history_["loss"][-1] < model.history_["loss"][0]
    scores = model.score(test.user_ids, user_features=users.loc[test.user_ids])
    res = fr.evaluate_scores(lambda idx: scores[idx], test, metrics=["auc"])
    assert res["auc"] > 0.72, res  # the liked half found from the group feature (see above)
    with pytest.raises(ValueError, match="n_negatives=1"):
        fr.HybridBPR(loss="full_softmax", n_negatives=10)
    with pytest.raises(ValueError, match="item_bias_init"):
        fr.HybridBPR(item_bias_init="mean")


def test_triplet_item_bias_is_learnt_scored_and_saved(data, tmp_path):
    train, test = data
    model = fr.TripletModel(factors=8, similarity="dot", item_bias=True, epochs=5, batch_size=256, device="cpu", seed=0)
    model.fit(train, progress=False)
    bias = model._core.state()["item_bias"]
    assert np.abs(bias).max() > 0, "the bias was not trained"
    s = model.score(train.user_ids[:3])
    np.testing.assert_allclose(s, model.user_embeddings[:3] @ model.item_embeddings.T + bias[None, :], rtol=1e-4, atol=1e-5)
    model.save(tmp_path / "t.safetensors")
    np.testing.assert_array_equal(fr.load(tmp_path / "t.safetensors").score(train.user_ids[:3]), s)
    plain = fr.TripletModel(factors=8, similarity="dot", epochs=2, device="cpu", seed=0).fit(train, progress=False)
    assert np.abs(plain._core.state()["item_bias"]).max() == 0


def test_hybrid_rated_below_negatives(ml100k):
    train, test = fr.datasets.movielens_100k(ml100k, split="u1", min_rating=None)
    users, items = fr.datasets.movielens_100k_features(ml100k, ids_like=train)
    users = users[["gender", "occupation", "age"]].astype({"gender": str, "occupation": str})
    genres = items.drop(columns=["title", "release_date", "video_release_date", "imdb_url"]).astype(np.float32)
    model = fr.HybridBPR(sampler="rated_below", loss="bpr", min_rating=4, epochs=2, device="cpu")
    model.fit(train, user_features=users, item_features=genres, progress=False)
    assert np.isfinite(model.history_["loss"]).all()
    positives_only = fr.datasets.movielens_100k(ml100k, split="u1", min_rating=4)[0]
    with pytest.raises(ValueError, match="no rating is >= min_rating"):
        fr.HybridBPR(sampler="rated_below", loss="bpr", min_rating=6, epochs=1, device="cpu").fit(
            train, user_features=users, item_features=genres, progress=False
        )
    assert len(positives_only) < len(train)


def test_bad_parameters_name_themselves():
    with pytest.raises(ValueError, match="similarity"):
        fr.TripletModel(similarity="euclid")
    with pytest.raises(ValueError, match="dropout"):
        fr.DeepTripletModel(dropout=1.5)
    with pytest.raises(ValueError, match="loss"):
        fr.HybridBPR(loss="hinge")
    with pytest.raises(ValueError, match="n_negatives"):
        fr.HybridBPR(n_negatives=5)
    with pytest.raises(ValueError, match="sampler='rated_below' works with loss='bpr'"):
        fr.HybridBPR(sampler="rated_below", loss="softmax", n_negatives=10)


def test_hybrid_item_id_column_and_weight_averaging(taste):
    train, test, users, items = taste
    u = users.loc[train.user_ids]
    small = dict(factors=8, embed_dim=4, hidden=(16,), epochs=3, batch_size=256, device="cpu", seed=0)
    # The default item tower has the item id as a column of its own: item features optional.
    ids_only = fr.HybridBPR(**small).fit(train, user_features=u, progress=False)
    assert ids_only.get_params()["item_id_column"] and ids_only.get_params()["loss"] == "full_softmax"
    with_items = fr.HybridBPR(**small).fit(train, user_features=u, item_features=items, progress=False)
    without_ids = fr.HybridBPR(**small, item_id_column=False).fit(train, user_features=u, item_features=items, progress=False)
    assert not np.allclose(with_items.item_vectors(), without_ids.item_vectors())
    with pytest.raises(ValueError, match="item_features"):
        fr.HybridBPR(**small, item_id_column=False).fit(train, user_features=u, progress=False)
    # Averaging the last epochs' parameters (the default: 12, so all 3 here) against the last step's.
    last_step = fr.HybridBPR(**small, average_epochs=0).fit(train, user_features=u, item_features=items, progress=False)
    averaged = with_items
    assert averaged.get_params()["average_epochs"] == 12
    assert not np.allclose(averaged.item_vectors(), last_step.item_vectors())
    scores = averaged.score(test.user_ids, user_features=users.loc[test.user_ids])
    assert np.isfinite(scores).all()


def test_hybrid_item_feature_dropout(taste, tmp_path):
    train, test, users, items = taste
    u = users.loc[train.user_ids]
    small = dict(factors=8, embed_dim=4, hidden=(16,), epochs=2, batch_size=256, device="cpu", seed=0)
    plain = fr.HybridBPR(**small).fit(train, user_features=u, item_features=items, progress=False)
    masked = fr.HybridBPR(**small, item_feature_dropout=0.5).fit(train, user_features=u, item_features=items, progress=False)
    assert plain.get_params()["item_feature_dropout"] == 0.0
    assert not np.allclose(plain.item_vectors(), masked.item_vectors())
    # Scoring never masks: the same model scores the same twice, and after a save / load.
    cold = users.loc[test.user_ids]
    first = masked.score(test.user_ids, user_features=cold)
    np.testing.assert_array_equal(first, masked.score(test.user_ids, user_features=cold))
    masked.save(tmp_path / "m.safetensors")
    again = fr.load(tmp_path / "m.safetensors")
    assert again.get_params()["item_feature_dropout"] == 0.5
    np.testing.assert_allclose(again.score(test.user_ids, user_features=cold), first, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="item_feature_dropout"):
        fr.HybridBPR(item_feature_dropout=1.0).fit(train, user_features=u, item_features=items, progress=False)
    with pytest.raises(ValueError, match="item_id_column"):
        fr.HybridBPR(item_feature_dropout=0.2, item_id_column=False).fit(train, user_features=u, item_features=items, progress=False)


def test_hybrid_item_bias_lr_and_lr_final(taste):
    train, test, users, items = taste
    u = users.loc[train.user_ids]
    small = dict(factors=8, embed_dim=4, hidden=(16,), epochs=3, lr=0.01, batch_size=256, device="cpu", seed=0)
    start = np.log1p(train.item_counts())
    trained = fr.HybridBPR(**small).fit(train, user_features=u, item_features=items, progress=False)
    assert trained.get_params()["item_bias_lr"] == 1.0 and trained.get_params()["lr_final"] == 1.0
    assert np.abs(trained._core.state()["item_bias"] - start).max() > 1e-3, "the bias trains by default"
    # item_bias_lr=0: the bias stays at its log-popularity start while the towers train.
    frozen = fr.HybridBPR(**small, item_bias_lr=0.0).fit(train, user_features=u, item_features=items, progress=False)
    np.testing.assert_allclose(frozen._core.state()["item_bias"], start, rtol=1e-6)
    assert not np.allclose(frozen.item_vectors(), trained.item_vectors())
    # A smaller fraction moves it less.
    slow = fr.HybridBPR(**small, item_bias_lr=0.1).fit(train, user_features=u, item_features=items, progress=False)
    moved = lambda m: np.abs(m._core.state()["item_bias"] - start).mean()  # noqa: E731
    assert 0 < moved(slow) < moved(trained)
    # lr_final < 1: the learning rate falls over the epochs, so the fit differs from a constant one.
    decayed = fr.HybridBPR(**small, lr_final=0.1).fit(train, user_features=u, item_features=items, progress=False)
    assert not np.allclose(decayed.item_vectors(), trained.item_vectors())
    for bad in (dict(lr_final=0.0), dict(lr_final=1.5), dict(item_bias_lr=-1.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            fr.HybridBPR(**bad)


def test_hybrid_continuous_bins(taste, tmp_path):
    train, test, users, items = taste
    u = users.loc[train.user_ids]
    small = dict(factors=8, embed_dim=4, hidden=(16,), epochs=2, batch_size=256, device="cpu", seed=0)
    plain = fr.HybridBPR(**small, continuous_bins=0).fit(train, user_features=u, item_features=items, progress=False)
    binned = fr.HybridBPR(**small).fit(train, user_features=u, item_features=items, progress=False)
    assert binned.get_params()["continuous_bins"] == 4, "the default: quartiles"
    state = binned._core.state()
    assert not any("bin_edges" in k for k in plain._core.state())
    # Users' age: 3 interior edges at the quartiles of the training users' ages.
    np.testing.assert_allclose(state["user.bin_edges.values"], np.quantile(u["age"], [0.25, 0.5, 0.75]), rtol=0.02)
    np.testing.assert_array_equal(state["user.bin_edges.offsets"], [0, 3])
    # Items: the 0/1 flag "half" gets no buckets (its value says it all), "noise" four.
    np.testing.assert_array_equal(state["item.bin_edges.offsets"], [0, 0, 3])
    item_columns = bytes(state["item.categorical_columns.bytes"].astype(np.uint8)).decode()
    assert "<noise bin>" in item_columns and "<half bin>" not in item_columns
    cold = users.loc[test.user_ids]
    first = binned.score(test.user_ids, user_features=cold)
    assert np.isfinite(first).all() and not np.allclose(first, plain.score(test.user_ids, user_features=cold))
    # Ages beyond the training users' fall in the end buckets; scored all the same.
    far = cold.assign(age=np.r_[[-50.0, 500.0], cold["age"].to_numpy()[2:]])
    assert np.isfinite(binned.score(test.user_ids, user_features=far)).all()
    # Saved with the model: a loaded one buckets new users at the same edges.
    binned.save(tmp_path / "b.safetensors")
    again = fr.load(tmp_path / "b.safetensors")
    assert again.get_params()["continuous_bins"] == 4
    for k in ("user.bin_edges.values", "user.bin_edges.offsets", "item.bin_edges.values", "item.bin_edges.offsets"):
        np.testing.assert_array_equal(again._core.state()[k], state[k])
    np.testing.assert_allclose(again.score(test.user_ids, user_features=cold), first, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(again.score(test.user_ids, user_features=far), binned.score(test.user_ids, user_features=far), rtol=1e-5, atol=1e-5)
    for bad in (1, -1, 1 << 17):
        with pytest.raises(ValueError, match="continuous_bins"):
            fr.HybridBPR(continuous_bins=bad)
