"""Reading a DVBPR ``*ImgPartitioned.npy`` file: fashionrec vs ``numpy.load``.

Writes a DVBPR-layout file of about ``--gb`` GB with :func:`fashionrec.io.write_dvbpr` (real
JPEG bytes of the fashion-product photos, cycled, when ``../shared/data`` is there; else random
bytes of the same sizes), then reads it in fresh processes, each way ``--repeats`` times (the
first read warms the page cache for both): wall time, and the peak resident memory the read
added to the process (``ru_maxrss`` after minus the resident set before, so the interpreter and
``import torch`` are not counted).

    python benches/dvbpr_read.py                 # 2 GB in /tmp
    python benches/dvbpr_read.py --gb 0.2 --keep # smaller; keep the file
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGES = Path(os.environ.get("FASHIONREC_DATA", ROOT.parent / "shared" / "data")) / "fashion-product-images-small" / "images"

CHILD = r"""
import json, os, resource, sys, time
def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
how, path = sys.argv[1], sys.argv[2]
if how == "fashionrec":
    import fashionrec as fr
else:
    import numpy as np
before = rss_kb()
t = time.perf_counter()
if how == "fashionrec":
    d = fr.datasets.dvbpr(path)
    n = (len(d.train), len(d.validation), len(d.test), len(d.images))
else:
    a = np.load(path, allow_pickle=True, encoding="bytes")
    n = (sum(len(v) for v in a[0].values()), sum(len(v) for v in a[1].values()),
         sum(len(v) for v in a[2].values()), len(a[3]))
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "added_peak_mb": (peak - before) / 1024, "rss_now_mb": rss_kb() / 1024, "counts": n}))
"""


def generate(path: Path, gb: float, seed: int = 0) -> None:
    import fashionrec as fr

    rng = np.random.default_rng(seed)
    if IMAGES.is_dir():
        jpegs = [p.read_bytes() for p in sorted(IMAGES.glob("*.jpg"))[:4000]]
        source = f"{len(jpegs)} real JPEGs from {IMAGES}"
    else:
        jpegs = [rng.integers(0, 256, int(s), dtype=np.uint8).tobytes() for s in rng.normal(6000, 1500, 4000).clip(500)]
        source = "random bytes (real images not found)"
    mean = np.mean([len(j) for j in jpegs])
    n_items = int(gb * 1e9 / (mean + 40))
    n_users = n_items // 4
    # Each user 3-12 interactions, items long-tailed: about Amazon Fashion's shape.
    per_user = rng.integers(3, 13, n_users)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.minimum((rng.pareto(1.2, len(users)) * n_items / 50).astype(np.int64), n_items - 1)
    data = fr.Interactions.from_arrays(users, items, n_users=n_users, n_items=n_items)
    train, val, test = fr.split.leave_one_out(data, validation=True, seed=seed)
    t = time.perf_counter()
    fr.io.write_dvbpr(path, train, val, test, [jpegs[i % len(jpegs)] for i in range(n_items)])
    print(
        f"wrote {path}: {path.stat().st_size / 1e9:.2f} GB, {n_users:,} users x {n_items:,} items, "
        f"{len(train) + len(val) + len(test):,} interactions; images: {source} ({time.perf_counter() - t:.1f} s)"
    )


def read(how: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, how, str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--path", type=Path, default=Path("/tmp/fr-bench-dvbpr.npy"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    args = ap.parse_args()
    if not args.path.exists() or abs(args.path.stat().st_size / 1e9 - args.gb) > 0.1 * args.gb:
        generate(args.path, args.gb)
    size_mb = args.path.stat().st_size / 2**20
    read("numpy", args.path)  # warm the page cache for both
    rows = {}
    for how in ("fashionrec", "numpy"):
        runs = [read(how, args.path) for _ in range(args.repeats)]
        rows[how] = runs
        best = min(r["seconds"] for r in runs)
        peak = max(r["added_peak_mb"] for r in runs)
        print(
            f"{how:<11} read {best:7.2f} s (best of {len(runs)})   added peak RSS {peak:8.0f} MB "
            f"= {peak / size_mb:.2f}x the file ({size_mb:.0f} MB)   counts {runs[0]['counts']}"
        )
    if rows["fashionrec"][0]["counts"] != rows["numpy"][0]["counts"]:
        print("MISMATCH: the two readers disagree on the counts")
        return 1
    ratio = min(r["seconds"] for r in rows["numpy"]) / min(r["seconds"] for r in rows["fashionrec"])
    print(f"fashionrec is {ratio:.1f}x faster than numpy.load on this file")
    if not args.keep:
        args.path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
