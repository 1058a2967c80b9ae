"""Side data for ``fit``: images, item and user features, item categories, aligned once to
the interaction indices before they go to Rust (``_core.SideInfo``).

Every part is keyed by raw id (an ``ImageBank``'s ``ids``, a DataFrame's index, an
``ImageFeatures``' ASINs, a Series' index) or, for a plain numpy array, given in the training
data's index order. Items that have side data but no interaction join the catalogue (cold
items: scored, recommended); an item or user of the training data with no row is a
ValueError naming the ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import _core
from ._ids import id_column, ids_to_array
from .interactions import Interactions

if TYPE_CHECKING:
    from .models.base import Recommender

#: How many missing ids an error message lists.
_SHOWN = 10


class Prepared(NamedTuple):
    side: _core.SideInfo | None
    train: Interactions
    validation: Interactions | None


def prepare(
    model: Recommender,
    train: Interactions,
    validation: Interactions | None,
    *,
    images: Any = None,
    item_features: Any = None,
    user_features: Any = None,
    categories: Any = None,
) -> Prepared:
    """Checks the parts against what ``model`` needs, grows the item catalogue by the ids the
    side data adds, and aligns every part to the (grown) indices."""
    given = {"images": images, "item_features": item_features, "user_features": user_features, "categories": categories}
    needs = model._core.needs()
    name = type(model).__name__
    for part, value in given.items():
        if needs[part] == "required" and value is None:
            raise ValueError(f"{name} needs {part}=: pass it to fit()")
        if needs[part] == "unused" and value is not None:
            raise ValueError(f"{name} does not use {part}= (it would be ignored); see its documentation")
    if all(v is None for v in given.values()):
        return Prepared(None, train, validation)

    # Grow the catalogue by the items the side data knows (their order, after train's).
    extra = [(p, ids) for p, ids in (("images", _keys(images)), ("item_features", _keys(item_features)), ("categories", _keys(categories))) if ids is not None]
    if extra:
        grown = train
        for part, ids in extra:
            try:
                grown = Interactions(grown._core.with_extra_ids(None, id_column(ids, f"{part}'s item ids")))
            except ValueError as e:
                raise ValueError(f"train and {part}: {e}") from None
        if grown.n_items != train.n_items:
            if validation is not None:
                if not validation._core.same_ids(train._core):
                    raise ValueError("validation uses other user/item ids than train; build it with like=train")
                validation = Interactions(validation._core.with_ids_of(grown._core))
            train = grown
    item_ids = train.item_ids

    image_core = image_rows = None
    if images is not None:
        if not hasattr(images, "_core") or not hasattr(images, "ids"):
            raise TypeError(f"images must be a fashionrec.ImageBank, not {type(images).__name__}")
        image_rows = _rows_of(item_ids, images.ids, "images", "item")
        image_core = images._core
        if np.array_equal(image_rows, np.arange(len(image_rows))) and len(image_rows) == len(images):
            image_rows = None
    item_table = None if item_features is None else feature_table(item_features, item_ids, "item_features", "item")
    user_table = None if user_features is None else feature_table(user_features, train.user_ids, "user_features", "user")
    cats = None if categories is None else _categories(categories, item_ids)
    side = _core.SideInfo(image_core, image_rows, item_table, user_table, cats)
    return Prepared(side, train, validation)


def _keys(part: Any) -> Any:
    """The raw ids a side part is keyed by, or None (a plain array: index order)."""
    if part is None or isinstance(part, np.ndarray):
        return None
    if hasattr(part, "ids") and hasattr(part, "_core"):  # ImageBank
        return part.ids
    if hasattr(part, "asins") and hasattr(part, "rows"):  # io.ImageFeatures
        return part.asins
    if hasattr(part, "index") and hasattr(part, "iloc"):  # pandas DataFrame / Series
        return part.index.to_numpy()
    if isinstance(part, dict):
        return list(part.keys())
    return None


def _rows_of(wanted: np.ndarray, have: Any, part: str, what: str) -> np.ndarray:
    """Row of each wanted id among ``have`` (the part's ids); missing ids are a ValueError."""
    import pandas as pd

    index = pd.Index(ids_to_array(id_column(have, f"{part} ids")))
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        raise ValueError(f"{part}: id {dup!r} has more than one row")
    try:
        wanted_ids = id_column(wanted, f"{what} ids")
    except ValueError as e:
        raise ValueError(f"{part} and train: {e} (train's {what} ids and {part}'s are of different kinds)") from None
    rows = index.get_indexer(ids_to_array(wanted_ids))
    if (rows < 0).any():
        missing = [x for x, r in zip(wanted.tolist(), rows) if r < 0]
        shown = ", ".join(repr(m) for m in missing[:_SHOWN])
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        raise ValueError(f"{part} has no row for {len(missing)} {what}(s) of the data: {shown}{more}")
    return np.ascontiguousarray(rows, dtype=np.int64)


def feature_table(features: Any, ids: np.ndarray, part: str, what: str) -> _core.FeatureTable:
    """A ``_core.FeatureTable`` with one row per id of ``ids``, from a DataFrame indexed by id
    (categorical: object, string, category and bool columns; continuous: numeric ones), an
    ``io.ImageFeatures`` (keyed by ASIN), or a numpy array already in ``ids`` order."""
    n = len(ids)
    if isinstance(features, np.ndarray):
        if features.ndim != 2 or features.shape[0] != n:
            raise ValueError(f"{part}: a numpy array must be ({n}, n_features), one row per {what} in index order; got {features.shape}")
        return _core.FeatureTable(n, [], np.ascontiguousarray(features, dtype=np.float32), [])
    if hasattr(features, "asins") and hasattr(features, "rows"):
        rows = _rows_of(ids, features.asins, part, what)
        return _core.FeatureTable(n, [], np.ascontiguousarray(features.rows(rows), dtype=np.float32), [])
    if hasattr(features, "iloc") and hasattr(features, "columns"):
        rows = _rows_of(ids, features.index.to_numpy(), part, what)
        frame = features.iloc[rows]
        categorical, continuous, names = [], [], []
        for col in frame.columns:
            s = frame[col]
            kind = s.dtype.kind if hasattr(s.dtype, "kind") else "O"
            if str(s.dtype) == "category" or kind in "OSUb" or str(s.dtype) == "string":
                if s.isna().any():
                    row = int(np.argmax(s.isna().to_numpy()))
                    raise ValueError(f"{part}: column {col!r} is missing for {what} {ids[row]!r}")
                categorical.append((str(col), [str(v) for v in s.tolist()]))
            elif kind in "iuf":
                values = s.to_numpy(dtype=np.float64)
                if not np.isfinite(values).all():
                    row = int(np.argmax(~np.isfinite(values)))
                    raise ValueError(f"{part}: column {col!r} is not finite for {what} {ids[row]!r}")
                continuous.append(values.astype(np.float32))
                names.append(str(col))
            else:
                raise ValueError(f"{part}: column {col!r} has dtype {s.dtype}; use numbers, strings or categories")
        dense = np.ascontiguousarray(np.stack(continuous, axis=1)) if continuous else None
        return _core.FeatureTable(n, categorical, dense, names)
    raise TypeError(f"{part} must be a pandas DataFrame, a numpy array or fashionrec.io.ImageFeatures, not {type(features).__name__}")


def _categories(categories: Any, item_ids: np.ndarray) -> np.ndarray:
    """An int64 code per item (-1: none) from a Series / dict keyed by item id, or an array in
    item index order. Integer labels are the codes themselves (negative: none), so the model
    stores the codes the user gave and ``compatible_items(category=c)`` means the same ``c``;
    other hashable labels (strings) get codes in order of first appearance."""
    if isinstance(categories, np.ndarray) or isinstance(categories, list):
        labels = list(np.asarray(categories, dtype=object))
        if len(labels) != len(item_ids):
            raise ValueError(f"categories has {len(labels)} entries for {len(item_ids)} items (index order)")
    elif _keys(categories) is None:
        raise TypeError(
            f"categories must be an array or list in item index order, a pandas Series or a dict by item id, "
            f"not {type(categories).__name__}"
        )
    else:
        keys = _keys(categories)
        values = list(categories.values()) if isinstance(categories, dict) else list(categories.to_numpy())
        rows = _rows_of(item_ids, keys, "categories", "item")
        labels = [values[r] for r in rows]
    present = [x for x in labels if not (x is None or (isinstance(x, float) and np.isnan(x)))]
    if all(isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)) for x in present):
        out = np.array([-1 if x is None or (isinstance(x, float) and np.isnan(x)) else int(x) for x in labels], dtype=np.int64)
        out[out < 0] = -1
        return out
    codes: dict[Any, int] = {}
    out = np.empty(len(labels), dtype=np.int64)
    for k, label in enumerate(labels):
        if label is None or (isinstance(label, float) and np.isnan(label)):
            out[k] = -1
        else:
            out[k] = codes.setdefault(label, len(codes))
    return out
