"""Reading Amazon metadata (meta_*.json.gz, 2014 Python-literal lines): fashionrec's reader
against the seed's way (``eval`` per line of ``gzip.open``, as McAuley's page suggests) and
``ast.literal_eval`` per line.

    python benches/read_amazon.py [--records 100000] [--subset 20000]

Generates a gzip file of records shaped like the 2014 files (title, price, ~30-60 related
ASINs, categories, salesRank, a description; written by ``fr.io.write_amazon_metadata``),
then times, in one run: gzip decompression alone (a bound for any line reader), our reader
(all records, into a DataFrame), and the two per-line Python parsers on the first
``--subset`` lines. Rates are in lines/s and MB/s of decompressed text. Timings on a shared
machine move a lot.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import os
import random
import time

import fashionrec as fr

MB = 1 << 20


def records(n: int, seed: int = 0):
    rng = random.Random(seed)
    words = ["dress", "cotton", "women's", "summer", "slim", "fit", "shirt", "blue", "“sale”", "size", "café"]
    pool = [f"B{rng.randrange(10**9):09d}" for _ in range(max(1000, n // 2))]
    for k in range(n):
        rec = {
            "asin": f"A{k:09d}",
            "title": " ".join(rng.choice(words) for _ in range(rng.randrange(3, 12))),
            "price": round(rng.uniform(1, 200), 2),
            "imUrl": f"http://ecx.images-amazon.com/images/I/{k:x}.jpg",
            "related": {
                "also_bought": rng.sample(pool, rng.randrange(0, 60)),
                "also_viewed": rng.sample(pool, rng.randrange(0, 40)),
                "bought_together": rng.sample(pool, rng.randrange(0, 3)),
            },
            "salesRank": {"Clothing": rng.randrange(1, 10**6)},
            "categories": [["Clothing, Shoes & Jewelry", "Women", rng.choice(words)]],
            "description": " ".join(rng.choice(words) for _ in range(rng.randrange(0, 80))),
        }
        if rng.random() < 0.7:
            rec["brand"] = rng.choice(words)
        yield rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--subset", type=int, default=20_000, help="lines parsed by eval / literal_eval")
    ap.add_argument("--path", default="/tmp/fr_bench_meta.json.gz")
    args = ap.parse_args()
    start = time.perf_counter()
    fr.io.write_amazon_metadata(args.path, records(args.records))
    print(f"generated {args.records} records in {time.perf_counter() - start:.1f} s: {args.path}")
    try:
        rows = []
        start = time.perf_counter()
        text_bytes = 0
        with gzip.open(args.path, "rb") as f:
            for line in f:
                text_bytes += len(line)
        t = time.perf_counter() - start
        rows.append(("gzip.open, iterate lines (bound)", args.records, t, text_bytes))
        start = time.perf_counter()
        df = fr.io.read_amazon_metadata(args.path, description=True)
        t = time.perf_counter() - start
        assert len(df) == args.records
        rows.append(("fashionrec read_amazon_metadata -> DataFrame", args.records, t, text_bytes))
        k = min(args.subset, args.records)
        for name, parse in [("seed: eval(line)", eval), ("ast.literal_eval(line)", ast.literal_eval)]:
            start = time.perf_counter()
            got = 0
            sub_bytes = 0
            with gzip.open(args.path, "rt", encoding="utf-8") as f:
                for line in f:
                    parse(line)
                    sub_bytes += len(line.encode())
                    got += 1
                    if got == k:
                        break
            rows.append((name, got, time.perf_counter() - start, sub_bytes))
    finally:
        os.remove(args.path)
    print(f"\n{args.records} records, {text_bytes / MB:.0f} MB of text, {os.cpu_count()} CPUs")
    print(f"{'what':<46} {'lines':>8} {'seconds':>8} {'lines/s':>9} {'MB/s':>7}")
    for name, n, t, b in rows:
        print(f"{name:<46} {n:>8} {t:>8.2f} {n / t:>9.0f} {b / MB / t:>7.1f}")


if __name__ == "__main__":
    main()
