"""Bayesian Personalised Ranking with matrix factorisation and an item bias."""

from __future__ import annotations

from typing import Literal

from typing import Any

from .base import Recommender, sampler_config


class BPR(Recommender):
    """BPR (Rendle et al. 2009): ``score(u, i) = p_u . q_i + b_i``, trained on uniformly
    sampled (user, positive, negative) triples to maximise ``ln sigmoid(score(u, i) -
    score(u, j))`` with L2 on the rows each sample touches.

    On the CPU with SGD, training runs in a native Rust kernel (lock-free Hogwild SGD over
    rayon threads); on CUDA, or with Adam, it runs on libtorch through tch. Both run the same
    algorithm from the same seeded start.

    Args:
        factors: latent dimension.
        epochs: passes over the training interactions.
        lr: learning rate (per sample for SGD).
        lr_final: learning rate at the last epoch as a fraction of ``lr`` (linear decay).
        reg: L2 weight on the factors a sample touches.
        bias_reg: L2 weight on the item biases a sample touches.
        batch_size: triples per libtorch step (the native kernel updates per sample and uses
            it only as its unit of work).
        optimizer: ``"sgd"`` or ``"adam"`` (Adam runs on libtorch).
        init_std: standard deviation of the initial factors.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        backend: ``"auto"``, ``"native"`` (CPU SGD kernel) or ``"torch"`` (libtorch).
        seed: seeds the initial factors and the sampler. With ``threads=1`` (or on libtorch
            on the CPU) a fit is bit-for-bit reproducible; with more threads the sampled
            triples are the same but Hogwild updates may interleave differently.
        threads: CPU threads for sampling and the native kernel; 0 uses every core.
        sampler: which negatives to train on: ``"uniform"`` (default), ``"popularity"``,
            ``"category"`` (fit needs ``categories=``), ``"cosine"`` (fit needs
            ``item_features=``), ``"warp"`` (candidates until one violates the margin,
            rank-weighted loss) or ``"best_of_n"``; or a dict with options (see
            :func:`fashionrec.models.base.sampler_config`). Every sampler runs on the native
            kernel and on libtorch.
    """

    kind = "bpr"

    def __init__(
        self,
        factors: int = 64,
        epochs: int = 50,
        lr: float = 0.1,
        lr_final: float = 0.1,
        reg: float = 0.02,
        bias_reg: float = 0.01,
        batch_size: int = 4096,
        optimizer: Literal["sgd", "adam"] = "sgd",
        init_std: float = 0.1,
        device: str = "auto",
        backend: Literal["auto", "native", "torch"] = "auto",
        seed: int = 0,
        threads: int = 0,
        sampler: str | dict[str, Any] = "uniform",
    ):
        super().__init__(
            factors=factors,
            epochs=epochs,
            lr=lr,
            lr_final=lr_final,
            reg=reg,
            bias_reg=bias_reg,
            batch_size=batch_size,
            optimizer=optimizer,
            init_std=init_std,
            device=device,
            backend=backend,
            seed=seed,
            threads=threads,
            sampler=sampler_config(sampler, self.kind),
        )

    @property
    def user_factors(self):
        """User factors, float32 ``(n_users, factors)`` (a copy)."""
        return self._core.state()["user_factors"]

    @property
    def item_factors(self):
        """Item factors, float32 ``(n_items, factors)`` (a copy)."""
        return self._core.state()["item_factors"]

    @property
    def item_bias(self):
        """Item biases, float32 ``(n_items,)`` (a copy)."""
        return self._core.state()["item_bias"]
