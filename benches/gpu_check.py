"""Every GPU-side check in one run, printed as one table (under 5 minutes on a CUDA machine).

    python benches/gpu_check.py                    # on the GPU box: device cuda, full checks
    python benches/gpu_check.py --device cpu --quick   # here: the same code paths on the CPU
    python benches/gpu_check.py --only bpr,warp --json out.json

Each check is one function registered with ``@check(section, name)``. It gets the run's
:class:`Context` and returns rows ``(what, result, status)`` with status PASS, FAIL, INFO or
SKIP. The runner times every check and catches its exception, so a failing check prints FAIL
with the error and the others still run. The exit status is 1 when any row failed.

On ``--device cpu`` the "device" side of each comparison is the libtorch backend on the CPU
(the code path CUDA takes), against the native CPU kernel; on ``--device cuda`` it is CUDA.

MovieLens 100k u1 (positives rating >= 4, as benches/bpr_movielens.py) is read from --data
(default ../shared/data/ml-100k or $FASHIONREC_ML100K); where it is absent the model checks run
on the built-in synthetic data and say so.

Sections: device, bpr (uniform, warp), models/embedding (the triplet, hybrid and softmax models
on the device against the CPU), images, dvbpr (towers: DVBPR's CAE and Inception v3 towers
train on the device and save). To add a section for a new model (e.g. DVBPR throughput): write
a function below

    @check("dvbpr", "throughput")
    def dvbpr_throughput(ctx):
        ...                                   # fit / time on ctx.device
        return [("images/s", f"{rate:,.0f}", INFO)]

and keep it within about a minute on the GPU (``ctx.quick``: a few seconds on the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

import fashionrec as fr

PASS, FAIL, INFO, SKIP = "PASS", "FAIL", "INFO", "SKIP"
METRICS = ["auc", "ndcg@10", "precision@10"]
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ml-100k"
#: Largest metric differences between the device and the CPU kernel counted as noise (same
#: seed, same sampled triples; the update order differs). MovieLens: 0.9317 vs 0.9316 AUC and
#: 0.4039 vs 0.4024 NDCG@10 in README's table; the small synthetic data is noisier.
NOISE = {"movielens": {"auc": 0.01, "ndcg@10": 0.03, "precision@10": 0.03},
         "synthetic": {"auc": 0.02, "ndcg@10": 0.05, "precision@10": 0.05}}

Row = tuple[str, str, str]


@dataclass
class Context:
    device: str
    quick: bool
    data: Path
    repeats: int
    epochs: int | None = None  # None: each model's default
    cache: dict = field(default_factory=dict)

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def device_params(self) -> dict:
        """Model arguments that put training on the checked device (libtorch on the CPU)."""
        return {"device": self.device} if self.is_cuda else {"device": "cpu", "backend": "torch"}

    def ratings(self) -> tuple[str, fr.Interactions, fr.Interactions]:
        """(name, train, test): MovieLens u1 (rating >= 4) when present, else synthetic."""
        if "ratings" not in self.cache:
            if (self.data / "u1.base").is_file():
                train, test = fr.datasets.movielens_100k(self.data, split="u1", min_rating=4)
                self.cache["ratings"] = ("movielens", train, test)
            else:
                n_users, n_items = (300, 200) if self.quick else (2000, 1000)
                data = fr.datasets.synthetic(n_users, n_items, mean_items_per_user=25, seed=5)
                train, test = fr.split.random_split(data, 0.2, seed=5)
                self.cache["ratings"] = ("synthetic", train, test)
        return self.cache["ratings"]


CHECKS: list[tuple[str, str, Callable[[Context], list[Row]]]] = []


def check(section: str, name: str):
    def register(fn: Callable[[Context], list[Row]]):
        CHECKS.append((section, name, fn))
        return fn

    return register


# -- helpers ---------------------------------------------------------------------------------


def fit_timed(ctx: Context, make: Callable[[], fr.Recommender], train: fr.Interactions) -> tuple[float, fr.Recommender]:
    """Median fit time over ctx.repeats fits (the first fit on CUDA includes its start-up)."""
    times, model = [], None
    for _ in range(ctx.repeats):
        t = time.perf_counter()
        model = make().fit(train, progress=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times), model


def compare_metrics(kind: str, label: str, ref: dict, dev: dict) -> list[Row]:
    rows = []
    for m in METRICS:
        diff = dev[m] - ref[m]
        ok = abs(diff) <= NOISE[kind][m]
        rows.append((f"{label} {m}", f"{dev[m]:.4f} vs CPU {ref[m]:.4f} ({diff:+.4f}, noise {NOISE[kind][m]})", PASS if ok else FAIL))
    return rows


# -- checks ----------------------------------------------------------------------------------


@check("device", "cuda_available")
def cuda_available(ctx: Context) -> list[Row]:
    import torch

    ours = fr.cuda_available()
    _, n, cudnn = fr._core.cuda_info()
    rows = [("fr.cuda_available()", f"{ours} ({n} devices, cuDNN {cudnn})", PASS if ours or not ctx.is_cuda else FAIL)]
    theirs = torch.cuda.is_available()
    rows.append(("agrees with torch.cuda.is_available()", str(theirs), PASS if theirs == ours else FAIL))
    if theirs:
        rows.append(("device 0", torch.cuda.get_device_name(0), INFO))
    rows.append(("versions", f"fashionrec {fr.__version__}, torch {torch.__version__}, python {sys.version.split()[0]}", INFO))
    return rows


def bpr_rows(ctx: Context, label: str, **params) -> list[Row]:
    """One model on the device against the native CPU kernel, same seed and settings."""
    kind, train, test = ctx.ratings()
    if ctx.epochs is not None:
        params = {"epochs": ctx.epochs, **params}
    cpu_s, cpu = fit_timed(ctx, lambda: fr.BPR(factors=64, device="cpu", backend="native", **params), train)
    dev_s, dev = fit_timed(ctx, lambda: fr.BPR(factors=64, **ctx.device_params(), **params), train)
    ref = fr.evaluate(cpu, test, train=train, metrics=METRICS)
    got = fr.evaluate(dev, test, train=train, metrics=METRICS)
    where = "MovieLens u1" if kind == "movielens" else f"synthetic (MovieLens not found at {ctx.data})"
    settings = ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
    rows = [(f"{label} data", f"{where}: {train.n_users} users, {train.n_items} items, {ref['users']} test users", INFO),
            (f"{label} settings", f"factors=64, {settings}", INFO),
            (f"{label} trained on", dev.device, PASS if dev.device.startswith(ctx.device.split(":")[0]) else FAIL)]
    rows += compare_metrics(kind, label, ref, got)
    rows.append((f"{label} fit s (median of {ctx.repeats})", f"{dev.device} {dev_s:.3f}, CPU kernel {cpu_s:.3f}", INFO))
    ctx.cache[label] = {"device": got, "cpu": ref, "device_s": dev_s, "cpu_s": cpu_s}
    return rows


@check("bpr", "uniform")
def bpr_uniform(ctx: Context) -> list[Row]:
    return bpr_rows(ctx, "BPR")


@check("bpr", "warp")
def bpr_warp(ctx: Context) -> list[Row]:
    rows = bpr_rows(ctx, "WARP", sampler="warp")
    uniform = ctx.cache.get("BPR")
    if uniform is not None:
        warp = ctx.cache["WARP"]
        rows.append(("WARP vs uniform on the device, NDCG@10",
                     f"{warp['device']['ndcg@10']:.4f} vs {uniform['device']['ndcg@10']:.4f}", INFO))
        rows.append(("WARP / uniform fit time on the device", f"{warp['device_s'] / uniform['device_s']:.2f}x", INFO))
    return rows


def device_vs_cpu(ctx: Context, label: str, make, train, test, min_auc: float) -> list[Row]:
    """A libtorch model fitted on the device and on the CPU, same seed: both learn (AUC above
    `min_auc`) and agree within noise on the device (the update order differs)."""
    kind = ctx.ratings()[0]
    t = time.perf_counter()
    dev = make(ctx.device if ctx.is_cuda else "cpu").fit(train, progress=False)
    dev_s = time.perf_counter() - t
    got = fr.evaluate(dev, test, train=train, metrics=METRICS)
    rows = [(f"{label} trained on", dev.device, PASS if dev.device.startswith(ctx.device.split(":")[0]) else FAIL),
            (f"{label} AUC", f"{got['auc']:.4f} (at least {min_auc})", PASS if got["auc"] >= min_auc else FAIL)]
    if ctx.is_cuda:
        t = time.perf_counter()
        cpu = make("cpu").fit(train, progress=False)
        cpu_s = time.perf_counter() - t
        rows += compare_metrics(kind, label, fr.evaluate(cpu, test, train=train, metrics=METRICS), got)
        rows.append((f"{label} fit s", f"{dev.device} {dev_s:.2f}, CPU {cpu_s:.2f}", INFO))
    else:
        rows.append((f"{label} fit s", f"{dev_s:.2f}", INFO))
    with tempfile.TemporaryDirectory() as tmp:
        dev.save(os.path.join(tmp, "m.safetensors"))
        back = fr.load(os.path.join(tmp, "m.safetensors"), device="cpu")
        users = train.user_ids[:5]
        gap = float(np.abs(back.score(users) - dev.score(users)).max())
    rows.append((f"{label} saved, loaded on the CPU: max |score diff|", f"{gap:.2g}", PASS if gap <= 1e-4 else FAIL))
    return rows


@check("models", "embedding")
def embedding_models(ctx: Context) -> list[Row]:
    """The libtorch-step models of the feature, triplet and softmax notebooks on the device:
    TripletModel (dot + item bias), DeepTripletModel, HybridBPR with the full softmax from
    log-popularity (id embeddings), SampledSoftmax with item-average users (its row-sparse
    Adam in tensor ops: the CUDA path)."""
    kind, train, test = ctx.ratings()
    epochs = ctx.epochs or 10
    floor = 0.85 if kind == "movielens" else 0.6
    models = [
        ("TripletModel dot+bias", lambda d: fr.TripletModel(similarity="dot", item_bias=True, margin=3.0, reg=0.03, lr=0.003,
                                                            epochs=epochs, device=d, seed=0)),
        ("DeepTripletModel", lambda d: fr.DeepTripletModel(epochs=epochs, device=d, seed=0)),
        ("HybridBPR full softmax", lambda d: fr.HybridBPR(id_embeddings=True, loss="full_softmax", item_bias_init="log_popularity",
                                                          epochs=min(epochs, 4), device=d, seed=0)),
        ("SampledSoftmax item-average", lambda d: fr.SampledSoftmax(n_negatives=50, epochs=min(epochs, 5), device=d, seed=0)),
    ]
    rows: list[Row] = []
    for label, make in models:
        rows += device_vs_cpu(ctx, label, make, train, test, floor)
    return rows


@check("models", "own_generator")
def own_generator(ctx: Context) -> list[Row]:
    """A fit on the device draws its initial weights and dropout masks from its own generator
    (made on the host, copied over), never from torch's: the caller's CPU and CUDA streams
    are where they were, and two fits of one seed give the same scores."""
    import torch

    _, train, _ = ctx.ratings()
    make = lambda: fr.DeepTripletModel(dropout=0.3, epochs=2, device=ctx.device if ctx.is_cuda else "cpu", seed=3)
    where = "cuda" if ctx.is_cuda else "cpu"

    def stream():
        torch.manual_seed(11)
        return torch.rand(4), (torch.rand(4, device=where) if ctx.is_cuda else None)

    before = stream()
    torch.manual_seed(11)
    a = make().fit(train, progress=False)
    after = (torch.rand(4), torch.rand(4, device=where) if ctx.is_cuda else None)
    same = torch.equal(before[0], after[0]) and (before[1] is None or torch.equal(before[1], after[1]))
    b = make().fit(train, progress=False)
    users = train.user_ids[:5]
    gap = float(np.abs(a.score(users) - b.score(users)).max())
    return [("torch's CPU / CUDA streams untouched by a fit with dropout", str(same), PASS if same else FAIL),
            ("two fits of one seed: max |score diff|", f"{gap:.2g}", PASS if gap == 0 else (INFO if ctx.is_cuda else FAIL))]


@check("images", "bank_batch")
def bank_batch(ctx: Context) -> list[Row]:
    import torch

    n, size = (48, 32) if ctx.quick else (512, 224)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        paths = fr.testing.write_pngs(pixels, tmp)
        bank = fr.ImageBank.from_files(paths, size=size, progress=False)
        rows_wanted = rng.permutation(n)[: min(n, 256)]
        stored = np.array_equal(bank.array(), pixels)
        cpu = bank.batch(rows_wanted, device="cpu")
        reference = torch.from_numpy(pixels[rows_wanted]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        out = [("bank pixels == the PNGs' pixels", f"{n} images {size}x{size}", PASS if stored else FAIL),
               ("batch(device='cpu') == numpy reference", f"max |diff| {float((cpu - reference).abs().max()):.3g}",
                PASS if torch.equal(cpu, reference) else FAIL)]
        if ctx.is_cuda:
            dev = bank.batch(rows_wanted, device=ctx.device)
            torch.cuda.synchronize()
            same = dev.device.type == "cuda" and torch.equal(dev.cpu(), cpu)
            worst = float((dev.cpu() - cpu).abs().max())
            out.append((f"batch(device='{ctx.device}') == CPU batch (exact)",
                        f"{tuple(dev.shape)} on {dev.device}, max |diff| {worst:.3g}", PASS if same else FAIL))
            reps = 5 if ctx.quick else 20
            t = time.perf_counter()
            for _ in range(reps):
                bank.batch(rows_wanted, device=ctx.device)
            torch.cuda.synchronize()
            rate = reps * len(rows_wanted) / (time.perf_counter() - t)
            out.append((f"batch to {ctx.device}, {size}x{size}", f"{rate:,.0f} images/s", INFO))
        else:
            out.append(("batch on CUDA", "no CUDA device in this run", SKIP))
    return out


def visual_catalogue(folder: str, n: int, size: int) -> tuple[fr.Interactions, fr.ImageBank]:
    """n random images, the first half reddish and the rest bluish, and users who each like
    a few items of one colour (a taste a network can read from the pixels)."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 128, size=(n, size, size, 3), dtype=np.uint8)
    pixels[: n // 2, ..., 0] += 127
    pixels[n // 2 :, ..., 2] += 127
    paths = fr.testing.write_pngs(pixels, folder, ids=[f"{size}-{k}" for k in range(len(pixels))])
    bank = fr.ImageBank.from_files(paths, size=size, ids=np.arange(n), progress=False)
    users, items = [], []
    for u in range(n // 2):
        half = np.arange(n // 2) + (n // 2 if u % 2 else 0)
        for i in rng.choice(half, size=min(4, len(half)), replace=False):
            users.append(u)
            items.append(int(i))
    return fr.Interactions.from_arrays(users, items, n_users=n // 2, n_items=n), bank


def tower_rows(ctx: Context, label: str, train: fr.Interactions, bank: fr.ImageBank, folder: str, **params) -> list[Row]:
    """One DVBPR tower on the device: trained there, finite loss, a saved model that scores
    identically, and new images embedded as the catalogue's own."""
    epochs = 1 if ctx.quick else 3
    t = time.perf_counter()
    model = fr.DVBPR(factors=8, epochs=epochs, lr=1e-3, batch_size=32, device=ctx.device, seed=0, **params)
    model.fit(train, images=bank, progress=False)
    seconds = time.perf_counter() - t
    loss = model.history_["loss"]
    path = os.path.join(folder, f"{label.replace(' ', '_')}.safetensors")
    model.save(path)
    back = fr.load(path, device=ctx.device)
    users = model.user_ids[:8]
    same = np.array_equal(back.score(users), model.score(users))
    gap = float(np.abs(back.embed_images(bank) - model.item_embeddings()).max())
    scale = float(np.abs(model.item_embeddings()).max()) or 1.0
    images = 2 * len(train) * epochs  # positives and negatives through the tower
    note = ", the autoencoder's pretraining included" if params.get("tower") == "cae" else ""
    return [(f"DVBPR {label} trained on", model.device, PASS if model.device.startswith(ctx.device.split(":")[0]) else FAIL),
            (f"DVBPR {label} loss by epoch", ", ".join(f"{v:.4f}" for v in loss), PASS if np.isfinite(loss).all() else FAIL),
            (f"DVBPR {label} save/load scores", "identical" if same else "differ", PASS if same else FAIL),
            (f"DVBPR {label} embed_images vs item_embeddings", f"max |diff| {gap:.3g}", PASS if gap <= 1e-3 * scale else FAIL),
            (f"DVBPR {label} fit", f"{seconds:.1f} s ({images / seconds:,.0f} images/s{note})", INFO)]


@check("dvbpr", "towers")
def dvbpr_towers(ctx: Context) -> list[Row]:
    """DVBPR's CAE and Inception v3 towers (frozen, fine-tuned) train on the device."""
    n, cae_size, inception_size = (16, 32, 75) if ctx.quick else (256, 64, 299)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        train, bank = visual_catalogue(tmp, n, cae_size)
        rows += tower_rows(ctx, "CAE", train, bank, tmp, tower="cae", image_size=cae_size, latent=16, cae_channels=8,
                           pretrain_epochs=2)
        try:
            import torch
            import torchvision
        except ImportError:
            return rows + [("DVBPR Inception v3", "torchvision is needed to write random weights", SKIP)]
        torch.manual_seed(0)
        net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
        weights = fr.io.convert_inception_weights(net, os.path.join(tmp, "inception.safetensors"))
        train, bank = visual_catalogue(tmp, n, inception_size)
        for label, tuned in (("Inception v3 frozen", False), ("Inception v3 fine-tuned", True)):
            rows += tower_rows(ctx, label, train, bank, tmp, tower="inception_v3", weights=weights,
                               image_size=inception_size, train_backbone=tuned)
    return rows


@check("distributed", "group_of_one")
def distributed_group_of_one(ctx: Context) -> list[Row]:
    """fit(distributed=True) in a process group of one (NCCL on a GPU, gloo on the CPU):
    the same parameters as a fit without a group, and the collective's cost per fit. Two
    GPUs: benches/distributed_scaling.py --device cuda."""
    import socket

    import torch.distributed as dist

    backend = "nccl" if ctx.is_cuda else "gloo"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(backend, rank=0, world_size=1)
    rows: list[Row] = []
    try:
        _, train, _ = ctx.ratings()
        dev = {"device": ctx.device}
        cases = [("TripletModel", lambda: fr.TripletModel(factors=32, epochs=2, **dev)),
                 ("TripletModel sparse_adam", lambda: fr.TripletModel(factors=32, epochs=2, optimizer="sparse_adam", **dev))]
        for label, make in cases:
            t = time.perf_counter()
            plain = make().fit(train, progress=False)
            t_plain = time.perf_counter() - t
            t = time.perf_counter()
            grouped = make().fit(train, progress=False, distributed=True)
            t_group = time.perf_counter() - t
            a, b = plain._core.state(), grouped._core.state()
            gap = max(float(np.abs(a[k] - b[k]).max()) for k in a)
            rows.append((f"{label} ({backend}, 1 rank) vs no group", f"max |diff| {gap:.3g}", PASS if gap <= 1e-4 else FAIL))
            rows.append((f"{label} fit time with / without the group", f"{t_group:.2f} s / {t_plain:.2f} s", INFO))
    finally:
        dist.destroy_process_group()
    return rows


# -- runner ----------------------------------------------------------------------------------


def run(ctx: Context, only: set[str] | None) -> list[tuple[str, str, float, Row]]:
    results = []
    for section, name, fn in CHECKS:
        if only and section not in only and name not in only:
            continue
        t = time.perf_counter()
        try:
            rows = fn(ctx)
        except Exception as e:  # one failing check must not stop the others
            first = (str(e).strip().splitlines() or [""])[0][:160]
            rows = [(f"{name} raised", f"{type(e).__name__}: {first}", FAIL)]
            if os.environ.get("GPU_CHECK_TRACEBACK"):
                traceback.print_exc()
        seconds = time.perf_counter() - t
        for row in rows:
            results.append((section, name, seconds, row))
        print(f"  {section}/{name}: {seconds:.1f} s, {sum(r[2] == FAIL for r in rows)} failed", file=sys.stderr, flush=True)
    return results


def print_table(results) -> None:
    width = max([len(r[3][0]) for r in results] + [5])
    print(f"\n{'section':<8} {'check':<{width}} {'result':<62} {'status':<6} {'check s':>7}")
    print("-" * (8 + width + 62 + 6 + 7 + 4))
    last = None
    for section, name, seconds, (what, result, status) in results:
        shown_s = f"{seconds:.1f}" if (section, name) != last else ""
        last = (section, name)
        print(f"{section:<8} {what:<{width}} {result:<62} {status:<6} {shown_s:>7}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: libtorch on the CPU stands in)")
    p.add_argument("--quick", action="store_true", help="one fit per model, 10 epochs, small data and images")
    p.add_argument("--data", default=os.environ.get("FASHIONREC_ML100K", str(DEFAULT_DATA)), help="ml-100k folder")
    p.add_argument("--repeats", type=int, default=None, help="fits per model for the median (default 3, 1 with --quick)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of every model (default: the models' own, 10 with --quick)")
    p.add_argument("--only", default="", help="comma-separated sections or check names")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    args = p.parse_args(argv)
    if args.list:
        for section, name, fn in CHECKS:
            print(f"{section}/{name}: {(fn.__doc__ or '').strip().splitlines()[0] if fn.__doc__ else ''}")
        return 0
    repeats = args.repeats or (1 if args.quick else 3)
    epochs = args.epochs or (10 if args.quick else None)
    ctx = Context(device=args.device, quick=args.quick, data=Path(args.data), repeats=repeats, epochs=epochs)
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    t0 = time.perf_counter()
    results = run(ctx, only)
    print_table(results)
    failed = sum(r[3][2] == FAIL for r in results)
    print(f"\n{len(results)} rows, {failed} failed; device {args.device}, quick={args.quick}, total {time.perf_counter() - t0:.1f} s")
    if args.json:
        rows = [{"section": s, "check": n, "seconds": sec, "what": w, "result": r, "status": st}
                for s, n, sec, (w, r, st) in results]
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
