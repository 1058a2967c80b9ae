"""Reading McAuley's image_features_*.b: fashionrec's memory-mapped reader against plain
sequential reads and against the seed notebooks' loop (``array.array('f').fromfile`` per record).

    python benches/read_features.py [--gb 2.0] [--path /tmp/fr_bench_image_features.b] [--keep]

Generates a file of random records (~2 GB by default; not timed), then times, side by side:

* our open (``fr.io.ImageFeatures``: map the file, check every ASIN, build the index);
* full passes over all features through our reader: ``check_finite()`` and ``sum()``
  (parallel, in Rust), and ``np.sum`` over the zero-copy (unaligned) numpy view;
* ``rows()``: gathering random training batches into contiguous arrays;
* plain sequential reading of the file (``readinto`` of 16 MB chunks): the disk / page-cache
  speed a reader cannot beat;
* the seed's way (a Python loop of ``f.read(10)`` + ``array('f').fromfile(f, 4096)``) on a
  subset of records, reported as MB/s.

"Cold" runs first evict the file from the page cache with ``posix_fadvise(DONTNEED)`` (no root
needed; ``fincore`` confirms the eviction when it is installed), "warm" runs follow a full read.
Timings on a shared or virtualised machine move a lot: run it more than once.
"""

from __future__ import annotations

import argparse
import array
import os
import shutil
import subprocess
import time

import numpy as np

import fashionrec as fr

RECORD = 10 + 4 * 4096
MB = 1 << 20


def evict(path: str) -> str:
    """Drop the file's pages from the page cache; returns what fincore reports after."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if shutil.which("fincore"):
        out = subprocess.run(["fincore", "-b", "-n", "-o", "RES", path], capture_output=True, text=True).stdout.strip()
        return f"{int(out or 0) / MB:.0f} MB cached after eviction"
    return "eviction not verified (no fincore)"


def generate(path: str, gb: float) -> int:
    n = int(gb * (1 << 30) // RECORD)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4096, 4096), dtype=np.float32)
    start = time.perf_counter()
    step = 4096
    for k, lo in enumerate(range(0, n, step)):
        hi = min(n, lo + step)
        block = np.roll(base[: hi - lo], k, axis=1)
        fr.io.write_image_features(path, [f"B{i:09d}" for i in range(lo, hi)], block, append=lo > 0)
    print(f"generated {n} records, {n * RECORD / MB:.0f} MB in {time.perf_counter() - start:.1f} s: {path}")
    return n


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def sequential(path: str) -> int:
    buf = bytearray(16 * MB)
    view = memoryview(buf)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(view)
            if not n:
                return total
            total += n


def gather_all(gather, batches) -> float:
    """Gather each batch and drop it, as a training loop does (memory is reused)."""
    total = 0.0
    for b in batches:
        total += float(gather(b)[0, 0])
    return total


def seed_loop(path: str, records: int) -> int:
    """The seed notebooks' reader: one ASIN read and one array.fromfile per record."""
    n = 0
    with open(path, "rb") as f:
        while n < records:
            asin = f.read(10)
            if not asin:
                break
            a = array.array("f")
            a.fromfile(f, 4096)
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--path", default="/tmp/fr_bench_image_features.b")
    ap.add_argument("--seed-records", type=int, default=8000, help="records read the seed's way")
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    args = ap.parse_args()
    path = args.path
    n = generate(path, args.gb)
    size_mb = n * RECORD / MB
    rows = []

    def report(name: str, cache: str, seconds: float, mb: float, note: str = "") -> None:
        rows.append((name, cache, seconds, mb / seconds if seconds > 0 else float("inf"), note))

    rng = np.random.default_rng(1)
    batches = [rng.integers(0, n, 4096) for _ in range(8)]
    batch_mb = 8 * 4096 * 4 * 4096 / MB
    k = min(n, args.seed_records)
    try:
        # Cold: each step starts from an unmapped, evicted file, so a step's time includes the
        # open (whose ASIN reads bring in part of the file). Mapped pages cannot be evicted,
        # hence the reopen.
        def cold_open() -> fr.io.ImageFeatures:
            print("  cold:", evict(path))
            return fr.io.ImageFeatures(path)

        t, feats = timed(cold_open)
        report("fashionrec open + ASIN index", "cold", t, size_mb, f"{n} records; MB/s of the whole file")
        del feats
        t, _ = timed(lambda: cold_open().check_finite())
        report("fashionrec open + check_finite (full pass)", "cold", t, size_mb)
        t, total = timed(lambda: cold_open().sum())
        report("fashionrec open + sum (full pass)", "cold", t, size_mb)
        t, _ = timed(lambda: float(cold_open().features.sum(dtype=np.float64)))
        report("fashionrec open + numpy sum over the view", "cold", t, size_mb, "unaligned strided view")
        t, _ = timed(lambda: gather_all(cold_open().rows, batches))
        report("fashionrec open + rows() 8 x 4096 random", "cold", t, batch_mb, "MB/s of rows gathered")
        print("  cold:", evict(path))
        t, got = timed(lambda: sequential(path))
        assert got == n * RECORD
        report("plain sequential readinto 16 MB", "cold", t, size_mb, "the bound")
        print("  cold:", evict(path))
        t, _ = timed(lambda: seed_loop(path, k))
        report(f"seed loop, array.fromfile per record ({k})", "cold", t, k * RECORD / MB)

        # Warm: the whole file in the page cache.
        sequential(path)
        t, feats = timed(lambda: fr.io.ImageFeatures(path))
        report("fashionrec open + ASIN index", "warm", t, size_mb, "first open in this process")
        t, _ = timed(feats.check_finite)
        report("fashionrec check_finite (full pass)", "warm", t, size_mb)
        t, total2 = timed(feats.sum)
        assert np.isclose(total, total2)
        report("fashionrec sum (full pass)", "warm", t, size_mb)
        t, _ = timed(lambda: float(feats.features.sum(dtype=np.float64)))
        report("numpy sum over the zero-copy view", "warm", t, size_mb, "unaligned strided view")
        t, _ = timed(lambda: gather_all(feats.rows, batches))
        report("fashionrec rows() 8 x 4096 random", "warm", t, batch_mb, "MB/s of rows gathered")
        t, _ = timed(lambda: gather_all(lambda b: feats.features[b], batches))
        report("numpy fancy indexing of the view, same rows", "warm", t, batch_mb, "for comparison")
        t, got = timed(lambda: sequential(path))
        report("plain sequential readinto 16 MB", "warm", t, size_mb, "the bound")
        t, _ = timed(lambda: seed_loop(path, k))
        report(f"seed loop, array.fromfile per record ({k})", "warm", t, k * RECORD / MB)
        del feats
    finally:
        if not args.keep:
            os.remove(path)

    print(f"\n{n} records, {size_mb:.0f} MB, {os.cpu_count()} CPUs (rayon threads: {fr._core.threads_info()})")
    print(f"{'what':<52} {'cache':<5} {'seconds':>8} {'MB/s':>9}  note")
    for name, cache, seconds, rate, note in rows:
        print(f"{name:<52} {cache:<5} {seconds:>8.3f} {rate:>9.0f}  {note}")


if __name__ == "__main__":
    main()
