"""Hybrid BPR (the hybrid recommender notebook): users and items represented from their side
features, so the model scores users and items never seen in training."""

from __future__ import annotations

from typing import Any, Literal, Sequence

from .base import Recommender, sampler_config


class HybridBPR(Recommender):
    """BPR on feature towers: each user (item) is its categorical columns embedded (one table
    per column; values unseen in training share an "unknown" code) and its continuous columns
    standardised with the training rows' mean and std, concatenated and through shared dense
    layers (the notebook's embedding 32, dense 64-32-``factors``) into one latent space;
    ``score(u, i) = user_tower(u) . item_tower(i) + b_i``, trained with Adam on the full
    softmax (by default) or the BPR loss.

    The defaults (full softmax, item bias from log-popularity, the item id as an item-tower
    column of its own, 24 epochs at lr 0.001 and batch 4096, ``reg=0.01``, the parameters
    averaged over the steps of the last 12 epochs, each continuous column of three values or
    more also as its quartile, ``continuous_bins=4``) were
    chosen on the warm users of ``benches/hybrid_cold_users.py`` (MovieLens 100k cold users,
    genres passed as item features): see the model page for the figures.

    ``fit(train, user_features=users_df, item_features=items_df)``: DataFrames indexed by raw
    id; object / category / bool columns are categorical, numeric columns continuous (NaN is
    scaled to 0, i.e. the mean). ``score(users, user_features=df)`` scores users that were
    not in training from their features alone. The vocabularies and scaling statistics are
    saved with the model.

    Args:
        factors: latent dimension (the towers' output).
        embed_dim: width of each categorical column's embedding.
        hidden: hidden layer widths of both towers.
        dropout: dropout after each hidden layer while training.
        id_embeddings: add a per-id embedding for the users and items seen in training (the
            usual hybrid); new users and items get none.
        item_id_column: the item id is one more categorical column of the item tower (embedded
            and through its dense layers with the item features), for the items with a training
            interaction; cold and new items get the unknown code. ``item_features`` are then
            optional (the item tower is the id column alone).
        item_feature_dropout: with ``item_id_column``, the probability that an item's row of
            the item tower has its other columns masked while training (categorical ones to the
            unknown code, continuous ones to their mean), so the id column learns to carry the
            item alone and the features add to it; never while scoring.
        item_bias: learn a per-item bias (items' popularity), zero for unseen items.
        item_bias_init: ``"zero"`` or ``"log_popularity"``: the bias starts at
            ``ln(1 + training count)``, the full softmax's optimum when the towers carry
            nothing, so training starts from popularity and learns what the features add.
        loss: ``"full_softmax"`` (default), ``"bpr"`` (the notebook's: one negative per
            positive; ``sampler="rated_below"`` needs it), ``"softmax"``: the
            cross-entropy of each positive among ``n_negatives`` negatives shared by the batch
            (a sampled softmax), or ``"full_softmax"``: among every item of the catalogue (one
            product with all items per step; for catalogues of thousands of items; it ranks
            best for cold users in ``benches/hybrid_cold_users.py``).
        n_negatives: negatives per positive (1 except for ``"softmax"``).
        min_rating: with ``sampler="rated_below"``, ratings ``>= min_rating`` are the
            positives (``train`` then holds every rating, e.g.
            ``movielens_100k(..., min_rating=None)``).
        sampler: ``"uniform"``, ``"popularity"``, ``"cosine"`` (the negative most similar to
            the positive by item features, among candidates: the notebook's hard negatives),
            ``"warp"``, ``"best_of_n"``, ``"rated_below"`` (one of the items the user rated
            below ``min_rating``, the notebook's explicit negatives; uniform for a user with
            none) or a dict of sampler options.
        average_epochs: the parameters returned are the mean of the parameters after each step
            of the last ``average_epochs`` epochs (tail averaging; 0: the last step's). It smooths
            where the last batches left a single model: the default, the last 12 of 24 epochs at
            batch 4096 (the same steps as 6 epochs at batch 1024), ranked best of the settings
            tried on the warm users of ``benches/hybrid_cold_users.py``.
        reg: an L2 weight on the tower outputs of each batch (the user vectors and the items'
            vectors, mean over the batch; 0.01 by default: it keeps the towers near the
            popularity start, and with genres passed it ranks cold users best on the warm users
            of ``benches/hybrid_cold_users.py``).
        lr_final: the learning rate at the last epoch as a fraction of ``lr``: it falls
            linearly over the epochs from ``lr`` to ``lr * lr_final`` (1: constant).
        item_bias_lr: the item bias's learning rate as a fraction of the towers' (0: the bias
            stays at its start, e.g. log-popularity; 1: it trains as the towers do).
        continuous_bins: each continuous column also enters as a categorical column: its
            bucket among this many quantile buckets of the fit's rows (edges where the sorted
            values cross k / ``continuous_bins``; repeated edges merged, so a column of few
            distinct values gets fewer buckets), embedded as the other categorical columns, so
            an effect of the value that is not monotone (e.g. of age) gets an embedding per
            bucket. A column of two distinct values or fewer (a 0/1 flag such as a genre) gets
            none: its value already says all a bucket would. The edges are saved with the
            model; new rows outside the fit's range fall in the end buckets. 0: off; 4 by
            default: with the users' age bucketed so, cold users rank best on the warm users of
            ``benches/hybrid_cold_users.py`` (2 to 10 and bucketing the genre flags too ranked
            below).
        epochs, lr, batch_size, device, seed, threads: training settings.
    """

    kind = "hybrid_bpr"

    def __init__(
        self,
        factors: int = 32,
        embed_dim: int = 32,
        hidden: Sequence[int] = (64, 32),
        dropout: float = 0.0,
        id_embeddings: bool = False,
        item_id_column: bool = True,
        item_feature_dropout: float = 0.0,
        item_bias: bool = True,
        item_bias_init: Literal["zero", "log_popularity"] = "log_popularity",
        loss: Literal["bpr", "softmax", "full_softmax"] = "full_softmax",
        n_negatives: int = 1,
        min_rating: float = 4.0,
        sampler: str | dict[str, Any] = "uniform",
        epochs: int = 24,
        lr: float = 0.001,
        batch_size: int = 4096,
        reg: float = 0.01,
        average_epochs: int = 12,
        lr_final: float = 1.0,
        item_bias_lr: float = 1.0,
        continuous_bins: int = 4,
        device: str = "auto",
        seed: int = 0,
        threads: int = 0,
    ):
        super().__init__(
            factors=factors,
            embed_dim=embed_dim,
            hidden=[int(h) for h in hidden],
            dropout=dropout,
            id_embeddings=id_embeddings,
            item_id_column=item_id_column,
            item_feature_dropout=item_feature_dropout,
            item_bias=item_bias,
            item_bias_init=item_bias_init,
            loss=loss,
            n_negatives=n_negatives,
            min_rating=min_rating,
            sampler=sampler_config(sampler, self.kind),
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            reg=reg,
            average_epochs=average_epochs,
            lr_final=lr_final,
            item_bias_lr=item_bias_lr,
            continuous_bins=continuous_bins,
            device=device,
            seed=seed,
            threads=threads,
        )
