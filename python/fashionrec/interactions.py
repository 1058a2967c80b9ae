"""The :class:`Interactions` data model: users x items implicit feedback with raw-id maps."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np

from . import _core
from ._ids import id_column, ids_to_array, index_arg, indices, is_scalar, numbers

if TYPE_CHECKING:
    import pandas as pd

Duplicates = Literal["sum", "max", "last", "error"]
UnknownIds = Literal["error", "drop"]


class Interactions:
    """Implicit feedback: which users interacted with which items, optionally with a value
    (rating, count, weight) per pair.

    Held in Rust as a CSR matrix by user (and by item when needed). Raw ids, integers or
    strings, are mapped to indices 0..n in sorted order; ``user_ids`` / ``item_ids`` give
    them back. Splits and test sets built ``like=`` a training set share its id maps, so
    models and metrics see the same indices and results come back in raw ids.

    Build with :meth:`from_pandas`, :meth:`from_ids` (raw ids) or :meth:`from_arrays`
    (0-based indices). Pairs that occur more than once are merged as ``duplicates`` says.
    """

    __slots__ = ("_core", "_user_ids", "_item_ids")

    def __init__(self, core: _core.Interactions):
        if not isinstance(core, _core.Interactions):
            raise TypeError("use Interactions.from_pandas / from_ids / from_arrays to build Interactions")
        self._core = core
        self._user_ids: np.ndarray | None = None
        self._item_ids: np.ndarray | None = None

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        users: Sequence[int] | np.ndarray,
        items: Sequence[int] | np.ndarray,
        values: Sequence[float] | np.ndarray | None = None,
        n_users: int | None = None,
        n_items: int | None = None,
        duplicates: Duplicates = "sum",
    ) -> Interactions:
        """From 0-based integer indices; the ids are the indices themselves.

        ``n_users`` / ``n_items`` default to the largest index + 1. A negative or
        out-of-range index, a NaN value or empty input is a ValueError naming the row.
        """
        u = _index_array(users, "users")
        i = _index_array(items, "items")
        v = None if values is None else np.ascontiguousarray(numbers(values, "values", finite=False), dtype=np.float32)
        return cls(_core.Interactions.from_indices(u, i, v, n_users, n_items, duplicates))

    @classmethod
    def from_ids(
        cls,
        users: Any,
        items: Any,
        values: Any = None,
        *,
        like: Interactions | None = None,
        user_ids: Any = None,
        item_ids: Any = None,
        unknown: UnknownIds = "error",
        duplicates: Duplicates = "sum",
        user_col: str = "user",
        item_col: str = "item",
        value_col: str = "value",
    ) -> Interactions:
        """From raw ids (integers or strings, per side).

        The id maps are ``like``'s (to build a test set for a training set), else the given
        catalogues ``user_ids`` / ``item_ids`` (so users or items without interactions still
        get an index; each id listed once), else the sorted distinct ids of the data. An id outside a given map is
        a ValueError naming the column and row, or with ``unknown="drop"`` its row is dropped
        and a warning says how many were.
        """
        u = id_column(users, user_col)
        i = id_column(items, item_col)
        v = None if values is None else np.ascontiguousarray(numbers(values, "values", finite=False), dtype=np.float32)
        uc = None if user_ids is None else id_column(user_ids, "user_ids")
        ic = None if item_ids is None else id_column(item_ids, "item_ids")
        try:
            core, dropped = _core.Interactions.from_ids(
                u,
                i,
                v,
                like=None if like is None else like._core,
                user_ids=uc,
                item_ids=ic,
                unknown=unknown,
                duplicates=duplicates,
                user_col=user_col,
                item_col=item_col,
                value_col=value_col,
            )
        except ValueError as e:
            if like is None or "ids are" not in str(e):
                raise
            # The ids given and like='s are of different kinds: say which argument set them.
            raise ValueError(f"{e} (the id maps are like='s)") from None
        if dropped:
            warnings.warn(
                f"dropped {dropped} of {len(u)} rows whose {user_col!r} or {item_col!r} id is unknown",
                stacklevel=3,
            )
        return cls(core)

    @classmethod
    def from_pandas(
        cls,
        df: pd.DataFrame,
        user_col: str = "user_id",
        item_col: str = "item_id",
        value_col: str | None = None,
        *,
        like: Interactions | None = None,
        user_ids: Any = None,
        item_ids: Any = None,
        unknown: UnknownIds = "error",
        duplicates: Duplicates = "sum",
    ) -> Interactions:
        """From a DataFrame with a user id column, an item id column and optionally a value
        column (rating, count). Rows in error messages are 0-based positions in ``df``.
        See :meth:`from_ids` for ``like``, ``user_ids``, ``item_ids`` and ``unknown``."""
        given = [("user_col", user_col), ("item_col", item_col)] + ([("value_col", value_col)] if value_col is not None else [])
        for arg, c in given:
            if c not in df.columns:
                shown = repr(c) if len(repr(c)) <= 80 else repr(c)[:80] + "..."
                raise ValueError(f"{arg}={shown} is not a column of the DataFrame (columns: {list(df.columns)[:20]})")
        values = None
        if value_col is not None:
            col = df[value_col]
            if not np.issubdtype(col.dtype, np.number):
                raise ValueError(f"column {value_col!r} must be numeric, not {col.dtype}")
            values = col.to_numpy(dtype=np.float32, na_value=np.nan)
        return cls.from_ids(
            df[user_col],
            df[item_col],
            values,
            like=like,
            user_ids=user_ids,
            item_ids=item_ids,
            unknown=unknown,
            duplicates=duplicates,
            user_col=user_col,
            item_col=item_col,
            value_col=value_col or "value",
        )

    # -- shape and ids -------------------------------------------------------------------

    @property
    def n_users(self) -> int:
        return self._core.n_users

    @property
    def n_items(self) -> int:
        return self._core.n_items

    def __len__(self) -> int:
        """Number of distinct (user, item) pairs."""
        return len(self._core)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    @property
    def user_ids(self) -> np.ndarray:
        """Raw user ids in index order (int64, or object for string ids)."""
        if self._user_ids is None:
            self._user_ids = ids_to_array(self._core.user_ids())
            self._user_ids.setflags(write=False)
        return self._user_ids

    @property
    def item_ids(self) -> np.ndarray:
        """Raw item ids in index order (int64, or object for string ids)."""
        if self._item_ids is None:
            self._item_ids = ids_to_array(self._core.item_ids())
            self._item_ids.setflags(write=False)
        return self._item_ids

    def user_index(self, ids: Any) -> np.ndarray:
        """Indices (int64) of raw user ids; one index, a scalar, for one id given as a scalar.
        An unknown id is a ValueError naming it."""
        idx = index_arg(self._core.user_index, ids, "user_index(): ids")
        return idx[0] if is_scalar(ids) else idx

    def item_index(self, ids: Any) -> np.ndarray:
        """Indices (int64) of raw item ids; one index, a scalar, for one id given as a scalar.
        An unknown id is a ValueError naming it."""
        idx = index_arg(self._core.item_index, ids, "item_index(): ids")
        return idx[0] if is_scalar(ids) else idx

    @property
    def has_values(self) -> bool:
        return self._core.has_values()

    # -- views ---------------------------------------------------------------------------

    def items_of(self, user: Any) -> np.ndarray:
        """Raw ids of the items of one user (by raw user id)."""
        idx = int(index_arg(self._core.user_index, [user], "items_of(): user")[0])
        return self.item_ids[self._core.user_items(idx)]

    def item_counts(self) -> np.ndarray:
        """Interactions per item, in item index order."""
        return self._core.item_counts()

    def to_csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(indptr, indices, values or None) of the users x items CSR matrix
        (``scipy.sparse.csr_matrix((values, indices, indptr), shape)`` builds it)."""
        return self._core.csr()

    def to_pandas(self, raw_ids: bool = True) -> pd.DataFrame:
        """One row per (user, item) pair, with raw ids (or indices) and the value if any."""
        import pandas as pd

        u, i, v = self._core.coo()
        frame = {
            "user": self.user_ids[u] if raw_ids else u,
            "item": self.item_ids[i] if raw_ids else i,
        }
        if v is not None:
            frame["value"] = v
        return pd.DataFrame(frame)

    def same_ids(self, other: Interactions) -> bool:
        """True when ``other`` uses the same user and item id maps."""
        return self._core.same_ids(other._core)

    def __repr__(self) -> str:
        return f"<Interactions: {self.n_users:,} users x {self.n_items:,} items, {len(self):,} interactions>"


def _index_array(x: Any, column: str) -> np.ndarray:
    if np.ndim(x) != 1:
        raise ValueError(f"column '{column}': expected a 1-D array of indices, got shape {np.shape(x)}")
    return indices(x, f"column '{column}'")[0]
