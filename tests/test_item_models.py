"""CompatibilityModel and SampledSoftmax: fit, score, the model-specific methods, save / load,
bad input. Small synthetic data, CPU."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fashionrec as fr


@pytest.fixture(scope="module")
def planted():
    """60 items in 3 groups; features say the group (plus noise); pairs go across groups
    (a 'goes with' relation, not similarity): group g goes with group (g + 1) % 3."""
    rng = np.random.default_rng(0)
    n, groups = 60, 3
    group = np.arange(n) % groups
    centres = rng.normal(0, 1, (groups, 8))
    feats = (centres[group] + 0.3 * rng.normal(0, 1, (n, 8))).astype(np.float32)
    qi, pj = [], []
    for i in range(n):
        partners = np.flatnonzero(group == (group[i] + 1) % groups)
        for j in rng.choice(partners, 6, replace=False):
            qi.append(i)
            pj.append(j)
    ids = np.arange(1000, 1000 + n)
    pairs = fr.Interactions.from_ids(ids[qi], ids[pj], user_ids=ids, item_ids=ids)
    train, test = fr.split.pair_split(pairs, 0.2, seed=0)
    return feats, group, ids, train, test


def negatives_for(test, group, ids, seed=0):
    """Held-out negatives: same query, a partner from a group it does not go with."""
    rng = np.random.default_rng(seed)
    q, _, _ = test._core.coo()
    bad = [rng.choice(np.flatnonzero(group != (group[i] + 1) % 3)) for i in q]
    return fr.Interactions.from_ids(ids[q], ids[bad], like=test, duplicates="max")


@pytest.mark.parametrize("distance", ["euclidean", "inner"])
def test_compatibility_learns_held_out_pairs(planted, distance, tmp_path):
    feats, group, ids, train, test = planted
    model = fr.CompatibilityModel(factors=3, distance=distance, epochs=40, lr=0.03, batch_size=64, device="cpu")
    model.fit(train, item_features=feats, validation=test, metrics=["auc"], progress=False)
    assert len(model.history_["val_auc"]) == 40
    neg = negatives_for(test, group, ids)
    res = model.evaluate_pairs(test, neg)
    assert res["accuracy"] > 0.8 and res["auc"] > 0.9, res
    # predict_proba agrees with score_pairs, and is a probability.
    q, p, _ = test._core.coo()
    pp = model.predict_proba(ids[q[:5]], ids[p[:5]])
    np.testing.assert_allclose(pp, model.score_pairs(test)[:5], rtol=1e-5)
    assert 0.0 < model.predict_proba(int(ids[0]), int(ids[1])) < 1.0
    assert model.style_embeddings().shape == (60, 3)
    # Top compatible items of an item come mostly from the group it goes with.
    found, probs = model.compatible_items(int(ids[0]), k=10)
    assert (group[found - 1000] == 1).mean() >= 0.8
    assert np.all(np.diff(probs) <= 1e-6)
    # Saved and loaded: identical scores, no features needed.
    path = tmp_path / "compat.safetensors"
    model.save(path)
    again = fr.load(path)
    assert isinstance(again, fr.CompatibilityModel)
    np.testing.assert_allclose(again.score_pairs(test), model.score_pairs(test), rtol=1e-6)
    f2, _ = again.compatible_items(int(ids[0]), k=10)
    np.testing.assert_array_equal(f2, found)


def test_compatible_items_options(planted):
    feats, group, ids, train, _ = planted
    model = fr.CompatibilityModel(factors=3, epochs=5, device="cpu").fit(
        train, item_features=feats, categories=group, progress=False
    )
    found, _ = model.compatible_items(ids[:4], k=5, category=2)
    assert found.shape == (4, 5) and (group[found - 1000] == 2).all()
    # Integer labels are kept as the codes given, whatever their order of appearance: the
    # category asked for is the one given to fit (a re-encoding filtered on other codes).
    coded = fr.CompatibilityModel(factors=3, epochs=2, device="cpu").fit(
        train, item_features=feats, categories=100 - 7 * group, progress=False
    )
    found, _ = coded.compatible_items(ids[:4], k=5, category=100 - 7 * 2)
    assert (group[found - 1000] == 2).all()
    with pytest.raises(ValueError, match="integer code"):
        coded.compatible_items(ids[:4], k=5, category="shoes")
    with_self, _ = model.compatible_items(ids[:4], k=60, exclude_self=False)
    with pytest.warns(UserWarning, match="padded"):
        without, _ = model.compatible_items(ids[:4], k=60)
    for r in range(4):
        assert ids[r] in with_self[r] and ids[r] not in without[r]
    # k larger than the candidates: padded with -1.
    with pytest.warns(UserWarning, match="padded"):
        f, p = model.compatible_items(int(ids[0]), k=60, category=1)
    assert (f[20:] == -1).all() and (p[20:] == 0).all()


def test_compatibility_category_negatives_and_bad_input(planted):
    feats, group, ids, train, _ = planted
    model = fr.CompatibilityModel(sampler="category", epochs=2, device="cpu")
    with pytest.raises(ValueError, match="categories"):
        model.fit(train, item_features=feats, progress=False)
    model.fit(train, item_features=feats, categories=group, progress=False)
    assert model.is_fitted
    with pytest.raises(ValueError, match="item_features"):
        fr.CompatibilityModel(epochs=1, device="cpu").fit(train, progress=False)
    with pytest.raises(ValueError):
        fr.CompatibilityModel(distance="cosine")
    bad = feats.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        fr.CompatibilityModel(epochs=1, device="cpu").fit(train, item_features=bad, progress=False)
    users_items = fr.Interactions.from_arrays([0, 1, 2], [0, 0, 1], n_users=3, n_items=60)
    with pytest.raises(ValueError, match="same ids on both sides"):
        fr.CompatibilityModel(epochs=1, device="cpu").fit(users_items, item_features=feats, progress=False)
    with pytest.raises(ValueError, match="same length"):
        model.predict_proba(ids[:3], ids[:2])


@pytest.fixture(scope="module")
def string_users():
    data = fr.datasets.synthetic(400, 150, mean_items_per_user=12, seed=5)
    frame = data.to_pandas()
    frame["user"] = "user-" + frame["user"].astype(str)
    frame["item"] = frame["item"] * 7 + 100000
    full = fr.Interactions.from_pandas(frame, "user", "item")
    return fr.split.random_split(full, 0.2, seed=1)


@pytest.mark.parametrize("sampler, users", [(s, "embedding") for s in ("uniform", "popularity", "log_uniform")] + [("popularity", "item_average")])
def test_sampled_softmax_beats_chance(string_users, sampler, users):
    train, test = string_users
    model = fr.SampledSoftmax(factors=16, users=users, n_negatives=30, sampler=sampler, epochs=8, lr=0.05, batch_size=256, device="cpu")
    model.fit(train, validation=test, progress=False)
    assert len(model.history_["val_auc"]) == 8
    res = fr.evaluate(model, test, train=train, metrics=["auc"])
    assert res["auc"] > 0.6, res


def test_sampled_softmax_item_average_users_follow_their_history():
    # Users "a" and "b" bought the same items, "c" others: a and b get one vector, c another.
    df = pd.DataFrame({"user": list("aaabbbccc") + [f"u{k}" for k in range(60)],
                       "item": [1, 2, 3, 1, 2, 3, 4, 5, 6] + [1 + k % 6 for k in range(60)]})
    train = fr.Interactions.from_pandas(df, "user", "item")
    model = fr.SampledSoftmax(factors=8, users="item_average", n_negatives=4, epochs=3, lr=0.05, device="cpu", seed=0)
    model.fit(train, progress=False)
    u = model.user_embeddings
    ia, ib, ic = (list(train.user_ids).index(x) for x in "abc")
    np.testing.assert_allclose(u[ia], u[ib], rtol=1e-6)
    assert np.abs(u[ia] - u[ic]).max() > 1e-4
    with pytest.raises(ValueError, match="users"):
        fr.SampledSoftmax(users="free")


def test_sampled_softmax_api(string_users, tmp_path):
    train, test = string_users
    model = fr.SampledSoftmax(factors=8, n_negatives=20, shared_negatives=False, epochs=3, device="cpu", seed=3)
    model.fit(train, progress=False)
    assert model.user_embeddings.shape == (train.n_users, 8)
    assert model.item_bias.shape == (train.n_items,)
    user = train.user_ids[0]
    items, scores = model.recommend(user, k=5, exclude=train)
    assert len(items) == 5 and not set(items) & set(train.items_of(user))
    sim, _ = model.similar_items(int(train.item_ids[0]), k=4)
    assert int(train.item_ids[0]) not in sim
    path = tmp_path / "ss.safetensors"
    model.save(path)
    again = fr.load(path)
    np.testing.assert_array_equal(again.score(train.user_ids[:3]), model.score(train.user_ids[:3]))
    # Same seed, same model.
    twin = fr.SampledSoftmax(factors=8, n_negatives=20, shared_negatives=False, epochs=3, device="cpu", seed=3, threads=1)
    twin.fit(train, progress=False)
    np.testing.assert_allclose(twin.score(train.user_ids[:3]), model.score(train.user_ids[:3]), rtol=1e-5)
    with pytest.raises(ValueError, match="sampler"):
        fr.SampledSoftmax(sampler="zipf")
    with pytest.raises(ValueError, match="n_negatives"):
        fr.SampledSoftmax(n_negatives=0)
    with pytest.raises(ValueError):
        model.fit(train, item_features=np.zeros((train.n_items, 2), np.float32), progress=False)


def test_compatibility_probabilities_of_extreme_logits_are_exact_without_warnings():
    """The sigmoid behind predict_proba / score_pairs / compatible_items: no overflow warning
    for logits far below -709 (where a naive exp(-x) is inf), 0 and 1 at the extremes, the
    logistic function elsewhere."""
    import warnings

    from fashionrec.models.compatibility import _sigmoid

    x = np.array([-1e6, -800.0, -3.0, 0.0, 2.5, 800.0, 1e6])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = _sigmoid(x)
    np.testing.assert_array_equal(p[[0, 1, 5, 6]], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(p[2:5], 1 / (1 + np.exp(-x[2:5])), rtol=1e-12)
