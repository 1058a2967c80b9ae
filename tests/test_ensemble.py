"""fr.Ensemble: the mean of its members' scores, through score, recommend, evaluate, save / load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fashionrec as fr


@pytest.fixture(scope="module")
def data():
    x = fr.datasets.synthetic(n_users=120, n_items=80, mean_items_per_user=10, seed=7)
    return fr.split.random_split(x, test_fraction=0.2, seed=1)


@pytest.fixture(scope="module")
def fitted(data):
    train, _ = data
    base = fr.BPR(factors=8, epochs=5, device="cpu", seed=3)
    return fr.Ensemble.of_seeds(base, 3).fit(train, progress=False)


def test_of_seeds_varies_only_the_seed(fitted):
    seeds = [m.get_params()["seed"] for m in fitted.models]
    assert seeds == [3, 4, 5]
    assert all(m.get_params()["factors"] == 8 for m in fitted.models)
    assert len(fitted) == 3 and fitted.is_fitted


def test_scores_are_the_mean_of_the_members(data, fitted):
    train, _ = data
    users = train.user_ids[:7]
    each = np.stack([m.score(users) for m in fitted.models])
    assert not np.allclose(each[0], each[1])  # the seeds made different models
    np.testing.assert_allclose(fitted.score(users), each.mean(axis=0), rtol=1e-6, atol=1e-6)


def test_recommend_is_the_top_k_of_the_mean(data, fitted):
    train, _ = data
    users = train.user_ids[:5]
    items, scores = fitted.recommend(users, k=4, exclude=train)
    mean = fitted.score(users)
    seen = train.to_pandas().groupby("user")["item"].apply(set)
    for row, u in enumerate(users):
        s = mean[row].copy()
        s[np.isin(fitted.item_ids, list(seen.get(u, set())))] = -np.inf
        best = fitted.item_ids[np.argsort(-s, kind="stable")[:4]]
        assert set(items[row]) == set(best), u
        np.testing.assert_allclose(scores[row], np.sort(s)[::-1][:4], rtol=1e-6)
        assert not set(items[row]) & seen.get(u, set())
    one, _ = fitted.recommend(users[0], k=4, exclude=train)
    assert list(one) == list(items[0])
    frame = fitted.recommend(users, k=4, exclude=train, as_frame=True)
    assert list(frame.columns) == ["user", "rank", "item", "score"] and len(frame) == 20


def test_evaluate_uses_the_mean_scores(data, fitted):
    train, test = data
    got = fr.evaluate(fitted, test, train=train, metrics=["auc", "ndcg@10"])
    want = fr.evaluate_scores(lambda idx: np.mean([m._score_indices(idx) for m in fitted.models], axis=0).astype(np.float32),
                              test, train=train, metrics=["auc", "ndcg@10"])
    assert got == pytest.approx(want, rel=1e-6)
    singles = [fr.evaluate(m, test, train=train, metrics=["auc"])["auc"] for m in fitted.models]
    assert got["auc"] > 0.5 and got["users"] == want["users"]
    assert min(singles) - 0.05 < got["auc"]  # the mean is a sensible model, not noise
    per_user = fr.evaluate(fitted, test, train=train, metrics=["auc"], per_user=True)
    assert isinstance(per_user, pd.DataFrame) and len(per_user) == got["users"]


def test_vector_spaces_and_plots_ask_for_one_member(fitted):
    with pytest.raises(ValueError, match="no single vector space"):
        fitted.item_vectors()
    with pytest.raises(ValueError, match="no single vector space"):
        fitted.similar_items(fitted.item_ids[0])
    with pytest.raises(TypeError, match="one of the Ensemble's models"):
        fr.plot.history(fitted)
    assert len(fitted.history_) == 3 and all(len(h["loss"]) == 5 for h in fitted.history_)


def test_save_and_load_give_the_same_scores(tmp_path, data, fitted):
    train, _ = data
    path = tmp_path / "ens.fashionrec"
    fitted.save(path)
    for back in (fr.Ensemble.load(path), fr.load(path)):
        assert isinstance(back, fr.Ensemble) and len(back) == 3
        np.testing.assert_array_equal(back.score(train.user_ids[:5]), fitted.score(train.user_ids[:5]))
        assert back.history_ == fitted.history_
        assert [m.get_params()["seed"] for m in back.models] == [3, 4, 5]


def test_folders_of_earlier_versions_load(tmp_path, data, fitted):
    """Earlier versions saved an ensemble as a folder: ensemble.json and a file per member."""
    import json

    train, _ = data
    folder = tmp_path / "old"
    folder.mkdir()
    names = [f"member_{k}.safetensors" for k in range(3)]
    for m, name in zip(fitted.models, names):
        m.save(folder / name)
    (folder / "ensemble.json").write_text(json.dumps({"format": "fashionrec-ensemble", "version": 1, "members": names}))
    back = fr.Ensemble.load(folder)
    np.testing.assert_array_equal(back.score(train.user_ids[:5]), fitted.score(train.user_ids[:5]))


def test_an_ensemble_is_a_model_of_the_core(data, fitted, tmp_path):
    """fit, checkpoints and resume as for one model; members are copies."""
    train, _ = data
    assert fitted._core.kind == "ensemble"
    whole = fr.Ensemble.of_seeds(fr.BPR(factors=4, epochs=2, device="cpu", threads=1), 2).fit(train, progress=False, checkpoint_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["member0", "member1"]
    again = fr.Ensemble.of_seeds(fr.BPR(factors=4, epochs=2, device="cpu", threads=1), 2).fit(train, progress=False, checkpoint_dir=tmp_path, resume=True)
    np.testing.assert_array_equal(again.score(train.user_ids[:3]), whole.score(train.user_ids[:3]))
    before = fitted.score(train.user_ids[:4])
    copy = fitted.models[0]
    copy.fit(fr.Interactions.from_pandas(train.to_pandas().head(50), "user", "item"), progress=False)
    assert copy.n_users < fitted.n_users  # refitting a copy leaves the ensemble as it was
    np.testing.assert_array_equal(fitted.score(train.user_ids[:4]), before)


def test_bad_folders_are_errors_naming_the_file(tmp_path, data, fitted):
    with pytest.raises(ValueError, match="no ensemble.json"):
        fr.Ensemble.load(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ensemble.json").write_text("{not json")
    with pytest.raises(ValueError, match="ensemble.json: not valid JSON"):
        fr.Ensemble.load(bad)
    (bad / "ensemble.json").write_text('{"format": "fashionrec-ensemble", "members": ["../escape.safetensors"]}')
    with pytest.raises(ValueError, match="not a file name in the folder"):
        fr.Ensemble.load(bad)
    (bad / "ensemble.json").write_text('{"format": "fashionrec-ensemble", "members": ["m.safetensors"]}')
    (bad / "m.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="m.safetensors"):
        fr.Ensemble.load(bad)


def test_bad_members_are_refused(data):
    train, _ = data
    with pytest.raises(ValueError, match="at least one model"):
        fr.Ensemble([])
    with pytest.raises(TypeError, match="not a fashionrec model"):
        fr.Ensemble([object()])
    with pytest.raises(ValueError, match="n must be an integer"):
        fr.Ensemble.of_seeds(fr.BPR(), 0)
    with pytest.raises(ValueError, match="no seed parameter"):
        fr.Ensemble.of_seeds(fr.Popularity(), 2)
    other = fr.Interactions.from_pandas(train.to_pandas().head(50), "user", "item")
    a = fr.BPR(factors=4, epochs=1, device="cpu").fit(train, progress=False)
    b = fr.BPR(factors=4, epochs=1, device="cpu").fit(other, progress=False)
    with pytest.raises(ValueError, match="share one catalogue"):
        fr.Ensemble([a, b])


def test_cold_users_score_from_features():
    rng = np.random.default_rng(0)
    users = pd.DataFrame({"group": rng.choice(["a", "b"], 60), "age": rng.normal(30, 5, 60)}, index=np.arange(60))
    rows = [(u, int(i)) for u in range(60) for i in rng.choice(20, 5, replace=False) + (20 if users.group[u] == "b" else 0)]
    df = pd.DataFrame(rows, columns=["user", "item"])
    train = fr.Interactions.from_pandas(df[df.user < 50], "user", "item", item_ids=np.arange(40))
    ens = fr.Ensemble.of_seeds(fr.HybridBPR(factors=4, embed_dim=4, hidden=(8,), epochs=2, device="cpu"), 2)
    items = pd.DataFrame({"half": (np.arange(40) >= 20).astype(np.float32)}, index=np.arange(40))
    ens.fit(train, user_features=users.loc[train.user_ids], item_features=items, progress=False)
    cold = np.arange(50, 60)
    s = ens.score(cold, user_features=users.loc[cold])
    want = np.mean([m.score(cold, user_features=users.loc[cold]) for m in ens.models], axis=0)
    np.testing.assert_allclose(s, want, rtol=1e-6, atol=1e-6)
    assert s.shape == (10, 40)
