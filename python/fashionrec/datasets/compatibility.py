"""A visual-compatibility data set built from the fashion-product photos and styles.csv.

McAuley et al.'s compatibility model learns "goes with" relations (Amazon also_bought pairs)
from image features. Those files are not available here, so this module builds a stand-in
from the Myntra catalogue of ``fashion-product-images-small``, with a known rule of what goes
together:

* every product gets an outfit **slot** from its subCategory: top (Topwear, Dress), bottom
  (Bottomwear), shoes (Shoes, Sandal, Flip Flops) or accessory (Bags, Watches, Eyewear,
  Wallets, Belts, Headwear, Ties, ...); products with no slot (innerwear, socks, fragrance,
  free gifts, ...) are left out;
* two products **go together** when their slots differ, their ``usage`` (Casual, Formal,
  Sports, Ethnic, ...) and ``season`` are the same, and their genders match (Men with Men or
  Unisex, Women with Women or Unisex, Boys with Boys, Girls with Girls).

The positive pairs are a seeded sample of that relation (``pairs_per_item`` partners per
product, one direction per unordered pair). The features are the photos' raw pixels,
downscaled to ``image_size`` x ``image_size`` (Pillow's box filter, in Rust) and standardised
per dimension: a fixed featurisation, no network. Evaluation negatives are checked against the
rule, so a held-out negative never goes with its query item.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ..images import ImageBank, ImageSource
from ..interactions import Interactions
from .catalogues import fashion_products

#: Outfit slot of each subCategory; the others have none and are left out.
SLOTS: dict[str, str] = {
    **dict.fromkeys(["Topwear", "Dress"], "top"),
    "Bottomwear": "bottom",
    **dict.fromkeys(["Shoes", "Sandal", "Flip Flops"], "shoes"),
    **dict.fromkeys(
        ["Bags", "Watches", "Eyewear", "Wallets", "Belts", "Headwear", "Ties", "Mufflers", "Scarves",
         "Cufflinks", "Jewellery", "Gloves", "Stoles", "Accessories"],
        "accessory",
    ),
}
#: Genders that go with each gender.
GENDERS: dict[str, tuple[str, ...]] = {
    "Men": ("Men", "Unisex"),
    "Women": ("Women", "Unisex"),
    "Unisex": ("Men", "Women", "Unisex"),
    "Boys": ("Boys",),
    "Girls": ("Girls",),
}


@dataclass(frozen=True)
class FashionCompatibility:
    """What :func:`fashion_compatibility` returns. Row ``k`` of ``features`` and
    ``categories`` is product ``items.index[k]``; ``pairs`` uses those product ids on both
    sides (query item x compatible item)."""

    items: pd.DataFrame
    features: np.ndarray
    pairs: Interactions
    categories: np.ndarray
    category_names: list[str]
    images: ImageBank

    def compatible(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """The rule on row indices: True where products ``i[k]`` and ``j[k]`` go together."""
        i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
        it = self.items
        slot, usage, season = (it[c].cat.codes.to_numpy() for c in ("slot", "usage", "season"))
        gender = it["gender"].cat.codes.to_numpy()
        names = list(it["gender"].cat.categories)
        goes = np.array([[b in GENDERS.get(a, ()) for b in names] for a in names] or [[False]], bool)
        ok = (slot[i] != slot[j]) & (usage[i] == usage[j]) & (usage[i] >= 0) & (season[i] == season[j])
        ok &= (season[i] >= 0) & (gender[i] >= 0) & (gender[j] >= 0)
        return ok & goes[np.maximum(gender[i], 0), np.maximum(gender[j], 0)]

    def negatives(
        self, positives: Interactions, kind: Literal["uniform", "category"] = "uniform", *, seed: int = 0
    ) -> Interactions:
        """One negative pair per positive pair of ``positives``: the same query item with a
        product drawn uniformly (``"uniform"``) or from the positive partner's category
        (``"category"``: the harder, "difficult" negatives), redrawn until it does not go with
        the query item by the rule. Returns an Interactions with ``positives``' ids."""
        if kind not in ("uniform", "category"):
            raise ValueError(f"kind must be 'uniform' or 'category', not {kind!r}")
        if not positives.same_ids(self.pairs):
            raise ValueError("positives must use the ids of this data set's pairs (e.g. a split of .pairs)")
        qi, pj, _ = positives._core.coo()
        rng = np.random.default_rng(seed)
        n = len(self.categories)
        by_cat = [np.flatnonzero(self.categories == c) for c in range(len(self.category_names))]
        neg = np.empty(len(qi), dtype=np.int64)
        todo = np.arange(len(qi))
        for _ in range(100):
            if kind == "uniform":
                draw = rng.integers(0, n, len(todo))
            else:
                draw = np.array([rng.choice(by_cat[self.categories[j]]) for j in pj[todo]], dtype=np.int64)
            neg[todo] = draw
            bad = self.compatible(qi[todo], draw) | (draw == qi[todo])
            todo = todo[bad]
            if len(todo) == 0:
                break
        if kind == "category" and len(todo):
            # A category holding nothing but partners of the query: fall back to uniform.
            neg[todo] = _uniform_non_partners(self, qi[todo], rng)
        return Interactions.from_ids(
            self.items.index.to_numpy()[qi], self.items.index.to_numpy()[neg], like=positives, duplicates="max"
        )


def _uniform_non_partners(data: FashionCompatibility, q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(len(q), dtype=np.int64)
    for k, i in enumerate(q):
        while True:
            j = int(rng.integers(0, len(data.categories)))
            if j != i and not data.compatible(np.array([i]), np.array([j]))[0]:
                out[k] = j
                break
    return out


def fashion_compatibility(
    folder: str | os.PathLike,
    *,
    pairs_per_item: int = 4,
    image_size: int = 16,
    category: str = "articleType",
    max_items: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> FashionCompatibility:
    """Build the compatibility set from ``fashion-product-images-small`` (see the module
    docstring for the rule).

    ``pairs_per_item``: partners drawn per product (fewer where it has fewer). ``image_size``:
    side of the downscaled photos; features have ``image_size**2 * 3`` dimensions.
    ``category``: the styles.csv column whose codes are ``categories`` (for same-category
    negatives). ``max_items``: a seeded random subset of the products (small runs, tests).

    Example::

        data = fr.datasets.fashion_compatibility("../shared/data/fashion-product-images-small")
        train, test = fr.split.pair_split(data.pairs, 0.2, seed=0)
        test_neg = data.negatives(test, "category")
    """
    if pairs_per_item < 1:
        raise ValueError(f"pairs_per_item must be at least 1, got {pairs_per_item}")
    if not 1 <= image_size <= 224:
        raise ValueError(f"image_size must be in 1..224, got {image_size}")
    if max_items is not None and max_items < 2:
        raise ValueError(f"max_items must be at least 2, got {max_items}")
    cat = fashion_products(folder, category=category)
    items = cat.items.loc[cat.images.ids].copy()
    items["slot"] = pd.Categorical(items["subCategory"].astype(object).map(SLOTS))
    keep = items["slot"].notna().to_numpy() & items["usage"].notna().to_numpy() & items["season"].notna().to_numpy()
    rows = np.flatnonzero(keep)
    rng = np.random.default_rng(seed)
    if max_items is not None and max_items < len(rows):
        rows = np.sort(rng.choice(rows, max_items, replace=False))
    items = items.iloc[rows]
    for c in ("slot", "usage", "season", "gender", category):
        items[c] = items[c].cat.remove_unused_categories()
    paths = cat.images.paths or []
    source = ImageSource.from_files([paths[r] for r in rows], ids=items.index.to_numpy())
    bank = ImageBank.from_source(source, image_size, filter="box", progress=progress)
    pixels = bank.array().reshape(len(items), -1).astype(np.float32)
    features = (pixels - pixels.mean(0)) / (pixels.std(0) + 1e-6)
    codes = items[category].cat.codes.to_numpy().astype(np.int64)
    data = FashionCompatibility(
        items, np.ascontiguousarray(features, dtype=np.float32), _placeholder(items), codes,
        [str(c) for c in items[category].cat.categories], bank,
    )
    qi, pj = _draw_pairs(data, pairs_per_item, rng)
    ids = items.index.to_numpy()
    pairs = Interactions.from_ids(ids[qi], ids[pj], user_ids=ids, item_ids=ids, user_col="item", item_col="partner")
    return FashionCompatibility(items, data.features, pairs, codes, data.category_names, bank)


def _placeholder(items: pd.DataFrame) -> Interactions:
    ids = items.index.to_numpy()
    return Interactions.from_ids(ids[:1], ids[:1], user_ids=ids, item_ids=ids)


def _draw_pairs(data: FashionCompatibility, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``k`` partners per product among those that go with it; one direction per
    unordered pair (the first drawn)."""
    it = data.items
    n = len(it)
    key = it["usage"].cat.codes.to_numpy().astype(np.int64) * 1000 + it["season"].cat.codes.to_numpy()
    seen: set[tuple[int, int]] = set()
    qi: list[int] = []
    pj: list[int] = []
    for i in rng.permutation(n):
        cand = np.flatnonzero(key == key[i])
        cand = cand[data.compatible(np.full(len(cand), i), cand)]
        if len(cand) == 0:
            continue
        for j in rng.choice(cand, min(k, len(cand)), replace=False):
            pair = (min(i, j), max(i, j))
            if pair not in seen:
                seen.add(pair)
                qi.append(int(i))
                pj.append(int(j))
    return np.asarray(qi, dtype=np.int64), np.asarray(pj, dtype=np.int64)


__all__ = ["FashionCompatibility", "GENDERS", "SLOTS", "fashion_compatibility"]
