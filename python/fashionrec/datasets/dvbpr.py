"""The DVBPR data sets (Kang et al. 2017, https://github.com/kang205/DVBPR):
``AmazonFashion6ImgPartitioned.npy``, ``AmazonMenWithImgPartitioned.npy``,
``AmazonWomenWithImgPartitioned.npy``, ``TradesyImgPartitioned.npy``.

Read in Rust from a memory map of the file: the pickle inside is interpreted, never executed,
and the JPEG bytes are not copied (the image source points into the file), so a 5 GB file
loads in about the time it takes to read its interactions.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _core
from ..images import ImageSource
from ..interactions import Interactions

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True, repr=False)
class DVBPRData:
    """A DVBPR data set. ``train``/``validation``/``test`` share one id space whose ids are
    the file's user and item indices; ``images`` has one image per item (row = item index);
    ``categories`` is each item's category index (-1: none) when the file has ``c``;
    ``item_asins`` each item's ASIN when the file has them; ``merged`` counts the repeated
    (user, item) pairs that were merged, per split."""

    path: Path
    train: Interactions
    validation: Interactions
    test: Interactions
    images: ImageSource
    categories: np.ndarray | None
    item_asins: list[str] | None
    merged: dict[str, int]

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def __repr__(self) -> str:
        parts = ", ".join(f"{s} {len(getattr(self, s)):,}" for s in SPLITS)
        cats = "" if self.categories is None else f", {int(self.categories.max()) + 1} categories"
        return f"<DVBPRData {self.path.name}: {self.n_users:,} users x {self.n_items:,} items; {parts}{cats}>"


def dvbpr(path: str | os.PathLike) -> DVBPRData:
    """Read a DVBPR ``*ImgPartitioned.npy`` file (the real ones, or one written by
    :func:`fashionrec.io.write_dvbpr`).

    Returns a :class:`DVBPRData`. Malformed input is a ValueError naming the file, the byte
    offset and what was expected (a truncated download, a product index outside ``item_num``,
    a file that is not a DVBPR array). Repeated (user, item) pairs in a split are merged with
    a warning giving the count. Example::

        data = fr.datasets.dvbpr("AmazonFashion6ImgPartitioned.npy")
        bank = fr.ImageBank.from_source(data.images, size=224, cache=True)
    """
    path = Path(path)
    raw = _core.read_dvbpr(os.fspath(path))
    merged = dict(zip(SPLITS, raw["merged"]))
    if any(merged.values()):
        counts = ", ".join(f"{k} {v}" for k, v in merged.items() if v)
        warnings.warn(f"{path.name}: repeated (user, item) pairs were merged ({counts})", stacklevel=3)
    n = raw["n_items"]
    images = ImageSource(core=raw["images"], ids=np.arange(n, dtype=np.int64), description=f"JPEGs in {path.name}")
    return DVBPRData(
        path=path,
        train=Interactions(raw["train"]),
        validation=Interactions(raw["validation"]),
        test=Interactions(raw["test"]),
        images=images,
        categories=raw["categories"],
        item_asins=raw["item_asins"],
        merged=merged,
    )
