import subprocess
import sys


def test_demo_runs_and_prints_metrics():
    out = subprocess.run(
        [sys.executable, "-m", "fashionrec", "demo", "--quiet", "--epochs", "10"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout
    assert "Popularity" in out and "BPR" in out and "ndcg@10" in out
    bpr_row = next(line for line in out.splitlines() if line.startswith("BPR "))
    pop_row = next(line for line in out.splitlines() if line.startswith("Popularity"))
    # Columns: name, fit s, auc, ...: the personalised model must beat popularity on AUC.
    assert float(bpr_row.split()[2]) > float(pop_row.split()[2])


def test_info():
    out = subprocess.run([sys.executable, "-m", "fashionrec", "info"], capture_output=True, text=True, check=True).stdout
    assert "CUDA available to the core" in out
