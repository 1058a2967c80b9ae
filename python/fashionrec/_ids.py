"""Normalising id columns (pandas Series, numpy arrays, lists, scalars) for the Rust core.

The core takes integer ids as an int64 array and string ids as a list of str. Anything else
(NaN, None, mixed types, non-integral floats) is a ValueError naming the column and the row.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def id_column(values: Any, column: str, *, arg: bool = False) -> np.ndarray | list[str]:
    """``values`` as an int64 array (integer ids) or a list of str (string ids).

    Errors name ``column`` and the row ("column 'user_id', row 3: ..."), or with ``arg=True``
    the argument of a call and the position ("score(): users[3]: ...")."""
    if arg:
        try:
            return id_column(values, column)
        except ValueError as e:
            raise ValueError(_as_argument(str(e), column)) from None
    if hasattr(values, "cat") and hasattr(values, "dtype") and str(values.dtype) == "category":
        values = values.astype(values.cat.categories.dtype)
    if isinstance(values, (list, tuple)):
        _check_same_kind(values, column)  # numpy would turn [1, "a"] into strings silently
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"column '{column}': ids must be one-dimensional, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind == "b":
        raise ValueError(f"column '{column}': ids must be integers or strings, not booleans")
    if kind in "iu":
        if kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            row = int(np.argmax(arr > np.iinfo(np.int64).max))
            raise ValueError(f"column '{column}', row {row}: id {arr[row]} does not fit in int64")
        return np.ascontiguousarray(arr, dtype=np.int64)
    if kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"column '{column}', row {row}: id is {arr[row]} (missing or not finite)")
        frac = arr != np.floor(arr)
        if frac.any():
            row = int(np.argmax(frac))
            raise ValueError(f"column '{column}', row {row}: id {arr[row]} is not an integer")
        return arr.astype(np.int64)
    if kind in "US":
        return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in arr.tolist()]
    if kind == "O":
        return _object_ids(arr.tolist(), column)
    raise ValueError(f"column '{column}': ids must be integers or strings, not {arr.dtype}")


def _as_argument(message: str, arg: str) -> str:
    """A column's message ("column 'c', row 3: ...", "column 'c': ...") as an argument's."""
    row = f"column '{arg}', row "
    if message.startswith(row):
        n, _, rest = message[len(row):].partition(":")
        return f"{arg}[{n}]:{rest}"
    whole = f"column '{arg}'"
    return arg + message[len(whole):] if message.startswith(whole) else message


def index_arg(index: Any, ids: Any, arg: str) -> np.ndarray:
    """Indices of the raw ids ``ids`` given as argument ``arg`` of a call ("score(): users")
    by the core's ``user_index`` / ``item_index``; errors name the argument and position."""
    return index(id_column(ids, arg, arg=True), arg)


_TEXT = (str, bytes, np.str_, np.bytes_)


def _check_same_kind(values: list | tuple, column: str) -> None:
    """Error unless every element of a list is text or every one is not (row 0 decides)."""
    if not values:
        return
    text = isinstance(values[0], _TEXT)
    for row, x in enumerate(values):
        if isinstance(x, _TEXT) != text:
            shown = repr(x)
            shown = shown if len(shown) <= 100 else shown[:100] + "..."
            kind = "a string" if text else "a number"
            raise ValueError(f"column '{column}', row {row}: {shown} is not {kind} id like row 0 (a list mixing types)")


def _object_ids(items: list[Any], column: str) -> np.ndarray | list[str]:
    if not items:
        return np.zeros(0, dtype=np.int64)
    first = items[0]
    if isinstance(first, (bool, np.bool_)):
        raise ValueError(f"column '{column}', row 0: ids must be integers or strings, not booleans")
    if isinstance(first, (int, np.integer)):
        for row, x in enumerate(items):
            if not isinstance(x, (int, np.integer)) or isinstance(x, (bool, np.bool_)):
                raise ValueError(f"column '{column}', row {row}: {x!r} is not an integer id like row 0")
        return np.asarray(items, dtype=np.int64)
    out: list[str] = []
    for row, x in enumerate(items):
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, bytes):
            try:
                out.append(x.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise ValueError(f"column '{column}', row {row}: id bytes are not UTF-8 ({e})") from None
        else:
            what = "missing (None/NaN)" if x is None or (isinstance(x, float) and x != x) else repr(x)
            raise ValueError(f"column '{column}', row {row}: id {what} is not a string like row 0")
    return out


def ids_to_array(ids: Any) -> np.ndarray:
    """Core ids (int64 array or list of str) as a numpy array (int64, or object for str)."""
    if isinstance(ids, list):
        out = np.empty(len(ids), dtype=object)
        out[:] = ids
        return out
    return np.asarray(ids)


def is_scalar(x: Any) -> bool:
    return np.ndim(x) == 0
