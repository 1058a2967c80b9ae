"""Decode + resize to 224x224: fashionrec's image bank vs Pillow and libjpeg-turbo, one table.

Every contender runs in its own fresh Python process (a user builds a bank once per catalogue,
in a fresh process: the first build is what they pay), ``--runs`` rounds of one process per
contender, in turn; the table gives the range over rounds, and each ratio is the median over
rounds of the ratio within a round (a shared VM's speed drifts by 20-30% over minutes). Two photo sets: the 224-px fashion-product JPEGs and the full-size H&M photos
(1028x1750, listed ``--hm-repeat`` times so a run lasts long enough to time). Contenders:

* ``pil``: ``Image.open(p).convert("RGB").resize((224, 224), BILINEAR)`` per image, dropped;
* ``pil-draft``: the same after ``im.draft("RGB", (224, 224))`` (libjpeg decodes at 1/2, 1/4 or
  1/8 scale inside the IDCT, as ``Image.thumbnail`` does), dropped;
* ``pil-kept``: ``pil-draft`` keeping every image in one (N, 224, 224, 3) array, as a bank does;
* ``simplejpeg`` / ``simplejpeg-scaled``: libjpeg-turbo decoding alone, full size or scaled
  (``min_width=min_height=224``), no resize: the decoder's limit (``pip install simplejpeg``);
* ``bank``: ``fr.ImageBank.from_files(paths, 224)`` (DCT-domain downscaling on), first build in
  the process, then ``bank, warm``: the same build again in the same process;
* ``bank, reduce=False``: full decode then resize (Pillow's full-decode pixels).

"all cores" rows: the bank with ``workers=cores``; Pillow and simplejpeg over a fork pool of
``cores`` processes (created before the clock starts). The files are read once first, so every
run finds them in the page cache.

    python benches/image_decode.py                     # both sets, 1 worker and all cores
    python benches/image_decode.py --runs 5 --limit 2000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASHIONREC_DATA", ROOT.parent / "shared" / "data"))
SETS = {
    "224-px": DATA / "fashion-product-images-small" / "images",
    "H&M": DATA / "hm-sample" / "images",
}
SIZE = 224


def paths_of(name: str, limit: int, hm_repeat: int) -> list[str]:
    paths = sorted(str(p) for p in SETS[name].glob("*.jpg"))
    if name == "H&M":
        paths = paths * hm_repeat
    return paths[:limit] if limit else paths


# -- contenders (run inside the child process) ---------------------------------------------


def pil_one(path: str, draft: bool) -> np.ndarray:
    from PIL import Image

    im = Image.open(path)
    if draft:
        im.draft("RGB", (SIZE, SIZE))
    return np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def pil_chunk(args: tuple[list[str], bool]) -> int:
    paths, draft = args
    for p in paths:
        pil_one(p, draft)
    return len(paths)


def sj_chunk(args: tuple[list[str], bool]) -> int:
    import simplejpeg

    paths, scaled = args
    kw = {"min_width": SIZE, "min_height": SIZE} if scaled else {}
    for p in paths:
        with open(p, "rb") as f:
            simplejpeg.decode_jpeg(f.read(), **kw)
    return len(paths)


def pooled(fn, paths: list[str], flag: bool, workers: int) -> float:
    """Seconds to run ``fn`` over ``paths`` on ``workers`` processes (1: in this process)."""
    if workers == 1:
        t = time.perf_counter()
        fn((paths, flag))
        return time.perf_counter() - t
    with mp.get_context("fork").Pool(workers) as pool:
        chunks = [(paths[k :: workers * 8], flag) for k in range(workers * 8)]
        pool.map(fn, [(c[0][:1], flag) for c in chunks[:workers]])  # start the workers
        t = time.perf_counter()
        pool.map(fn, chunks)
        return time.perf_counter() - t


def child(contender: str, paths: list[str], workers: int) -> dict:
    if contender in ("pil", "pil-draft"):
        return {"s": pooled(pil_chunk, paths, contender == "pil-draft", workers)}
    if contender in ("simplejpeg", "simplejpeg-scaled"):
        return {"s": pooled(sj_chunk, paths, contender == "simplejpeg-scaled", workers)}
    if contender == "pil-kept":
        t = time.perf_counter()
        out = np.empty((len(paths), SIZE, SIZE, 3), np.uint8)
        for k, p in enumerate(paths):
            out[k] = pil_one(p, True)
        return {"s": time.perf_counter() - t}
    import fashionrec as fr

    reduce = contender != "bank-full"
    times = []
    for _ in range(2):  # the first build in this process, then a warm one
        t = time.perf_counter()
        bank = fr.ImageBank.from_files(paths, SIZE, workers=workers, reduce=reduce, progress=False)
        times.append(time.perf_counter() - t)
        del bank
    return {"s": times[0], "warm": times[1]}


# -- the parent: fresh processes, one table ------------------------------------------------


def run_child(contender: str, name: str, workers: int, args) -> dict | None:
    cmd = [sys.executable, __file__, "--child", contender, "--set", name, "--workers", str(workers)]
    cmd += ["--limit", str(args.limit), "--hm-repeat", str(args.hm_repeat)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  {contender} on {name} failed: {r.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def span(rates: list[float]) -> str:
    rates = [r for r in rates if r == r]  # failed runs are NaN
    return f"{min(rates):,.0f}-{max(rates):,.0f}" if rates else "-"


def pixel_check(paths: list[str]) -> str:
    """How far the bank's pixels are from Pillow's, with and without reduction."""
    import fashionrec as fr

    out = []
    for reduce, draft in ((False, False), (True, True)):
        bank = fr.ImageBank.from_files(paths, SIZE, reduce=reduce, progress=False)
        ref = np.stack([pil_one(p, draft) for p in paths])
        d = np.abs(bank.array().astype(int) - ref)
        what = "reduce=True vs Pillow draft" if reduce else "reduce=False vs Pillow full decode"
        out.append(f"{what}: mean |diff| {d.mean():.3f}, max {d.max()}, {(d > 0).mean() * 100:.1f}% differ")
    return "; ".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per contender")
    ap.add_argument("--limit", type=int, default=2000, help="images per set (0: all)")
    ap.add_argument("--hm-repeat", type=int, default=4, help="times the 100 H&M photos are listed")
    ap.add_argument("--sets", default="224-px,H&M")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--set", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, paths_of(args.set, args.limit, args.hm_repeat), args.workers)))
        return 0

    try:
        import simplejpeg  # noqa: F401

        have_sj = True
    except ImportError:
        have_sj = False
        print("simplejpeg is not installed (pip install simplejpeg): libjpeg-turbo rows skipped")
    cores = os.cpu_count() or 1
    contenders = ["pil", "pil-draft", "pil-kept"] + (["simplejpeg", "simplejpeg-scaled"] if have_sj else [])
    contenders += ["bank", "bank-full"]
    print(f"{cores} cores, {args.runs} fresh processes per row, load {os.getloadavg()[0]:.1f}")
    table = []
    for name in args.sets.split(","):
        paths = paths_of(name, args.limit, args.hm_repeat)
        if not paths:
            print(f"no JPEGs in {SETS[name]}: {name} skipped")
            continue
        for p in set(paths):  # warm the page cache
            Path(p).read_bytes()
        n = len(paths)
        for workers in sorted({1, cores}):
            here = [c for c in contenders if not (c == "pil-kept" and workers > 1)]
            # Round-robin: each round runs every contender once, so a drift in the machine's
            # speed (a shared VM's) falls on all of them alike, and ratios are taken per round.
            rates: dict[str, list[float]] = {}
            for _ in range(args.runs):
                for c in here:
                    r = run_child(c, name, workers, args)
                    rates.setdefault(c, []).append(n / r["s"] if r else float("nan"))
                    if r and "warm" in r:
                        rates.setdefault(c + ", warm", []).append(n / r["warm"])
            for c, got in rates.items():
                table.append((name, workers, c, got))
        table.append((name, 0, pixel_check(paths[: min(n, 100)]), []))

    print(f"\n{'set':<8}{'workers':>8}  {'contender':<26}{'images/s':>16}")
    for name, workers, c, rates in table:
        if workers == 0:
            print(f"{name:<8}  pixels: {c}")
            continue
        print(f"{name:<8}{workers:>8}  {c:<26}{span(rates):>16}")

    def rates_of(name, workers, c):
        for s, w, cc, r in table:
            if (s, w, cc) == (name, workers, c):
                return np.asarray(r, dtype=float)
        return np.full(args.runs, np.nan)

    def paired(name, a, b, wa=1, wb=1):
        """Median over rounds of a's rate / b's rate in the same round."""
        return float(np.nanmedian(rates_of(name, wa, a) / rates_of(name, wb, b)))

    print("\nratios (median over rounds of the ratio within a round):")
    for name in args.sets.split(","):
        sj = f", / libjpeg-turbo scaled alone {paired(name, 'bank', 'simplejpeg-scaled'):.2f}x" if have_sj else ""
        print(
            f"  {name}: bank / Pillow draft {paired(name, 'bank', 'pil-draft'):.2f}x, "
            f"/ Pillow kept {paired(name, 'bank', 'pil-kept'):.2f}x{sj}, "
            f"first build / warm {paired(name, 'bank', 'bank, warm'):.2f}, "
            f"scaling 1 -> {cores} workers {paired(name, 'bank', 'bank', cores, 1):.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
