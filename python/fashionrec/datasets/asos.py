"""ASOS DSF 2020 workshop data (github.com/ASOS/dsf2020): implicit feedback, no ratings.

Pass the folder holding the release's four files:

* ``dsf_asos_train_with_alphanumeric_dummy_ids.parquet`` and ``..._valid_...parquet``: columns
  ``dummyUserId`` (Parquet binary: 20-character alphanumeric ids, read as UTF-8 strings) and
  ``productId`` (int32);
* ``dsf_asos_dummy_users_with_alphanumeric_dummy_ids.csv`` and ``dsf_asos_productIds.csv``:
  headerless lists of every user id and every product id (the catalogues).

Nothing is downloaded; the files are read where they are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _core
from ..interactions import Duplicates, Interactions
from ..io._tabular import arrow_ids

if TYPE_CHECKING:
    import pyarrow as pa

TRAIN = "dsf_asos_train_with_alphanumeric_dummy_ids.parquet"
VALID = "dsf_asos_valid_with_alphanumeric_dummy_ids.parquet"
USERS = "dsf_asos_dummy_users_with_alphanumeric_dummy_ids.csv"
PRODUCTS = "dsf_asos_productIds.csv"
USER_COL = "dummyUserId"
ITEM_COL = "productId"


def asos(folder: str | os.PathLike, *, duplicates: Duplicates = "error") -> tuple[Interactions, Interactions]:
    """The ASOS workshop data as ``(train, valid)`` Interactions sharing one id map.

    User ids are strings (the catalogue's 43,607 users), item ids integers (its 29,696
    products), so users or products absent from a split still have an index. A user or product
    in a Parquet file that its catalogue lacks is a ValueError naming the file, column and row
    (0-based row of the Parquet table). The data have no repeated (user, product) rows; one is
    an error unless ``duplicates`` says how to merge it.

    Example::

        train, valid = fr.datasets.asos("../shared/data/asos-dsf2020")
        train          # <Interactions: 43,607 users x 29,696 items, 165,042 interactions>
        train.user_ids[:2], train.item_ids[:2]
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (pass the folder of the ASOS dsf2020 files)")
    users = _core.read_id_list(os.fspath(folder / USERS), "str", False)
    products = _core.read_id_list(os.fspath(folder / PRODUCTS), "int", False)
    train = _split(folder / TRAIN, duplicates, user_ids=users, item_ids=products)
    valid = _split(folder / VALID, duplicates, like=train)
    return train, valid


def _split(path: Path, duplicates: Duplicates, **ids: Any) -> Interactions:
    table = read_parquet_columns(path, {USER_COL: "str", ITEM_COL: "int"})
    u = arrow_ids(table.column(USER_COL), USER_COL, path, "str")
    i = arrow_ids(table.column(ITEM_COL), ITEM_COL, path, "int")
    if "like" in ids:
        ids["like"] = ids["like"]._core
    try:
        core, _ = _core.Interactions.from_ids(
            u, i, None, unknown="error", duplicates=duplicates, user_col=USER_COL, item_col=ITEM_COL, **ids
        )
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return Interactions(core)


def read_parquet_columns(path: str | os.PathLike, columns: dict[str, str], all_columns: bool = False) -> pa.Table:
    """The named columns of a Parquet file (every column with ``all_columns``). ``columns``
    maps each required name to what it must hold ("int", "str", "float", or "any"). A missing
    file, a file that is not Parquet (or is truncated), a missing column or a column of the
    wrong type is an error naming the file."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading Parquet files needs pyarrow: pip install pyarrow") from None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: not a readable Parquet file ({e})") from None
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r} (columns: {schema.names})")
    checks = {
        "int": pa.types.is_integer,
        "float": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
        "str": lambda t: any(
            f(t) for f in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
        ),
        "any": lambda t: True,
    }
    for name, kind in columns.items():
        t = schema.field(name).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if not checks[kind](t):
            want = {"int": "integers", "float": "numbers", "str": "strings"}[kind]
            raise ValueError(f"{path}: column {name!r} must hold {want}, found {t}")
    try:
        return pq.read_table(path, columns=None if all_columns else list(columns))
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: the Parquet data cannot be read ({e})") from None
