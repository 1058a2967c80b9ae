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


def indices(x: Any, name: str) -> tuple[np.ndarray, bool]:
    """Row or column indices given as argument ``name``: (a contiguous 1-D int64 array, whether
    ``x`` was a scalar). The one conversion for every index a user passes: integers only (a
    float is refused, never cast: ``1.5`` is not a row, and a float array of indices is usually
    a NaN-holding column upstream), no booleans, nothing beyond int64, one dimension. Range
    checks stay with the callee, which knows the length."""
    if isinstance(x, (list, tuple)) and not x:
        return np.zeros(0, dtype=np.int64), False
    arr = np.asarray(x)
    single = arr.ndim == 0
    if arr.ndim > 1:
        raise ValueError(f"{name}: expected one index or a 1-D array of them, got shape {arr.shape}")
    arr = arr.reshape(-1)
    kind = arr.dtype.kind
    if kind == "b" or (kind not in "iu" and arr.size):
        what = "booleans" if kind == "b" else str(arr.dtype)
        raise ValueError(f"{name}: indices must be integers, not {what} (convert with .astype(int) if meant)")
    if kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        row = int(np.argmax(arr > np.iinfo(np.int64).max))
        raise ValueError(f"{name}[{row}]: index {arr[row]} does not fit in int64")
    return np.ascontiguousarray(arr, dtype=np.int64), single


def numbers(x: Any, name: str, *, finite: bool = True) -> np.ndarray:
    """A float64 array of the numbers given as argument ``name``: anything else (strings,
    None, objects) and, with ``finite``, NaN or infinities are a ValueError naming ``name``."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must hold numbers ({e})") from None
    if finite and arr.size and not np.isfinite(arr).all():
        at = int(np.argmax(~np.isfinite(arr.ravel())))
        raise ValueError(f"{name}: element {at} is {arr.ravel()[at]} (NaN or infinite)")
    return arr


def image_array(x: Any, name: str, ndim: int) -> np.ndarray:
    """uint8 pixels given as argument ``name``: ``ndim`` dimensions, the last of 3 (RGB),
    values integers in 0..255 (a float or out-of-range value is refused, never wrapped)."""
    arr = np.asarray(x)
    if arr.ndim != ndim or arr.shape[-1] != 3:
        want = "(H, W, 3)" if ndim == 3 else "(N, H, W, 3)"
        raise ValueError(f"{name} must be uint8 RGB pixels {want}, got shape {arr.shape} of {arr.dtype}")
    if arr.dtype != np.uint8:
        if arr.dtype.kind not in "iu" or (arr.size and (arr.min() < 0 or arr.max() > 255)):
            raise ValueError(f"{name} must be uint8 pixels (integers 0..255), got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


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
