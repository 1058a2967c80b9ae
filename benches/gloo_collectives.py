"""What two CPU ranks pay for DVBPR's gradient exchange on gloo, and what the ways around it
would cost: the figures behind benches/distributed_scaling.py's DVBPR row (docs/benchmarks.md,
"Training on several processes").

    python benches/gloo_collectives.py [--values 23400000] [--repeat 5]

Two processes, one thread each, gloo over loopback (as the scaling bench's "2 procs x 1
thread"). Rows, seconds per call on rank 0 (mean of --repeat, after a warm-up, the ranks lined
up by a barrier before each call):

  all_reduce                   the dense bucket of every gradient (what the fit sends)
  reduce_scatter + all_gather  the same exchange as ZeRO stage 1 would make it (each rank's
                               Adam on its slice of the gradient sum, then the parameters
                               gathered)
  compute alone                a single-thread matmul of about the all_reduce's length
  compute, then all_reduce     the two one after the other
  compute with all_reduce      the all_reduce started (async_op=True) before the compute and
                               waited for after it: what overlapping communication with the
                               backward pass could hide on busy cores
  fc2 grad, rank's share       CNN-F's fc2 weight gradient (4096 x 4096) over a rank's rows of
                               a DVBPR batch of 128 (positives and negatives: 128 of 256 rows)
  fc2 grad, global batch       the same over all 256 rows: what each rank would compute if the
                               ranks exchanged the layer's inputs and output gradients (4 MB)
                               instead of its 67 MB weight gradient
  fc2 grad all_reduce          the all_reduce of that 67 MB gradient
"""

from __future__ import annotations

import argparse
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

FC = 4096


def timed(f, repeat: int) -> float:
    """Mean seconds of `f()` over `repeat` calls, each after a barrier (one warm-up first)."""
    f()
    total = 0.0
    for _ in range(repeat):
        dist.barrier()
        start = time.perf_counter()
        f()
        total += time.perf_counter() - start
    return total / repeat


def rank_main(rank: int, port: int, values: int, repeat: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    values -= values % 2
    grads = torch.ones(values)
    half = torch.empty(values // 2)
    a, b = torch.randn(900, 900), torch.randn(900, 900)
    rows = {"share": torch.randn(128, FC), "global": torch.randn(256, FC)}
    fc2 = torch.empty(FC, FC)

    def compute() -> None:
        for _ in range(4):
            a @ b

    def overlapped() -> None:
        work = dist.all_reduce(grads, async_op=True)
        compute()
        work.wait()

    rows_out = [
        ("all_reduce", lambda: dist.all_reduce(grads)),
        ("reduce_scatter + all_gather", lambda: (dist.reduce_scatter_tensor(half, grads), dist.all_gather_into_tensor(grads, half))),
        ("compute alone", compute),
        ("compute, then all_reduce", lambda: (compute(), dist.all_reduce(grads))),
        ("compute with all_reduce", overlapped),
        ("fc2 grad, rank's share", lambda: torch.mm(rows["share"].T, rows["share"], out=fc2)),
        ("fc2 grad, global batch", lambda: torch.mm(rows["global"].T, rows["global"], out=fc2)),
        ("fc2 grad all_reduce", lambda: dist.all_reduce(fc2)),
    ]
    results = [(name, timed(f, repeat)) for name, f in rows_out]
    if rank == 0:
        print(f"2 ranks, gloo over loopback, 1 thread each; {values:,} values ({values * 4 / 1e6:.0f} MB) in the dense rows")
        print(f"{'':<30} {'seconds':>8}")
        for name, s in results:
            print(f"{name:<30} {s:>8.4f}")
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--values", type=int, default=23_400_000, help="float32 values of the dense rows (DVBPR 64x64: 23.4M)")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(rank_main, args=(port, a.values, a.repeat), nprocs=2)


if __name__ == "__main__":
    main()
