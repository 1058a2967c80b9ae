"""fashionrec: visually-aware and implicit-feedback recommendation with a Rust core.

Quick start::

    import fashionrec as fr
    train, test = fr.datasets.movielens_100k("ml-100k", split="u1", min_rating=4)
    model = fr.BPR(factors=64).fit(train)
    fr.evaluate(model, test, train=train, metrics=["auc", "ndcg@10", "precision@10"])
    items, scores = model.recommend([1, 2, 3], k=10, exclude=train)

Every model shares the :class:`Recommender` API (``fit``, ``score``, ``recommend``,
``similar_items``, ``save``/``load``); training runs in Rust (a native rayon kernel on the CPU,
libtorch through tch on CUDA).
"""

# libtorch (libtorch_cpu.so, libc10.so, libtorch_cuda.so, ...) ships inside the torch wheel and
# the extension carries no rpath to it: importing torch first loads those libraries, and with
# them the CUDA kernels. This import must precede the extension's.
import torch as _torch  # noqa: F401

from . import _core  # noqa: E402
from . import datasets, distributed, io, plot, split, testing  # noqa: E402
from .evaluation import evaluate, evaluate_scores  # noqa: E402
from .images import ImageBank, ImageSource  # noqa: E402
from .interactions import Interactions  # noqa: E402
from .inception import inception_features  # noqa: E402
from .models import (  # noqa: E402
    BPR,
    DVBPR,
    VBPR,
    CompatibilityModel,
    ConvAutoencoder,
    DeepTripletModel,
    Ensemble,
    HybridBPR,
    Popularity,
    Recommender,
    SampledSoftmax,
    TripletModel,
    load,
)
from .pairs import pair_metrics  # noqa: E402

__version__: str = _core.__version__


def cuda_available() -> bool:
    """True when libtorch (as seen by the Rust core) can use a CUDA device."""
    return bool(_core.cuda_info()[0])


__all__ = [
    "CompatibilityModel",
    "SampledSoftmax",
    "pair_metrics",
    "BPR",
    "ConvAutoencoder",
    "DeepTripletModel",
    "Ensemble",
    "HybridBPR",
    "DVBPR",
    "ImageBank",
    "ImageSource",
    "Interactions",
    "Popularity",
    "Recommender",
    "TripletModel",
    "VBPR",
    "__version__",
    "cuda_available",
    "datasets",
    "distributed",
    "evaluate",
    "evaluate_scores",
    "inception_features",
    "io",
    "load",
    "plot",
    "split",
    "testing",
]

# Last: every public function, method and constructor above checks its arguments against its
# annotations (one mechanism for wrong types and unusable values; see _checked.py).
from . import _checked as _checked_mod  # noqa: E402
from . import evaluation as _evaluation, images as _images, pairs as _pairs  # noqa: E402

_checked_mod.install([__import__(__name__), io, datasets, _evaluation, split, _pairs, plot, testing, _images, distributed])
