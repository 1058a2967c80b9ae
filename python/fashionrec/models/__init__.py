"""Models. Each one is a :class:`Recommender`; :func:`load` reads any saved model back."""

from __future__ import annotations

import os

from .. import _core
from .base import Recommender
from .bpr import BPR
from .cae import ConvAutoencoder
from .compatibility import CompatibilityModel
from .dvbpr import DVBPR
from .ensemble import Ensemble
from .hybrid import HybridBPR
from .popularity import Popularity
from .sampled_softmax import SampledSoftmax
from .triplet import DeepTripletModel, TripletModel
from .vbpr import VBPR

#: Python class of each Rust registry name.
MODELS: dict[str, type[Recommender]] = {
    cls.kind: cls
    for cls in (BPR, Popularity, HybridBPR, TripletModel, DeepTripletModel, DVBPR, VBPR, CompatibilityModel, SampledSoftmax, Ensemble)
}


def load(path: str | os.PathLike, *, device: str | None = None) -> Recommender:
    """Read a model written by ``model.save(path)``, whatever its class.

    ``device`` places the parameters ("cpu", "cuda", ...); by default they go where the
    saved configuration says ("auto": CUDA when available). A file that is not a fashionrec
    model, or is truncated, is a ValueError naming the file.
    """
    core = _core.Model.load(os.fspath(path), device)
    return MODELS[core.kind]._from_core(core)


__all__ = [
    "BPR",
    "DVBPR",
    "MODELS",
    "VBPR",
    "CompatibilityModel",
    "ConvAutoencoder",
    "DeepTripletModel",
    "Ensemble",
    "HybridBPR",
    "Popularity",
    "Recommender",
    "SampledSoftmax",
    "TripletModel",
    "load",
]
