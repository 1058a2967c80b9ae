"""Training on several processes: samples/s of one process against two (torch.distributed,
gloo over loopback; NCCL with --device cuda), and the cost of the collective itself (one
process in a group of one against no group).

    python benches/distributed_scaling.py                 # DVBPR 64x64, HybridBPR, SampledSoftmax
    python benches/distributed_scaling.py --models dvbpr --samples 2000
    python benches/distributed_scaling.py --device cuda   # one process per GPU, NCCL

Rows, per model, each a separate set of processes started as torchrun would start them:
  1 proc x 1 thread           one process, no group (the baseline)
  1 proc x 1 thread, group    the same in a group of one: the collective's cost per step
  2 procs x 1 thread          two ranks, each half of every global batch
  1 proc x 2 threads          one process with libtorch's two intra-op threads
samples/s is the training samples of an epoch over its seconds (rank 0's second epoch: the
first pays one-time costs). Run it on a quiet machine: the figures are ratios in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve()


def data(model: str, scratch: pathlib.Path, samples: int):
    """The model, its training data and side data (seeded, the same in every process)."""
    import pandas as pd

    import fashionrec as fr

    rng = np.random.default_rng(0)
    if model == "dvbpr":
        n_items = 200
        _, pixels = fr.datasets.synthetic_catalogue(n_items, 64, seed=3)
        paths = fr.testing.write_pngs(pixels, scratch / "images")
        bank = fr.ImageBank.from_files(paths, size=64, ids=np.arange(n_items), progress=False)
        users = rng.integers(0, 100, samples)
        items = rng.integers(0, n_items, samples)
        train = fr.Interactions.from_ids(users, items, item_ids=np.arange(n_items), duplicates="max")
        return (lambda **kw: fr.DVBPR(image_size=64, epochs=2, **kw)), train, {"images": bank}
    if model == "hybrid":
        n_users, n_items = 943, 1682
        users = rng.integers(0, n_users, samples)
        items = rng.integers(0, n_items, samples)
        train = fr.Interactions.from_ids(users, items, user_ids=np.arange(n_users), item_ids=np.arange(n_items), duplicates="max")
        uf = pd.DataFrame({"gender": rng.choice(["F", "M"], n_users), "occupation": rng.choice([f"o{i}" for i in range(21)], n_users), "age": rng.integers(7, 74, n_users).astype(np.float32)}, index=np.arange(n_users))
        itf = pd.DataFrame({f"g{k}": rng.random(n_items) < 0.1 for k in range(19)}, index=np.arange(n_items))
        return (lambda **kw: fr.HybridBPR(epochs=2, **kw)), train, {"user_features": uf, "item_features": itf}
    if model == "softmax":
        n_users, n_items = 20_000, 10_000
        users = rng.integers(0, n_users, samples)
        items = (rng.zipf(1.3, samples) - 1) % n_items
        train = fr.Interactions.from_ids(users, items, user_ids=np.arange(n_users), item_ids=np.arange(n_items), duplicates="max")
        return (lambda **kw: fr.SampledSoftmax(epochs=2, **kw)), train, {}
    raise SystemExit(f"unknown model {model!r}")


def worker(out: pathlib.Path, model: str, samples: int, threads: int, group: bool, device: str) -> None:
    import torch

    import fashionrec as fr

    torch.set_num_threads(threads)
    rank = int(os.environ.get("RANK", "0"))
    if group:
        dev = fr.distributed.init(backend="nccl" if device == "cuda" else "gloo")
        device = dev if device == "cuda" else "cpu"
    make, train, side = data(model, out / f"scratch{rank}", samples)
    m = make(device=device, threads=threads)
    m.fit(train, progress=False, distributed=group, **side)
    if rank == 0:
        seconds = m.history_["seconds"][-1]
        (out / "result.json").write_text(json.dumps({"samples": len(train), "seconds": seconds}))


def run(model: str, samples: int, procs: int, threads: int, group: bool, device: str) -> float:
    """samples/s of rank 0's last epoch, `procs` processes of `threads` threads."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp)
        ps = []
        for rank in range(procs):
            env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(procs), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS=str(threads))
            args = [sys.executable, str(HERE), "--worker", str(out), "--models", model, "--samples", str(samples), "--threads", str(threads), "--device", device]
            ps.append(subprocess.Popen(args + (["--group"] if group else []), env=env))
        codes = [p.wait() for p in ps]
        if any(codes):
            raise SystemExit(f"{model}: a rank failed ({codes})")
        r = json.loads((out / "result.json").read_text())
        return r["samples"] / r["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="dvbpr,hybrid,softmax")
    ap.add_argument("--samples", type=int, default=0, help="interactions per epoch (default: per model)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--gpus", type=int, default=2, help="--device cuda: processes (one per GPU)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--group", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    default_samples = {"dvbpr": 1280, "hybrid": 100_000, "softmax": 200_000}
    if a.worker:
        worker(pathlib.Path(a.worker), a.models, a.samples or default_samples[a.models], a.threads, a.group, a.device)
        return
    print(f"{'model':<8} {'configuration':<28} {'samples/s':>10} {'vs 1x1':>7}")
    for model in a.models.split(","):
        n = a.samples or default_samples[model]
        if a.device == "cuda":
            rows = [("1 GPU", 1, 1, False), ("1 GPU, group of 1 (NCCL)", 1, 1, True), (f"{a.gpus} GPUs (NCCL)", a.gpus, 1, True)]
        else:
            rows = [("1 proc x 1 thread", 1, 1, False), ("1 proc x 1 thread, group", 1, 1, True), ("2 procs x 1 thread", 2, 1, True), ("1 proc x 2 threads", 1, 2, False)]
        base = None
        for name, procs, threads, group in rows:
            rate = run(model, n, procs, threads, group, a.device)
            base = base or rate
            print(f"{model:<8} {name:<28} {rate:>10.0f} {rate / base:>6.2f}x", flush=True)


if __name__ == "__main__":
    main()
