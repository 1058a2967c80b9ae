"""VBPR: BPR matrix factorisation plus a visual term from fixed item features."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .. import _core
from .._side import feature_table
from .base import Recommender, sampler_config


class VBPR(Recommender):
    """VBPR (He & McAuley 2016): ``score(u, i) = b_i + gamma_u . gamma_i + theta_u . (E f_i)
    + beta' . f_i``, where ``f_i`` are fixed item features passed to ``fit`` as
    ``item_features=`` (the 4096-d ``.b`` CNN features through ``fr.io.ImageFeatures``, a
    numpy array in item index order, or embeddings from an image tower, e.g.
    ``DVBPR.item_embeddings()``). Trained on sampled triples with the BPR loss (libtorch,
    Adam by default). Items with features and no training interaction (cold items) are
    scored by their visual term alone (their ``gamma_i`` and ``b_i`` are zero), and so are
    new items embedded after fit by :meth:`embed_features`.

    Args:
        factors: dimension of ``gamma_u`` and ``gamma_i``.
        visual_factors: dimension of ``theta_u`` and ``E f_i``.
        epochs, lr, batch_size: passes over the interactions, learning rate, triples per step.
        reg: L2 on the gathered ``gamma_u``, ``gamma_i``, ``theta_u`` rows.
        bias_reg: L2 on the touched item biases.
        visual_reg: L2 on ``E`` and ``beta'`` (per step).
        optimizer: ``"adam"`` or ``"sgd"``.
        init_std: standard deviation of the initial factors.
        device, seed, threads: as for :class:`BPR`.
        sampler: negative sampler (see :func:`fashionrec.models.base.sampler_config`).
    """

    kind = "vbpr"

    def __init__(
        self,
        factors: int = 32,
        visual_factors: int = 32,
        epochs: int = 30,
        lr: float = 0.005,
        reg: float = 1e-4,
        bias_reg: float = 1e-4,
        visual_reg: float = 1e-4,
        batch_size: int = 1024,
        optimizer: Literal["adam", "sgd"] = "adam",
        init_std: float = 0.05,
        device: str = "auto",
        seed: int = 0,
        threads: int = 0,
        sampler: str | dict[str, Any] | None = None,
    ):
        super().__init__(
            factors=factors,
            visual_factors=visual_factors,
            epochs=epochs,
            lr=lr,
            reg=reg,
            bias_reg=bias_reg,
            visual_reg=visual_reg,
            batch_size=batch_size,
            optimizer=optimizer,
            init_std=init_std,
            device=device,
            seed=seed,
            threads=threads,
            sampler=sampler_config(sampler, self.kind),
        )

    def embed_features(self, features: Any) -> tuple[np.ndarray, np.ndarray]:
        """New items (never seen in fit) from their features, as a cold item is scored:
        ``(vectors, bias)``, float32 ``(M, factors + visual_factors)`` and ``(M,)`` in the
        rows' order, where a vector is ``[0, E f]`` (the space of :meth:`item_vectors`) and the
        bias ``beta' . f``. Score them for a user with
        ``model.user_vectors()[u] @ vectors.T + bias``.

        ``features``: a numpy array ``(M, F)``, a DataFrame of the ``F`` numeric columns
        (its rows in order), or an ``io.ImageFeatures`` (every record, in file order), with
        the columns of the features passed to ``fit``."""
        if isinstance(features, np.ndarray):
            ids = np.arange(len(features))
        elif hasattr(features, "asins") and hasattr(features, "rows"):
            ids = np.asarray(features.asins, dtype=object)
        elif hasattr(features, "iloc") and hasattr(features, "columns"):
            ids = features.index.to_numpy()
        else:
            raise TypeError(f"features must be a numpy array, a DataFrame or fashionrec.io.ImageFeatures, not {type(features).__name__}")
        table = feature_table(features, ids, "features", "new item")
        out = self._core.embed_new_items(_core.SideInfo(item_features=table))
        return np.ascontiguousarray(out[:, :-1]), np.ascontiguousarray(out[:, -1])
