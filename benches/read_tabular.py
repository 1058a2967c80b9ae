"""Reading a rating.csv the size of the anime data's (about 7.8M rows) into Interactions.

    python benches/read_tabular.py [--users 73516] [--repeat 3] [--keep]

Writes a realistic rating.csv to /tmp (fr.testing.write_anime_ratings from anime.csv: from
../shared/data when present, else a synthetic catalogue of 12,294 anime), then times, each in
its own process so peak memory is its own:

* fashionrec: ``fr.io.read_interactions_csv(..., drop_values=-1)`` (Rust, filter while reading)
* pandas (C engine): ``pd.read_csv`` + ``df[df.rating != -1]`` + ``fr.Interactions.from_pandas``
* pandas (pyarrow engine): the same with ``engine="pyarrow"``

Reports the median wall time of ``--repeat`` runs, input rows per second, and the peak RSS the
read added (VmHWM after minus VmRSS before). All three must build the same matrix (checked).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASHIONREC_DATA", ROOT.parent / "shared" / "data"))
METHODS = ("fashionrec", "pandas-c", "pandas-pyarrow")


def status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, from /proc. Not ru_maxrss: a child started
    by a parent with a large RSS can report the parent's peak there."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_one(method: str, path: str) -> dict:
    """One timed read in this process (called in a child process)."""
    import numpy as np
    import pandas as pd

    import fashionrec as fr

    before = status_mb("VmRSS")
    t = time.perf_counter()
    if method == "fashionrec":
        x = fr.io.read_interactions_csv(path, "user_id", "anime_id", "rating", drop_values=-1)
    else:
        engine = "c" if method == "pandas-c" else "pyarrow"
        df = pd.read_csv(path, engine=engine)
        df = df[df["rating"] != -1]
        x = fr.Interactions.from_pandas(df, "user_id", "anime_id", "rating")
    seconds = time.perf_counter() - t
    peak = status_mb("VmHWM")
    indptr, indices, values = x.to_csr()
    check = [int(x.n_users), int(x.n_items), len(x), int(indices.astype(np.int64).sum()), float(values.sum())]
    return {"seconds": seconds, "peak_added_mb": peak - before, "check": check}


def catalogue():
    import numpy as np
    import pandas as pd

    import fashionrec as fr

    anime_csv = DATA / "anime-recommendations" / "anime.csv"
    if anime_csv.exists():
        return fr.datasets.anime(anime_csv).items, str(anime_csv)
    rng = np.random.default_rng(0)
    n = 12_294
    items = pd.DataFrame(
        {"rating": np.round(rng.uniform(3, 9.5, n), 2), "members": np.rint(rng.lognormal(7.5, 2.3, n)).astype(np.int64) + 1},
        index=pd.Index(np.arange(1, n + 1), name="anime_id"),
    )
    return items, "a synthetic catalogue (anime.csv not found)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=73_516)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--path", default="/tmp/fashionrec-bench-rating.csv")
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.path)))
        return

    import fashionrec as fr

    items, source = catalogue()
    t = time.perf_counter()
    fr.testing.write_anime_ratings(args.path, items, n_users=args.users, seed=0)
    gen = time.perf_counter() - t
    with open(args.path, "rb") as f:
        rows = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b"")) - 1
    size = os.path.getsize(args.path) / 2**20
    print(f"rating.csv: {rows:,} rows, {size:.0f} MiB, {args.users:,} users, from {source}; written in {gen:.1f} s")
    print(f"machine: {os.cpu_count()} CPUs (shared: timings are noisy); median of {args.repeat} runs, each in its own process")
    results = {}
    for method in METHODS:
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--child", method, "--path", args.path],
                check=True,
                capture_output=True,
                text=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        results[method] = runs
    checks = {m: r[0]["check"] for m, r in results.items()}
    same = all(c[:4] == checks["fashionrec"][:4] and abs(c[4] - checks["fashionrec"][4]) < 1e-3 * abs(c[4]) for c in checks.values())
    print(f"\n| method | seconds (median) | rows/s | peak RSS added (MiB) |\n|---|---|---|---|")
    base = statistics.median(r["seconds"] for r in results["fashionrec"])
    for method, runs in results.items():
        s = statistics.median(r["seconds"] for r in runs)
        mem = statistics.median(r["peak_added_mb"] for r in runs)
        print(f"| {method} | {s:.2f} ({s / base:.1f}x) | {rows / s / 1e6:.1f}M | {mem:.0f} |")
    n_users, n_items, nnz = checks["fashionrec"][:3]
    print(f"\nall build the same {n_users:,} x {n_items:,} matrix with {nnz:,} ratings: {same}")
    if not same:
        print(json.dumps(checks, indent=1))
        sys.exit(1)
    if not args.keep:
        os.unlink(args.path)


if __name__ == "__main__":
    main()
