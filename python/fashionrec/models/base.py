"""The base every model shares: ``fit``, ``score``, ``recommend``, ``similar_items``,
``save`` / ``load``, in raw ids."""

from __future__ import annotations

import copy
import json
import os
import warnings
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np

from .. import _core
from .._guard import fitting
from .._ids import ids_to_array, index_arg, is_scalar
from .._progress import EpochCallback, FitProgress
from ..distributed import _group_for, is_initialized
from .._side import feature_table, prepare
from ..interactions import Interactions
from ._params import core_model

if TYPE_CHECKING:
    import pandas as pd



class Recommender:
    """Base class of every fashionrec model.

    Subclasses set ``kind`` (the Rust registry name) and define ``__init__`` with their
    hyper-parameters, passing them to ``super().__init__(**params)``. The parameters go to the
    Rust core as JSON; training, scoring and saving happen there.
    """

    kind: ClassVar[str]

    def __init__(self, **params: Any):
        self._params = dict(params)
        self._core = core_model(self.kind, self._params)
        self.history_ = {"epoch": [], "loss": [], "seconds": []}
        self._ids_cache: tuple[np.ndarray, np.ndarray] | None = None

    # -- parameters ----------------------------------------------------------------------

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters this model was built with (a deep copy: changing it does not
        change the model)."""
        return copy.deepcopy(self._params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"

    # -- training ------------------------------------------------------------------------

    def fit(
        self,
        train: Interactions,
        *,
        validation: Interactions | None = None,
        metrics: Sequence[str] = ("auc", "ndcg@10"),
        progress: bool = True,
        callback: EpochCallback | None = None,
        images: Any = None,
        item_features: Any = None,
        user_features: Any = None,
        categories: Any = None,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
        distributed: bool | str = False,
    ) -> Recommender:
        """Train from scratch on ``train``; returns ``self``.

        Side data (each model's documentation says which it needs; a part it cannot use is a
        ValueError): ``images`` (an :class:`~fashionrec.ImageBank`, rows keyed by its
        ``ids``), ``item_features`` (a numpy array in item index order, a DataFrame indexed
        by item id: string/category/bool columns are categorical, numeric ones continuous, or
        an ``io.ImageFeatures``), ``user_features`` (a DataFrame indexed by user id),
        ``categories`` (a Series or dict item id -> label, or an array in index order).
        Items that have side data but no interaction join the catalogue (cold items, scored
        like the others); a training item or user without a row is a ValueError naming it.
        At the end of fit a cold item's learnt per-item parameters (factors, id embedding,
        item bias) are zero, in every model: it is scored from the item side data only, or
        the same constant for all cold items (docs: Side data, cold items).

        ``validation`` (held-out Interactions in the same ids, e.g. from ``fr.split``): after
        every epoch, ``metrics`` are computed on it (candidates exclude ``train``) and logged
        as ``val_<metric>``. ``progress`` shows a bar (tqdm: a widget in Jupyter, text in a
        terminal). ``callback(epoch, logs)`` is called after each epoch with ``logs = {"loss",
        "seconds", "val_..."}``; returning ``False`` stops training (early stopping). Ctrl-C
        also stops it: the model then holds the parameters learnt so far (usable for scoring
        and saving) and the KeyboardInterrupt is raised again. ``history_`` holds the logs,
        one list per key.

        ``checkpoint_dir``: after every epoch the parameters, the optimiser's state and the
        history are written to ``<checkpoint_dir>/<kind>-checkpoint.safetensors``. With
        ``resume=True`` a fit continues from that checkpoint (same settings and data, else a
        ValueError naming the file; ``epochs`` may be raised), drawing the batches the
        uninterrupted fit would have drawn: on the CPU the result is the same to the bit.

        ``distributed``: train on several processes (see :mod:`fashionrec.distributed`):
        ``True`` in the process group created by ``fr.distributed.init()`` or
        ``torch.distributed.init_process_group`` (a RuntimeError without one), ``"auto"``
        when one exists. Every rank calls ``fit`` with the same data and settings
        (``batch_size`` is the global batch, shared among the ranks); rank 0 shows the
        progress bar and writes the checkpoints; :meth:`save` writes on rank 0 only.

        One fit at a time: a second ``fit`` of this model while one runs (from another thread)
        is refused at once with a RuntimeError. A fit never draws from torch's global random
        generator (its draws come from its own, seeded by ``seed``): a caller's
        ``torch.manual_seed`` stream and fits in other threads are unaffected by it. A
        callback's return value is read by truthiness (``None`` goes on).
        """
        with fitting(self):
            if not isinstance(train, Interactions):
                raise TypeError(f"fit() takes an Interactions, not {type(train).__name__}")
            # The core checks that validation uses train's ids (for every model, in one place).
            if validation is not None and not isinstance(validation, Interactions):
                raise TypeError(f"validation must be an Interactions, not {type(validation).__name__}")
            side, train, validation = prepare(
                self, train, validation, images=images, item_features=item_features, user_features=user_features, categories=categories
            )
            names = list(metrics) if validation is not None else []
            group = _group_for(distributed)
            self._group = group
            bar = FitProgress(type(self).__name__, self._epochs(), progress and (group is None or group.rank == 0), callback)
            try:
                self._core.fit(
                    train._core,
                    bar,
                    None if validation is None else validation._core,
                    names,
                    side=side,
                    checkpoint_dir=None if checkpoint_dir is None else os.fspath(checkpoint_dir),
                    resume=bool(resume),
                    group=group,
                )
            finally:
                bar.close()
                self._after_fit()
        return self

    def _epochs(self) -> int:
        """Epochs a fit runs (the progress bar's length)."""
        return int(self._params.get("epochs", 0))

    def _after_fit(self) -> None:
        hist = self._core.history()
        keys = ["epoch", "loss", "seconds"] + sorted({k for h in hist for k in h} - {"epoch", "loss", "seconds"})
        self.history_ = {key: [h.get(key) for h in hist] for key in keys}
        self._ids_cache = None

    @property
    def history_(self) -> dict[str, list]:
        """The training logs, one list per key ("epoch", "loss", "seconds", "val_<metric>"...):
        a copy, so changing it does not change the model's."""
        return {k: list(v) for k, v in self.__dict__.get("_history", {}).items()}

    @history_.setter
    def history_(self, value: dict[str, list]) -> None:
        self._history = value

    @property
    def is_fitted(self) -> bool:
        return self._core.is_fitted

    @property
    def device(self) -> str:
        """Where the parameters live ("cpu", "cuda:0"); "" before fit."""
        return self._core.device

    # -- ids -----------------------------------------------------------------------------

    def _ids(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ids_cache is None:
            users = ids_to_array(self._core.user_ids())
            items = ids_to_array(self._core.item_ids())
            users.setflags(write=False)
            items.setflags(write=False)
            self._ids_cache = (users, items)
        return self._ids_cache

    @property
    def user_ids(self) -> np.ndarray:
        """Raw user ids of the training data, in index order (a copy)."""
        return self._ids()[0].copy()

    @property
    def item_ids(self) -> np.ndarray:
        """Raw item ids of the training data, in index order (the columns of ``score``; a copy)."""
        return self._ids()[1].copy()

    @property
    def n_users(self) -> int:
        return self._core.shape()[0]

    @property
    def n_items(self) -> int:
        return self._core.shape()[1]

    # -- scoring -------------------------------------------------------------------------

    def _score_indices(self, users: np.ndarray) -> np.ndarray:
        """Scores of user indices: float32 (len(users), n_items)."""
        return self._core.score_indices(np.ascontiguousarray(users, dtype=np.int64))

    def score(self, users: Any, *, user_features: Any = None) -> np.ndarray:
        """Scores of raw user ids for every item: float32 ``(len(users), n_items)``, columns
        in ``item_ids`` order (``(n_items,)`` for one user id given as a scalar, as
        ``recommend`` gives 1-D results). Unknown ids are a ValueError naming them.

        With ``user_features`` (a DataFrame indexed by user id, columns as in ``fit``), the
        users are scored from their features alone, whether or not they were trained on
        (new users), for models that can (e.g. ``HybridBPR``)."""
        single = is_scalar(users)
        if user_features is not None:
            ids = np.asarray(users if not single else [users])
            out = self._core.score_new_users(feature_table(user_features, ids, "user_features", "user"))
        else:
            out = self._score_indices(index_arg(self._core.user_index, users, "score(): users"))
        return out[0] if single else out

    def item_vectors(self) -> np.ndarray:
        """One vector per item, float32 ``(n_items, d)`` in ``item_ids`` order (the space
        ``similar_items`` and the embedding plots use). A ValueError for models without."""
        return self._core.item_vectors()

    def user_vectors(self) -> np.ndarray:
        """One vector per user, float32 ``(n_users, d)`` in ``user_ids`` order."""
        return self._core.user_vectors()

    def recommend(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude: Interactions | None = None,
        as_frame: bool = False,
    ) -> tuple[np.ndarray, np.ndarray] | pd.DataFrame:
        """Top-``k`` items for each raw user id, best first.

        ``exclude`` (usually the training data) removes each user's items from the
        candidates. Returns ``(items, scores)``, arrays of shape ``(len(users), k)`` with raw
        item ids (1-D for a single user id); where fewer than ``k`` candidates remain, the
        slots hold item -1 (None for string ids) and score -inf. With ``as_frame=True``: a
        DataFrame with columns user, rank, item, score (missing slots left out).
        """
        # Scoring and top-k selection run in Rust, block by block (the GIL released).
        return recommend_users(self, users, k, exclude, as_frame, self._core.user_index, self._core.recommend)

    def similar_items(
        self, items: Any, k: int = 10, *, as_frame: bool = False
    ) -> tuple[np.ndarray, np.ndarray] | pd.DataFrame:
        """The ``k`` items most similar (cosine of the model's item vectors) to each raw item
        id, the item itself left out. Returns ``(items, similarities)`` like ``recommend``."""
        k = _check_k(k)
        single = is_scalar(items)
        idx = index_arg(self._core.item_index, items, "similar_items(): items")
        k_eff = min(k, max(self.n_items - 1, 0))
        found, sims = _core.similar_items(self._core.item_vectors(), idx, k_eff)
        if as_frame:
            return self._frame(items, idx, found, sims, "query_item")
        raw = _raw_items(self._ids()[1], found)
        return (raw[0], sims[0]) if single else (raw, sims)

    def _frame(self, queries: Any, idx: np.ndarray, items: np.ndarray, scores: np.ndarray, name: str):
        import pandas as pd

        users, item_ids = model_ids(self)
        ids = users if name == "user" else item_ids
        n, k = items.shape
        keep = (items >= 0).ravel()
        return pd.DataFrame(
            {
                name: np.repeat(ids[idx], k)[keep],
                "rank": np.tile(np.arange(1, k + 1), n)[keep],
                "item": item_ids[np.maximum(items, 0)].ravel()[keep],
                "score": scores.ravel()[keep],
            }
        )

    def _check_same_ids(self, data: Interactions, what: str) -> None:
        self._aligned(data, what)

    def _aligned(self, data: Interactions, what: str) -> Interactions:
        """``data`` in this model's ids: itself, or re-expressed when the model's catalogue
        grew from it (items added by side data); else a ValueError."""
        if self._core.same_ids(data._core):
            return data
        try:
            return Interactions(self._core.align(data._core))
        except ValueError:
            raise ValueError(
                f"{what} uses other user/item ids than the data this model was fitted on; "
                "build it with like=train or take it from the same split"
            ) from None

    # -- persistence ---------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to one safetensors file: parameters, id maps, and in the metadata
        the model kind, its JSON configuration and its history. ``fashionrec.load`` reads it
        back with identical scores. A model trained with ``distributed=True`` is written by
        rank 0 while the other ranks wait (an error on rank 0 is raised on every rank)."""
        group = getattr(self, "_group", None)
        if group is None or not is_initialized():
            self._core.save(os.fspath(path))
            return
        error: Exception | None = None
        if group.rank == 0:
            try:
                self._core.save(os.fspath(path))
            except Exception as e:  # re-raised below, after the other ranks know
                error = e
        if not group.agree(error is None):
            raise error if error is not None else RuntimeError(f"rank 0 could not write {os.fspath(path)} (its error says why)")

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> Recommender:
        """Read a model written by :meth:`save` (see :func:`fashionrec.load`)."""
        from . import load

        model = load(path, device=device)
        if not isinstance(model, cls):
            raise TypeError(f"{os.fspath(path)} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    @classmethod
    def _from_core(cls, core: _core.Model) -> Recommender:
        model = cls.__new__(cls)
        model._params = json.loads(core.config_json())
        model._core = core
        model._ids_cache = None
        model._after_fit()
        return model


#: Negative samplers of the pairwise models (``sampler=``).
SAMPLERS = ("uniform", "popularity", "category", "cosine", "warp", "best_of_n")


def sampler_config(sampler: str | dict[str, Any] | None, kind: str) -> dict[str, Any]:
    """``sampler=`` of a pairwise model as the core's nested configuration.

    A name (``"uniform"``, ``"popularity"``, ``"category"``, ``"cosine"``, ``"warp"``,
    ``"best_of_n"``) or a dict with ``kind`` and options: ``exponent`` (popularity: weight
    count**exponent, default 0.75), ``n_candidates`` (cosine, best_of_n: 10), ``max_sampled``
    (warp: 10), ``margin`` (warp: 1.0), ``tries`` (category: draws before the uniform
    fallback, 10). ``"category"`` needs ``categories=`` in fit, ``"cosine"`` ``item_features=``.
    Options not given take the defaults of model ``kind`` (its registry name).
    """
    # Every option filled in from the core's defaults, so get_params() shows them all.
    out = json.loads(_core.default_config(kind))["sampler"]
    if sampler is None:
        return out
    if isinstance(sampler, str):  # the core checks the name against the model's samplers
        return {**out, "kind": sampler}
    if isinstance(sampler, dict):
        unknown = set(sampler) - set(out)
        if unknown:
            raise ValueError(f"unknown sampler option(s) {sorted(unknown)}; known: {sorted(out)}")
        return {**out, **sampler}
    raise TypeError(f"sampler must be a name or a dict, not {type(sampler).__name__}")


def _check_k(k: Any) -> int:
    """``k`` as an int >= 0 (a float or a bool is refused; a huge k means every item)."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, not {type(k).__name__}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return int(k)


def recommend_users(model: Any, users: Any, k: Any, exclude: Interactions | None, as_frame: bool,
                    user_index: Any, top_k: Any) -> Any:
    """The body of ``recommend`` for any model-like ``model`` (its ``item_ids``, ``user_ids``,
    ``_aligned``): raw user ids to indices by ``user_index(ids, what)``, the items picked by
    ``top_k(indices, k, exclude_core)`` -> ``(items, scores)``, raw ids or a frame back."""
    k = _check_k(k)
    single = is_scalar(users)
    idx = index_arg(user_index, users, "recommend(): users")
    if exclude is not None:
        exclude = model._aligned(exclude, "exclude")
    items, scores = top_k(idx, k, None if exclude is None else exclude._core)
    if as_frame:
        return Recommender._frame(model, users, idx, items, scores, "user")
    # The warning points at the caller of recommend: one frame further out than usual.
    raw = _raw_items(model_ids(model)[1], items, stacklevel=5)
    return (raw[0], scores[0]) if single else (raw, scores)


def model_ids(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """A model's (user ids, item ids) without the copies its public getters make."""
    ids = getattr(model, "_ids", None)
    return ids() if callable(ids) else (model.user_ids, model.item_ids)


def _raw_items(item_ids: np.ndarray, items: np.ndarray, stacklevel: int = 4) -> np.ndarray:
    """Raw ids for item indices; -1 (no candidate) stays -1, or None for string ids."""
    raw = item_ids[np.maximum(items, 0)]
    missing = items < 0
    if missing.any():
        if raw.dtype == object:
            raw[missing] = None
        else:
            raw[missing] = -1
            warnings.warn("fewer candidate items than k for some users: padded with -1", stacklevel=stacklevel)
    return raw
