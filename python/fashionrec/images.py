"""Images of a catalogue's items: :class:`ImageSource` (where the encoded JPEG/PNG bytes are)
and :class:`ImageBank` (decoded once, resized, uint8 pixels for models)."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ._ids import ids_to_array


class ImageSource:
    """One encoded image (JPEG or PNG) per item, in row order: files on disk, or spans of a
    container file (a DVBPR ``.npy``). Nothing is decoded or read until a bank is built.

    ``ids`` are the items' ids in row order (raw catalogue ids; the row index when not given).
    """

    def __init__(self, *, paths: list[str] | None = None, ids: Any = None, core: Any = None, description: str = ""):
        self._paths = paths
        self._core = core
        n = len(paths) if paths is not None else len(core)
        self._ids = np.arange(n, dtype=np.int64) if ids is None else ids_to_array(ids)
        if len(self._ids) != n:
            raise ValueError(f"ids has {len(self._ids)} entries for {n} images")
        self.description = description

    @classmethod
    def from_files(cls, paths: Sequence[str | os.PathLike], ids: Any = None) -> ImageSource:
        """Image files, one per item; ``ids[k]`` is the id of the item of ``paths[k]``."""
        p = [os.fspath(x) for x in paths]
        if not p:
            raise ValueError("no image paths given")
        return cls(paths=p, ids=ids, description=f"{len(p)} image files")

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> np.ndarray:
        """Item ids in row order."""
        return self._ids

    @property
    def paths(self) -> list[str] | None:
        """The image files in row order, or None for a container file's images."""
        return None if self._paths is None else list(self._paths)

    def __repr__(self) -> str:
        return f"<ImageSource: {len(self):,} images ({self.description})>"
