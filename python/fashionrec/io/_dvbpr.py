"""The DVBPR ``*ImgPartitioned.npy`` layout: a writer (the reader is
:func:`fashionrec.datasets.dvbpr`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import _core
from ..interactions import Interactions


def write_dvbpr(
    path: str | os.PathLike,
    train: Interactions,
    validation: Interactions,
    test: Interactions,
    jpeg_bytes: Sequence[bytes],
    categories: Any = None,
    item_asins: Sequence[str] | None = None,
) -> Path:
    """Write a DVBPR data set in the real files' layout, as Python 2's numpy saved them: a
    ``.npy`` object array holding a protocol-2 pickle of ``[user_train, user_validation,
    user_test, items, user_num, item_num]``. ``user_*`` map every user index to a list of
    ``{'productid': item}`` dicts (plus ``'asin'`` with ``item_asins``); ``items`` maps every
    item index to ``{'imgs': <bytes>}`` (plus ``'c'``, a one-hot list, with ``categories``:
    one int per item, -1 for none). ``numpy.load(path, allow_pickle=True,
    encoding="bytes")`` reads it as it reads the real files.

    The three splits must share one id space (take them from one split, or build them with
    ``like=``); indices are written, so user ``u`` of the file is row ``u`` of the id maps.
    ``jpeg_bytes[i]`` is the encoded image of item ``i`` (any bytes are written as given).
    The file is written under a temporary name and renamed when complete. Example::

        train, val, test = fr.split.leave_one_out(data, validation=True)
        fr.io.write_dvbpr("tiny.npy", train, val, test, [open(p, "rb").read() for p in paths])
    """
    for name, x in (("train", train), ("validation", validation), ("test", test)):
        if not isinstance(x, Interactions):
            raise TypeError(f"{name} must be an Interactions, not {type(x).__name__}")
    images = list(jpeg_bytes)
    for k, b in enumerate(images):
        if not isinstance(b, (bytes, bytearray, memoryview)):
            raise TypeError(f"jpeg_bytes[{k}] is a {type(b).__name__}, not bytes")
    images = [bytes(b) if not isinstance(b, bytes) else b for b in images]
    cats = None
    if categories is not None:
        cats = np.asarray(categories)
        if cats.ndim != 1 or cats.dtype.kind not in "iu":
            raise ValueError(f"categories must be a 1-D array of ints (one per item), not {cats.dtype} {cats.shape}")
        cats = np.ascontiguousarray(cats, dtype=np.int64)
    asins = None if item_asins is None else [str(a) for a in item_asins]
    _core.write_dvbpr(os.fspath(path), train._core, validation._core, test._core, images, cats, asins)
    return Path(path)
