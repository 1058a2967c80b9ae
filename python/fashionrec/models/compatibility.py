"""Visual compatibility between items: McAuley et al.'s two style spaces."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .._ids import index_arg, is_scalar
from ..interactions import Interactions
from ..pairs import pair_metrics
from .base import Recommender, _raw_items, sampler_config


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) in float64, written with tanh so that no logit overflows (a naive
    exp(-x) of a logit below -709 is inf, with a RuntimeWarning, though the result is 0)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float64)))


class CompatibilityModel(Recommender):
    """Which items go together, from fixed item features (McAuley et al. 2015):

    ``p(i goes with j) = sigmoid(c - ||E1 x_i - E2 x_j||^2)`` (``distance="euclidean"``) or
    ``sigmoid(c + <E1 x_i, E2 x_j>)`` (``"inner"``), with ``E1, E2`` of shape
    ``(feature_dim, factors)``, trained with the log loss on positive pairs and sampled
    negatives, mini-batch Adam on the device.

    ``fit(pairs, item_features=X, categories=None, validation=held_out_pairs)``: ``pairs`` is
    an Interactions whose both sides are the item catalogue (query item x compatible item,
    e.g. ``fr.io.compatibility_pairs`` output turned into Interactions, or
    ``fr.datasets.fashion_compatibility(...).pairs``), ``X`` a float32 array with one row per
    item (a numpy array, ``fr.io.ImageFeatures`` rows, or a tower's embeddings), categories
    one integer per item (-1: none) for ``sampler="category"``. Split pairs with
    ``fr.split.pair_split`` so that no held-out pair is trained on.

    Args:
        factors: dimension of the style space.
        distance: ``"euclidean"`` or ``"inner"``.
        sampler: ``"uniform"`` (over items) or ``"category"`` (from the positive partner's
            category: the seed's "difficult" negatives), or a dict with the sampler's options.
        n_negatives: negatives per positive pair.
        lr: Adam learning rate.
        epochs: passes over the positive pairs.
        batch_size: positive pairs per step.
        reg: L2 weight on E1 and E2.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: seeds the initial projections and the negatives.
        threads: CPU threads for sampling; 0 uses every core.
    """

    kind = "compatibility"

    def __init__(
        self,
        factors: int = 5,
        distance: Literal["euclidean", "inner"] = "euclidean",
        sampler: Literal["uniform", "category"] | dict[str, Any] = "uniform",
        n_negatives: int = 1,
        lr: float = 1e-3,
        epochs: int = 20,
        batch_size: int = 256,
        reg: float = 0.0,
        device: str = "auto",
        seed: int = 0,
        threads: int = 0,
    ):
        super().__init__(
            factors=factors,
            distance=distance,
            sampler=sampler_config(sampler, self.kind),
            n_negatives=n_negatives,
            lr=lr,
            epochs=epochs,
            batch_size=batch_size,
            reg=reg,
            device=device,
            seed=seed,
            threads=threads,
        )

    # -- the model's own views -----------------------------------------------------------

    def _tensors(self) -> dict[str, np.ndarray]:
        return self._core.state()

    def style_embeddings(self, side: Literal["query", "partner"] = "query") -> np.ndarray:
        """Every item in the style space: ``E1 x`` (``side="query"``, the seed's style
        embedding) or ``E2 x`` (``"partner"``), float32 ``(n_items, factors)``."""
        if side not in ("query", "partner"):
            raise ValueError(f"side must be 'query' or 'partner', not {side!r}")
        return self._tensors()["style_query" if side == "query" else "style_partner"]

    def _pair_indices(self, i: Any, j: Any) -> tuple[np.ndarray, np.ndarray]:
        a = index_arg(self._core.item_index, i, "predict_proba(): i")
        b = index_arg(self._core.item_index, j, "predict_proba(): j")
        if len(a) != len(b):
            raise ValueError(f"i and j must have the same length, got {len(a)} and {len(b)}")
        return a, b

    def _logits(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        t = self._tensors()
        q, p, c = t["style_query"][a], t["style_partner"][b], float(t["c"])
        if self._params["distance"] == "euclidean":
            return c - ((q - p) ** 2).sum(1)
        return c + (q * p).sum(1)

    def predict_proba(self, i: Any, j: Any) -> np.ndarray | float:
        """p(i goes with j) for raw item ids (scalars or equal-length sequences)."""
        a, b = self._pair_indices(i, j)
        p = _sigmoid(self._logits(a, b))
        return float(p[0]) if is_scalar(i) and is_scalar(j) else p.astype(np.float32)

    def score_pairs(self, pairs: Interactions) -> np.ndarray:
        """p(i goes with j) of every (i, j) pair of ``pairs`` (in its COO order)."""
        self._check_same_ids(pairs, "pairs")
        a, b, _ = pairs._core.coo()
        return _sigmoid(self._logits(a.astype(np.int64), b.astype(np.int64))).astype(np.float32)

    def evaluate_pairs(self, positives: Interactions, negatives: Interactions) -> dict[str, float]:
        """Held-out accuracy (threshold 0.5) and AUC of positive against negative pairs."""
        self._check_same_ids(positives, "positives")
        self._check_same_ids(negatives, "negatives")
        return pair_metrics(self.score_pairs(positives), self.score_pairs(negatives))

    def compatible_items(
        self,
        items: Any,
        k: int = 10,
        *,
        exclude_self: bool = True,
        category: Any = None,
        categories: np.ndarray | None = None,
        block: int = 4096,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items that go best with each raw item id, by p(item goes with j): the
        core's ``recommend`` of the query items (scored in blocks where the model lives, top-k
        there) with a candidate mask.

        ``exclude_self`` leaves the item itself out. ``category`` keeps only candidates of
        that category code, given ``categories`` (one code per item; defaults to those
        passed to ``fit``). Returns ``(items, probabilities)`` of shape ``(len(items), k)``
        (1-D for a single id); slots with no candidate hold -1 and probability 0.
        ``block`` is accepted for compatibility and unused (the core sizes its blocks).
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"k must be an integer, not {type(k).__name__}")
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        single = is_scalar(items)
        idx = index_arg(self._core.item_index, items, "compatible_items(): items")
        candidates = None
        if category is not None:
            cats = categories if categories is not None else self._tensors().get("categories")
            if cats is None:
                raise ValueError("category= needs categories (pass categories=, or fit with categories)")
            if categories is None and not (isinstance(category, (int, np.integer)) and not isinstance(category, bool)):
                # The model keeps integer codes: the integer labels given to fit as they were,
                # other labels (strings) as codes of their own.
                raise ValueError(
                    f"category={category!r}: the model keeps the categories given to fit as integer codes; "
                    "pass an integer code, or categories= (a label per item) to filter by label"
                )
            cats = np.asarray(cats)
            if len(cats) != self.n_items:
                raise ValueError(f"categories has {len(cats)} entries for {self.n_items} items")
            candidates = np.ascontiguousarray(cats == category, dtype=np.bool_)
        exclude = None
        if len(idx) == 0:
            return np.zeros((0, k), dtype=np.asarray(self._ids()[1]).dtype), np.zeros((0, k), dtype=np.float32)
        if exclude_self:
            item_ids = self._ids()[1]
            own = item_ids[np.unique(idx)]
            exclude = Interactions.from_ids(own, own, user_ids=item_ids, item_ids=item_ids)._core
        found, logits = self._core.recommend(np.ascontiguousarray(idx, dtype=np.int64), int(k), exclude, candidates)
        # p = sigmoid(logit); an empty slot (-inf) is probability 0.
        probs = _sigmoid(logits).astype(np.float32)
        raw = _raw_items(self._ids()[1], found)
        return (raw[0], probs[0]) if single else (raw, probs)
