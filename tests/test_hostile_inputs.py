"""Hostile inputs: nothing a user passes from Python may kill, hang or exhaust the interpreter.

Every case runs in a child process (with its address space capped), because the failures
these tests guard against are aborts, out-of-memory kills and Rust panics, which would take
the test run down with them. One child runs the cases in order and reports each as a JSON
line; when it dies, the case it was running is recorded as the crash and a new child goes on
with the rest. Each case must raise an exception that ``except Exception`` catches, of the
expected type, whose message names the argument (or the file and the place).
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import resource
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import fashionrec as fr

# Address-space head-room the child gets above what it uses after importing torch.
CHILD_HEADROOM = 3 << 30

CASES: dict[str, tuple[Callable[[Path], object], tuple[str, ...], tuple[str, ...]]] = {}


def case(*types: str, contains: tuple[str, ...] = ()):
    """Register a case: it must raise one of the exception types named (by class name; "ok"
    when it must return normally) with every string of ``contains`` in its message."""

    def register(f):
        CASES[f.__name__] = (f, types, contains)
        return f

    return register


def tiny() -> fr.Interactions:
    return fr.Interactions.from_arrays([0, 1, 2, 0, 1], [0, 1, 2, 1, 2])


def fitted() -> fr.BPR:
    return fr.BPR(factors=4, epochs=1, device="cpu", threads=1).fit(tiny(), progress=False)


@case("ValueError", contains=("long.json.gz", "line 1"))
def metadata_gzip_line_without_end(tmp):
    """400 MiB of text with no line end, in a 400 KB file (one small gzip member, repeated):
    refused after a bounded read, not held whole in memory. (First of the cases, so that the
    peak memory it measures is its own.)"""
    path = tmp / "long.json.gz"
    member = gzip.compress(b"a" * (1 << 20), compresslevel=9)
    path.write_bytes(member * 400)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        fr.io.read_amazon_metadata(path)
    finally:
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) >> 10
        assert grown < 300, f"reading one 400 MiB line raised the peak memory by {grown} MiB"


# -- sizes from hyper-parameters and arguments -----------------------------------------------


@case("MemoryError", "ValueError", contains=("factors",))
def bpr_huge_factors(tmp):
    fr.BPR(factors=10**9, epochs=1, device="cpu").fit(tiny(), progress=False)


def _budget() -> int:
    """The memory the core lets this process use: physical memory, or less under rlimits (as
    `limits::budget`)."""
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limits = [resource.getrlimit(r)[0] for r in (resource.RLIMIT_AS, resource.RLIMIT_DATA)]
    return min([physical] + [lim for lim in limits if lim != resource.RLIM_INFINITY])


def _peak_growth_mib(f: Callable[[], object]) -> int | None:
    """How far `f` raised this process's peak resident memory (MiB), the peak reset first
    (/proc/self/clear_refs); None where the peak cannot be reset."""

    def peak() -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        f()
        return None
    before = peak()
    try:
        f()
    finally:
        grown = (peak() - before) >> 10
    return grown


@case("MemoryError", contains=("VBPR", "factors=", "Adam"))
def vbpr_parameters_beyond_memory_together(tmp):
    """Each of VBPR's tables fits in the memory this process may use (a fifth of it), and so
    do all of them (about 40%), but not with a gradient and Adam's two moments for every value:
    refused before anything is built, at once, naming factors (the per-table checks alone do
    not see the total)."""
    factors = _budget() // 64  # 3 users, 3 items: about 6 x factors values, 16 bytes each
    features = np.ones((3, 2), dtype=np.float32)
    model = fr.VBPR(factors=factors, visual_factors=1, epochs=1, device="cpu")
    started = time.monotonic()
    grown = None
    try:
        grown = _peak_growth_mib(lambda: model.fit(tiny(), item_features=features, progress=False))
    finally:
        took = time.monotonic() - started
        assert took < 10, f"refused after {took:.1f} s"
        assert grown is None or grown < 256, f"the peak memory grew by {grown} MiB before the refusal"


@case("ValueError", contains=("factors",))
def bpr_factors_beyond_u64(tmp):
    fr.BPR(factors=10**30)


@case("ValueError", contains=("factors",))
def bpr_negative_factors(tmp):
    fr.BPR(factors=-1)


@case("ValueError", contains=("lr", "finite"))
def bpr_nan_lr(tmp):
    fr.BPR(lr=float("nan"))


@case("ValueError", contains=("reg", "finite"))
def bpr_inf_reg(tmp):
    fr.BPR(reg=float("inf"))


@case("ValueError", "ArgumentTypeError", contains=("epochs",))
def bpr_epochs_wrong_type(tmp):
    fr.BPR(epochs="ten")


@case("ValueError", contains=("threads",))
def bpr_huge_threads(tmp):
    fr.BPR(threads=10**6, device="cpu")


@case("ok")
def bpr_huge_batch_size(tmp):
    """Batches are cut to the data, so a huge batch_size asks for nothing huge."""
    fr.BPR(batch_size=10**15, epochs=1, device="cpu").fit(tiny(), progress=False)


@case("ValueError", contains=("device",))
def bpr_long_device_string_quoted_briefly(tmp):
    try:
        fr.BPR(device="x" * 1_000_000)
    except ValueError as e:
        assert len(str(e)) < 1000, f"message of {len(str(e))} characters"
        raise


@case("ValueError", contains=("n_users",))
def from_arrays_huge_n_users(tmp):
    fr.Interactions.from_arrays([0, 1], [0, 1], n_users=10**13)


@case("ValueError", contains=("n_items",))
def from_arrays_huge_n_items(tmp):
    fr.Interactions.from_arrays([0, 1], [0, 1], n_items=10**13)


@case("MemoryError", contains=("n_users",))
def from_arrays_n_users_beyond_memory(tmp):
    fr.Interactions.from_arrays([0, 1], [0, 1], n_users=2**32 - 1)


@case("ok")
def recommend_huge_k(tmp):
    items, scores = fitted().recommend([0, 1], k=10**12)
    assert items.shape == (2, 3), items.shape


@case("ok")
def similar_items_huge_k(tmp):
    items, sims = fitted().similar_items([0], k=10**12)
    assert items.shape == (1, 2), items.shape


@case("ValueError", "MemoryError", "ok", contains=("k",))
def core_top_k_huge_k(tmp):
    scores = np.zeros((2, 3), dtype=np.float32)
    items, _ = fr._core.top_k_block(scores, np.array([0, 1]), 10**15)
    assert items.shape == (2, 3), items.shape


@case("ValueError", "MemoryError", "ok", contains=("k",))
def core_similar_items_huge_k(tmp):
    vectors = np.ones((3, 2), dtype=np.float32)
    items, _ = fr._core.similar_items(vectors, np.array([0]), 10**15)
    assert items.shape == (1, 2), items.shape


@case("MemoryError", "ValueError", contains=("n_users",))
def synthetic_huge_n_users(tmp):
    fr.datasets.synthetic(10**12, 20)


@case("MemoryError", contains=("sample_triples", "n="))
def sample_triples_huge_n(tmp):
    fr._core.sample_triples(tiny()._core, 10**13)


# -- ids and indices ---------------------------------------------------------------------------


@case("ValueError", contains=("users", "int64"))
def uint64_index_beyond_int64(tmp):
    fr.Interactions.from_arrays(np.array([0, 2**63], dtype=np.uint64), [0, 1])


@case("ValueError", contains=("user", "int64"))
def uint64_id_beyond_int64(tmp):
    fr.Interactions.from_ids(np.array([1, 2**64 - 1], dtype=np.uint64), [1, 2])


@case("ValueError", contains=("user", "row 1"))
def mixed_id_types(tmp):
    fr.Interactions.from_ids([1, "a"], [1, 2])


@case("ValueError", contains=("users", "float"))
def float_indices_refused(tmp):
    fr.Interactions.from_arrays(np.array([0.0, 1.0]), [0, 1])


@case("ValueError", contains=("item_ids", "twice"))
def repeated_catalogue_id(tmp):
    fr.Interactions.from_ids([1, 2], [5, 6], item_ids=[5, 6, 5])


@case("ValueError", contains=("value", "inf"))
def duplicates_sum_overflows(tmp):
    fr.Interactions.from_arrays([0, 0], [0, 0], values=[3e38, 3e38], duplicates="sum")


# -- files: size claims, malformed fields, writers ----------------------------------------------


def _dvbpr_npy(path: Path, elems: list) -> Path:
    arr = np.empty(len(elems), dtype=object)
    arr[:] = elems
    np.save(path, arr, allow_pickle=True)
    return path


@case("ValueError", "MemoryError", contains=("big.npy", "item_num"))
def dvbpr_huge_item_num(tmp):
    path = _dvbpr_npy(tmp / "big.npy", [{}, {}, {}, {}, 2, 2**32 - 1])
    fr.datasets.dvbpr(path)


@case("ValueError", contains=("memo.npy", "user_train", "byte offset"))
def dvbpr_memo_references_expand(tmp):
    shared = [{"productid": 0}] * 2000
    train = {u: shared for u in range(20_000)}  # one list, pickled once, referenced 20k times
    path = _dvbpr_npy(tmp / "memo.npy", [train, {}, {}, {0: {"imgs": b"x"}}, 20_000, 1])
    fr.datasets.dvbpr(path)


@case("ValueError", contains=("zero.npy", "byte offset"))
def pickle_zero_size_dtype(tmp):
    items = {0: {"imgs": b"x", "c": np.zeros(4, dtype="V0")}}  # a one-hot category of no bytes
    path = _dvbpr_npy(tmp / "zero.npy", [{}, {}, {}, items, 1, 1])
    fr.datasets.dvbpr(path)


@case("ValueError", contains=("bad.json", "line 2", "UTF-8"))
def metadata_invalid_utf8(tmp):
    path = tmp / "bad.json"
    path.write_bytes(b"{'asin': 'A1'}\n{'asin': 'A2', 'title': 'caf\xe9'}\n")
    fr.io.read_amazon_metadata(path, format="python")


@case("ValueError", contains=("dim",))
def image_features_huge_dim(tmp):
    path = tmp / "f.b"
    fr.io.write_image_features(path, ["B000000001"], np.zeros((1, 4)))
    fr.io.read_image_features(path, dim=2**62)


@case("IsADirectoryError", "ValueError", contains=("directory",))
def directory_where_file_expected(tmp):
    fr.io.read_image_features(tmp, dim=4)


@case("ok")
def writers_replace_not_truncate(tmp):
    """A reader that holds the old file open (or mapped) keeps its bytes: each writer writes
    a new file and renames it over the old one."""
    feats = tmp / "w.b"
    fr.io.write_image_features(feats, ["B000000001"], np.ones((1, 4)))
    meta = tmp / "w.json.gz"
    fr.io.write_amazon_metadata(meta, [{"asin": "A1"}])
    model = tmp / "w.fashionrec"
    m = fitted()
    m.save(model)
    csv = tmp / "w.csv"
    fr.io._tabular.write_int_csv(csv, {"a": [1, 2]})
    olds = {p: (os.stat(p).st_ino, p.read_bytes()) for p in (feats, meta, model, csv)}
    fr.io.write_image_features(feats, ["B000000002"], np.zeros((1, 4)))
    fr.io.write_amazon_metadata(meta, [{"asin": "A2"}])
    m.save(model)
    fr.io._tabular.write_int_csv(csv, {"a": [3]})
    for p, (ino, _) in olds.items():
        assert os.stat(p).st_ino != ino, f"{p.name} was rewritten in place"
    assert sorted(x.name for x in tmp.iterdir()) == sorted(p.name for p in olds), "temporary files left behind"


class _RunsCode:
    """Pickles as a call that creates a marker file: what a hostile .pth does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@case("ValueError", contains=("evil.pth", "weights_only=True", "running code"))
def weights_file_that_runs_code(tmp):
    """Loading a weights file never runs code from it (torch.load(weights_only=True))."""
    import torch

    marker = tmp / "ran"
    evil = tmp / "evil.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1), "payload": _RunsCode(marker)}, evil)
    try:
        fr.io.convert_inception_weights(evil, tmp / "w.safetensors")
    finally:
        assert not marker.exists(), "loading the file ran code from it"
        assert not (tmp / "w.safetensors").exists()


@case("ValueError", contains=("w.pth", "is the input file"))
def converter_output_is_its_input(tmp):
    import torch

    path = tmp / "w.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1)}, path)
    before = path.read_bytes()
    try:
        fr.io.convert_inception_weights(path, tmp / "." / "w.pth")
    finally:
        assert path.read_bytes() == before


@case("ok")
def failed_writes_keep_the_users_files(tmp):
    """Every writer of a user-named file, made to fail mid-write (the file size limit reached:
    EFBIG), leaves the file the user had as it was and no temporary file behind."""
    import signal

    import torch

    users, items = np.arange(2000) % 50, np.arange(2000) % 400
    model = fr.BPR(factors=64, epochs=1, device="cpu", threads=1).fit(
        fr.Interactions.from_arrays(users, items), progress=False
    )
    pngs = fr.testing.write_pngs(np.zeros((2, 8, 8, 3), dtype=np.uint8), tmp / "png")
    many = [f"B{k:09d}" for k in range(400)]
    writers = {
        "m.fashionrec": lambda p: model.save(p),
        "f.b": lambda p: fr.io.write_image_features(p, many, np.ones((400, 64))),
        "meta.json.gz": lambda p: fr.io.write_amazon_metadata(p, [{"asin": a, "title": os.urandom(100).hex()} for a in many], format="json"),
        "meta.json": lambda p: fr.io.write_amazon_metadata(p, [{"asin": a, "title": os.urandom(100).hex()} for a in many]),
        "i.csv": lambda p: fr.io._tabular.write_int_csv(p, {"a": np.arange(20000)}),
        "bank.bin": lambda p: fr.ImageBank.from_files(pngs * 50, 32, cache=p, progress=False),
        "w.safetensors": lambda p: fr.io.convert_inception_weights({"Conv2d_1a_3x3.conv.weight": torch.zeros(64, 64, 4)}, p),
        "0.png": lambda p: fr.testing.write_pngs(np.random.default_rng(0).integers(0, 256, (1, 99, 99, 3), dtype=np.uint8), p.parent),
    }
    out = tmp / "out"
    out.mkdir()
    for name in writers:
        if name != "bank.bin":
            (out / name).write_bytes(b"the user's file")
    fr.ImageBank.from_files(pngs, 8, cache=out / "bank.bin", progress=False)  # rebuilt (stale) below
    before = {name: (out / name).read_bytes() for name in writers}
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, hard))
    try:
        for name, write in writers.items():
            try:
                write(out / name)
            except Exception as e:  # noqa: BLE001 - any clean error will do
                assert name in str(e), f"{name}: the error does not name the file: {type(e).__name__}: {e}"
            else:
                raise AssertionError(f"{name}: written past the file size limit")
            assert (out / name).read_bytes() == before[name], f"{name}: the user's file was changed"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    assert sorted(p.name for p in out.iterdir()) == sorted(writers), "temporary files left behind"


# -- model files -------------------------------------------------------------------------------


def _saved(tmp: Path) -> Path:
    path = tmp / "m.fashionrec"
    fitted().save(path)
    return path


@case("ValueError", contains=("m.fashionrec", "checksum"))
def model_flipped_bit(tmp):
    path = _saved(tmp)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10  # inside the last tensor's data
    path.write_bytes(bytes(data))
    fr.load(path)


def _edit_tensor(
    path: Path, name: str, edit: Callable[[bytearray], None], kind: str | None = None, meta: Callable[[dict], None] | None = None
) -> None:
    """Change tensor `name` of a saved model in place (its bytes, or its dtype name), keeping
    the file's checksum right, so that only the edit itself can be refused."""
    import zlib

    raw = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    a, b = header[name]["data_offsets"]
    body = raw[8 + n :]
    data = bytearray(body[a:b])
    edit(data)
    body[a:b] = data
    if kind is not None:
        header[name]["dtype"] = kind
    # The checksum the core writes: tensors in name order (name, dtype, shape, data), then
    # the other metadata in key order.
    h = 0
    for key in sorted(k for k in header if k != "__metadata__"):
        t = header[key]
        h = zlib.crc32(key.encode() + b"\0" + t["dtype"].encode() + b"\0", h)
        for d in t["shape"]:
            h = zlib.crc32(struct.pack("<Q", d), h)
        a, b = t["data_offsets"]
        h = zlib.crc32(bytes(body[a:b]), h)
    if meta is not None:
        meta(header["__metadata__"])
    meta = header["__metadata__"]
    for key in sorted(k for k in meta if k != "checksum"):
        h = zlib.crc32(key.encode() + b"\0" + meta[key].encode() + b"\0", h)
    meta["checksum"] = f"crc32:{h:08x}"
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(body))


@case("ValueError", contains=("m.fashionrec", "item_factors", "finite"))
def model_nan_factors(tmp):
    path = _saved(tmp)
    _edit_tensor(path, "item_factors", lambda d: d.__setitem__(slice(4, 8), struct.pack("<f", float("nan"))))
    fr.load(path)


@case("ValueError", contains=("m.fashionrec", "item_factors", "float32"))
def model_wrong_dtype(tmp):
    path = _saved(tmp)
    _edit_tensor(path, "item_factors", lambda d: None, kind="I32")
    fr.load(path)


@case("ValueError", contains=("m.fashionrec", "claims", "forged"))
def model_claims_more_users_than_it_holds(tmp):
    """A file whose checksum was recomputed claims 10**12 users: refused before restoring
    allocates a user table of that size (DeepTripletModel sizes its parameters by the claim)."""
    path = tmp / "m.fashionrec"
    fr.DeepTripletModel(factors=4, user_factors=4, hidden=(4,), epochs=1, device="cpu").fit(tiny(), progress=False).save(path)

    def claim(meta: dict) -> None:
        ids = json.loads(meta["ids"])
        assert ids["users"]["kind"] == "range", ids
        ids["users"]["n"] = 10**12
        meta["ids"] = json.dumps(ids)

    _edit_tensor(path, "user_embeddings", lambda d: None, meta=claim)
    fr.load(path)


def _forge_config(path: Path, tensor: str, **fields) -> None:
    """Edit the configuration a saved model holds (`fields` replaced), the checksum recomputed."""

    def edit(meta: dict) -> None:
        config = json.loads(meta["config"])
        config.update(fields)
        meta["config"] = json.dumps(config)

    _edit_tensor(path, tensor, lambda d: None, meta=edit)


@case("ValueError", contains=("m.fashionrec", "claims", "factors=1099511627776", "forged"))
def model_config_claims_huge_factors(tmp):
    """A saved VBPR whose configuration's factors is edited to 2**40, checksum recomputed:
    refused naming factors before restoring sizes tables by it. First with 2**26, tables that
    would fit in this process's memory (1.5 GiB): the peak memory shows none was made."""
    path = tmp / "m.fashionrec"
    features = np.ones((3, 2), dtype=np.float32)
    fr.VBPR(factors=2, visual_factors=2, epochs=1, device="cpu").fit(tiny(), item_features=features, progress=False).save(path)
    saved = path.read_bytes()
    _forge_config(path, "item_bias", factors=2**26)

    def load() -> None:
        try:
            fr.load(path)
        except ValueError as e:
            assert "factors=67108864" in str(e) and "forged" in str(e), e
        else:
            raise AssertionError("a model claiming factors=2**26 was loaded")

    grown = _peak_growth_mib(load)
    assert grown is None or grown < 256, f"the peak memory grew by {grown} MiB before the refusal"
    path.write_bytes(saved)
    _forge_config(path, "item_bias", factors=2**40)
    fr.load(path)


@case("ValueError", contains=("m.fashionrec",))
def model_truncated(tmp):
    path = _saved(tmp)
    path.write_bytes(path.read_bytes()[:-10])
    fr.load(path)


@case("FileExistsError", "NotADirectoryError", "OSError", contains=("ck",))
def checkpoint_that_cannot_be_written_fails_before_training(tmp):
    """checkpoint_dir= an existing file: an error before the first epoch, not after it."""
    (tmp / "ck").write_bytes(b"a file the user has")

    def no_epoch(epoch, logs):
        raise AssertionError(f"training ran an epoch ({epoch}) before the checkpoint was refused")

    fr.BPR(factors=2, epochs=2, device="cpu", backend="torch").fit(
        tiny(), progress=False, callback=no_epoch, checkpoint_dir=tmp / "ck"
    )


# -- side data: every column used or refused by name ------------------------------------------------


@case("ValueError", contains=("VBPR reads item_features as numbers", "'name'".replace("'", '"')))
def string_column_in_numeric_features(tmp):
    import pandas as pd

    features = pd.DataFrame({"a": [1.0, 2.0, 3.0], "name": ["x", "y", "z"]})
    fr.VBPR(factors=2, visual_factors=2, epochs=1, device="cpu").fit(tiny(), item_features=features, progress=False)


@case("ValueError", contains=("CompatibilityModel reads item_features as numbers", "flag"))
def boolean_column_in_numeric_features(tmp):
    import pandas as pd

    pairs = fr.Interactions.from_arrays([0, 1, 2], [1, 2, 0])
    features = pd.DataFrame({"a": [1.0, 2.0, 3.0], "flag": [True, False, True]})
    fr.CompatibilityModel(epochs=1, device="cpu").fit(pairs, item_features=features, progress=False)


# -- the child process ---------------------------------------------------------------------------


def _child(tmp: Path, names: list[str]) -> None:
    """Run `names` in order, one JSON line per case on stdout."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    limit = vm + CHILD_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for name in names:
        func, _, _ = CASES[name]
        where = tmp / name
        where.mkdir()
        try:
            func(where)
            out = {"name": name, "type": "ok", "message": "", "exception": True}
        except BaseException as e:  # noqa: BLE001 - recording what escapes is the point
            out = {
                "name": name,
                "type": type(e).__name__,
                "message": str(e)[:4000],
                "exception": isinstance(e, Exception),
                "trace": traceback.format_exc()[-2000:] if isinstance(e, AssertionError) else "",
            }
        print(json.dumps(out), flush=True)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("hostile")
    todo = list(CASES)
    results: dict[str, dict] = {}
    while todo:
        proc = subprocess.run(
            [sys.executable, __file__, str(tmp), *todo],
            capture_output=True,
            text=True,
            timeout=300,
        )
        for line in proc.stdout.splitlines():
            rec = json.loads(line)
            results[rec["name"]] = rec
        done = [n for n in todo if n in results]
        todo = todo[len(done) :]
        if todo:  # the child died in todo[0]
            results[todo[0]] = {
                "name": todo[0],
                "type": f"child died (exit status {proc.returncode})",
                "message": proc.stderr[-3000:],
                "exception": False,
            }
            todo = todo[1:]
    return results


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(name, outcomes):
    _, types, contains = CASES[name]
    got = outcomes[name]
    what = f"{got['type']}: {got['message']}{got.get('trace', '')}"
    assert got["exception"], f"{name}: not an Exception: {what}"
    assert got["type"] in types, f"{name}: expected {' or '.join(types)}, got {what}"
    for s in contains if got["type"] != "ok" else ():
        assert s.lower() in got["message"].lower(), f"{name}: message does not name {s!r}: {what}"


if __name__ == "__main__":
    _child(Path(sys.argv[1]), sys.argv[2:])
