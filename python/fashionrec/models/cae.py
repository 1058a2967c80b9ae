"""The convolutional autoencoder trained on item images: the CAE tower's encoder."""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from .._ids import indices

from .. import _core
from .._guard import fitting
from .._progress import EpochCallback, FitProgress
from ..images import ImageBank


class ConvAutoencoder:
    """A convolutional autoencoder for the images of an :class:`~fashionrec.ImageBank`.

    The encoder halves the image ``depth`` times (4x4 convolutions with stride 2, ReLU,
    ``channels`` doubling per layer up to 512) and maps the result to a ``latent`` vector;
    the decoder mirrors it back to the image. Pixels are scaled to [-1, 1] inside the
    network; training minimises the mean squared reconstruction error with Adam.
    ``image_size`` must be the bank's (square) size and a multiple of ``2**depth``.

    After :meth:`fit`, :meth:`encode` gives each image's code and :meth:`reconstruct` the
    decoded images (for a picture of originals beside reconstructions); the trained encoder is
    the frozen image network of ``fr.DVBPR(tower="cae", encoder=this)``. Training runs in the
    Rust core (libtorch); ``device="auto"`` picks CUDA when available.
    """

    def __init__(
        self,
        latent: int = 128,
        image_size: int = 64,
        *,
        channels: int = 32,
        depth: int = 4,
        epochs: int = 10,
        lr: float = 1e-3,
        batch_size: int = 64,
        device: str = "auto",
        seed: int = 0,
    ):
        self._params: dict[str, Any] = dict(
            latent=latent,
            image_size=image_size,
            channels=channels,
            depth=depth,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            device=device,
            seed=seed,
        )
        self._core = _core.ConvAutoencoder(json.dumps(self._params))
        self.history_ = {"epoch": [], "loss": [], "seconds": []}

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters this autoencoder was built with."""
        return dict(self._params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"ConvAutoencoder({args})"

    @property
    def is_fitted(self) -> bool:
        return self._core.is_fitted

    @property
    def device(self) -> str:
        """Where the parameters live ("cpu", "cuda:0")."""
        return self._core.device

    def fit(self, bank: ImageBank, *, progress: bool = True, callback: EpochCallback | None = None) -> ConvAutoencoder:
        """Train from scratch on every image of ``bank``; returns ``self``.

        ``progress`` shows a bar; ``callback(epoch, logs)`` runs after each epoch (``logs =
        {"loss", "seconds"}``, the loss being the mean squared error per pixel in [-1, 1]
        units) and may return ``False`` to stop. Ctrl-C stops training too (the weights learnt
        so far are kept) and is raised again. ``history_`` holds the logs, one list per key.
        """
        with fitting(self):
            core = _bank_core(bank)
            bar = FitProgress("ConvAutoencoder", int(self._params["epochs"]), progress, callback)
            try:
                self._core.fit(core, bar)
            finally:
                bar.close()
                self._after_fit()
        return self

    def _after_fit(self) -> None:
        hist = self._core.history()
        self.history_ = {key: [h[key] for h in hist] for key in ("epoch", "loss", "seconds")}

    @property
    def history_(self) -> dict[str, list]:
        """The training logs, one list per key: a copy, so changing it does not change the model's."""
        return {k: list(v) for k, v in self.__dict__.get("_history", {}).items()}

    @history_.setter
    def history_(self, value: dict[str, list]) -> None:
        self._history = value

    def encode(self, bank: ImageBank) -> np.ndarray:
        """The code of every image of ``bank``: float32 ``(len(bank), latent)``, rows in the
        bank's order."""
        return self._core.encode(_bank_core(bank))

    def reconstruct(self, bank: ImageBank, rows: int | Sequence[int] | np.ndarray) -> np.ndarray:
        """The reconstructions of the bank's ``rows``: uint8 ``(len(rows), S, S, 3)``
        (``(S, S, 3)`` for one row given as a scalar), comparable with ``bank.images(rows)``."""
        idx, single = indices(rows, "rows")
        out = self._core.reconstruct(_bank_core(bank), idx)
        return out[0] if single else out

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights, the configuration and the history to one safetensors file."""
        self._core.save(os.fspath(path))

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> ConvAutoencoder:
        """Read an autoencoder written by :meth:`save` (on ``device``, default the saved one)."""
        core = _core.ConvAutoencoder.load(os.fspath(path), device)
        model = cls.__new__(cls)
        model._params = json.loads(core.config_json())
        model._core = core
        model._after_fit()
        return model


def _bank_core(bank: ImageBank) -> _core.ImageBank:
    if not isinstance(bank, ImageBank):
        raise TypeError(f"bank must be a fashionrec.ImageBank, not {type(bank).__name__}")
    return bank._core
