"""McAuley's visual features (``image_features_<Category>.b``), memory-mapped.

Layout: no header; records of a 10-byte ASCII ASIN followed by ``dim`` (4096) little-endian
float32, 16,394 bytes each, repeated to the end of the file. The files are GBs, so nothing is
read up front but the ASINs: the floats stay in the file's memory map (the operating system's
page cache), viewed in place by numpy.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any, Sequence

import numpy as np

from .._ids import indices as index_array

from .. import _core
from .._files import replacing
from .._ids import id_column

ASIN_BYTES = 10
DEFAULT_DIM = 4096


class ImageFeatures:
    """An ``image_features_*.b`` file, memory-mapped (zero-copy), with its ASIN index.

    Opening reads and checks only the ASINs (printable ASCII; the file a whole number of
    records) and builds the index; errors name the file, the record and its byte offset.

    * ``features``: a read-only float32 array (len, dim) that views the map in place. Its
      strides are (16394, 4): the rows are not 4-byte aligned, which numpy handles, but
      ``torch.from_numpy`` refuses; use :meth:`rows` (or ``np.ascontiguousarray``) for torch.
      The array keeps the map alive: it stays valid after this object is gone.
    * :meth:`index` maps ASINs to rows, :meth:`rows` gathers rows into a contiguous array
      (in parallel, in Rust), for training batches.
    * A repeated ASIN keeps all its rows; the index maps it to the first one, and a warning
      says how many repeats there are (``n_duplicates``).

    Example::

        feats = fr.io.ImageFeatures("image_features_Clothing.b")
        len(feats), feats.dim                     # (N, 4096)
        rows = feats.index(["B000031852", "B00JHONN1S"])
        batch = feats.rows(rows)                  # (2, 4096) float32, contiguous
        feats.features[rows[0], :5]               # read in place, no copy

    Args:
        path: the ``.b`` file.
        dim: float32 values per record (4096 in McAuley's files).
        check_finite: also read every value (in parallel) and raise a ValueError naming the
            first record, ASIN and column holding NaN or an infinity.
    """

    __slots__ = ("_core", "_asins", "_features")

    def __init__(self, path: str | os.PathLike[str], dim: int = DEFAULT_DIM, check_finite: bool = False):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self._core = _core.ImageFeatures(os.fspath(path), int(dim))
        self._asins: list[str] | None = None
        self._features: np.ndarray | None = None
        if check_finite:
            self._core.check_finite()
        n_dup, first = self._core.duplicates()
        if n_dup:
            asin = self.asins[first]
            warnings.warn(
                f"{path}: {n_dup} records repeat an earlier ASIN (the first is record {first}, {asin!r}); "
                "all rows are kept and the index maps each ASIN to its first record",
                stacklevel=3,
            )

    @property
    def path(self) -> str:
        return self._core.path

    @property
    def dim(self) -> int:
        """float32 values per record."""
        return self._core.dim

    @property
    def n_duplicates(self) -> int:
        """Records whose ASIN occurred earlier in the file."""
        return self._core.duplicates()[0]

    def __len__(self) -> int:
        return len(self._core)

    def __repr__(self) -> str:
        return f"ImageFeatures({self.path!r}, records={len(self)}, dim={self.dim})"

    @property
    def asins(self) -> list[str]:
        """Every record's ASIN, in file order (row i of ``features`` is ``asins[i]``)."""
        if self._asins is None:
            self._asins = self._core.asins()
        return self._asins

    @property
    def features(self) -> np.ndarray:
        """Read-only float32 (len, dim) view of the memory map (no copy; see the class doc)."""
        if self._features is None:
            rec = self._core.record_size
            self._features = np.ndarray(
                shape=(len(self), self.dim),
                dtype=np.dtype("<f4"),
                buffer=self._core,
                offset=ASIN_BYTES,
                strides=(rec, 4),
            )
        return self._features

    def index(self, asins: str | Sequence[str] | Any) -> np.ndarray:
        """Row of each ASIN (int64; one row, a scalar, for one ASIN given as a str); an ASIN
        not in the file is a ValueError naming it."""
        if np.ndim(asins) == 0:
            return self.index([asins])[0]
        ids = id_column(asins, "asins")
        if not isinstance(ids, list):
            if len(ids) == 0:
                return np.zeros(0, dtype=np.int64)
            raise TypeError("asins must be strings")
        return self._core.index(ids)

    def rows(self, indices: int | Sequence[int] | np.ndarray) -> np.ndarray:
        """The given rows as a new contiguous float32 array (k, dim), gathered in parallel
        (one row (dim,) for a scalar index). A negative or out-of-range row is a ValueError
        naming its position."""
        idx, single = index_array(indices, "indices")
        out = self._core.rows(idx)
        return out[0] if single else out

    def check_finite(self) -> None:
        """Read every value (in parallel); ValueError naming the first record, ASIN and column
        holding NaN or an infinity."""
        self._core.check_finite()

    def sum(self) -> float:
        """The sum of all values (float64 accumulation): one full pass over the file."""
        return self._core.sum()


def read_image_features(
    path: str | os.PathLike[str], dim: int = DEFAULT_DIM, check_finite: bool = False
) -> tuple[list[str], np.ndarray]:
    """Read McAuley's ``image_features_*.b``: ``(asins, feats)``.

    ``asins`` is a list of N str; ``feats`` a read-only float32 (N, dim) array viewing the
    memory-mapped file (zero-copy; strides (16394, 4)). See :class:`ImageFeatures` for the
    index and fast row gathering, and for the errors.

    Example::

        asins, feats = fr.io.read_image_features("image_features_Clothing.b")
        feats.shape          # (N, 4096)
    """
    f = ImageFeatures(path, dim=dim, check_finite=check_finite)
    return f.asins, f.features


def write_image_features(
    path: str | os.PathLike[str],
    asins: Sequence[str],
    features: Any,
    *,
    append: bool = False,
) -> None:
    """Write records in McAuley's layout (for tests, examples and synthetic data).

    Args:
        asins: N ASINs, each exactly 10 printable ASCII characters.
        features: (N, dim) numbers, written as little-endian float32.
        append: add the records to the end of an existing file (to write big files in parts).

    Example::

        fr.io.write_image_features("feats.b", ["B000000001"], np.zeros((1, 4096)))
    """
    feats = np.asarray(features)
    if feats.ndim != 2:
        raise ValueError(f"features must be 2-D (N, dim), got shape {feats.shape}")
    if len(asins) != feats.shape[0]:
        raise ValueError(f"{len(asins)} ASINs but {feats.shape[0]} feature rows")
    if feats.shape[1] < 1:
        raise ValueError("features must have at least one column")
    encoded = []
    for pos, a in enumerate(asins):
        if not isinstance(a, str) or len(a) != ASIN_BYTES or not (a.isascii() and a.isprintable()):
            raise ValueError(f"asins, position {pos}: {a!r} is not 10 printable ASCII characters")
        encoded.append(a.encode("ascii"))
    dim = feats.shape[1]
    record = np.dtype([("asin", f"S{ASIN_BYTES}"), ("values", "<f4", (dim,))])
    step = max(1, (64 << 20) // record.itemsize)
    # Appending grows the file (a reader's map stays valid); a new file replaces the old one
    # by rename rather than truncating it under a reader.
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(path, "ab") if append else open(stack.enter_context(replacing(path)), "wb"))
        for start in range(0, len(encoded), step):
            block = np.empty(min(step, len(encoded) - start), dtype=record)
            block["asin"] = encoded[start : start + len(block)]
            block["values"] = feats[start : start + len(block)]
            block.tofile(out)
