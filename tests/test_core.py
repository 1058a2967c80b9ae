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
    with pytest.raises(ValueError, match=r"^epochs: invalid type: floating point `1\.5`"):
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
        lambda: fr.HybridBPR(factors=8, embed_dim=4, hidden=(8,), sampler="rated_below", min_rating=3, epochs=4, batch_size=64, device="cpu", threads=1),
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


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_resumed_fit_is_the_uninterrupted_fit(case, tmp_path):
    make, how = CASES[case]
    train, users, items, feats = _taste()
    kwargs = {}
    if how.get("side"):
        kwargs = dict(user_features=users, item_features=items)
    if how.get("features"):
        kwargs = dict(item_features=feats)
    if how.get("pairs"):
        train, pair_feats = _pairs()
        kwargs = dict(item_features=pair_feats)
    if how.get("images"):
        kwargs = dict(images=_bank(tmp_path, train.n_items))

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
