"""Images of a catalogue's items: :class:`ImageSource` (where each item's encoded JPEG/PNG
bytes are) and :class:`ImageBank` (every image decoded once, resized, kept as uint8 pixels
in RAM or in a memory-mapped cache file; float batches in [-1, 1] are made per batch).

Example::

    data = fr.datasets.dvbpr("AmazonFashion6ImgPartitioned.npy")
    bank = fr.ImageBank.from_source(data.images, size=224, cache=True)  # decoded once, reused later
    pixels = bank.array()              # uint8 (n_items, 224, 224, 3), no copy
    x = bank.batch([0, 5, 9], device="cuda")   # float32 (3, 3, 224, 224) in [-1, 1]
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np

from . import _core
from . import distributed as _distributed
from ._ids import id_column, ids_to_array, image_array, indices, is_scalar

if TYPE_CHECKING:
    import torch

Filter = Literal["box", "bilinear", "hamming", "bicubic", "lanczos"]
#: Images whose header declares more pixels than this are refused (PIL raises
#: ``DecompressionBombError`` above the same count, twice ``Image.MAX_IMAGE_PIXELS``).
MAX_PIXELS = 2 * 89_478_485
__all__ = ["ImageBank", "ImageSource", "decode_image", "resize_image"]

_NO_LIMIT = 2**64 - 1
OnError = Literal["raise", "skip"]


class ImageSource:
    """One encoded image (JPEG or PNG) per item, in row order: files on disk, or spans of a
    container file (a DVBPR ``.npy``, read through a memory map). Nothing is decoded until a
    bank is built.

    ``ids`` are the items' ids in row order (raw catalogue ids; the row index when not given).
    Build with :meth:`from_files`; the DVBPR loader returns one for its file.
    """

    def __init__(self, *, paths: list[str] | None = None, ids: Any = None, core: Any = None, description: str = ""):
        if (paths is None) == (core is None):
            raise ValueError("give either paths or core")
        self._paths = paths
        self._core = core
        n = len(paths) if paths is not None else len(core)
        self._ids = np.arange(n, dtype=np.int64) if ids is None else ids_to_array(id_column(ids, "ids", arg=True))
        if len(self._ids) != n:
            raise ValueError(f"ids has {len(self._ids)} entries for {n} images")
        self._ids.setflags(write=False)
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

    @property
    def container(self) -> Path | None:
        """The file holding the images, for a container source (a DVBPR ``.npy``)."""
        return None if self._core is None or self._paths is not None else Path(self.core().container())

    def core(self) -> _core.ImageSource:
        if self._core is None:
            self._core = _core.ImageSource.files(self._paths)
        return self._core

    def read(self, row: int) -> bytes:
        """The encoded bytes of the image in ``row``."""
        return self.core().read(int(indices(row, "row")[0][0]))

    def locate(self, row: int) -> str:
        """Where the image of ``row`` is: its file, or its byte range in the container."""
        return self.core().locate(int(indices(row, "row")[0][0]))

    def __repr__(self) -> str:
        return f"<ImageSource: {len(self):,} images ({self.description})>"


class ImageBank:
    """Every image of a source decoded once (JPEG/PNG, in parallel in Rust), resized to
    ``size`` with Pillow's algorithm (bilinear by default, the DVBPR seed's), stored as uint8
    (N, H, W, 3). Row ``k`` is the image of ``ids[k]``.

    JPEGs at least twice the target size in both sides are decoded at 1/2, 1/4 or 1/8 scale
    inside the IDCT (the largest that keeps both sides at or above it, as Pillow's ``draft``
    and ``thumbnail`` do), then resized: several times faster for full-size photos, with the
    pixels of Pillow's ``draft`` path rather than of its full decode. ``reduce=False`` decodes
    every image in full. PNG has no reduced decode: large PNGs are decoded in full.

    With ``cache`` the pixels go to a memory-mapped file that later runs reuse when it was
    built from the same images at the same size (else it is rebuilt, with a warning); the file
    can also be opened alone with :meth:`open`. Images that cannot be decoded stop the build
    with an error naming the item and where its bytes are, or with ``on_error="skip"`` their
    rows are left black and listed in :attr:`skipped` (and a warning says how many).
    """

    def __init__(
        self, core: _core.ImageBank, ids: np.ndarray, source: ImageSource | None = None, cache_status: str | None = None
    ):
        self._core = core
        self._ids = ids
        self.source = source
        #: How the build used its cache: None (in RAM), "built", "reused", "rebuilt", or
        #: "opened" (:meth:`open`).
        self.cache_status = cache_status

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_source(
        cls,
        source: ImageSource,
        size: int | tuple[int, int] = 224,
        *,
        cache: str | os.PathLike | bool | None = None,
        on_error: OnError = "raise",
        filter: Filter = "bilinear",
        workers: int | None = None,
        progress: bool = True,
        reduce: bool = True,
        max_pixels: int | None = MAX_PIXELS,
    ) -> ImageBank:
        """Decode ``source`` into a bank.

        ``size``: an int for square images or ``(height, width)``. ``cache``: None keeps the
        pixels in RAM; a path, or True for a file next to the data, writes them there (memory-
        mapped). ``workers``: threads (None: one per core). ``progress``: a progress bar.
        ``reduce``: decode large JPEGs at reduced scale (see the class notes). ``max_pixels``:
        images declaring more pixels are refused (None: no limit), as is a larger ``size``.
        """
        if not isinstance(source, ImageSource):
            raise TypeError(f"source must be an ImageSource, not {type(source).__name__}")
        height, width = _size(size)
        limit = _max_pixels(max_pixels)
        path = _cache_path(source, height, width, filter, bool(reduce)) if cache is True else cache
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(source), desc="decoding images", unit="img")

        def report(done: int, total: int) -> None:
            if bar is not None:
                bar.n = done
                bar.refresh()

        # In a process group (fr.distributed), the machine's first process (LOCAL_RANK 0)
        # builds the cache while the others wait, then they map the file it wrote instead of
        # decoding every image again.
        shared = path not in (None, False) and _distributed.world_size() > 1
        first_here = os.environ.get("LOCAL_RANK", "0") == "0"
        if shared and not first_here:
            _distributed._dist().barrier()
        try:
            core, used, reason = _core.ImageBank.build(
                source.core(),
                height,
                width,
                filter=filter,
                on_error=on_error,
                cache=None if path in (None, False) else os.fspath(path),
                threads=0 if workers is None else int(workers),
                progress=report,
                reduce=bool(reduce),
                max_pixels=limit,
            )
        finally:
            if bar is not None:
                bar.close()
            if shared and first_here:
                _distributed._dist().barrier()
        if used == "rebuilt":
            warnings.warn(f"image cache {path} was rebuilt: {reason}", stacklevel=3)
        bank = cls(core, source.ids, source, None if used == "none" else used)
        if core.skipped:
            first = bank.skipped[0]
            warnings.warn(
                f"{len(core.skipped)} of {len(bank)} images could not be decoded; their rows are black "
                f"(see bank.skipped). First: item {first[0]!r}: {first[1]}",
                stacklevel=3,
            )
        return bank

    @classmethod
    def from_files(
        cls,
        paths: Sequence[str | os.PathLike],
        size: int | tuple[int, int] = 224,
        *,
        ids: Any = None,
        cache: str | os.PathLike | bool | None = None,
        on_error: OnError = "raise",
        filter: Filter = "bilinear",
        workers: int | None = None,
        progress: bool = True,
        reduce: bool = True,
        max_pixels: int | None = MAX_PIXELS,
    ) -> ImageBank:
        """A bank of image files (one per item; ``ids`` default to the row numbers)."""
        return cls.from_source(
            ImageSource.from_files(paths, ids),
            size,
            cache=cache,
            on_error=on_error,
            filter=filter,
            workers=workers,
            progress=progress,
            reduce=reduce,
            max_pixels=max_pixels,
        )

    @classmethod
    def open(cls, path: str | os.PathLike, ids: Any = None) -> ImageBank:
        """Open a cache file written by an earlier build, without its source."""
        core = _core.ImageBank.open(os.fspath(path))
        ids = np.arange(len(core), dtype=np.int64) if ids is None else ids_to_array(id_column(ids, "ids", arg=True))
        if len(ids) != len(core):
            raise ValueError(f"ids has {len(ids)} entries for the bank's {len(core)} images")
        return cls(core, ids, cache_status="opened")

    # -- contents ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._core)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the stored images."""
        return (self._core.height, self._core.width)

    @property
    def ids(self) -> np.ndarray:
        """Item id of each row."""
        return self._ids

    @property
    def skipped(self) -> list[tuple[Any, str]]:
        """(item id, reason) of each image that could not be decoded (its row is black)."""
        return [(self._ids[i].item() if hasattr(self._ids[i], "item") else self._ids[i], why) for i, why in self._core.skipped]

    @property
    def reduce(self) -> bool:
        """Whether large JPEGs were decoded at reduced scale (see the class notes)."""
        return self._core.reduce

    @property
    def cache_path(self) -> Path | None:
        """The memory-mapped cache file, or None when the pixels are in RAM."""
        p = self._core.cache_path
        return None if p is None else Path(p)

    def array(self) -> np.ndarray:
        """All pixels, uint8 (N, H, W, 3), read-only, viewing the bank without a copy."""
        return self._core.array()

    def images(self, rows: int | Sequence[int] | np.ndarray) -> np.ndarray:
        """The uint8 images of ``rows`` (a copy, gathered in parallel): ``(len(rows), H, W, 3)``
        for a sequence of rows, ``(H, W, 3)`` for one row given as a scalar (as numpy indexes)."""
        idx, single = indices(rows, "rows")
        out = self._core.gather(idx)
        return out[0] if single else out

    def batch(self, rows: int | Sequence[int] | np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
        """A model batch: float32 (len(rows), 3, H, W) in [-1, 1] (``x / 127.5 - 1``) on
        ``device`` ((3, H, W) for one row given as a scalar). The uint8 pixels are copied to
        the device and converted there."""
        import torch

        idx, single = indices(rows, "rows")
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"batch(): device {device!r} is not a torch device ({e})") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"batch(): device {device} is not available: torch sees no CUDA device")
        pixels = torch.from_numpy(self.images(idx))
        if device.type == "cuda":
            pixels = pixels.pin_memory().to(device, non_blocking=True)
        out = pixels.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        return out[0] if single else out

    def show(self, rows: int | Sequence[int], ncols: int = 8, titles: bool = True):
        """A matplotlib figure of the images of ``rows`` (their ids as titles; one row may be
        given as a scalar)."""
        import matplotlib.pyplot as plt

        if ncols < 1:
            raise ValueError(f"show(): ncols must be at least 1, got {ncols}")
        rows = indices(rows, "rows")[0].tolist()
        ncols = min(ncols, max(1, len(rows)))
        nrows = max(1, -(-len(rows) // ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.8 * nrows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, r, img in zip(axes.flat, rows, self.images(np.asarray(rows, dtype=np.int64))):
            ax.imshow(img)
            if titles:
                ax.set_title(str(self._ids[r]), fontsize=8)
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        h, w = self.size
        where = f"cache {self.cache_path}" if self.cache_path else "in RAM"
        bad = f", {len(self._core.skipped)} skipped" if self._core.skipped else ""
        return f"<ImageBank: {len(self):,} images {h}x{w} ({self._core.filter}), {where}{bad}>"


def decode_image(
    data: bytes, reduce_to: int | tuple[int, int] | None = None, max_pixels: int | None = MAX_PIXELS
) -> np.ndarray:
    """JPEG/PNG bytes to uint8 (H, W, 3), as ``PIL.Image.open(...).convert("RGB")``.

    ``reduce_to`` (an int or ``(height, width)``): a JPEG at least twice that size in both sides
    is decoded at 1/2, 1/4 or 1/8 scale, as after PIL's ``im.draft("RGB", (width, height))``.
    ``max_pixels``: an image declaring more pixels is refused (None: no limit).
    """
    target = None if reduce_to is None else _size(reduce_to, "reduce_to")
    return _core.decode_image(data, target, _max_pixels(max_pixels))


def resize_image(image: np.ndarray, size: int | tuple[int, int], filter: Filter = "bilinear") -> np.ndarray:
    """Resize a uint8 (H, W, 3) image exactly as ``PIL.Image.resize((width, height), filter)``."""
    height, width = _size(size)
    return _core.resize_image(image_array(image, "image", 3), height, width, filter)


def _size(size: int | tuple[int, int], name: str = "size") -> tuple[int, int]:
    """(height, width) of an image size given as argument ``name`` (an int or a pair)."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    else:
        sides, _ = indices(size, name)
        if len(sides) != 2:
            raise ValueError(f"{name} must be an int or (height, width), got {size!r}")
        h, w = (int(x) for x in sides)
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} must be positive, not {size!r}")
    if max(h, w) > 1 << 31:
        raise ValueError(f"{name}={size!r} is too large (images above max_pixels are refused)")
    return h, w


def _max_pixels(max_pixels: int | None) -> int:
    if max_pixels is None:
        return _NO_LIMIT
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels <= 0:
        raise ValueError(f"max_pixels must be a positive int or None, not {max_pixels!r}")
    return min(int(max_pixels), _NO_LIMIT)


def _cache_path(source: ImageSource, height: int, width: int, filter: str, reduce: bool = True) -> Path:
    """The default cache file: next to the container, or in the folder of the image files."""
    tag = f"{height}x{width}-{filter}" + ("" if reduce else "-full")
    if source.container is not None:
        c = source.container
        return c.with_name(f"{c.name}.fr-images-{tag}.bank")
    paths = source.paths or []
    folder = Path(os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]))
    digest = hashlib.sha1("\n".join(paths).encode()).hexdigest()[:12]
    return folder / f".fr-images-{tag}-{digest}.bank"
