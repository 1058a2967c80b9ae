"""Every public function, constructor and method, probed with hostile values from its signature.

The calls are generated, not listed: every public name of the package's modules, every public
method of its classes, each of their parameters replaced in turn by the hostile values of its
kind (read from the annotation and the default: numbers get 0, -1, NaN, inf, 2**31, 2**63 and
1e30; arrays get empty, NaN, wrapping, fractional, negative and two-dimensional ones; paths get
missing, a folder, an empty and a damaged file; anything gets None). A constructor's hostile
value is also fitted, since many sizes only matter in `fit`. Valid values for the other
parameters come from tests/api_world.py.

Each call must return, or raise an exception that ``except Exception`` catches whose message
names the argument (or the file), with no text of a Rust panic; a failed call must leave the
user's files as they were and leave nothing behind. The calls run in a child process with its
address space capped (an abort or an out-of-memory kill there is recorded against the call it
was running, and a new child goes on with the rest); a call that runs past its time is a hang.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import resource
import selectors
import shutil
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

import fashionrec as fr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_world import VALUES_FOR, World  # noqa: E402

MODULES = [fr, fr.io, fr.datasets, fr.evaluation, fr.split, fr.pairs, fr.plot, fr.testing, fr.images, fr.distributed]
CHILD_HEADROOM = 3 << 30  # bytes of address space above what the child uses once the world is built
CALL_SECONDS = 60  # a call running longer is a hang
#: Parameters whose large values only mean more work (a fit of 2**31 epochs is legal and slow):
#: they get the hostile values other than the huge ones.
WORK = {"epochs", "pretrain_epochs", "n", "n_users", "n_items", "mean_items_per_user", "mean_ratings",
        "items_per_user", "tastes_per_user", "pairs_per_item", "max_items", "timeout"}  # fmt: skip
#: Calls not probed, with why.
SKIP = {
    "Interactions": "made by Interactions.from_* (its constructor takes the core's object)",
    "ImageBank": "made by ImageBank.from_* / open (its constructor takes the core's object)",
    "ImageSource": "made by ImageSource.from_files (its constructor takes the core's object)",
    "init": "fr.distributed.init creates a process group (tests/test_distributed.py probes it under torchrun)",
    "Recommender": "the abstract base; every concrete model is probed",
}


# -- the public surface ------------------------------------------------------------------------


def public_callables() -> list[tuple[str, Callable, type | None]]:
    """(qualified name, callable, the class whose instance it is bound to or None)."""
    seen: dict[str, tuple[str, Callable, type | None]] = {}
    classes: dict[str, type] = {}
    for mod in MODULES:
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        for name in names:
            obj = getattr(mod, name)
            if not callable(obj) or not getattr(obj, "__module__", "").startswith("fashionrec"):
                continue
            if inspect.isclass(obj):
                if is_dataclass(obj) or issubclass(obj, (BaseException, tuple)):
                    continue  # records of results (dataclasses, named tuples), not entry points
                classes[obj.__qualname__] = obj
            if name not in SKIP and obj.__qualname__ not in SKIP:
                seen.setdefault(obj.__qualname__, (obj.__qualname__, obj, None))
    for cname, cls in classes.items():
        if cname == "Recommender":
            continue  # its methods are probed on every concrete model
        for mname, _ in inspect.getmembers(cls):
            if mname.startswith("_") or f"{cname}.{mname}" in SKIP:
                continue
            static = inspect.getattr_static(cls, mname)
            if isinstance(static, property) or not callable(getattr(cls, mname)):
                continue
            bound = None if isinstance(static, (classmethod, staticmethod)) else cls
            seen.setdefault(f"{cname}.{mname}", (f"{cname}.{mname}", getattr(cls, mname), bound))
    return sorted(seen.values(), key=lambda t: t[0])


def parameters(func: Callable, bound: type | None) -> list[inspect.Parameter]:
    params = list(inspect.signature(func).parameters.values())
    if bound is not None:
        params = params[1:]  # self
    return [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def kind_of(p: inspect.Parameter) -> str:
    a = str(p.annotation)
    d = p.default
    if "PathLike" in a or p.name in ("path", "folder", "anime_csv", "rating_csv", "cache", "checkpoint_dir"):
        return "path"
    if "Interactions" in a and "Sequence" not in a and "Iterable" not in a:
        return "interactions"
    if a == "bool" or isinstance(d, bool):
        return "bool"
    if a.startswith("int") or a == "float" or isinstance(d, (int, float)) and not isinstance(d, bool):
        return "number"
    if "ndarray" in a or "Sequence" in a or p.name in ("users", "items", "ids", "rows", "i", "j", "asins"):
        return "array"
    if a.startswith("str") or "Literal" in a or isinstance(d, str):
        return "text"
    return "any"


def _u64() -> np.ndarray:
    return np.array([2**64 - 1], dtype=np.uint64)


#: label -> value (a callable of the world, so files can be made in its folders)
HOSTILE: dict[str, dict[str, Callable[[Any], Any]]] = {
    "number": {
        "0": lambda w: 0, "-1": lambda w: -1, "nan": lambda w: math.nan, "inf": lambda w: math.inf,
        "-inf": lambda w: -math.inf, "2**31": lambda w: 2**31, "2**63": lambda w: 2**63,
        "1e30": lambda w: 1e30, "1.5": lambda w: 1.5, "str": lambda w: "7",
    },
    "bool": {"nan": lambda w: math.nan, "str": lambda w: "no"},
    "text": {"empty": lambda w: "", "nul": lambda w: "a\x00b", "long": lambda w: "x" * 100_000,
             "surrogate": lambda w: "\udcff", "int": lambda w: 3},
    "array": {
        "empty": lambda w: np.array([], dtype=np.int64), "nan": lambda w: np.array([math.nan]),
        "u64": lambda w: _u64(), "negative": lambda w: np.array([-1]), "fraction": lambda w: np.array([1.5]),
        "2d": lambda w: np.zeros((2, 2), np.int64), "strings": lambda w: np.array(["zz"]),
        "objects": lambda w: [None], "huge": lambda w: np.array([10**12]), "scalar_nan": lambda w: math.nan,
    },
    "path": {
        "missing": lambda w: w.scratch / "missing" / "file", "folder": lambda w: w.user,
        "empty": lambda w: _file(w, "empty", b""), "damaged": lambda w: _file(w, "damaged", b"\x93NUMPY\x01\x00garbage" * 50),
        "nul": lambda w: "a\x00b", "number": lambda w: 3.5,
    },
    "interactions": {
        "other_ids": lambda w: fr.Interactions.from_ids(["x", "y"], ["p", "q"]),
        "wide": lambda w: fr.Interactions.from_arrays([0], [0], n_users=10**6, n_items=10**6),
        "array": lambda w: np.array([[0, 1]]),
    },
    "any": {"object": lambda w: object(), "nan": lambda w: math.nan},
}  # fmt: skip
HUGE = {"2**31", "2**63", "1e30", "huge", "inf", "wide"}


def _file(w: Any, name: str, data: bytes) -> Path:
    """A file the user has (made before the user's folder is first looked at)."""
    path = w.user / "hostile" / name
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    return path


def cases() -> Iterator[tuple[str, str, Callable, type | None, str | None, str | None]]:
    """(case id, qualname, callable, bound class, hostile parameter, hostile label); the first
    case of each callable is the valid call (parameter None)."""
    for qualname, func, bound in public_callables():
        params = parameters(func, bound)
        yield f"{qualname}()", qualname, func, bound, None, None
        for p in params:
            labels = dict(HOSTILE[kind_of(p)])
            if p.default is not None:
                labels["None"] = lambda w: None
            for label in labels:
                if p.name in WORK and label in HUGE:
                    continue
                yield f"{qualname}({p.name}={label})", qualname, func, bound, p.name, label


# -- one call ------------------------------------------------------------------------------------


def _value(w: Any, qualname: str, p: inspect.Parameter) -> Any:
    short = qualname.rsplit(".", 2)[-2:] if "." in qualname else [qualname]
    for key in (f"{'.'.join(short)}.{p.name}", f"{short[-1]}.{p.name}", p.name):
        if key in VALUES_FOR:
            return VALUES_FOR[key](w)
    raise LookupError(f"no valid value for parameter {p.name!r} of {qualname}: add one to tests/api_world.py")


def run_case(w: Any, qualname: str, func: Callable, bound: type | None, hostile: str | None, label: str | None):
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    is_model = inspect.isclass(func) and func in w.models
    small, fit_side = w.recipe(func) if is_model else ({}, {})
    method = qualname.rsplit(".", 1)[-1]
    if bound is not None and method == "fit" and bound in w.models and bound is not fr.Ensemble:
        small_b, fit_side_b = w.recipe(bound)
        receiver = bound(**small_b)
        kwargs.update(fit_side_b, progress=False)
        if bound is fr.CompatibilityModel and hostile != "train":
            kwargs["train"] = w.pairs
    elif bound is not None:
        receiver = w.receiver(bound)
    for p in parameters(func, bound):
        if p.name == hostile:
            value = HOSTILE[kind_of(p)].get(label, lambda _: None)(w)
        elif p.name in small:
            value = small[p.name]
        elif p.name in kwargs:
            continue
        elif p.default is not inspect.Parameter.empty:
            continue
        else:
            value = _value(w, qualname, p)
        if p.kind == p.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[p.name] = value
    passed = [p.name for p in parameters(func, bound) if p.name in kwargs or p.name == hostile]
    w.passed = passed + [str(v) for v in list(kwargs.values()) + args if isinstance(v, os.PathLike) or isinstance(v, str) and "/" in v]
    target = getattr(receiver, method) if bound is not None else func
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = target(*args, **kwargs)
        if is_model:  # sizes from hyper-parameters matter once the model is fitted
            if func is fr.ConvAutoencoder:
                out.fit(w.bank, progress=False)
            else:
                out.fit(w.data_for(func), progress=False, **fit_side)
    return out


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def _child(tmp: Path, start: int) -> None:
    """Run the cases from index `start` on, one JSON line each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    where = tmp / f"world-{start}"
    where.mkdir()
    w = World(where)
    for value in HOSTILE["path"].values():
        value(w)
    pristine = where / "pristine"
    shutil.copytree(w.user, pristine)
    before = snapshot(w.user)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + CHILD_HEADROOM, vm + CHILD_HEADROOM))
    for index, (cid, qualname, func, bound, hostile, label) in enumerate(cases()):
        if index < start:
            continue
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"index": index, "id": cid}
        w.passed = []
        try:
            run_case(w, qualname, func, bound, hostile, label)
            rec.update(type="ok", message="", exception=True)
        except BaseException as e:  # noqa: BLE001 - recording what escapes is the point
            rec.update(type=type(e).__name__, message=str(e)[:2000], exception=isinstance(e, Exception))
            if isinstance(e, (LookupError, AssertionError)) and "api_world" in str(e) or type(e) is NameError:
                rec["trace"] = traceback.format_exc()[-1500:]
        plt.close("all")
        after = snapshot(w.user)
        if after != before:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            rec["changed"] = changed[:10]
            shutil.rmtree(w.user)
            shutil.copytree(pristine, w.user)
        for p in w.scratch.iterdir():  # outputs of successful writes
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        rec["passed"] = w.passed
        print(json.dumps(rec), flush=True)


# -- the parent --------------------------------------------------------------------------------


def run_all(tmp: Path) -> dict[str, dict]:
    ids = [c[0] for c in cases()]
    results: dict[str, dict] = {}
    retried: set[str] = set()
    start = 0
    while start < len(ids):
        proc = subprocess.Popen(
            [sys.executable, __file__, str(tmp), str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + CALL_SECONDS + 120  # the first case waits for the world too
        nxt = start
        while True:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                proc.kill()
                # A call past its time on a busy machine is tried once more in a fresh child;
                # a second time it is a hang.
                if ids[nxt] in retried:
                    results[ids[nxt]] = {"id": ids[nxt], "type": f"hang (over {CALL_SECONDS} s, twice)", "exception": False}
                    nxt += 1
                else:
                    retried.add(ids[nxt])
                break
            line = proc.stdout.readline()
            if not line:
                proc.wait()
                if nxt < len(ids):
                    err = proc.stderr.read()[-3000:]
                    results[ids[nxt]] = {"id": ids[nxt], "type": f"child died ({proc.returncode})", "message": err, "exception": False}
                    nxt += 1
                break
            rec = json.loads(line)
            results[rec["id"]] = rec
            nxt = rec["index"] + 1
            deadline = time.monotonic() + CALL_SECONDS
        proc.stdout.close()
        proc.stderr.close()
        start = nxt
    return results


def problems(rec: dict, hostile_param: str | None, label: str | None, valid: dict | None = None) -> list[str]:
    """What is wrong with one call's outcome `rec`; `valid` is the outcome of the same callable's
    valid call (a hostile call may fail as that one did, for the same reason)."""
    out = []
    what = f"{rec['type']}: {rec.get('message', '')}{rec.get('trace', '')}"
    if not rec["exception"]:
        out.append(f"not an Exception: {what}")
    if rec.get("changed") and rec["type"] != "ok":
        out.append(f"a failed call changed or left the user's files {rec['changed']}: {what}")
    msg = rec.get("message", "").lower()
    if "panicked" in msg or "unwrap()" in msg or "rust_backtrace" in msg:
        out.append(f"a panic's text reached the user: {what}")
    if hostile_param is None:
        if rec["type"] != "ok" and "api_world" in what:
            out.append(f"the valid call needs a value: {what}")
    elif valid is not None and (rec["type"], rec.get("message")) == (valid["type"], valid.get("message")):
        pass
    elif rec["type"] != "ok" and rec["exception"]:
        # The argument, or for a conflict between arguments another one passed, or a file given.
        names = {hostile_param, hostile_param.rstrip("s"), hostile_param.replace("_", " ")}
        names |= {n for n in rec.get("passed", []) if len(n) > 2}
        if label in ("missing", "folder", "empty", "damaged"):
            names |= {"file", "folder", "directory", "no such", "empty", "path", ".npy", "hostile", "user"}
        if not any(n.lower() in msg for n in names):
            out.append(f"the message does not name {hostile_param!r}: {what}")
    return out


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict]:
    return run_all(tmp_path_factory.mktemp("fuzz"))


def test_every_public_callable_is_probed(outcomes):
    names = {c[1] for c in cases()}
    assert {"BPR.recommend", "Interactions.from_arrays", "load", "read_interactions_csv"} <= names
    valid = [o for i, o in outcomes.items() if i.endswith("()")]
    assert len(valid) == len(names)


def test_hostile_calls(outcomes):
    failures = []
    for cid, qualname, _, _, param, label in cases():
        for p in problems(outcomes[cid], param, label, outcomes[f"{qualname}()"]):
            failures.append(f"{cid}: {p}"[:700])
    slow = sorted(outcomes.values(), key=lambda r: -r.get("seconds", 0))[:5]
    print("slowest calls:", [(r["id"], r.get("seconds")) for r in slow])
    assert not failures, f"{len(failures)} of {len(outcomes)} calls failed:\n" + "\n".join(failures)


if __name__ == "__main__":
    _child(Path(sys.argv[1]), int(sys.argv[2]))
