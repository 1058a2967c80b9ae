"""The code written for GPUs, run on CPU tensors (CI has no GPU): every model fitted once with
``_core.set_gpu_paths_on_cpu(True)`` (tensor-op Adam and row-sparse Adam instead of the fused
CPU passes, libtorch's dropout, top-k and masking on the device) learns as well as on the
CPU paths, recommends what its own scores say, and saves / loads to the same scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fashionrec as fr
from fashionrec import _core


def _data():
    rng = np.random.default_rng(0)
    n_users, n_items = 120, 60
    group = rng.integers(0, 2, n_users)
    rows = [(u, int(i)) for u in range(n_users) for i in rng.choice(30, 8, replace=False) + 30 * group[u]]
    df = pd.DataFrame(rows, columns=["user", "item"])
    data = fr.Interactions.from_pandas(df, "user", "item", item_ids=np.arange(n_items))
    train, test = fr.split.random_split(data, test_fraction=0.2, seed=1)
    users = pd.DataFrame({"group": np.where(group == 1, "b", "a")}, index=np.arange(n_users))
    items = pd.DataFrame({"half": (np.arange(n_items) >= 30).astype(np.float32)}, index=np.arange(n_items))
    feats = np.c_[(np.arange(n_items) >= 30).astype(np.float32), rng.normal(size=(n_items, 3)).astype(np.float32)]
    return train, test, users, items, feats


#: Every trained kind on the libtorch paths (BPR's native kernel has no GPU twin).
CASES = {
    "bpr_adam": (lambda: fr.BPR(factors=8, epochs=20, optimizer="adam", lr=0.05, batch_size=256, device="cpu", threads=1), {}),
    "triplet": (lambda: fr.TripletModel(factors=8, epochs=10, batch_size=128, device="cpu", threads=1), {}),
    "triplet_sparse": (lambda: fr.TripletModel(factors=8, epochs=10, batch_size=128, optimizer="sparse_adam", device="cpu", threads=1), {}),
    "deep_triplet": (lambda: fr.DeepTripletModel(factors=8, user_factors=8, hidden=(16,), epochs=20, lr=0.01, batch_size=128, device="cpu", threads=1), {}),
    "hybrid": (lambda: fr.HybridBPR(factors=8, embed_dim=4, hidden=(8,), dropout=0.1, epochs=10, lr=0.01, batch_size=128, device="cpu", threads=1), {"side": True}),
    "vbpr": (lambda: fr.VBPR(factors=4, visual_factors=4, epochs=10, batch_size=128, device="cpu", threads=1), {"features": True}),
    "sampled_softmax": (lambda: fr.SampledSoftmax(factors=8, n_negatives=10, epochs=10, lr=0.01, batch_size=128, device="cpu", threads=1), {}),
}


def _fit(case):
    make, how = CASES[case]
    train, test, users, items, feats = _data()
    kwargs = {}
    if how.get("side"):
        kwargs = dict(user_features=users, item_features=items)
    if how.get("features"):
        kwargs = dict(item_features=feats)
    model = make().fit(train, progress=False, **kwargs)
    return model, train, test


@pytest.mark.parametrize("case", sorted(CASES))
def test_gpu_paths_learn_as_the_cpu_paths(case, tmp_path):
    cpu, train, test = _fit(case)
    want = fr.evaluate(cpu, test, train=train, metrics=["auc"])["auc"]
    _core.set_gpu_paths_on_cpu(True)
    try:
        gpu, _, _ = _fit(case)
        got = fr.evaluate(gpu, test, train=train, metrics=["auc"])["auc"]
        # Same algorithm, other kernels (and dropout masks): the same quality within noise.
        assert abs(got - want) < 0.03, (case, got, want)
        assert got > 0.6, (case, got)
        users = train.user_ids[:6]
        # The switch took the other kernels: not the CPU path's bits.
        assert not np.array_equal(gpu.score(users), cpu.score(users)), case
        # Top-k on the device is the top-k of the scores.
        items, scores = gpu.recommend(users, k=5, exclude=train)
        full = gpu.score(users)
        for row in range(len(users)):
            col = np.searchsorted(gpu.item_ids, items[row])
            np.testing.assert_allclose(scores[row], full[row, col], rtol=1e-6)
        gpu.save(tmp_path / "m.fashionrec")
        back = fr.load(tmp_path / "m.fashionrec", device="cpu")
        np.testing.assert_array_equal(back.score(users), full)
    finally:
        _core.set_gpu_paths_on_cpu(False)


def test_dvbpr_gpu_paths(tmp_path):
    """DVBPR's device branches on the CPU: the resident image bank, bf16, channels-last and
    space-to-depth CNN-F (its GPU defaults), Adam's tensor path; it trains, recommends its
    scores' top-k and saves / loads to the same scores."""
    items, pixels = fr.datasets.synthetic_catalogue(80, 32, seed=1)
    paths = fr.testing.write_pngs(pixels, tmp_path / "img")
    vt = fr.datasets.visual_taste(items, n_users=40, items_per_user=8, min_group=3, cold_fraction=0.25, seed=1)
    ids = vt.train.item_ids
    bank = fr.ImageBank.from_files([paths[int(i)] for i in ids], size=32, ids=ids, progress=False)
    _core.set_gpu_paths_on_cpu(True)
    try:
        model = fr.DVBPR(factors=8, image_size=32, epochs=2, lr=1e-3, batch_size=32, fc_width=64, device="cpu", seed=0)
        model.fit(vt.train, images=bank, progress=False)
        config = model._core.config_json()
        assert np.isfinite(model.history_["loss"]).all() and model.history_["loss"][-1] < model.history_["loss"][0] * 1.5, config
        users = vt.train.user_ids[:5]
        full = model.score(users)
        assert np.isfinite(full).all()
        items_k, scores = model.recommend(users, k=4, exclude=vt.train)
        for row in range(len(users)):
            np.testing.assert_allclose(scores[row], np.sort(full[row][~np.isin(model.item_ids, vt.train.to_pandas().query("user == @users[@row]").item)])[::-1][:4], rtol=1e-5)
        model.save(tmp_path / "d.fashionrec")
        np.testing.assert_array_equal(fr.load(tmp_path / "d.fashionrec", device="cpu").score(users), full)
    finally:
        _core.set_gpu_paths_on_cpu(False)
