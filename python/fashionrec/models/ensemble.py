"""Several models of one catalogue scored as one: the mean of their scores.

Copies of a model trained from different seeds make partly different errors (their random
start, the negatives they drew); averaging their scores cancels part of those errors. On the
MovieLens cold users (``benches/hybrid_cold_users.py``), five HybridBPR seeds averaged ranked
better than the average single seed on every tuning split.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from .. import _core
from ..interactions import Interactions
from .base import Recommender, recommend_users

if TYPE_CHECKING:
    import pandas as pd

#: The manifest inside a saved ensemble's folder.
MANIFEST = "ensemble.json"
#: Users scored at a time by ``recommend`` (bounds the (users, items) score block).
_BLOCK = 1024


class Ensemble:
    """Models fitted on the same interactions, scored as the mean of their scores.

    Build one from fitted or unfitted models (``Ensemble([m1, m2])``), or as ``n`` copies of
    one model that differ only in their seed (``Ensemble.of_seeds(fr.HybridBPR(...), 5)``).
    The scores are averaged as they are: use models whose scores share a scale (the usual
    case: one model class and configuration, several seeds).

    ``fit``, ``score`` (with ``user_features`` for new users, when the members can),
    ``recommend``, ``fashionrec.evaluate`` and ``save`` / ``load`` work as for one model.
    """

    def __init__(self, models: Iterable[Recommender]):
        self.models: list[Recommender] = list(models)
        if not self.models:
            raise ValueError("an Ensemble needs at least one model")
        for k, m in enumerate(self.models):
            if not isinstance(m, Recommender):
                raise TypeError(f"model {k} is a {type(m).__name__}, not a fashionrec model")
        if self.is_fitted:
            self._check_catalogue()

    @classmethod
    def of_seeds(cls, model: Recommender, n: int) -> Ensemble:
        """``n`` unfitted copies of ``model``'s class and parameters with seeds ``seed``,
        ``seed + 1``, ..., ``seed + n - 1`` (``seed`` being ``model``'s)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        if "seed" not in inspect.signature(type(model).__init__).parameters:
            raise ValueError(f"{type(model).__name__} has no seed parameter to vary")
        params = model.get_params()
        seed = int(params.get("seed", 0))
        return cls(type(model)(**{**params, "seed": seed + k}) for k in range(int(n)))

    def __repr__(self) -> str:
        return f"Ensemble({self.models!r})"

    def __len__(self) -> int:
        return len(self.models)

    # -- training ------------------------------------------------------------------------

    def fit(self, train: Interactions, **kwargs: Any) -> Ensemble:
        """Fit every member on ``train`` with the same keyword arguments (those of the
        members' ``fit``: side data, validation, progress...). Returns ``self``."""
        for m in self.models:
            m.fit(train, **kwargs)
        self._check_catalogue()
        return self

    def _check_catalogue(self) -> None:
        first = self.models[0]
        for k, m in enumerate(self.models[1:], 1):
            if not (np.array_equal(m.user_ids, first.user_ids) and np.array_equal(m.item_ids, first.item_ids)):
                raise ValueError(
                    f"model {k} was fitted on other user or item ids than model 0: the members "
                    "of an Ensemble must share one catalogue"
                )

    @property
    def is_fitted(self) -> bool:
        return all(m.is_fitted for m in self.models)

    @property
    def user_ids(self) -> np.ndarray:
        return self.models[0].user_ids

    @property
    def item_ids(self) -> np.ndarray:
        return self.models[0].item_ids

    @property
    def n_users(self) -> int:
        return self.models[0].n_users

    @property
    def n_items(self) -> int:
        return self.models[0].n_items

    @property
    def history_(self) -> list[dict[str, list]]:
        """Each member's training history."""
        return [m.history_ for m in self.models]

    # -- scoring -------------------------------------------------------------------------

    @staticmethod
    def _mean(blocks: Iterable[np.ndarray]) -> np.ndarray:
        total = None
        n = 0
        for s in blocks:
            if total is None:
                total = s.astype(np.float64)
            elif s.shape != total.shape:
                raise ValueError(f"members' scores differ in shape: {s.shape} vs {total.shape}")
            else:
                total += s
            n += 1
        return (total / n).astype(np.float32)

    def _score_indices(self, users: np.ndarray) -> np.ndarray:
        return self._mean(m._score_indices(users) for m in self.models)

    def score(self, users: Any, *, user_features: Any = None) -> np.ndarray:
        """The mean of the members' ``score(users, user_features=...)``: float32
        ``(len(users), n_items)``, columns in ``item_ids`` order."""
        return self._mean(m.score(users, user_features=user_features) for m in self.models)

    def recommend(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude: Interactions | None = None,
        as_frame: bool = False,
    ) -> tuple[np.ndarray, np.ndarray] | pd.DataFrame:
        """Top-``k`` items of the mean scores, as :meth:`Recommender.recommend`."""
        return recommend_users(self, users, k, exclude, as_frame, self.models[0]._core.user_index, self._top_k)

    def _top_k(self, idx: np.ndarray, k: int, exclude: Any) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of the mean scores, block by block (selection and exclusion in Rust), padded
        to ``k`` with item -1 and score -inf as the models' own ``recommend``."""
        k_eff = min(k, self.n_items)
        items = np.full((len(idx), k), -1, np.int64)
        scores = np.full((len(idx), k), -np.inf, np.float32)
        for at in range(0, len(idx), _BLOCK):
            block = idx[at : at + _BLOCK]
            got, vals = _core.top_k_block(self._score_indices(block), block, k_eff, exclude)
            items[at : at + len(block), :k_eff] = got
            scores[at : at + len(block), :k_eff] = vals
        return items, scores

    def item_vectors(self) -> np.ndarray:
        """Not defined: each member has its own latent space (use ``models[k].item_vectors()``)."""
        raise ValueError("an Ensemble has no single vector space: use one member's, e.g. ensemble.models[0].item_vectors()")

    def user_vectors(self) -> np.ndarray:
        """Not defined: each member has its own latent space (use ``models[k].user_vectors()``)."""
        raise ValueError("an Ensemble has no single vector space: use one member's, e.g. ensemble.models[0].user_vectors()")

    def similar_items(self, items: Any, k: int = 10, *, as_frame: bool = False) -> Any:
        """Not defined: item similarity is a member's (use ``models[k].similar_items``)."""
        raise ValueError("an Ensemble has no single vector space: use one member's, e.g. ensemble.models[0].similar_items(...)")

    def _aligned(self, data: Interactions, what: str) -> Interactions:
        return self.models[0]._aligned(data, what)

    # -- persistence ---------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the ensemble as a folder: each member's file (as ``model.save``) and
        ``ensemble.json`` listing them. Written under a temporary name, then renamed; an
        existing ensemble folder at ``path`` is replaced, anything else there is refused."""
        path = Path(path)
        if path.exists() and not (path.is_dir() and (path / MANIFEST).is_file()):
            raise ValueError(f"{path} exists and is not a saved fashionrec Ensemble: refusing to overwrite it")
        tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            tmp.mkdir(parents=False)
            names = [f"member_{k}.safetensors" for k in range(len(self.models))]
            for m, name in zip(self.models, names):
                m.save(tmp / name)
            (tmp / MANIFEST).write_text(json.dumps({"format": "fashionrec-ensemble", "version": 1, "members": names}))
            old = None
            if path.exists():
                old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
                path.rename(old)
            tmp.rename(path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> Ensemble:
        """Read an ensemble written by :meth:`save`. A folder without a valid manifest, or a
        member file that is missing or not a model, is a ValueError naming the file."""
        from . import load

        path = Path(path)
        manifest = path / MANIFEST
        if not manifest.is_file():
            raise ValueError(f"{path} is not a saved fashionrec Ensemble (no {MANIFEST})")
        try:
            meta = json.loads(manifest.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{manifest}: not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            meta = {}
        members = meta.get("members")
        if meta.get("format") != "fashionrec-ensemble" or not isinstance(members, list) or not members:
            raise ValueError(f"{manifest}: not a fashionrec ensemble manifest (format and a non-empty members list expected)")
        models = []
        for k, name in enumerate(members):
            # Plain file names only: a manifest must not point outside its folder.
            if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
                raise ValueError(f"{manifest}: member {k} is {name!r}, not a file name in the folder")
            models.append(load(path / name, device=device))
        # Fitted members: the constructor checks they share one catalogue.
        return cls(models)

