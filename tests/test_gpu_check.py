"""benches/gpu_check.py runs on the CPU (--device cpu --quick), so it cannot rot between GPU runs."""

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import DATA

SCRIPT = Path(__file__).resolve().parents[1] / "benches" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(gpu_check, tmp_path, *args):
    out = tmp_path / "rows.json"
    code = gpu_check.main(["--device", "cpu", "--quick", "--json", str(out), *args])
    rows = json.loads(out.read_text())
    failed = [r for r in rows if r["status"] == "FAIL"]
    assert code == (1 if failed else 0)
    assert not failed, "\n".join(f"{r['section']}/{r['check']}: {r['what']}: {r['result']}" for r in failed)
    return rows


def test_every_check_runs_on_synthetic_data(gpu_check, tmp_path, capsys):
    rows = run(gpu_check, tmp_path, "--data", str(tmp_path / "no-movielens-here"))
    checks = {(r["section"], r["check"]) for r in rows}
    assert checks == {(s, n) for s, n, _ in gpu_check.CHECKS}
    by_what = {r["what"]: r for r in rows}
    assert by_what["BPR data"]["result"].startswith("synthetic (MovieLens not found")
    assert by_what["BPR trained on"]["result"] == "cpu"
    assert by_what["batch on CUDA"]["status"] == "SKIP"  # no CUDA in this run
    assert by_what["batch(device='cpu') == numpy reference"]["status"] == "PASS"
    out = capsys.readouterr().out
    assert "section" in out.splitlines()[1] and f"{len(rows)} rows, 0 failed" in out


def test_bpr_on_movielens(gpu_check, tmp_path):
    if not (DATA / "ml-100k" / "u1.base").is_file():
        pytest.skip(f"MovieLens 100k not found at {DATA / 'ml-100k'}")
    rows = run(gpu_check, tmp_path, "--data", str(DATA / "ml-100k"), "--only", "uniform")
    by_what = {r["what"]: r for r in rows}
    assert by_what["BPR data"]["result"].startswith("MovieLens u1: 943 users")
    assert by_what["BPR auc"]["status"] == "PASS"


def test_a_failing_check_does_not_stop_the_others(gpu_check, tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("CUDA out of memory\nsecond line")

    monkeypatch.setattr(gpu_check, "CHECKS", [("x", "broken", broken), *gpu_check.CHECKS[:1]])
    out = tmp_path / "rows.json"
    assert gpu_check.main(["--device", "cpu", "--json", str(out)]) == 1
    rows = json.loads(out.read_text())
    assert rows[0] == {**rows[0], "check": "broken", "status": "FAIL", "result": "RuntimeError: CUDA out of memory"}
    assert [r["section"] for r in rows[1:]] and all(r["section"] == "device" and r["status"] != "FAIL" for r in rows[1:])
