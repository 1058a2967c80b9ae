import json
import signal
import threading
import _thread

import numpy as np
import pandas as pd
import pytest

import fashionrec as fr
from fashionrec import _core
from fashionrec.testing import assert_metrics, assert_recommendations_valid, assert_same_scores

METRICS = ["auc", "ndcg@10"]


def test_bpr_learns_beyond_popularity(small, fitted):
    train, test = small
    pop = fr.evaluate(fr.Popularity().fit(train), test, train=train, metrics=METRICS)
    assert_metrics(fitted, test, train=train, expected={"auc": pop["auc"] + 0.05, "ndcg@10": pop["ndcg@10"]})
    loss = fitted.history_["loss"]
    assert len(loss) == 20 and loss[-1] < 0.6 * loss[0] and loss[0] < np.log(2)
    assert fitted.history_["epoch"] == list(range(1, 21))


def test_python_defaults_match_the_core():
    core = json.loads(_core.default_config("bpr"))
    assert fr.BPR().get_params() == core


def test_single_thread_fit_is_reproducible_and_seeded(small):
    train, _ = small
    fit = lambda seed: fr.BPR(factors=8, epochs=3, threads=1, seed=seed, device="cpu").fit(train, progress=False)
    a, b, c = fit(0), fit(0), fit(1)
    assert_same_scores(a, b, atol=0)
    with pytest.raises(AssertionError, match="scores differ"):
        assert_same_scores(a, c, users=[0, 1], atol=0)


def test_torch_backend_matches_native(small):
    train, test = small
    native = fr.evaluate(
        fr.BPR(factors=16, epochs=20, device="cpu", seed=1).fit(train, progress=False), test, train=train, metrics=METRICS
    )
    torch = fr.BPR(factors=16, epochs=20, device="cpu", backend="torch", seed=1).fit(train, progress=False)
    assert_metrics(torch, test, train=train, expected=native, tolerance={"auc": 0.02, "ndcg@10": 0.04}, compare="close")
    adam = fr.BPR(factors=16, epochs=20, device="cpu", optimizer="adam", lr=0.01, batch_size=256).fit(train, progress=False)
    assert_metrics(adam, test, train=train, expected={"auc": 0.75})
    assert adam.device == "cpu"


def test_bad_configuration_is_a_value_error():
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        fr.BPR(lr=-1)
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adam'"):
        fr.BPR(optimizer="rmsprop")
    with pytest.raises(ValueError, match="SGD only"):
        fr.BPR(backend="native", optimizer="adam")
    with pytest.raises(TypeError):
        fr.BPR(factorz=3)


def test_cuda_request_without_cuda_is_clear(small):
    if fr.cuda_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="no CUDA device is available"):
        fr.BPR(device="cuda", epochs=1).fit(small[0], progress=False)


def test_callback_sees_epochs_and_stops_early(small):
    seen = []

    def cb(epoch, logs):
        seen.append((epoch, logs["loss"]))
        return epoch < 3

    model = fr.BPR(factors=8, epochs=10, device="cpu").fit(small[0], progress=False, callback=cb)
    assert [e for e, _ in seen] == [1, 2, 3]
    assert model.history_["loss"] == [loss for _, loss in seen]
    assert model.score([0]).shape == (1, small[0].n_items)


def test_callback_exception_stops_and_keeps_model_usable(small):
    def cb(epoch, logs):
        if epoch == 2:
            raise KeyboardInterrupt

    model = fr.BPR(factors=8, epochs=10, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        model.fit(small[0], progress=False, callback=cb)
    assert model.is_fitted and len(model.history_["loss"]) == 2
    assert np.isfinite(model.score([0, 1])).all()


def test_ctrl_c_stops_a_running_fit(small):
    model = fr.BPR(factors=8, epochs=100_000, device="cpu")
    # interrupt_main does nothing where SIGINT is ignored (`make test &`, nohup, job runners):
    # the test installs Python's handler for its duration.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(small[0], progress=False)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    done = len(model.history_["loss"])
    assert 0 < done < 100_000
    items, scores = model.recommend(model.user_ids[0], k=5)
    assert len(items) == 5 and np.isfinite(scores).all()


def test_progress_bar_runs(small, capsys):
    fr.BPR(factors=4, epochs=2, device="cpu").fit(small[0], progress=True)
    err = capsys.readouterr().err
    assert "BPR" in err and "2/2 epochs" in err and "2.0/2" not in err


def test_progress_bar_counts_whole_epochs():
    """The count shows epochs done; the fraction within an epoch is only the bar's fill."""
    from fashionrec._progress import FitProgress

    bar = FitProgress("BPR", 50, True, None)
    try:
        bar({"event": "progress", "epoch": 3, "samples": 50, "total": 100})
        assert bar._bar.n == 2.5
        assert "2/50 epochs" in str(bar._bar) and "2.5" not in str(bar._bar)
        bar({"event": "epoch", "epoch": 50, "loss": 0.1, "seconds": 1.0})
        assert "50/50 epochs" in str(bar._bar) and "50.0" not in str(bar._bar)
    finally:
        bar.close()


def test_score_and_recommend_in_raw_ids():
    df = pd.DataFrame(
        {"user": ["u%d" % (k % 40) for k in range(400)], "item": [1000 + (k * 7) % 60 for k in range(400)]}
    )
    train = fr.Interactions.from_pandas(df, "user", "item")
    model = fr.BPR(factors=8, epochs=5, device="cpu").fit(train, progress=False)
    assert list(model.item_ids) == list(train.item_ids) and list(model.user_ids) == list(train.user_ids)
    scores = model.score(["u3", "u0"])
    assert scores.shape == (2, train.n_items) and scores.dtype == np.float32
    items, top = assert_recommendations_valid(model, ["u3", "u0"], k=5, exclude=train)
    assert items.shape == (2, 5) and (np.diff(top, axis=1) <= 0).all()
    for row, user in zip(items, ["u3", "u0"]):
        assert not set(row) & set(train.items_of(user))
    # The top-k are the best-scored non-excluded items.
    col = {item: j for j, item in enumerate(model.item_ids)}
    assert np.allclose(top[0], [scores[0, col[i]] for i in items[0]])
    single_items, single_scores = model.recommend("u3", k=3)
    assert single_items.shape == (3,)
    frame = model.recommend(["u3"], k=4, exclude=train, as_frame=True)
    assert list(frame.columns) == ["user", "rank", "item", "score"] and frame["rank"].tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"^score\(\): users\[0\] = 'nobody' is not a known user id"):
        model.score(["nobody"])
    # A scalar id gives one row, as numpy indexes and as recommend does.
    assert model.score("u3").shape == (train.n_items,) and model.score(["u3"]).shape == (1, train.n_items)
    np.testing.assert_array_equal(model.score("u3"), scores[0])


def test_unknown_ids_name_the_argument_of_the_call(fitted):
    """An unknown id is reported as the argument of the call and its position."""
    known = fitted.user_ids[0]
    with pytest.raises(ValueError, match=r"^score\(\): users\[1\] = 1000000000 is not a known user id"):
        fitted.score([known, 10**9])
    with pytest.raises(ValueError, match=r"^recommend\(\): users\[0\] = 1000000000 is not a known user id"):
        fitted.recommend(10**9)
    with pytest.raises(ValueError, match=r"^similar_items\(\): items\[0\] = -5 is not a known item id"):
        fitted.similar_items([-5])
    with pytest.raises(ValueError, match=r"^score\(\): users: the ids are integers, but strings were given"):
        fitted.score(["x"])
    with pytest.raises(ValueError, match=r"^recommend\(\): users\[1\]: .* is not an integer id like row 0"):
        fitted.recommend([known, None])


def test_recommend_pads_when_candidates_run_out():
    train = fr.Interactions.from_arrays([0, 0, 1], [0, 1, 2], n_items=4)
    model = fr.BPR(factors=2, epochs=1, device="cpu").fit(train, progress=False)
    with pytest.warns(UserWarning, match="padded with -1"):
        items, scores = model.recommend([0], k=4, exclude=train)
    assert sorted(items[0][:2].tolist()) == [2, 3] and items[0][2:].tolist() == [-1, -1]
    assert np.isneginf(scores[0][2:]).all()


def test_similar_items(fitted):
    items, sims = fitted.similar_items([0, 1], k=5)
    assert items.shape == (2, 5) and 0 not in items[0] and 1 not in items[1]
    v = fitted.item_factors
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    expected = np.argsort(-(v @ v[0]))[1:6]
    assert items[0].tolist() == fitted.item_ids[expected].tolist()
    assert np.allclose(sims[0], (v @ v[0])[expected], atol=1e-5)
    with pytest.raises(ValueError, match="no item vectors"):
        fr.Popularity().fit(fr.Interactions.from_arrays([0], [0])).similar_items([0])


def test_not_fitted_is_an_error():
    with pytest.raises(RuntimeError, match="not fitted yet"):
        fr.BPR().score([0])


def test_save_load_round_trip(tmp_path, fitted, small):
    path = tmp_path / "bpr.safetensors"
    fitted.save(path)
    loaded = fr.load(path)
    assert type(loaded) is fr.BPR and loaded.get_params() == fitted.get_params()
    users = fitted.user_ids[:10]
    assert np.array_equal(loaded.score(users), fitted.score(users))
    assert loaded.history_ == fitted.history_
    assert np.array_equal(loaded.item_ids, fitted.item_ids)
    assert fr.BPR.load(path, device="cpu").device == "cpu"
    with pytest.raises(TypeError, match="holds a BPR, not a Popularity"):
        fr.Popularity.load(path)


def test_save_load_string_ids(tmp_path):
    df = pd.DataFrame({"u": ["ä", "b", "c", "b"], "i": ["x", "y", "z", "x"]})
    train = fr.Interactions.from_pandas(df, "u", "i")
    for model in (fr.BPR(factors=4, epochs=2, device="cpu"), fr.Popularity()):
        model.fit(train, progress=False)
        model.save(tmp_path / "m")
        loaded = fr.load(tmp_path / "m")
        assert list(loaded.user_ids) == ["b", "c", "ä"] and list(loaded.item_ids) == ["x", "y", "z"]
        assert np.array_equal(loaded.score(["ä"]), model.score(["ä"]))


def test_load_bad_files(tmp_path, fitted):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        fr.load(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="junk.bin: not a fashionrec model file"):
        fr.load(junk)
    good = tmp_path / "good.safetensors"
    fitted.save(good)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match="cut.safetensors"):
        fr.load(cut)


def test_validation_metrics_each_epoch(small):
    train, test = small
    seen = []
    model = fr.BPR(factors=16, epochs=6, device="cpu", seed=1).fit(
        train, validation=test, metrics=["auc", "ndcg@10"], progress=False, callback=lambda e, logs: seen.append(logs)
    )
    assert list(model.history_) == ["epoch", "loss", "seconds", "val_auc", "val_ndcg@10"]
    assert [s["val_auc"] for s in seen] == model.history_["val_auc"]
    final = fr.evaluate(model, test, train=train, metrics=["auc", "ndcg@10"])
    assert model.history_["val_auc"][-1] == pytest.approx(final["auc"], abs=1e-12)
    assert model.history_["val_auc"][-1] > model.history_["val_auc"][0]
    other = fr.datasets.synthetic(30, 20, seed=9)
    with pytest.raises(ValueError, match="other user/item ids"):
        fr.BPR(epochs=1).fit(train, validation=other, progress=False)


def test_callback_cannot_use_the_training_model(small):
    model = fr.BPR(factors=4, epochs=3, device="cpu")
    with pytest.raises(RuntimeError, match="pass validation= to fit"):
        model.fit(small[0], progress=False, callback=lambda e, logs: model.score([0]))
    assert model.is_fitted
