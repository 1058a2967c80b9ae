"""benches/gpu_check.py runs on the CPU (--device cpu --quick), so it cannot rot between GPU runs.

These tests check that every check runs to the end and that the exact ones pass; whether the
models' metrics agree within noise is the script's own verdict (its FAIL rows), judged at full
size on the GPU machine, not here on 10 epochs of small data."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from conftest import DATA

SCRIPT = Path(__file__).resolve().parents[1] / "benches" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_check"]


def run(gpu_check, tmp_path, *args):
    out = tmp_path / "rows.json"
    code = gpu_check.main(["--device", "cpu", "--quick", "--json", str(out), *args])
    rows = json.loads(out.read_text())
    assert code == (1 if any(r["status"] == "FAIL" for r in rows) else 0)
    crashed = [f"{r['what']}: {r['result']}" for r in rows if r["what"].endswith(" raised")]
    assert not crashed, crashed
    assert {r["status"] for r in rows} <= {"PASS", "FAIL", "INFO", "SKIP"}
    return {r["what"]: r for r in rows}, rows


def test_every_check_runs_on_synthetic_data(gpu_check, tmp_path, capsys):
    by_what, rows = run(gpu_check, tmp_path, "--data", str(tmp_path / "no-movielens-here"))
    assert {(r["section"], r["check"]) for r in rows} == {(s, n) for s, n, _ in gpu_check.CHECKS}
    assert by_what["BPR data"]["result"].startswith("synthetic (MovieLens not found")
    assert by_what["BPR settings"]["result"] == "factors=64, epochs=10"
    assert by_what["WARP settings"]["result"] == "factors=64, epochs=10, sampler=warp"
    for what in ("agrees with torch.cuda.is_available()", "BPR trained on", "WARP trained on",
                 "bank pixels == the PNGs' pixels", "batch(device='cpu') == numpy reference"):
        assert by_what[what]["status"] == "PASS", by_what[what]
    assert by_what["batch on CUDA"]["status"] == "SKIP"  # no CUDA in this run
    towers = [r for r in rows if r["check"] == "towers" and r["status"] != "INFO"]
    assert towers and all(r["status"] in ("PASS", "SKIP") for r in towers), towers
    for metric in ("auc", "ndcg@10", "precision@10"):
        assert by_what[f"WARP {metric}"]["result"].count(" vs CPU ") == 1
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith("section") and f"{len(rows)} rows," in out


def test_bpr_on_movielens(gpu_check, tmp_path):
    if not (DATA / "ml-100k" / "u1.base").is_file():
        pytest.skip(f"MovieLens 100k not found at {DATA / 'ml-100k'}")
    by_what, _ = run(gpu_check, tmp_path, "--data", str(DATA / "ml-100k"), "--only", "uniform")
    assert by_what["BPR data"]["result"].startswith("MovieLens u1: 943 users, 1682 items, 456 test users")
    # libtorch on the CPU and the native kernel learn the same model (the check CUDA must pass).
    assert by_what["BPR auc"]["status"] == "PASS" and by_what["BPR ndcg@10"]["status"] == "PASS"


def test_a_failing_check_does_not_stop_the_others(gpu_check, tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("CUDA out of memory\nsecond line")

    monkeypatch.setattr(gpu_check, "CHECKS", [("x", "broken", broken), *gpu_check.CHECKS[:1]])
    out = tmp_path / "rows.json"
    assert gpu_check.main(["--device", "cpu", "--json", str(out)]) == 1
    rows = json.loads(out.read_text())
    assert rows[0] == {**rows[0], "what": "broken raised", "status": "FAIL", "result": "RuntimeError: CUDA out of memory"}
    assert len(rows) > 1 and all(r["section"] == "device" and r["status"] != "FAIL" for r in rows[1:])
