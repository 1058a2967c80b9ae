"""Decode + resize to 224x224 of the fashion-product JPEGs: fashionrec's image bank vs PIL.

PIL is timed the way the seed notebooks use it, ``Image.open(path).convert("RGB").resize((224,
224), Image.BILINEAR)`` per image (PIL returns a copy when the size already matches, as
fashionrec does), on one process and on a pool of processes; fashionrec builds a bank (in RAM)
on 1 thread and on every core. Two like-for-like rows separate decoding from keeping: the
same Python loop with fashionrec's decode + resize (each result dropped, as the PIL loop drops
its), and PIL keeping every result in one (N, 224, 224, 3) array, as a bank does. Keeping
1.4 GB costs fresh pages the kernel must zero, whoever decodes. The files are read once first
so every run finds them in the page cache. Pixel agreement with PIL is reported too (the
resize is Pillow's exact algorithm; the JPEG decoders differ by rounding).

    python benches/image_decode.py              # all 9,583 images
    python benches/image_decode.py --limit 2000 --repeats 5
    python benches/image_decode.py --folder ../shared/data/hm-sample/images   # large photos
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = Path(os.environ.get("FASHIONREC_DATA", ROOT.parent / "shared" / "data")) / "fashion-product-images-small" / "images"


def pil_one(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR))


def pil_kept(paths: list[str]) -> np.ndarray:
    out = np.empty((len(paths), 224, 224, 3), np.uint8)
    for k, p in enumerate(paths):
        out[k] = pil_one(p)
    return out


def fr_loop(paths: list[str]) -> None:
    from fashionrec.images import decode_image, resize_image

    for p in paths:
        with open(p, "rb") as f:
            resize_image(decode_image(f.read()), 224)


def pil_chunk(paths: list[str]) -> int:
    for p in paths:
        pil_one(p)
    return len(paths)


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=DEFAULT)
    ap.add_argument("--limit", type=int, default=0, help="use the first N images (0: all)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import fashionrec as fr

    paths = sorted(str(p) for p in args.folder.glob("*.jpg"))
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        print(f"no JPEGs in {args.folder}")
        return 1
    cores = os.cpu_count() or 1
    for p in paths:  # warm the page cache
        Path(p).read_bytes()
    n = len(paths)
    print(f"{n} images from {args.folder}, {cores} cores, best of {args.repeats}")

    rows = []
    t = best_of(args.repeats, lambda: pil_chunk(paths))
    rows.append(("PIL, 1 process", 1, n / t))
    with mp.get_context("fork").Pool(cores) as pool:
        chunks = [paths[k::cores * 8] for k in range(cores * 8)]
        t = best_of(args.repeats, lambda: sum(pool.map(pil_chunk, chunks)))
    rows.append((f"PIL, {cores} processes", cores, n / t))
    t = best_of(args.repeats, lambda: fr_loop(paths))
    rows.append(("fashionrec loop, dropped", 1, n / t))
    t = best_of(args.repeats, lambda: pil_kept(paths))
    rows.append(("PIL, kept in an array", 1, n / t))
    banks = []
    for workers in sorted({1, cores}):
        t = best_of(args.repeats, lambda: fr.ImageBank.from_files(paths, 224, workers=workers, progress=False))
        rows.append((f"fashionrec bank, {workers} thread{'s' if workers > 1 else ''}", workers, n / t))
        banks.append(n / t)

    pil_1 = rows[0][2]
    print(f"\n{'':<28}{'images/s':>10}{'per core':>10}{'vs PIL loop':>13}")
    for name, c, rate in rows:
        print(f"{name:<28}{rate:>10.0f}{rate / c:>10.0f}{rate / c / pil_1:>12.2f}x")
    print(f"like for like: dropped {rows[2][2] / pil_1:.2f}x, kept {banks[0] / rows[3][2]:.2f}x (bank on 1 thread vs PIL kept)")
    if cores > 1:
        print(f"fashionrec scaling 1 -> {cores} threads: {banks[-1] / banks[0]:.2f}x")

    sample = paths[: min(n, 500)]
    bank = fr.ImageBank.from_files(sample, 224, progress=False)
    ref = np.stack([pil_one(p) for p in sample])
    diff = np.abs(bank.array().astype(int) - ref)
    print(
        f"pixels vs PIL on {len(sample)} images: mean |diff| {diff.mean():.3f}, max {diff.max()}, "
        f"{(diff > 0).mean() * 100:.1f}% of values differ"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
