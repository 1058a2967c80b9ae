"""DVBPR training throughput: fashionrec's DVBPR (CNN-F tower) beside a plain PyTorch CNN-F
reference, same batch (triples) and image size, in one process.

Throughput is images through the CNN per second: two images (positive, negative) per triple.

* fashionrec: ``fr.DVBPR(...).fit(train, images=bank)`` on a bank of random images, timed
  by whole epochs of the fit (sampling, gathering from the bank, normalisation, forward,
  backward, Adam: the pipeline included. Without validation the catalogue is embedded once,
  after the last epoch (in the whole fit call, not in the epochs); with validation at each end
  of epoch). The first epoch is a warm-up; the figure is the median epoch after it
  (``history_["seconds"]``); the whole fit call is reported too (it includes the embedding of
  the --items catalogue, which the reference does not do).
* PyTorch reference: the same Siamese CNN-F and loss written plainly in PyTorch, fed from a
  float tensor of images already normalised and resident on the device (the most favourable
  feed: no gathering cost from uint8, no decoding), random triples, Adam. Variants: eager
  fp32; on CUDA also eager bf16 autocast + channels-last + cudnn.benchmark and
  ``torch.compile`` of the latter (on the CPU the target is the eager fp32 reference).

    python benches/dvbpr_throughput.py                 # CPU: 64x64, batch 32 triples
    python benches/dvbpr_throughput.py --device cuda --size 224 --batch 128
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class CnnF(nn.Module):
    """CNN-F as in DVBPR: conv 11x11x64/4, pool, 5x5x256, pool, 3x 3x3x256, pool, fc 4096,
    4096, factors; ReLU; dropout 0.5 on the fc 4096 layers; "same" padding. Input float NCHW."""

    def __init__(self, size: int, factors: int):
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(3, 64, 11, stride=4, padding=5),
                nn.Conv2d(64, 256, 5, padding=2),
                nn.Conv2d(256, 256, 3, padding=1),
                nn.Conv2d(256, 256, 3, padding=1),
                nn.Conv2d(256, 256, 3, padding=1),
            ]
        )
        side = ((size - 1) // 4 + 1) // 8
        self.fc1 = nn.Linear(256 * side * side, 4096)
        self.fc2 = nn.Linear(4096, 4096)
        self.fc3 = nn.Linear(4096, factors)

    def forward(self, x):
        c = self.convs
        x = F.max_pool2d(F.relu(c[0](x)), 2)
        x = F.max_pool2d(F.relu(c[1](x)), 2)
        x = F.max_pool2d(F.relu(c[4](F.relu(c[3](F.relu(c[2](x)))))), 2)
        x = F.dropout(F.relu(self.fc1(x.flatten(1))), 0.5, self.training)
        x = F.dropout(F.relu(self.fc2(x)), 0.5, self.training)
        return self.fc3(x)


def reference(variant: str, args, device: torch.device) -> float:
    """Images/s of the plain PyTorch Siamese CNN-F training step."""
    torch.manual_seed(0)
    net = CnnF(args.size, args.factors).to(device)
    theta = nn.Embedding(args.users, args.factors).to(device)
    nn.init.normal_(theta.weight, std=0.01)
    opt = torch.optim.Adam(list(net.parameters()) + list(theta.parameters()), lr=1e-4)
    images = torch.rand(args.items, 3, args.size, args.size, device=device) * 2 - 1
    fast = variant != "fp32"
    if fast:
        net = net.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    conv_w = [c.weight for c in net.convs]
    fc_w = [net.fc1.weight, net.fc2.weight, net.fc3.weight]

    def step(u, i, j):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
            phi = net(images[torch.cat([i, j])]).float()
        t = theta(u)
        x = (t * (phi[: len(u)] - phi[len(u) :])).sum(1)
        loss = -F.logsigmoid(x).sum()
        loss = loss + 1e-3 * sum((w * w).sum() for w in conv_w) + 1e-3 * sum((w * w).sum() for w in fc_w)
        loss = loss + 1.0 * (t * t).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    if variant == "compile":
        step = torch.compile(step)
    net.train()
    g = torch.Generator(device="cpu").manual_seed(1)

    def draw():
        u = torch.randint(args.users, (args.batch,), generator=g).to(device)
        i = torch.randint(args.items, (args.batch,), generator=g).to(device)
        j = torch.randint(args.items, (args.batch,), generator=g).to(device)
        return u, i, j

    for _ in range(args.warmup):
        step(*draw())
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    times = []
    for _ in range(args.repeats):
        total = torch.zeros((), device=device)
        start = time.perf_counter()
        for _ in range(args.steps):
            total += step(*draw())
        sync()
        times.append(time.perf_counter() - start)
    return 2 * args.batch * args.steps / statistics.median(times)


def synthetic(args):
    """Random interactions (about `per_user` items per user) and a bank of random images."""
    import fashionrec as fr
    from PIL import Image

    rng = np.random.default_rng(0)
    n = args.users * args.per_user
    users = rng.integers(0, args.users, n)
    items = rng.integers(0, args.items, n)
    train = fr.Interactions.from_arrays(users, items, n_users=args.users, n_items=args.items)
    tmp = tempfile.TemporaryDirectory()
    paths = []
    pixels = rng.integers(0, 256, (args.items, args.size, args.size, 3), dtype=np.uint8)
    for k, img in enumerate(pixels):
        p = f"{tmp.name}/{k}.png"
        Image.fromarray(img).save(p, compress_level=0)
        paths.append(p)
    bank = fr.ImageBank.from_files(paths, size=args.size, progress=False)
    return train, bank, tmp


def fashionrec(args, device: str, data, **options) -> tuple[float, float, int]:
    """(median epoch images/s after the first, whole-fit images/s, triples per epoch)."""
    import fashionrec as fr

    train, bank = data
    model = fr.DVBPR(
        factors=args.factors,
        tower="cnnf",
        image_size=args.size,
        epochs=args.epochs,
        lr=1e-4,
        batch_size=args.batch,
        device=device,
        seed=0,
        **options,
    )
    start = time.perf_counter()
    model.fit(train, images=bank, progress=False)
    whole = time.perf_counter() - start
    n = len(train)
    secs = model.history_["seconds"][1:] or model.history_["seconds"]
    return 2 * n / statistics.median(secs), 2 * n * args.epochs / whole, n


#: fashionrec settings compared (the defaults first).
VARIANTS = {
    "cpu": [("defaults", {})],
    "cuda": [("defaults", {}), ("plain conv1 (no space-to-depth)", {"space_to_depth": False})],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32, help="triples per step")
    p.add_argument("--factors", type=int, default=50)
    p.add_argument("--users", type=int, default=64)
    p.add_argument("--items", type=int, default=100)
    p.add_argument("--per-user", type=int, default=5, help="interactions per user (fashionrec's epoch)")
    p.add_argument("--epochs", type=int, default=3, help="fashionrec epochs (the first is a warm-up)")
    p.add_argument("--steps", type=int, default=10, help="reference steps per timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--skip-fashionrec", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    print(
        f"device {device}, {torch.get_num_threads()} torch threads, images {args.size}x{args.size}, "
        f"batch {args.batch} triples ({2 * args.batch} images a step), factors {args.factors}"
    )
    # bf16 on a CPU without bf16 instructions is emulated (much slower): CUDA only.
    variants = ["fp32"] + (["bf16-cl", "compile"] if device.type == "cuda" else [])
    names = {v: f"PyTorch eager {v}" if v != "compile" else "PyTorch torch.compile bf16-cl" for v in variants}

    def references(when: str) -> dict[str, float]:
        out = {}
        for v in variants:
            out[v] = reference(v, args, device)
            print(f"{names[v] + ' (' + when + ')':48s} {out[v]:10.1f} images/s", flush=True)
        return out

    # The references run before and after fashionrec: on a shared machine the load moves,
    # so the comparison is against both.
    before = references("before")
    if not args.skip_fashionrec:
        train, bank, tmp = synthetic(args)
        for label, options in VARIANTS[device.type]:
            epoch, whole, n = fashionrec(args, args.device, (train, bank), **options)
            print(f"{'fashionrec DVBPR ' + label:48s} {epoch:10.1f} images/s a training epoch "
                  f"(whole fit call {whole:.1f}; {n} triples an epoch)", flush=True)
            after = references("after")
            for v in variants:
                print(f"    / {names[v]}: {epoch / before[v]:.2f}x (before), {epoch / after[v]:.2f}x (after)")
        tmp.cleanup()


if __name__ == "__main__":
    main()
