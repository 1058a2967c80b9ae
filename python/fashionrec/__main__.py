"""Command line: ``python -m fashionrec demo`` trains and evaluates BPR on the built-in
synthetic data; ``python -m fashionrec info`` prints versions and devices."""

from __future__ import annotations

import argparse
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    import fashionrec as fr

    t0 = time.perf_counter()
    train, test = fr.datasets.demo(seed=args.seed)
    print(f"data  train {train!r}\n      test  {test!r}  ({time.perf_counter() - t0:.2f} s)")
    metrics = ["auc", "precision@10", "recall@10", "ndcg@10", "map@10", "hitrate@10"]
    rows = []
    for model in (fr.Popularity(), fr.BPR(factors=64, epochs=args.epochs, device=args.device, seed=args.seed)):
        t = time.perf_counter()
        model.fit(train, progress=not args.quiet)
        fit_s = time.perf_counter() - t
        res = fr.evaluate(model, test, train=train, metrics=metrics)
        rows.append((type(model).__name__, fit_s, res))
        if isinstance(model, fr.BPR):
            print(f"BPR: trained on {model.device}; loss {model.history_['loss'][0]:.4f} -> {model.history_['loss'][-1]:.4f}")
    print(f"\n{'model':<12}{'fit s':>8}" + "".join(f"{m:>14}" for m in metrics))
    for name, fit_s, res in rows:
        print(f"{name:<12}{fit_s:>8.2f}" + "".join(f"{res[m]:>14.4f}" for m in metrics))
    print(f"\n{rows[0][2]['users']} test users; candidates are the items not in each user's train set.")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


def _info(_: argparse.Namespace) -> int:
    import numpy
    import torch

    import fashionrec as fr
    from fashionrec import _core

    cuda, n, cudnn = _core.cuda_info()
    rayon_threads, torch_threads = _core.threads_info()
    print(f"fashionrec {fr.__version__}  torch {torch.__version__}  numpy {numpy.__version__}  python {sys.version.split()[0]}")
    print(f"CUDA available to the core: {cuda} ({n} devices, cuDNN {cudnn})")
    print(f"threads: rayon {rayon_threads}, libtorch {torch_threads}")
    print(f"JPEG decoder: {_core.jpeg_decoder()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fashionrec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train and evaluate BPR on the built-in synthetic data")
    demo.add_argument("--epochs", type=int, default=50)
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)
    info = sub.add_parser("info", help="versions, devices and threads")
    info.set_defaults(run=_info)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
