"""Triplet-loss models (the anime triplet-loss notebook): margin loss on user and item
embeddings, with a similarity or an MLP as the match score."""

from __future__ import annotations

from typing import Any, Literal, Sequence

from .base import Recommender, sampler_config


class TripletModel(Recommender):
    """User and item embeddings trained with the margin (triplet) loss
    ``max(0, margin + s(u, j) - s(u, i))`` on sampled (user, positive, negative) triples,
    Adam (dense, or row-sparse with ``optimizer="sparse_adam"``), on libtorch (CPU or CUDA).

    Args:
        factors: embedding width of users and items.
        similarity: ``"cosine"`` (the notebook's) or ``"dot"``.
        item_bias: add a learnt per-item bias to the similarity (item popularity; with
            ``"dot"`` it is what lets the model match BPR-MF, see ``benches/triplet_movielens.py``).
        margin: the loss margin.
        reg: L2 weight on the embedding rows a batch touches.
        epochs: passes over the training interactions.
        lr: Adam learning rate.
        optimizer: ``"adam"`` (the default: the seed notebook's dense Adam, which moves every
            embedding row, with its decaying moments, at every step) or ``"sparse_adam"``, a
            different optimiser, ``torch.optim.SparseAdam``'s: each step reads and updates
            only the rows of the users and items in the batch, and their moments; a row no
            batch touches does not move. Its steps cost the batch's rows, not the catalogue's,
            so small batches are much faster; results differ from the dense Adam's (compare
            on held-out data, ``benches/feature_models_speed.py``).
        batch_size: triples per step.
        init_std: standard deviation of the initial embeddings.
        sampler: how negatives are drawn: ``"uniform"``, ``"popularity"``, ``"warp"``,
            ``"best_of_n"``, ... or a dict with the sampler's options (see the samplers).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: seeds the initial embeddings and the sampled triples.
        threads: CPU threads for sampling; 0 uses every core.
    """

    kind = "triplet"

    def __init__(
        self,
        factors: int = 64,
        similarity: Literal["cosine", "dot"] = "cosine",
        item_bias: bool = False,
        margin: float = 1.0,
        reg: float = 0.0,
        epochs: int = 20,
        lr: float = 0.01,
        optimizer: Literal["adam", "sparse_adam"] = "adam",
        batch_size: int = 1024,
        init_std: float = 0.05,
        sampler: str | dict[str, Any] = "uniform",
        device: str = "auto",
        seed: int = 0,
        threads: int = 0,
    ):
        super().__init__(
            factors=factors,
            similarity=similarity,
            item_bias=item_bias,
            margin=margin,
            reg=reg,
            epochs=epochs,
            lr=lr,
            optimizer=optimizer,
            batch_size=batch_size,
            init_std=init_std,
            sampler=sampler_config(sampler, self.kind),
            device=device,
            seed=seed,
            threads=threads,
        )

    @property
    def user_embeddings(self):
        """User embeddings, float32 ``(n_users, factors)`` (a copy; raw rows, before the
        cosine's normalisation)."""
        return self._core.state()["user_factors"]

    @property
    def item_embeddings(self):
        """Item embeddings, float32 ``(n_items, factors)`` (a copy; raw rows)."""
        return self._core.state()["item_factors"]


class DeepTripletModel(Recommender):
    """The notebook's deep variant: user and item embeddings concatenated and through an MLP
    (ReLU, dropout) whose output is the match score, trained with the same margin loss.
    Every (user, item) pair goes through the network: scoring runs in blocks of users on the
    device. ``similar_items`` uses the cosine of the item embeddings.

    Args:
        factors: item embedding width.
        user_factors: user embedding width (the MLP reads both, so they may differ).
        hidden: hidden layer widths of the MLP (then one output unit).
        dropout: dropout after each hidden layer while training.
        margin, reg, epochs, lr, batch_size, init_std, sampler, device, seed, threads: as
            in :class:`TripletModel`.
        optimizer: ``"adam"`` (dense) or ``"sparse_adam"`` (``torch.optim.SparseAdam``'s
            row-sparse update of the embeddings, as in :class:`TripletModel`; the MLP's
            weights keep the dense Adam).
    """

    kind = "deep_triplet"

    def __init__(
        self,
        factors: int = 64,
        user_factors: int = 32,
        hidden: Sequence[int] = (128,),
        dropout: float = 0.1,
        margin: float = 1.0,
        reg: float = 0.0,
        epochs: int = 20,
        lr: float = 0.003,
        optimizer: Literal["adam", "sparse_adam"] = "adam",
        batch_size: int = 1024,
        init_std: float = 0.05,
        sampler: str | dict[str, Any] = "uniform",
        device: str = "auto",
        seed: int = 0,
        threads: int = 0,
    ):
        super().__init__(
            factors=factors,
            user_factors=user_factors,
            hidden=[int(h) for h in hidden],
            dropout=dropout,
            margin=margin,
            reg=reg,
            epochs=epochs,
            lr=lr,
            optimizer=optimizer,
            batch_size=batch_size,
            init_std=init_std,
            sampler=sampler_config(sampler, self.kind),
            device=device,
            seed=seed,
            threads=threads,
        )

