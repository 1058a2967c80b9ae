"""Training on several processes (fr.distributed, torch.distributed's gloo backend over
loopback, two processes of one thread each, started by the test as torchrun would): every
libtorch model trains to the parameters of one process with the same global batch; failures
reach every rank instead of hanging it."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

import fashionrec as fr

WORKER = pathlib.Path(__file__).with_name("distributed_worker.py")
sys.path.insert(0, str(WORKER.parent))
from distributed_worker import CASES  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(out: pathlib.Path, mode: str, cases, world: int = 2, timeout: float = 240) -> list[dict]:
    """Runs the worker as `world` ranks (one process each) and returns each rank's results."""
    port = _free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(out), mode, ",".join(cases)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=timeout)[0].decode(errors="replace"))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"a rank hung ({mode})")
    results = []
    for rank, p in enumerate(procs):
        path = out / f"results-rank{rank}-of{world}.json"
        results.append(json.loads(path.read_text()) if path.exists() else {"exit": p.returncode, "log": logs[rank][-3000:]})
    return results


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    return out, _run(out, "save", sorted(CASES))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return out, _run(out, "plain", sorted(CASES), world=1)


def _atol(case: str, name: str) -> float:
    """How far a parameter may be from one process's after two epochs. The ranks sum the
    gradient in another order than one process (float rounding, ~1e-7 relative). Under the
    BPR loss, which reads s(u, i) - s(u, j), the item side's last bias (DVBPR's network,
    HybridBPR's item tower) and directions like it do not change the loss: their gradient is
    rounding noise, which Adam's first steps scale to steps of about lr each, so there the
    bound is lr per step (12 steps). The deep triplet model's native sparse step adds each
    sample's two cancelling terms first, so its biases get exact zeros there, not noise; but a
    hinge loss is not smooth: a sample within rounding of its margin has a loss in one order of
    sums and none in the other, and on an embedding row touched a few times Adam turns that
    into steps of about lr (bound: lr per step, 3e-3 x 12), which then moves the MLP a little
    (measured with seeds 0-2: at most 2.1e-3 on a user row after one epoch, 8.1e-3 after two
    on seed 0, where such a sample occurs, and 8.1e-4 on the MLP; 5e-5 and 2.4e-6 on seeds 1
    and 2, where none does)."""
    loose = {"dvbpr": 1e-3, "hybrid_bpr": 1e-3}
    if case in loose and ("bias" in name or name == "item_embeddings"):
        return 12 * loose[case]
    if case == "deep_triplet_sparse_adam":
        return 12 * 3e-3 if name.endswith("_embeddings") else 2e-3
    return 2e-4


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_ranks_train_as_one_process(case, two_ranks, one_process):
    (out2, res2), (out1, res1) = two_ranks, one_process
    for r in res2 + res1:
        assert "history" in r.get(case, {}), r
    one = np.load(out1 / f"{case}-rank0-of1.npz")
    ranks = [np.load(out2 / f"{case}-rank{r}-of2.npz") for r in range(2)]
    assert sorted(one.files) == sorted(ranks[0].files)
    for name in one.files:
        # The ranks hold the same bits; against one process, float sums in another order.
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=f"{case}: {name}")
        np.testing.assert_allclose(ranks[0][name], one[name], rtol=1e-3, atol=_atol(case, name), err_msg=f"{case}: {name}")
    h1, h2 = res1[0][case]["history"], res2[0][case]["history"]
    assert h1["epoch"] == h2["epoch"] == [1, 2]
    np.testing.assert_allclose(h2["loss"], h1["loss"], rtol=1e-4)
    assert res2[1][case]["history"]["loss"] == h2["loss"]
    # Rank 0 wrote the model; it loads with rank 0's parameters.
    saved = fr.load(out2 / f"{case}.safetensors")
    for name, value in saved._core.state().items():
        np.testing.assert_array_equal(value, ranks[0][name])


@pytest.mark.parametrize("case", ["triplet_sparse_adam", "dvbpr"])
def test_a_resumed_distributed_fit_is_the_uninterrupted_one(case, two_ranks, tmp_path):
    out2, _ = two_ranks
    res = _run(tmp_path, "resume", [case])
    assert all(r[case]["history"]["epoch"] == [1, 2] for r in res), res
    whole = np.load(out2 / f"{case}-rank0-of2.npz")
    for rank in range(2):
        resumed = np.load(tmp_path / f"{case}-rank{rank}-of2-resume.npz")
        for name in whole.files:
            np.testing.assert_array_equal(resumed[name], whole[name], err_msg=f"{case} rank {rank}: {name}")


def test_validation_metrics_are_the_same_on_every_rank(tmp_path):
    two = _run(tmp_path / "two", "validate", ["triplet"])
    one = _run(tmp_path / "one", "validate", ["triplet"], world=1)
    h0, h1, h = (r["triplet"]["history"] for r in (*two, *one))
    assert h0 == {**h1, "seconds": h0["seconds"]}, "the ranks' histories differ"
    for metric in ("val_auc", "val_ndcg@10"):
        assert len(h0[metric]) == 2
        np.testing.assert_allclose(h0[metric], h[metric], atol=1e-4, err_msg=metric)


def test_a_bank_cache_is_decoded_once_per_machine(tmp_path):
    _, pixels = fr.datasets.synthetic_catalogue(12, 32, seed=3)
    fr.testing.write_pngs(pixels, tmp_path / "pngs")
    res = _run(tmp_path, "bank_cache", [])
    assert [r["bank"]["cache"] for r in res] == ["built", "reused"], res
    assert res[0]["bank"]["sum"] == res[1]["bank"]["sum"]


def test_ranks_with_other_data_fail_on_every_rank(tmp_path):
    for r in _run(tmp_path, "other_data", ["triplet"]):
        assert "differ between ranks" in r["triplet"]["error"], r


def test_an_exception_on_one_rank_reaches_the_others(tmp_path):
    res = _run(tmp_path, "raise_on_rank1", ["triplet"])
    assert "ZeroDivisionError" in res[1]["triplet"]["error"]
    assert "another rank" in res[0]["triplet"]["error"], res[0]


def test_a_rank_that_dies_fails_the_others_without_hanging(tmp_path):
    res = _run(tmp_path, "exit_on_rank1", ["triplet"], timeout=120)
    assert res[1].get("exit") == 3
    assert "error" in res[0]["triplet"], res[0]


def test_native_bpr_needs_the_torch_backend(tmp_path, monkeypatch):
    import distributed_worker

    monkeypatch.setitem(distributed_worker.CASES, "bpr_native", (lambda: fr.BPR(factors=4, epochs=1, threads=1), {}))
    # The worker reads its own CASES: run the check in process with a one-rank group.
    import torch.distributed as dist

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        train, _ = distributed_worker.data_for("triplet", tmp_path)
        with pytest.raises(ValueError, match="backend='torch'"):
            fr.BPR(factors=4, epochs=1, threads=1).fit(train, progress=False, distributed=True)
        # distributed="auto" takes the group; False ignores it.
        fr.TripletModel(factors=4, epochs=1, threads=1).fit(train, progress=False, distributed="auto")
        fr.BPR(factors=4, epochs=1, threads=1).fit(train, progress=False, distributed=False)
    finally:
        dist.destroy_process_group()


def test_distributed_true_without_a_group_is_an_error():
    train, _ = __import__("distributed_worker").data_for("triplet", None)
    with pytest.raises(RuntimeError, match="initialised process group"):
        fr.TripletModel(factors=4, epochs=1).fit(train, progress=False, distributed=True)
    with pytest.raises(ValueError, match="distributed must be"):
        fr.TripletModel(factors=4, epochs=1).fit(train, progress=False, distributed="yes")
