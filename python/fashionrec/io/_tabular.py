"""Delimited interaction files (CSV, TSV, ...) and id lists, read in Rust; plus the helpers the
data set loaders share (Arrow id columns, small metadata CSVs checked line by line)."""

from __future__ import annotations

import csv
import io
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Sequence, overload

import numpy as np

from .. import _core
from .._ids import id_column, ids_to_array
from ..interactions import Duplicates, Interactions, UnknownIds

if TYPE_CHECKING:
    import pyarrow as pa

IdType = Literal["auto", "int", "str"]


@dataclass(frozen=True)
class CsvReport:
    """What :func:`read_interactions_csv` read, dropped and kept.

    Every row a filter dropped is counted once, under the first filter that dropped it, in the
    order ``min_value``, ``drop_values``, ``keep_items``/``drop_items``, ``min_item_rows``, then
    unknown ids (``unknown="drop"``). ``kept`` rows went into the interactions, where repeated
    (user, item) pairs became ``pairs`` entries (``merged_duplicates`` = kept - pairs).
    """

    path: str
    rows: int
    blank_lines: int
    dropped_min_value: int
    dropped_values: int
    dropped_items: int
    dropped_min_item_rows: int
    items_below_min_rows: int
    dropped_unknown: int
    kept: int
    pairs: int
    user_type: str
    item_type: str
    parallel: bool

    @property
    def dropped(self) -> int:
        """Rows dropped by all filters together."""
        return self.rows - self.kept

    @property
    def merged_duplicates(self) -> int:
        return self.kept - self.pairs

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        parts = [
            f"{n} {what}"
            for n, what in [
                (self.dropped_min_value, "below min_value"),
                (self.dropped_values, "with a value in drop_values"),
                (self.dropped_items, "by keep_items/drop_items"),
                (self.dropped_min_item_rows, f"of {self.items_below_min_rows} items below min_item_rows"),
                (self.dropped_unknown, "with unknown ids"),
            ]
            if n
        ]
        dropped = "; dropped " + ", ".join(parts) if parts else ""
        merged = f"; {self.merged_duplicates} repeated pairs merged" if self.merged_duplicates else ""
        return f"{self.path}: {self.rows:,} rows, kept {self.kept:,} ({self.pairs:,} pairs){dropped}{merged}"


def _column(c: Any, what: str, header: bool) -> str | int:
    if isinstance(c, (bool, np.bool_)) or not isinstance(c, (str, int, np.integer)):
        raise TypeError(f"{what} must be a column name (str) or a 0-based position (int), not {c!r}")
    if isinstance(c, (int, np.integer)):
        if c < 0:
            raise ValueError(f"{what}={c}: positions are 0-based and non-negative")
        return int(c)
    if not header:
        raise ValueError(f"{what}={c!r}: a file without a header takes columns by 0-based position")
    return c


def _ids_arg(x: Any, what: str) -> Any:
    if x is None:
        return None
    if isinstance(x, (set, frozenset)):
        x = sorted(x, key=lambda v: (isinstance(v, str), v))
    if isinstance(x, _core.Utf8Column):
        return x
    return id_column(x, what)


@overload
def read_interactions_csv(
    path: str | os.PathLike,
    user_col: str | int = ...,
    item_col: str | int = ...,
    value_col: str | int | None = ...,
    *,
    header: bool = ...,
    delimiter: str = ...,
    user_type: IdType = ...,
    item_type: IdType = ...,
    min_value: float | None = ...,
    drop_values: float | Sequence[float] = ...,
    keep_items: Any = ...,
    drop_items: Any = ...,
    min_item_rows: int | None = ...,
    like: Interactions | None = ...,
    user_ids: Any = ...,
    item_ids: Any = ...,
    unknown: UnknownIds = ...,
    duplicates: Duplicates = ...,
    report: Literal[False] = ...,
) -> Interactions: ...


@overload
def read_interactions_csv(
    path: str | os.PathLike,
    user_col: str | int = ...,
    item_col: str | int = ...,
    value_col: str | int | None = ...,
    *,
    header: bool = ...,
    delimiter: str = ...,
    user_type: IdType = ...,
    item_type: IdType = ...,
    min_value: float | None = ...,
    drop_values: float | Sequence[float] = ...,
    keep_items: Any = ...,
    drop_items: Any = ...,
    min_item_rows: int | None = ...,
    like: Interactions | None = ...,
    user_ids: Any = ...,
    item_ids: Any = ...,
    unknown: UnknownIds = ...,
    duplicates: Duplicates = ...,
    report: Literal[True],
) -> tuple[Interactions, CsvReport]: ...


def read_interactions_csv(
    path: str | os.PathLike,
    user_col: str | int = "user_id",
    item_col: str | int = "item_id",
    value_col: str | int | None = None,
    *,
    header: bool = True,
    delimiter: str = ",",
    user_type: IdType = "auto",
    item_type: IdType = "auto",
    min_value: float | None = None,
    drop_values: float | Sequence[float] = (),
    keep_items: Any = None,
    drop_items: Any = None,
    min_item_rows: int | None = None,
    like: Interactions | None = None,
    user_ids: Any = None,
    item_ids: Any = None,
    unknown: UnknownIds = "error",
    duplicates: Duplicates = "sum",
    report: bool = False,
) -> Interactions | tuple[Interactions, CsvReport]:
    """Read a delimited interaction file (CSV, TSV, ...) into :class:`Interactions`, in Rust.

    The file is parsed in parallel when it has no quote character, else in one quote-aware
    pass (RFC 4180); CRLF, a UTF-8 BOM and a missing final newline are fine, blank lines are
    skipped and counted. No row becomes a Python object, so a 7.8M-line rating file reads in
    about a second and the filters below cost nothing extra.

    Columns are header names, or 0-based positions (required with ``header=False``). Ids are
    integers when every id of the column is one (``"auto"``), else strings kept exactly as
    written; force either with ``user_type`` / ``item_type``. ``value_col`` (rating, count) is
    parsed as a number and kept as the value.

    Filters, applied while reading, each counted in the report: ``min_value`` keeps rows whose
    value is >= it; ``drop_values`` drops rows with one of these values (e.g. ``-1``);
    ``keep_items`` / ``drop_items`` keep or drop rows by item id; ``min_item_rows`` then drops
    the items with fewer rows (and removes them from a given ``item_ids`` catalogue).

    Id maps: ``like`` (a training set, to read its test set), else the catalogues ``user_ids``
    / ``item_ids`` (all users / items, e.g. from :func:`read_id_list`), else the ids of the
    rows kept. An id a given map does not know is a ValueError naming the line, or with
    ``unknown="drop"`` its row is dropped (a warning says how many). Repeated (user, item)
    pairs are merged as ``duplicates`` says (``"sum"`` turns a log into counts).

    Errors name the file, the line, the column and the value, e.g.
    ``rating.csv: line 1234, column 'rating': 'abc' is not a number``.

    With ``report=True`` returns ``(interactions, CsvReport)``.

    Example::

        ratings, rep = fr.io.read_interactions_csv(
            "rating.csv", "user_id", "anime_id", "rating", drop_values=[-1], report=True)
        print(rep)   # rating.csv: rows read, kept, pairs; what each filter dropped
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a file")
    if min_value is not None and not np.isfinite(min_value):
        raise ValueError(f"min_value must be a finite number, not {min_value!r}")
    if like is not None and (user_ids is not None or item_ids is not None):
        raise ValueError("give like= or the catalogues user_ids/item_ids, not both")
    if like is not None and not isinstance(like, Interactions):
        raise TypeError(f"like must be an Interactions, not {type(like).__name__}")
    if min_item_rows is not None and (int(min_item_rows) != min_item_rows or min_item_rows < 1):
        raise ValueError(f"min_item_rows must be a positive integer, not {min_item_rows!r}")
    drops = [float(v) for v in np.atleast_1d(np.asarray(drop_values, dtype=np.float64))]
    if (min_value is not None or drops) and value_col is None:
        raise ValueError("min_value and drop_values filter on the value: give value_col too")
    core, rep = _core.read_interactions_csv(
        os.fspath(path),
        _column(user_col, "user_col", header),
        _column(item_col, "item_col", header),
        None if value_col is None else _column(value_col, "value_col", header),
        header=header,
        delimiter=delimiter,
        user_type=user_type,
        item_type=item_type,
        min_value=None if min_value is None else float(min_value),
        drop_values=drops,
        keep_items=_ids_arg(keep_items, "keep_items"),
        drop_items=_ids_arg(drop_items, "drop_items"),
        min_item_rows=None if min_item_rows is None else int(min_item_rows),
        like=None if like is None else like._core,
        user_ids=_ids_arg(user_ids, "user_ids"),
        item_ids=_ids_arg(item_ids, "item_ids"),
        unknown=unknown,
        duplicates=duplicates,
    )
    result = CsvReport(path=str(path), **rep)
    if result.dropped_unknown:
        warnings.warn(
            f"{path}: dropped {result.dropped_unknown} rows whose user or item id is unknown (unknown='drop')",
            stacklevel=3,
        )
    data = Interactions(core)
    return (data, result) if report else data


def read_id_list(path: str | os.PathLike, *, id_type: IdType = "auto", header: bool = False) -> np.ndarray:
    """Ids listed one per line (e.g. the ASOS catalogues of all users / all products), in file
    order: int64, or an object array of str (``id_type="auto"`` picks int when every line is
    one). Pass them as ``user_ids`` / ``item_ids`` so every listed id gets an index. A blank
    line or an id listed twice is a ValueError naming the lines; ``header=True`` skips line 1.

    Example::

        products = fr.io.read_id_list("dsf_asos_productIds.csv")   # int64, 29,696 ids
    """
    return ids_to_array(_core.read_id_list(os.fspath(path), id_type, header))


# -- helpers shared by the data set loaders ---------------------------------------------------


def arrow_ids(
    column: pa.ChunkedArray | pa.Array, name: str, source: str | os.PathLike, kind: Literal["int", "str", "any"] = "any"
) -> np.ndarray | _core.Utf8Column:
    """A pyarrow id column as the core takes it: an int64 array for integer ids, a
    :class:`_core.Utf8Column` (Arrow's offsets + bytes, no Python str per id) for string or
    binary ids. A null, or the wrong kind of column, is a ValueError naming source, column and row.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    view = [getattr(pa.types, f"is_{k}_view", None) for k in ("string", "binary")]
    if any(f is not None and f(arr.type) for f in view):  # views have no offsets buffer
        arr = arr.cast(pa.large_binary())
    if arr.null_count:
        row = int(pc.index(arr.is_null(), True).as_py())
        raise ValueError(f"{source}: column {name!r}, row {row}: the id is missing (null)")
    t = arr.type
    if pa.types.is_integer(t) and kind in ("int", "any"):
        return np.ascontiguousarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)
    text_types = (pa.types.is_binary, pa.types.is_string, pa.types.is_large_binary, pa.types.is_large_string)
    if any(f(t) for f in text_types) and kind in ("str", "any"):
        large = pa.types.is_large_binary(t) or pa.types.is_large_string(t)
        _, offsets_buf, data_buf = arr.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int64 if large else np.int32)
        offsets = offsets[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
        data = np.zeros(0, np.uint8) if data_buf is None else np.frombuffer(data_buf, dtype=np.uint8)
        return _core.Utf8Column(offsets, data)
    want = {"int": "integer ids", "str": "string ids", "any": "integer or string ids"}[kind]
    raise ValueError(f"{source}: column {name!r} must hold {want}, found {t}")


_MAGIC = {
    b"PAR1": "a Parquet file",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x89PNG": "a PNG image",
    b"\x1f\x8b": "gzip-compressed",
    b"PK\x03\x04": "a zip archive",
}


def read_text(path: str | os.PathLike) -> str:
    """A small text file as str (UTF-8, BOM dropped); a missing, binary or non-UTF-8 file is an
    error naming the file (and the line of a bad byte)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    if not data:
        raise ValueError(f"{path}: the file is empty")
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            raise ValueError(f"{path}: this is {what}, not delimited text")
    nul = data.find(b"\x00", 0, 1 << 16)
    if nul >= 0:
        raise ValueError(f"{path}: binary data (a NUL byte at offset {nul}), not delimited text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}: line {line}: bytes that are not UTF-8 ({e.reason})") from None


def csv_records(
    path: str | os.PathLike, columns: Sequence[str], blank_is_field: bool = False
) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) of a small CSV whose header must be ``columns``; a record with another
    number of fields is a ValueError naming the file and line. Quoting as in RFC 4180. Blank
    lines hold no record, except with ``blank_is_field`` (a one-column file, where a blank
    line is an empty value and skipping it would shift every later row)."""
    path = Path(path)
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    try:
        head = next(reader)
    except StopIteration:
        raise ValueError(f"{path}: the file is empty") from None
    except csv.Error as e:
        raise ValueError(f"{path}: line 1: {e}") from None
    if head != list(columns):
        raise ValueError(f"{path}: line 1: expected the header {','.join(columns)!r}, found {','.join(head)!r}")
    n = len(columns)
    line = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ValueError(f"{path}: line {line}: {e}") from None
        if not fields and blank_is_field:
            fields = [""]
        if fields:
            if len(fields) != n:
                hint = " (a truncated line?)" if len(fields) < n else ""
                raise ValueError(f"{path}: line {line}: expected {n} fields, found {len(fields)}{hint}")
            yield line, fields
        line = reader.line_num + 1


def write_int_csv(path: str | os.PathLike, columns: dict[str, Any]) -> Path:
    """Integer columns as a CSV with a header (fast: formatted in Rust). For synthetic files."""
    arrays = [np.ascontiguousarray(v, dtype=np.int64) for v in columns.values()]
    _core.write_int_csv(os.fspath(path), list(columns), arrays)
    return Path(path)
