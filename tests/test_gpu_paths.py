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
