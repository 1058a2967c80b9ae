"""The API's small contracts (issue 21, classes 6 and 7): one fit at a time per model, torch's
global random generator left as the caller had it, callbacks read by truthiness, getters that
return copies, composite models whose parts agree."""

from __future__ import annotations

import threading
import time

import fashionrec as fr
import numpy as np
import pytest
import torch
from test_core import _bank, _taste

#: The libtorch models (their draws: initialisation, dropout), small, CPU, one thread.
LIBTORCH = {
    "triplet": (lambda: fr.TripletModel(factors=8, epochs=2, batch_size=64, device="cpu", threads=1), {}),
    "deep_triplet_dropout": (
        lambda: fr.DeepTripletModel(factors=8, user_factors=4, hidden=(8,), dropout=0.3, epochs=2, batch_size=64, device="cpu", threads=1),
        {},
    ),
    "hybrid_bpr": (
        lambda: fr.HybridBPR(factors=8, embed_dim=4, hidden=(8,), dropout=0.2, epochs=2, batch_size=64, device="cpu", threads=1),
        {"side": True},
    ),
    "dvbpr_tiny": (
        lambda: fr.DVBPR(factors=4, image_size=32, fc_width=16, epochs=1, lr=1e-3, batch_size=64, device="cpu", threads=1),
        {"images": True},
    ),
}


def _fit_args(how, tmp_path):
    train, users, items, _ = _taste()
    if how.get("side"):
        return train, {"user_features": users, "item_features": items}
    if how.get("images"):
        return train, {"images": _bank(tmp_path, train.n_items)}
    return train, {}


# -- class 6: global state and concurrency ----------------------------------------------------


@pytest.mark.parametrize("case", sorted(LIBTORCH))
def test_a_fit_leaves_torchs_global_generator_as_it_was(case, tmp_path):
    make, how = LIBTORCH[case]
    train, kwargs = _fit_args(how, tmp_path)
    torch.manual_seed(1)
    without = torch.rand(3)
    torch.manual_seed(1)
    make().fit(train, progress=False, **kwargs)
    with_fit = torch.rand(3)
    assert torch.equal(without, with_fit), f"{case}: the fit changed the caller's torch random stream"


@pytest.mark.parametrize("case", sorted(LIBTORCH))
def test_fits_in_two_threads_draw_what_they_draw_alone(case, tmp_path):
    """Two fits of two models with the same seed, run at once in two threads while this
    thread draws from torch's global generator, give the scores of the same fit run alone, and
    this thread's torch stream is the one it seeded: a fit's draws (initial parameters,
    dropout masks) come from its own generators, not from torch's process-wide one."""
    make, how = LIBTORCH[case]
    train, kwargs = _fit_args(how, tmp_path)
    users = train.user_ids[:5]
    alone = make().fit(train, progress=False, **kwargs).score(users)
    models = [make(), make()]
    errors: list[BaseException] = []

    def run(m):
        try:
            m.fit(train, progress=False, **kwargs)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(m,)) for m in models]
    torch.manual_seed(9)
    reference = torch.rand(1000)
    for t in threads:
        t.start()
    draws = 0
    while any(t.is_alive() for t in threads) or draws == 0:
        torch.manual_seed(9)
        assert torch.equal(torch.rand(1000), reference), f"{case}: a fit in another thread moved torch's generator"
        draws += 1
    for t in threads:
        t.join()
    assert not errors, errors
    for m in models:
        np.testing.assert_array_equal(m.score(users), alone, err_msg=f"{case}: a fit beside another drew differently")


@pytest.mark.parametrize("case", ["triplet", "dvbpr_tiny"])
def test_a_second_fit_is_refused_at_once(case, tmp_path):
    """While one fit runs (held in its callback), a second fit of the same model from another
    thread raises RuntimeError at once, through the wrapper and through the core alike; the
    first fit then ends normally with its whole history."""
    make, how = LIBTORCH[case]
    train, kwargs = _fit_args(how, tmp_path)
    model = make()
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold(epoch, logs):
        started.set()
        release.wait(60)

    def first():
        try:
            model.fit(train, progress=False, callback=hold, **kwargs)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert started.wait(120), "the first fit did not reach its callback"
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match="fit refused.*already fitting"):
            model.fit(train, progress=False, **kwargs)
        with pytest.raises(RuntimeError, match="fit refused"):
            model._core.fit(train._core)
        assert time.monotonic() - t0 < 5, "the second fit waited instead of being refused"
    finally:
        release.set()
        t.join(120)
    assert not errors, errors
    assert model.is_fitted and model.history_["epoch"] == list(range(1, model.get_params()["epochs"] + 1))
    model.fit(train, progress=False, **kwargs)  # free again afterwards


# -- class 7: callbacks, getters, composite models ----------------------------------------------


def _tiny():
    return fr.Interactions.from_arrays(np.arange(40) % 10, np.arange(40) % 13)


@pytest.mark.parametrize(
    "ret, epochs",
    [(False, 1), (np.False_, 1), (np.bool_(False), 1), (0, 1), (0.0, 1), (None, 3), (True, 3), (1, 3), (np.True_, 3), ("go on", 3)],
    ids=repr,
)
def test_callbacks_are_read_by_truthiness(ret, epochs):
    m = fr.BPR(factors=4, epochs=3, device="cpu", threads=1).fit(_tiny(), progress=False, callback=lambda e, logs: ret)
    assert len(m.history_["epoch"]) == epochs
    # The core reads a callback of its own events by the same rule.
    core = fr.BPR(factors=4, epochs=3, device="cpu", threads=1)._core
    core.fit(_tiny()._core, lambda ev: ret if ev["event"] == "epoch" else None)
    assert len(core.history()) == epochs


def test_a_callback_value_without_a_truth_value_is_its_error():
    with pytest.raises(ValueError, match="truth value"):
        fr.BPR(factors=4, epochs=3, device="cpu").fit(_tiny(), progress=False, callback=lambda e, logs: np.array([1, 0]))


def test_getters_return_copies():
    m = fr.BPR(factors=4, epochs=2, device="cpu", threads=1).fit(_tiny(), progress=False)
    history, items, users = m.history_, m.item_ids.copy(), m.user_ids.copy()
    scores, vectors, params = m.score([0, 1]), m.item_vectors(), m.get_params()

    h = m.history_
    h["loss"].append(99.0)
    h["epoch"].clear()
    h["new"] = [1]
    ids = m.item_ids
    ids.setflags(write=True)
    ids[:] = -7
    uids = m.user_ids
    uids.setflags(write=True)
    uids[:] = -7
    m.item_vectors()[:] = 0
    m.user_vectors()[:] = 0
    m.get_params()["factors"] = 1000
    nested = fr.BPR(sampler={"kind": "popularity"})
    nested.get_params()["sampler"]["kind"] = "uniform"

    assert m.history_ == history
    np.testing.assert_array_equal(m.item_ids, items)
    np.testing.assert_array_equal(m.user_ids, users)
    np.testing.assert_array_equal(m.item_vectors(), vectors)
    np.testing.assert_array_equal(m.score([0, 1]), scores)
    assert m.get_params() == params
    assert nested.get_params()["sampler"]["kind"] == "popularity"
    rec, _ = m.recommend([0], k=3)
    assert set(rec.ravel()) <= set(items.tolist())

    ens = fr.Ensemble([m, fr.BPR(factors=4, epochs=2, seed=1, device="cpu", threads=1).fit(_tiny(), progress=False)])
    eh = ens.history_
    eh[0]["loss"].clear()
    eh.clear()
    assert len(ens.history_) == 2 and len(ens.history_[0]["loss"]) == 2


def test_ensemble_parts_must_agree():
    train = _tiny()
    other = fr.Interactions.from_arrays(np.arange(40) % 11, np.arange(40) % 13)
    a = fr.BPR(factors=4, epochs=1, device="cpu").fit(train, progress=False)
    b = fr.TripletModel(factors=4, epochs=1, device="cpu").fit(other, progress=False)
    with pytest.raises(ValueError, match=r"member 1 \(triplet\).*member 0 \(bpr\).*one catalogue"):
        fr.Ensemble([a, b])
    with pytest.raises(ValueError, match=r"model 1 \(TripletModel\) is not fitted but model 0 \(BPR\) is"):
        fr.Ensemble([a, fr.TripletModel(factors=4)])
    with pytest.raises(ValueError, match=r"model 0 \(TripletModel\) is not fitted but model 1 \(BPR\) is"):
        fr.Ensemble([fr.TripletModel(factors=4), a])
