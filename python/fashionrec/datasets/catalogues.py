"""Fashion catalogues with product photos.

* :func:`fashion_products`: the Myntra catalogue of Kaggle's "fashion-product-images-small"
  (``styles.csv``, ``styles_text.csv``, ``images/<id>.jpg``). No interactions: categories and
  images, for image towers and same-category negatives.
* :func:`hm`: H&M Personalized Fashion Recommendations (articles, customers, transactions,
  ``images/``), as the repository's Parquet sample or Kaggle's original CSV files.

Nothing is decoded here: images come back as an :class:`~fashionrec.images.ImageSource`
(file paths and item ids), decoded later by an image bank.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from .. import _core
from ..images import ImageSource
from ..interactions import Duplicates, Interactions, UnknownIds
from ..io._tabular import arrow_ids, csv_records
from .asos import read_parquet_columns

if TYPE_CHECKING:
    import pyarrow as pa

STYLES_COLUMNS = ("id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year", "usage")
MISSING = ("", "NA")
#: Rows per block of the styles / styles_text alignment check, and the least share of a
#: block's product names that must mention the row's baseColour. Where the real files line up,
#: every 200-row block has >= 81% such names; shifted by one row, every block has <= 17%.
ALIGN_BLOCK = 200
ALIGN_MIN_SHARE = 0.5


# -- fashion-product-images-small -------------------------------------------------------------


@dataclass(frozen=True)
class FashionProducts:
    """What :func:`fashion_products` returns.

    ``items``: one row per product of styles.csv, indexed by product ``id``: gender,
    masterCategory, subCategory, articleType, baseColour, season, usage (categorical; "" and
    "NA" are missing), year (nullable Int64), productDisplayName (from styles_text.csv; "NA" is
    missing) and ``has_image``. ``images``: the photos of the imaged products, sorted by id,
    ``images.ids`` their product ids. ``categories``: the chosen category column for the imaged
    products in ``images`` order (categorical over the categories present; ``.cat.codes``
    gives integer labels for same-category negatives).
    """

    items: pd.DataFrame
    images: ImageSource
    categories: pd.Series

    def __repr__(self) -> str:
        return (
            f"<FashionProducts: {len(self.items):,} products, {len(self.images):,} with images, "
            f"{len(self.categories.cat.categories)} {self.categories.name} categories>"
        )


def fashion_products(folder: str | os.PathLike, *, category: str = "articleType") -> FashionProducts:
    """The fashion-product-images-small catalogue: categories, names and photos.

    ``styles.csv`` (id, gender, masterCategory, subCategory, articleType, baseColour, season,
    year, usage) gives the rows; ``styles_text.csv`` holds productDisplayName for the same rows
    in the same order (one column). The two are checked to line up: equal row counts, and in
    every block of 200 rows most names mention the row's colour (a shifted file fails this).
    ``images/<id>.jpg`` are the photos; one whose id styles.csv lacks, or a file named
    otherwise, is an error naming it. A malformed row is an error naming file and line.

    Example::

        cat = fr.datasets.fashion_products("../shared/data/fashion-product-images-small")
        cat.items.loc[15970, "productDisplayName"]   # 'Turtle Check Men Navy Blue Shirt'
        cat.images, cat.categories.cat.codes         # 9,583 photos, their articleType labels
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (pass the fashion-product-images-small folder)")
    if category not in STYLES_COLUMNS[1:7] + ("usage",):
        raise ValueError(f"category must be one of {list(STYLES_COLUMNS[1:7]) + ['usage']}, not {category!r}")
    items, lines = _read_styles(folder / "styles.csv")
    items["productDisplayName"] = _read_names(folder / "styles_text.csv", items, lines)
    image_dir = folder / "images"
    ids, paths, others = _scan_images(image_dir, nested=False)
    if others:
        raise ValueError(f"{image_dir}: {others[0]!r} is not named <product id>.jpg ({len(others)} such files)")
    if len(ids) == 0:
        raise ValueError(f"{image_dir}: no <id>.jpg images")
    unknown = ~np.isin(ids, items.index.to_numpy())
    if unknown.any():
        k = int(np.argmax(unknown))
        raise ValueError(f"{paths[k]}: product {ids[k]} is not in {folder / 'styles.csv'} ({int(unknown.sum())} such images)")
    items["has_image"] = items.index.isin(ids)
    cats = items.loc[ids, category]
    categories = pd.Series(
        cats.to_numpy(), index=pd.Index(ids, name="id"), name=category, dtype=cats.dtype
    ).cat.remove_unused_categories()
    return FashionProducts(items, ImageSource.from_files(paths, ids=ids), categories)


def _read_styles(path: Path) -> tuple[pd.DataFrame, list[int]]:
    ids: list[int] = []
    lines: list[int] = []
    cols: list[list[str]] = [[] for _ in STYLES_COLUMNS[1:]]
    seen: dict[int, int] = {}
    for line, f in csv_records(path, STYLES_COLUMNS):
        try:
            pid = int(f[0])
        except ValueError:
            raise ValueError(f"{path}: line {line}, column 'id': {f[0]!r} is not an integer id") from None
        if pid in seen:
            raise ValueError(f"{path}: line {line}: id {pid} is already on line {seen[pid]}")
        seen[pid] = line
        ids.append(pid)
        lines.append(line)
        for c, v in zip(cols, f[1:]):
            c.append(v)
    if not ids:
        raise ValueError(f"{path}: no products (only a header)")
    frame = pd.DataFrame(index=pd.Index(np.asarray(ids, dtype=np.int64), name="id"))
    for name, values in zip(STYLES_COLUMNS[1:], cols):
        if name == "year":
            frame[name] = _years(path, values, lines)
        else:
            frame[name] = pd.Categorical([None if v in MISSING else v for v in values])
    return frame, lines


def _years(path: Path, values: list[str], lines: list[int]) -> pd.arrays.IntegerArray:
    out: list[object] = []
    for k, v in enumerate(values):
        if v in MISSING:
            out.append(pd.NA)
            continue
        try:
            out.append(int(v))
        except ValueError:
            raise ValueError(f"{path}: line {lines[k]}, column 'year': {v!r} is not a year") from None
    return pd.array(out, dtype="Int64")


def _read_names(path: Path, items: pd.DataFrame, style_lines: list[int]) -> pd.Series:
    """productDisplayName by row, checked to line up with styles.csv."""
    names: list[str] = []
    lines: list[int] = []
    for line, f in csv_records(path, ["productDisplayName"], blank_is_field=True):
        names.append(f[0])
        lines.append(line)
    styles = path.with_name("styles.csv")
    if len(names) != len(items):
        raise ValueError(
            f"{path}: {len(names)} product names for the {len(items)} rows of {styles}: the files must "
            "have one row per product, in the same order"
        )
    words = re.compile(r"[a-z]+")
    colour = items["baseColour"].astype(object).to_numpy()
    ok = np.full(len(names), np.nan)
    for k, (c, n) in enumerate(zip(colour, names)):
        if isinstance(c, str):
            ok[k] = set(words.findall(c.lower())) <= set(words.findall(n.lower()))
    for b in range(0, len(names), ALIGN_BLOCK):
        block = ok[b : b + ALIGN_BLOCK]
        if np.isfinite(block).sum() >= ALIGN_BLOCK // 4 and np.nanmean(block) < ALIGN_MIN_SHARE:
            end = min(b + ALIGN_BLOCK, len(names)) - 1
            raise ValueError(
                f"{path}: lines {lines[b]}..{lines[end]} do not line up with {styles} lines "
                f"{style_lines[b]}..{style_lines[end]}: only {np.nanmean(block):.0%} of these product names "
                f"mention the row's baseColour (where the files line up, over 80% do)"
            )
    return pd.Series([None if n in MISSING else n for n in names], index=items.index, dtype=object)


# -- images -----------------------------------------------------------------------------------


def _scan_images(folder: Path, nested: bool) -> tuple[np.ndarray, list[str], list[str]]:
    """(ids, paths, other files) of ``<digits>.jpg`` files in ``folder`` (and, with ``nested``,
    in its subfolders one level down, as Kaggle's H&M ``images/0xx/0xxxxxxxxx.jpg``), sorted by
    id. Hidden files are ignored; an id found twice is an error naming both files."""
    found: dict[int, str] = {}
    others: list[str] = []
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    dirs = [folder]
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    if nested:
        dirs += [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")]
    for d in dirs:
        with os.scandir(d) as it:
            for e in sorted(it, key=lambda e: e.name):
                if e.name.startswith(".") or e.is_dir():
                    continue
                stem, dot, ext = e.name.rpartition(".")
                if not (dot and ext.lower() in ("jpg", "jpeg") and stem.isdigit()):
                    others.append(e.path)
                    continue
                pid = int(stem)
                if pid in found:
                    raise ValueError(f"{e.path}: id {pid} already has the image {found[pid]}")
                found[pid] = e.path
    ids = np.asarray(sorted(found), dtype=np.int64)
    return ids, [found[int(i)] for i in ids], others


# -- H&M --------------------------------------------------------------------------------------

HM_FILES = {
    "articles": ("articles_sample.parquet", "articles.parquet", "articles.csv"),
    "customers": ("customers_sample.parquet", "customers.parquet", "customers.csv"),
    "transactions": ("transactions_sample.parquet", "transactions_train.parquet", "transactions_train.csv"),
}
HM_KEYS = {
    "articles": {"article_id": "int"},
    "customers": {"customer_id": "str"},
    "transactions": {"t_dat": "any", "customer_id": "str", "article_id": "int", "price": "float"},
}


@dataclass(frozen=True)
class HMData:
    """What :func:`hm` returns.

    ``items``: the articles, indexed by ``article_id``, plus ``has_image``. ``customers``:
    indexed by ``customer_id``. ``transactions``: one row per purchase (t_dat as datetime64,
    customer_id, article_id, price), as in the file. ``interactions``: customers x articles
    (every customer and article of the catalogues has an index), value = number of purchases
    of the pair. ``images``: photos of the articles that have one (ids = article ids, sorted),
    None when there is no ``images`` folder. ``report``: counts (transactions, pairs,
    repeated purchases merged, images, images dropped, other files skipped in ``images``).
    """

    items: pd.DataFrame
    customers: pd.DataFrame
    transactions: pd.DataFrame
    interactions: Interactions
    images: ImageSource | None
    report: dict[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        n = 0 if self.images is None else len(self.images)
        return (
            f"<HMData: {len(self.items):,} articles, {len(self.customers):,} customers, "
            f"{len(self.transactions):,} transactions, {n:,} images>"
        )


def hm(
    folder: str | os.PathLike,
    *,
    unknown: UnknownIds = "error",
    unknown_images: Literal["error", "drop"] = "error",
    duplicates: Duplicates = "sum",
) -> HMData:
    """H&M Personalized Fashion Recommendations: articles, customers, transactions, images.

    Reads ``articles``, ``customers`` and ``transactions`` from the Parquet sample
    (``*_sample.parquet``) or Kaggle's CSV files (``articles.csv``, ``customers.csv``,
    ``transactions_train.csv``; read with pyarrow). Images: ``images/<10-digit id>.jpg`` (flat)
    or Kaggle's ``images/0xx/0xxxxxxxxx.jpg``.

    A transaction whose customer or article the catalogues lack is an error naming the file,
    column and row (``unknown="drop"`` drops and counts it); so is an image of an unknown
    article (``unknown_images="drop"`` drops and counts it). Repeated purchases of a pair are
    summed into a count (``duplicates``); each purchase stays a row of ``transactions``.

    Example::

        data = fr.datasets.hm("../shared/data/hm-sample")
        data.interactions                  # customers x articles, value = purchases
        data.transactions.t_dat.min(), data.images
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (pass the H&M data folder)")
    paths = {name: _find(folder, name) for name in HM_FILES}
    tables = {name: _read_hm(paths[name], HM_KEYS[name]) for name in HM_FILES}
    items = _frame(tables["articles"], "article_id")
    customers = _frame(tables["customers"], "customer_id")
    for name, frame, key in (("articles", items, "article_id"), ("customers", customers, "customer_id")):
        dup = frame.index.duplicated()
        if dup.any():
            row = int(np.argmax(dup))
            raise ValueError(f"{paths[name]}: row {row}: {key} {frame.index[row]!r} is listed twice")
    tx = tables["transactions"]
    values = np.ones(tx.num_rows, dtype=np.float32)
    try:
        core, dropped = _core.Interactions.from_ids(
            arrow_ids(tx.column("customer_id"), "customer_id", paths["transactions"], "str"),
            arrow_ids(tx.column("article_id"), "article_id", paths["transactions"], "int"),
            values,
            user_ids=arrow_ids(tables["customers"].column("customer_id"), "customer_id", paths["customers"], "str"),
            item_ids=items.index.to_numpy(dtype=np.int64),
            unknown=unknown,
            duplicates=duplicates,
            user_col="customer_id",
            item_col="article_id",
            value_col="purchases",
        )
    except ValueError as e:
        raise ValueError(f"{paths['transactions']}: {e}") from None
    if dropped:
        warnings.warn(f"{paths['transactions']}: dropped {dropped} transactions with an unknown customer or article")
    interactions = Interactions(core)
    transactions = tx.to_pandas()
    transactions["t_dat"] = _dates(transactions["t_dat"], paths["transactions"])
    report = {
        "transactions": tx.num_rows,
        "dropped_unknown": int(dropped),
        "pairs": len(interactions),
        "merged_purchases": tx.num_rows - int(dropped) - len(interactions),
        "images": 0,
        "images_dropped": 0,
        "other_files": 0,
    }
    images = None
    image_dir = folder / "images"
    if image_dir.is_dir():
        ids, files, others = _scan_images(image_dir, nested=True)
        report["other_files"] = len(others)
        if others:
            warnings.warn(f"{image_dir}: skipped {len(others)} files not named <article_id>.jpg, e.g. {others[0]}")
        unknown_img = ~np.isin(ids, items.index.to_numpy())
        if unknown_img.any():
            k = int(np.argmax(unknown_img))
            if unknown_images == "error":
                raise ValueError(
                    f"{files[k]}: article {ids[k]} is not in {paths['articles']} ({int(unknown_img.sum())} such "
                    "images; pass unknown_images='drop' to leave them out)"
                )
            if unknown_images != "drop":
                raise ValueError(f"unknown_images must be 'error' or 'drop', not {unknown_images!r}")
            report["images_dropped"] = int(unknown_img.sum())
            warnings.warn(f"{image_dir}: dropped {report['images_dropped']} images of unknown articles, e.g. {files[k]}")
            files = [f for f, bad in zip(files, unknown_img) if not bad]
            ids = ids[~unknown_img]
        report["images"] = len(ids)
        if len(ids):
            images = ImageSource.from_files(files, ids=ids)
        items["has_image"] = items.index.isin(ids)
    else:
        items["has_image"] = False
    return HMData(items, customers, transactions, interactions, images, report)


def _find(folder: Path, name: str) -> Path:
    for candidate in HM_FILES[name]:
        if (folder / candidate).is_file():
            return folder / candidate
    raise FileNotFoundError(f"{folder}: no {name} file (looked for {', '.join(HM_FILES[name])})")


def _read_hm(path: Path, keys: dict[str, str]) -> pa.Table:
    if path.suffix == ".parquet":
        return read_parquet_columns(path, keys, all_columns=True)
    import pyarrow as pa
    import pyarrow.csv as pcsv

    types = {"article_id": pa.int64(), "customer_id": pa.string(), "t_dat": pa.string(), "price": pa.float64()}
    try:
        table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types={k: types[k] for k in keys}))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: {e}") from None
    missing = [k for k in keys if k not in table.column_names]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r} (columns: {table.column_names})")
    return table


def _frame(table: pa.Table, key: str) -> pd.DataFrame:
    return table.to_pandas().set_index(key)


def _dates(col: pd.Series, path: Path) -> pd.Series:
    out = pd.to_datetime(col, format="%Y-%m-%d", errors="coerce")
    bad = out.isna().to_numpy() & col.notna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"{path}: column 't_dat', row {row}: {col.iloc[row]!r} is not a date YYYY-MM-DD")
    return out
