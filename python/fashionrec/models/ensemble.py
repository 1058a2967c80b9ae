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
from pathlib import Path
from typing import Any, ClassVar, Iterable

import numpy as np

from .. import _core
from .base import Recommender

#: The manifest of an ensemble saved as a folder by earlier versions (read, not written).
MANIFEST = "ensemble.json"


class Ensemble(Recommender):
    """Models fitted on the same interactions, scored as the mean of their scores.

    Build one from fitted or unfitted models (``Ensemble([m1, m2])``: the ensemble holds
    copies), or as ``n`` copies of one model that differ only in their seed
    (``Ensemble.of_seeds(fr.HybridBPR(...), 5)``). The scores are averaged as they are: use
    models whose scores share a scale (the usual case: one model class and configuration,
    several seeds).

    It is a model like the others (the core's ``"ensemble"``): ``fit`` fits each member in
    turn with the same arguments (``checkpoint_dir`` holds a folder per member), ``score``
    (with ``user_features`` for new users, when the members can), ``recommend``,
    ``fashionrec.evaluate`` and ``save`` / ``load`` (one file) work as for one model.
    ``models`` gives copies of the members (for their vectors, plots and histories).
    """

    kind: ClassVar[str] = "ensemble"

    def __init__(self, models: Iterable[Recommender]):
        models = list(models)
        if not models:
            raise ValueError("an Ensemble needs at least one model")
        for k, m in enumerate(models):
            if not isinstance(m, Recommender):
                raise TypeError(f"model {k} is a {type(m).__name__}, not a fashionrec model")
        fitted = [m.is_fitted for m in models]
        if any(fitted) and not all(fitted):
            k, j = fitted.index(False), fitted.index(True)
            raise ValueError(
                f"model {k} ({type(models[k]).__name__}) is not fitted but model {j} ({type(models[j]).__name__}) is: "
                "an Ensemble takes models all fitted on the same data (it holds copies) or all unfitted (fit it then)"
            )
        members = [{"kind": m.kind, "config": json.loads(m._core.config_json())} for m in models]
        super().__init__(members=members)
        if all(m.is_fitted for m in models):
            # Copies of the fitted members (the core checks they share one catalogue).
            self._core = _core.Model.ensemble([m._core for m in models])
            self._after_fit()

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
        return len(self._params["members"])

    @property
    def models(self) -> list[Recommender]:
        """Copies of the members (fitted when the ensemble is)."""
        from . import MODELS

        return [MODELS[m["kind"]]._from_core(self._core.member(k)) for k, m in enumerate(self._params["members"])]

    def _epochs(self) -> int:
        return sum(int(m["config"].get("epochs", 0)) for m in self._params["members"])

    def _after_fit(self) -> None:
        super()._after_fit()
        self.members_history_ = [m.history_ for m in self.models] if self.is_fitted else []

    @property
    def history_(self) -> list[dict[str, list]]:  # type: ignore[override]
        """Each member's training history (copies)."""
        return [{k: list(v) for k, v in h.items()} for h in getattr(self, "members_history_", [])]

    @history_.setter
    def history_(self, value: Any) -> None:
        # The base class keeps the ensemble's own (the members' epochs one after the other);
        # users see the members' histories.
        self._history = value

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> Ensemble:
        """Read an ensemble written by :meth:`save` (one file), or a folder written by
        earlier versions (``ensemble.json`` and a file per member). A folder without a valid
        manifest, or a member file that is missing or not a model, is a ValueError naming
        the file."""
        from . import load

        path = Path(path)
        if not path.is_dir():
            return super().load(path, device=device)  # type: ignore[return-value]
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
        return cls(models)
