"""Install the built wheel into a fresh virtualenv and run the demo there, as a user would.

    python tests/wheel_install.py [dist/fashionrec-*.whl] [--torch link|pip] [--keep]

Run by ``make test-wheel`` (part of ``make test``) after ``make wheel``. It catches an install
that only works in the source tree: the fresh venv has no access to the checkout (it runs in
a temporary folder, without system site-packages), the package is imported from the venv's
site-packages, and the demo, the CLI entry point and the submodules must work there.

torch==2.11.0 (with its CUDA libraries, 2.7 GB of downloads, 5 GB installed) is provided one
of two ways:

* ``--torch link`` (default): the torch already installed for the build (the running
  interpreter's) is made importable without copying. A folder of symbolic links holds torch
  and the distributions it requires (their files and ``.dist-info``, read from their
  metadata), and a ``.pth`` file in the fresh venv appends that folder to ``sys.path``. Only
  torch's own dependency closure is linked, so pip still installs numpy, pandas, pyarrow and
  tqdm into the venv itself, from PyPI or pip's cache, as for a user.
* ``--torch pip``: pip installs torch==2.11.0 into the venv (from pip's cache when it holds
  the wheels, else downloading them).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def torch_closure() -> list[metadata.Distribution]:
    """torch and every distribution it requires on this platform (with the extras it asks for,
    e.g. ``cuda-toolkit[cublas,...]``), transitively."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # a venv without packaging: pip's copy
        from pip._vendor.packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo: list[tuple[str, str]] = [("torch", "")]  # (name, extra)
    while todo:
        name, extra = todo.pop()
        name = _norm(name)
        if (name, extra) in done:
            continue
        done.add((name, extra))
        try:
            dist = seen.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement that is not installed
        seen[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                todo.append((req.name, ""))
                todo.extend((req.name, e) for e in req.extras)
    return list(seen.values())


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def link_torch(target: Path) -> int:
    """Symlink the top-level entries of torch's closure into ``target``; returns their count."""
    target.mkdir(parents=True)
    linked = 0
    for dist in torch_closure():
        site = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in (dist.files or []) if not str(f).startswith("..")}
        for top in sorted(tops):
            src, dst = site / top, target / top
            if top == "__pycache__" or not src.exists() or dst.exists():
                continue  # __pycache__ of single-module dists; namespaces shared by several (nvidia/)
            if top.endswith(".pth"):
                continue  # .pth files act only in site dirs; ours is not one
            os.symlink(src, dst)
            linked += 1
    # Distributions sharing a namespace folder (nvidia/cu13/..., cuda/...) need the whole
    # folder: linking it once above covers every member installed in the same site dir.
    return linked


def sh(cmd: list[str], **kw) -> str:
    t = time.perf_counter()
    print("+", " ".join(str(c) for c in cmd), flush=True)
    out = subprocess.run(cmd, check=False, text=True, capture_output=True, **kw)
    if out.returncode != 0:
        sys.stdout.write(out.stdout[-4000:])
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"FAILED ({out.returncode}): {' '.join(str(c) for c in cmd)}")
    print(f"  ({time.perf_counter() - t:.1f} s)", flush=True)
    return out.stdout


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wheel", nargs="?", help="the wheel (default: the one in dist/)")
    p.add_argument("--torch", choices=["link", "pip"], default="link")
    p.add_argument("--keep", action="store_true", help="keep the temporary venv (its path is printed)")
    args = p.parse_args()
    wheels = [args.wheel] if args.wheel else sorted(glob.glob(str(ROOT / "dist" / "fashionrec-*.whl")))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel in dist/, found {wheels}: run `make wheel`")
    wheel = Path(wheels[0]).resolve()
    if "abi3" not in wheel.name:
        raise SystemExit(f"{wheel.name} is not an abi3 wheel")
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="fashionrec-wheel-"))
    try:
        venv = tmp / "venv"
        # No system site-packages; no pip of its own (ensurepip takes seconds): this pip
        # installs into it with --python.
        sh([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        py = venv / "bin" / "python"
        pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet"]
        site = Path(sh([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip())
        if args.torch == "link":
            n = link_torch(tmp / "torch-only")
            (site / "zz-build-env-torch.pth").write_text(str(tmp / "torch-only") + "\n")
            print(f"torch: {n} entries of torch's dependency closure linked from {Path(metadata.distribution('torch').locate_file(''))}")
        else:
            sh([*pip, "torch==2.11.0"])
        sh([*pip, str(wheel)])
        # Run outside the checkout: nothing from the source tree may be importable.
        imports = "import fashionrec, fashionrec._core as c, fashionrec.testing, fashionrec.plot; print(fashionrec.__file__, c.__file__)"
        where = sh([str(py), "-c", imports], cwd=tmp)
        for line in where.split():
            if not line.startswith(str(site)):
                raise SystemExit(f"fashionrec was imported from {line}, not from the fresh venv's {site}")
        demo = sh([str(py), "-m", "fashionrec", "demo", "--quiet", "--epochs", "20"], cwd=tmp)
        print(demo)
        if not re.search(r"^BPR\s+\S+\s+0\.[5-9]", demo, re.M):
            raise SystemExit("the demo did not print a BPR row with an AUC above 0.5")
        print(sh([str(venv / "bin" / "fashionrec"), "info"], cwd=tmp))
        print(f"wheel {wheel.name} installs and runs in a fresh venv ({time.perf_counter() - t0:.1f} s)")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
