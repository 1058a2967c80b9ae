"""Sampled softmax over user and item embeddings (the ASOS workshop model)."""

from __future__ import annotations

from typing import Any, Literal

from .base import Recommender, sampler_config


class SampledSoftmax(Recommender):
    """``score(u, i) = p_u . q_i + b_i``, trained so that each observed (user, item) outscores
    ``n_negatives`` sampled items under a softmax: the cross-entropy of the positive, first
    among the ``1 + n_negatives`` logits (the ASOS DSF 2020 workshop model, made fast).

    Works straight on ``fr.datasets.asos(...)`` (string user ids, integer product ids); any
    Interactions does. ``recommend`` gives users their top-k; ``similar_items(item, k)`` the
    notebook's item-to-item lookup (cosine of the item embeddings).

    Args:
        factors: embedding dimension.
        users: ``"item_average"``: a user is the mean of a second ("context") embedding of the
            items in their training history, the positive being predicted left out (FISM,
            Kabbur et al. 2013): on very sparse data such as ASOS (3.8 rows a user) it shares
            what every buyer of an item taught it, where a free vector per user is fitted to
            one or two rows. ``"embedding"``: a free vector per user (the workshop model).
            Either way ``user_embeddings`` holds the vectors scored (for ``"item_average"``
            the means over the whole history, refreshed at each end of epoch); a user's
            vector follows from the training history, so new users need a refit.
        n_negatives: negatives per positive.
        sampler: where negatives come from: ``"uniform"``, ``"popularity"`` ((training count
            + 1) ** ``exponent``, 0.75 unless given as ``{"kind": "popularity", "exponent": e}``)
            or ``"log_uniform"`` (Zipf over popularity ranks).
        logq_correction: subtract ln q(item) from each logit, so the sampled loss estimates the
            full softmax whatever the sampler (a no-op for uniform).
        item_bias: learn a per-item bias (started at ln(1 + training count)).
        shared_negatives: one draw of negatives per batch, shared by its rows (a matrix
            product: the fast path, on the CPU and more so on a GPU); else one draw per row.
        lr: Adam learning rate (a row-sparse Adam: only the rows a batch touches move).
        epochs: passes over the training interactions.
        batch_size: positives per step.
        reg: L2 weight on each sample's user and item embeddings.
        init_std: standard deviation of the initial embeddings.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: seeds the initial embeddings and every draw.
        threads: CPU threads for sampling; 0 uses every core.

    Defaults were chosen on a split carved from the ASOS train parquet
    (``benches/tune_sampled_softmax.py``), never on its valid parquet.
    """

    kind = "sampled_softmax"

    def __init__(
        self,
        factors: int = 64,
        users: Literal["item_average", "embedding"] = "item_average",
        n_negatives: int = 100,
        sampler: Literal["uniform", "popularity", "log_uniform"] | dict[str, Any] = "popularity",
        logq_correction: bool = True,
        item_bias: bool = True,
        shared_negatives: bool = True,
        lr: float = 0.003,
        epochs: int = 5,
        batch_size: int = 1024,
        reg: float = 0.0,
        init_std: float = 0.01,
        device: str = "auto",
        seed: int = 0,
        threads: int = 0,
    ):
        super().__init__(
            factors=factors,
            users=users,
            n_negatives=n_negatives,
            sampler=sampler_config(sampler, self.kind),
            logq_correction=logq_correction,
            item_bias=item_bias,
            shared_negatives=shared_negatives,
            lr=lr,
            epochs=epochs,
            batch_size=batch_size,
            reg=reg,
            init_std=init_std,
            device=device,
            seed=seed,
            threads=threads,
        )

    @property
    def user_embeddings(self):
        """User embeddings, float32 ``(n_users, factors)`` (a copy)."""
        return self._core.state()["user_factors"]

    @property
    def item_embeddings(self):
        """Item embeddings, float32 ``(n_items, factors)`` (a copy)."""
        return self._core.state()["item_factors"]

    @property
    def item_bias(self):
        """Item biases, float32 ``(n_items,)`` (a copy)."""
        return self._core.state()["item_bias"]
