"""The model core, for every model kind: Python defaults are the core's, configuration errors
name the parameter, and a fit resumed from its checkpoint gives the uninterrupted fit's
parameters to the bit (CPU, one thread)."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pandas as pd
import pytest

import fashionrec as fr
from fashionrec import _core
from fashionrec.models import MODELS


@pytest.mark.parametrize("kind", sorted(set(MODELS) - {"ensemble"}))  # an ensemble needs its members
def test_python_defaults_are_the_cores(kind):
    """Built with no arguments, every model's configuration is the core's default one."""
    cls = MODELS[kind]
    model = cls()
    assert json.loads(model._core.config_json()) == json.loads(_core.default_config(kind))
    # Every keyword of __init__ is a configuration field (one vocabulary, nothing lost).
    fields = set(json.loads(_core.default_config(kind)))
    params = set(inspect.signature(cls.__init__).parameters) - {"self"}
    assert params <= fields | {"encoder", "head"}, params - fields


def test_configuration_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"^BPR\(\): epochs must be an integer, not float 1\.5"):
        fr.BPR(epochs=1.5)
    with pytest.raises(ValueError, match=r"sampler\.typo|typo"):
        fr.TripletModel(sampler={"kind": "warp", "typo": 1})
    with pytest.raises(ValueError, match=r'unknown parameter "factorz" for bpr \(known: .*factors'):
        _core.Model("bpr", json.dumps({"factorz": 3}))
    with pytest.raises(ValueError, match=r"batch_size must be at least 1"):
        fr.SampledSoftmax(batch_size=0)
    huge = "x" * 100_000
    with pytest.raises(ValueError) as e:
        fr.BPR(epochs=huge)
    assert len(str(e.value)) < 600


def _taste():
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 40
    group = rng.integers(0, 2, n_users)
    rows = [(u, int(i)) for u in range(n_users) for i in rng.choice(20, 6, replace=False) + 20 * group[u]]
    df = pd.DataFrame(rows, columns=["user", "item"])
    df["rating"] = rng.integers(1, 6, len(df)).astype(np.float32)
    train = fr.Interactions.from_pandas(df, "user", "item", item_ids=np.arange(n_items), value_col="rating")
    users = pd.DataFrame({"group": np.where(group == 1, "b", "a"), "age": rng.normal(35, 10, n_users)}, index=np.arange(n_users))
    items = pd.DataFrame({"half": (np.arange(n_items) >= 20).astype(np.float32)}, index=np.arange(n_items))
    feats = rng.normal(size=(n_items, 6)).astype(np.float32)
    return train, users, items, feats


def _pairs():
    rng = np.random.default_rng(1)
    n = 40
    qi = np.repeat(np.arange(n), 4)
    pj = (qi + rng.integers(1, 5, len(qi))) % n
    pairs = fr.Interactions.from_ids(qi, pj, user_ids=np.arange(n), item_ids=np.arange(n))
    return pairs, rng.normal(size=(n, 5)).astype(np.float32)


#: (model, how to fit it) for every trained kind: small, CPU, one thread.
CASES = {
    "bpr": (lambda: fr.BPR(factors=8, epochs=4, device="cpu", threads=1), {}),
    "bpr_torch_adam": (lambda: fr.BPR(factors=8, epochs=4, device="cpu", threads=1, optimizer="adam", lr=0.01), {}),
    "triplet": (lambda: fr.TripletModel(factors=8, epochs=4, batch_size=64, device="cpu", threads=1), {}),
    "triplet_sparse_adam": (lambda: fr.TripletModel(factors=8, epochs=4, batch_size=64, device="cpu", threads=1, optimizer="sparse_adam", item_bias=True), {}),
    "deep_triplet_sparse_adam": (
        lambda: fr.DeepTripletModel(factors=8, user_factors=4, hidden=(8,), epochs=4, batch_size=64, device="cpu", threads=1, optimizer="sparse_adam"),
        {},
    ),
    "deep_triplet": (lambda: fr.DeepTripletModel(factors=8, user_factors=4, hidden=(8,), epochs=4, batch_size=64, device="cpu", threads=1), {}),
    "hybrid_bpr": (lambda: fr.HybridBPR(factors=8, embed_dim=4, hidden=(8,), dropout=0.2, epochs=4, batch_size=64, device="cpu", threads=1), {"side": True}),
    "hybrid_rated_below": (
        lambda: fr.HybridBPR(factors=8, embed_dim=4, hidden=(8,), sampler="rated_below", loss="bpr", min_rating=3, epochs=4, batch_size=64, device="cpu", threads=1),
        {"side": True},
    ),
    "vbpr": (lambda: fr.VBPR(factors=4, visual_factors=4, epochs=4, batch_size=64, device="cpu", threads=1), {"features": True}),
    "sampled_softmax": (lambda: fr.SampledSoftmax(factors=8, n_negatives=5, epochs=4, batch_size=64, device="cpu", threads=1), {}),
    "sampled_softmax_free_users": (
        lambda: fr.SampledSoftmax(factors=8, users="embedding", n_negatives=5, epochs=4, batch_size=64, device="cpu", threads=1),
        {},
    ),
    "compatibility": (lambda: fr.CompatibilityModel(factors=3, epochs=4, batch_size=32, device="cpu", threads=1), {"pairs": True}),
    "dvbpr": (
        lambda: fr.DVBPR(factors=4, image_size=32, fc_width=16, epochs=4, lr=1e-3, batch_size=64, device="cpu", threads=1),
        {"images": True},
    ),
}


def _bank(tmp_path, n_items: int) -> fr.ImageBank:
    """Tiny generated photos of items 0..n_items-1."""
    _, pixels = fr.datasets.synthetic_catalogue(n_items, 32, seed=3)
    paths = fr.testing.write_pngs(pixels, tmp_path / "images")
    return fr.ImageBank.from_files(paths, size=32, ids=np.arange(n_items), progress=False)


def _side_data(how: dict, users, items, feats, pair_feats, images) -> dict:
    """fit()'s side-data arguments for a CASES entry (`images`: makes the bank when needed)."""
    if how.get("side"):
        return dict(user_features=users, item_features=items)
    if how.get("features"):
        return dict(item_features=feats)
    if how.get("pairs"):
        return dict(item_features=pair_feats)
    if how.get("images"):
        return dict(images=images())
    return {}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_resumed_fit_is_the_uninterrupted_fit(case, tmp_path):
    make, how = CASES[case]
    train, users, items, feats = _taste()
    pair_feats = None
    if how.get("pairs"):
        train, pair_feats = _pairs()
    kwargs = _side_data(how, users, items, feats, pair_feats, lambda: _bank(tmp_path, train.n_items))

    whole = make().fit(train, progress=False, **kwargs)

    # Interrupted after two epochs (the callback stops it), then resumed to the end.
    first = make().fit(train, progress=False, checkpoint_dir=tmp_path, callback=lambda e, logs: e < 2, **kwargs)
    assert len(first.history_["epoch"]) == 2
    ckpt = tmp_path / f"{first.kind}-checkpoint.safetensors"
    assert ckpt.exists()
    ran = []
    resumed = make().fit(train, progress=False, checkpoint_dir=tmp_path, resume=True, callback=lambda e, logs: ran.append(e), **kwargs)
    assert ran == [3, 4], "the resumed fit runs only the epochs left"
    assert resumed.history_["epoch"] == [1, 2, 3, 4]
    assert resumed.history_["loss"] == whole.history_["loss"]
    state, again = whole._core.state(), resumed._core.state()
    assert sorted(state) == sorted(again)
    for name in state:
        np.testing.assert_array_equal(state[name], again[name], err_msg=f"{case}: {name}")


#: The learnt per-item tables of each case (rows indexed by item), by name in the saved state:
#: zero for cold items.
ITEM_TABLES = {
    "bpr": ["item_factors"],
    "bpr_torch_adam": ["item_factors"],
    "triplet": ["item_factors"],
    "triplet_sparse_adam": ["item_factors"],
    "deep_triplet": ["item_embeddings"],
    "deep_triplet_sparse_adam": ["item_embeddings"],
    "hybrid_bpr": ["item_bias"],
    "hybrid_rated_below": ["item_bias"],
    "vbpr": ["gamma_items", "item_bias"],
    "sampled_softmax": ["item_factors"],
    "sampled_softmax_free_users": ["item_factors"],
    "compatibility": [],
    "dvbpr": [],
}
#: The item bias of the cases that score an item from its own parameters alone: a cold item's
#: is below any score a trained item can have, so cold items rank below every trained one.
FLOORED_BIAS = {"bpr", "bpr_torch_adam", "triplet", "triplet_sparse_adam", "sampled_softmax", "sampled_softmax_free_users"}
N_COLD = 4


@pytest.mark.parametrize("case", sorted(CASES))
def test_cold_items_have_zero_learnt_item_parameters(case, tmp_path):
    """The one rule of every model: at the end of fit, the per-item parameters (factors, id
    embeddings, biases) of the items with no training interaction are zero, so a cold item is
    scored from side data only, or the same constant for all cold items; a model without item
    side data ranks them below every trained item, for every user (the factor models through a
    bias below any trained item's score, the deep triplet model at scoring)."""
    make, how = CASES[case]
    train, users, items, feats = _taste()
    n = train.n_items
    df = train.to_pandas()
    train = fr.Interactions.from_pandas(df, "user", "item", item_ids=np.arange(n + N_COLD), value_col=df.columns[2])
    rng = np.random.default_rng(5)
    items = pd.DataFrame({"half": rng.integers(0, 2, n + N_COLD).astype(np.float32)}, index=np.arange(n + N_COLD))
    feats = rng.normal(size=(n + N_COLD, 6)).astype(np.float32)
    pair_feats = None
    if how.get("pairs"):
        pairs, pair_feats = _pairs()
        m = pairs.n_items
        p = pairs.to_pandas()
        train = fr.Interactions.from_ids(p.iloc[:, 0], p.iloc[:, 1], user_ids=np.arange(m + N_COLD), item_ids=np.arange(m + N_COLD))
        pair_feats = np.vstack([pair_feats, rng.normal(size=(N_COLD, pair_feats.shape[1])).astype(np.float32)])
    kwargs = _side_data(how, users, items, feats, pair_feats, lambda: _bank(tmp_path, train.n_items))
    cold = np.flatnonzero(train.item_counts() == 0)
    assert len(cold) >= N_COLD
    model = make().fit(train, progress=False, **kwargs)
    state = model._core.state()
    tables = ITEM_TABLES[case] + (["item_ids"] if "item_ids" in state else [])  # HybridBPR's id embeddings
    for name in tables:
        t = np.asarray(state[name])
        assert t.shape[0] == train.n_items, name
        assert not t[cold].any(), f"{case}: {name} of cold items is not zero"
    warm = np.setdiff1d(np.arange(train.n_items), cold)
    if case in ("bpr", "triplet", "sampled_softmax"):
        assert np.abs(np.asarray(state["item_factors"])[warm]).sum() > 0
    if case in FLOORED_BIAS:
        bias = np.asarray(state["item_bias"])
        assert (bias[cold] == bias[cold[0]]).all() and bias[cold[0]] < bias[warm].min(), f"{case}: cold items' bias is not below the trained ones"
    scores = model.score(model.user_ids[:5])
    assert np.isfinite(scores).all()
    if not (how.get("side") or how.get("features") or how.get("pairs") or how.get("images")):
        # No item side data: every cold item gets the same score from a user, below every
        # trained item's (fewer interactions than any of them).
        assert (scores[:, cold] == scores[:, cold[:1]]).all(), case
        assert (scores[:, cold].max(axis=1) < scores[:, warm].min(axis=1)).all(), f"{case}: a cold item ranks above a trained one"
    elif how.get("features"):
        # VBPR: a cold item is scored as a new item embedded from its features after fit.
        vectors, bias = model.embed_features(feats[cold])
        np.testing.assert_allclose(scores[:, cold], model.user_vectors()[:5] @ vectors.T + bias, rtol=1e-5, atol=1e-6)
        assert (scores[:, cold] != scores[:, cold[:1]]).any(), f"{case}: cold items are scored from their features"
    elif how.get("images"):
        phi = model.embed_images(kwargs["images"])
        np.testing.assert_allclose(scores[:, cold], model.user_embeddings()[:5] @ phi[cold].T, rtol=1e-5, atol=1e-6)
    # Saved and loaded, the zeros stay.
    path = tmp_path / "m.safetensors"
    model.save(path)
    np.testing.assert_array_equal(fr.load(path, device="cpu").score(model.user_ids[:5]), scores)


def test_resume_refuses_another_models_checkpoint(tmp_path):
    train, *_ = _taste()
    fr.BPR(factors=8, epochs=2, device="cpu", threads=1).fit(train, progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="bpr-checkpoint.safetensors.*other settings"):
        fr.BPR(factors=4, epochs=3, device="cpu", threads=1).fit(train, progress=False, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        fr.BPR(factors=8, epochs=3, device="cpu").fit(train, progress=False, resume=True)
    # A resumed fit that already ran its epochs only loads them.
    done = fr.BPR(factors=8, epochs=2, device="cpu", threads=1).fit(train, progress=False, checkpoint_dir=tmp_path, resume=True)
    assert done.history_["epoch"] == [1, 2]
