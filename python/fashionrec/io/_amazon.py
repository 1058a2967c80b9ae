"""Amazon product metadata (``meta_<Category>.json.gz``) and the compatibility edges in it.

Two layouts, one record per line, gzip or plain text:

* 2014 (McAuley et al.): Python 2 ``str(dict)`` output, not JSON::

    {'asin': '0000031852', 'title': 'Girls Ballet Tutu', 'price': 3.17, 'imUrl': 'http://...jpg',
     'related': {'also_bought': ['B00JHONN1S'], 'also_viewed': [...], 'bought_together': [...]},
     'salesRank': {'Toys & Games': 211836}, 'brand': 'Coxlure', 'categories': [['Sports', 'Dance']]}

  (double quotes when the text holds a single quote, ``\\xNN`` escapes for UTF-8 bytes,
  sometimes ``u'...'``). Parsed by a Rust literal parser, never ``eval``.
* 2018 (Ni et al.): JSON lines with ``also_buy``, ``also_view``, ``category`` (one flat path),
  ``main_cat``, ``price`` as text (``"$12.99"``), ``imageURL`` / ``imageURLHighRes`` lists.
"""

from __future__ import annotations

import gzip as _gzip
import json
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Literal, Mapping, Sequence

import numpy as np

from .. import _core
from .._files import replacing
from .._ids import id_column

if TYPE_CHECKING:
    import pandas as pd

    from ._features import ImageFeatures

MetaFormat = Literal["auto", "python", "json"]
OnError = Literal["raise", "skip"]

#: The relation columns of :func:`read_amazon_metadata`, and the names the 2018 files use.
RELATIONS = ("also_bought", "also_viewed", "bought_together", "buy_after_viewing")
_ALIASES = {"also_buy": "also_bought", "also_view": "also_viewed"}


def read_amazon_metadata(
    path: str | os.PathLike[str],
    *,
    format: MetaFormat = "auto",
    on_error: OnError = "raise",
    description: bool = False,
) -> pd.DataFrame:
    """Read an Amazon metadata file (2014 Python-literal lines or 2018 JSON lines).

    The file may be gzip (detected by its first bytes; multi-member is fine) or plain text.
    Decompression streams on one thread while the lines are parsed in parallel in Rust.

    Returns one row per non-blank line, in file order, with the columns:

    ========================  =============================================================
    ``asin``                  str
    ``title``, ``brand``      str, missing when absent
    ``price``                 float; NaN when absent or not a number (2018 prices are text:
                              ``"$1,234.56"`` is read, a range or anything else is NaN)
    ``categories``            list of category paths (lists of str, root first); a 2018
                              ``category`` list is one path
    ``also_bought``,          lists of ASINs (empty when absent); 2018 ``also_buy`` /
    ``also_viewed``,          ``also_view`` fill the first two
    ``bought_together``,
    ``buy_after_viewing``
    ``sales_rank``            dict {category: rank}: 2014 ``salesRank``, or the 2018 ``rank``
                              texts of the form ``"1,234 in Category (..."`` (others are left
                              out, like an unparseable price)
    ``main_cat``              str (2018), missing otherwise
    ``image_url``             2014 ``imUrl``; 2018 first of ``imageURLHighRes``, else of
                              ``imageURL``
    ``description``           only with ``description=True`` (it is most of the text)
    ========================  =============================================================

    ASIN strings are shared between rows (one Python object per distinct ASIN), which keeps
    the related lists small in memory. ``df.attrs`` holds ``path``, ``format`` (the dialect
    found: ``"python"`` or ``"json"``), ``lines`` and ``skipped``.

    Args:
        format: ``"auto"`` decides by the first record (JSON if it is valid JSON, else Python
            literal), and reads a later line that fails in that dialect but parses in the other
            in the other; ``"python"`` / ``"json"`` use one dialect (strict JSON: no NaN).
        on_error: ``"raise"``: a malformed line (bad syntax, a field of the wrong type, no
            ``asin``) is a ValueError naming the file, the line, the byte column and the reason.
            ``"skip"``: such lines are left out, listed in ``df.attrs["skipped"]`` as
            ``(line, message)``, and a warning says how many. A truncated or corrupt gzip
            stream is an error either way (it names how far the reading got).
        description: also read the ``description`` column.

    Example::

        meta = fr.io.read_amazon_metadata("meta_Clothing_Shoes_and_Jewelry.json.gz")
        meta[["asin", "title", "price"]].head()
    """
    import pandas as pd

    if format not in ("auto", "python", "json"):
        raise ValueError(f"format must be 'auto', 'python' or 'json', not {format!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    out = _core.read_amazon_metadata(os.fspath(path), format=format, on_error=on_error, description=description)
    df = pd.DataFrame(out["columns"])
    skipped = [(int(line), str(msg)) for line, msg in out["skipped"]]
    df.attrs.update(path=os.fspath(path), format=out["format"], lines=out["lines"], skipped=skipped)
    if skipped:
        line, msg = skipped[0]
        warnings.warn(
            f"{os.fspath(path)}: skipped {len(skipped)} malformed line(s) (the first: line {line}, {msg}); "
            "they are listed in df.attrs['skipped']",
            stacklevel=3,
        )
    return df


@dataclass(frozen=True)
class CompatibilityPairs:
    """Edges ``record -> related ASIN`` as index pairs into an ASIN list.

    ``i, j = pairs`` unpacks the two int64 arrays. Every edge read is counted in exactly one
    of ``kept``, ``missing_source`` (the record's ASIN is not in the list), ``missing_target``
    (the related ASIN is not in it), ``self_loops`` and ``duplicates`` (exact repeats of a kept
    edge, e.g. an ASIN in both ``also_bought`` and ``bought_together``).
    """

    i: np.ndarray
    j: np.ndarray
    relations: tuple[str, ...]
    edges: int
    kept: int
    missing_source: int
    missing_target: int
    self_loops: int
    duplicates: int

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.i, self.j))

    def __len__(self) -> int:
        return self.kept

    def __repr__(self) -> str:
        return (
            f"CompatibilityPairs({self.kept} pairs from {self.edges} {'+'.join(self.relations)} edges; dropped: "
            f"{self.missing_source} whose record is not in asins, {self.missing_target} whose related ASIN is not, "
            f"{self.self_loops} self-loops, {self.duplicates} duplicates)"
        )


def compatibility_pairs(
    meta: pd.DataFrame | Mapping[str, Any],
    asins: Sequence[str] | ImageFeatures | Any,
    relation: str | Sequence[str] = "also_bought",
) -> CompatibilityPairs:
    """Index pairs ``(i, j)`` into ``asins`` for every edge ``meta.asin -> related ASIN``.

    Only edges with both ends in ``asins`` (for example the ASINs of an image-feature file)
    are kept; exact duplicate edges are merged and self-loops dropped. The result unpacks as
    ``i, j`` and reports how many edges were dropped and why (see
    :class:`CompatibilityPairs`; no warning is raised: with real data most related ASINs are
    outside any one feature file). Pairs are sorted by (i, j). The lookup runs in Rust.

    Args:
        meta: the DataFrame of :func:`read_amazon_metadata` (or any mapping with an ``asin``
            column and the relation columns, each cell a list of ASINs or missing).
        asins: the ASIN list that defines the indices (a list, array or Series of str, or an
            :class:`ImageFeatures`). A repeated ASIN keeps its first index.
        relation: one of ``also_bought``, ``also_viewed``, ``bought_together``,
            ``buy_after_viewing`` (the 2018 names ``also_buy`` / ``also_view`` work too), or a
            list of them (edges of all of them, merged).

    Example::

        feats = fr.io.ImageFeatures("image_features_Clothing.b")
        meta = fr.io.read_amazon_metadata("meta_Clothing.json.gz")
        i, j = fr.io.compatibility_pairs(meta, feats, ["also_bought", "bought_together"])
    """
    names = [relation] if isinstance(relation, str) else list(relation)
    if not names:
        raise ValueError("relation is empty: name at least one of " + ", ".join(RELATIONS))
    columns = []
    for name in names:
        col = _ALIASES.get(name, name)
        if col not in RELATIONS:
            raise ValueError(f"unknown relation {name!r}: expected one of {', '.join(RELATIONS)}")
        if col not in meta:
            raise ValueError(f"meta has no column {col!r}")
        if col not in columns:
            columns.append(col)
    if "asin" not in meta:
        raise ValueError("meta has no column 'asin'")
    from ._features import ImageFeatures

    keys = asins.asins if isinstance(asins, ImageFeatures) else asins
    ids = id_column(keys, "asins")
    if not isinstance(ids, list):
        if len(ids):
            raise TypeError("asins must be strings")
        ids = []
    sources = _as_list(meta["asin"])
    related = [(col, _as_list(meta[col])) for col in columns]
    i, j, counts = _core.compatibility_pairs(sources, related, ids)
    return CompatibilityPairs(i=i, j=j, relations=tuple(columns), **counts)


def parse_literal(text: str | bytes, dialect: Literal["python", "json"] = "python") -> Any:
    """One Python literal (``ast.literal_eval`` syntax plus Python 2 forms: ``u'...'``,
    ``0L``, byte strings whose ``\\xNN`` escapes are UTF-8 bytes) or one strict JSON value,
    parsed in Rust without ``eval``. A malformed text is a ValueError ``"text: byte N: reason"``.

    Example::

        fr.io.parse_literal("{'title': 'Don\\xe2\\x80\\x99t', 'shape': (6,)}")
        # {'title': 'Don’t', 'shape': (6,)}
    """
    try:
        return _core.parse_literal(text, dialect)
    except ValueError as e:
        raise ValueError(f"text: {e}") from None


def _as_list(column: Any) -> list[Any]:
    return column.tolist() if hasattr(column, "tolist") else list(column)


# -- writing ---------------------------------------------------------------------------------


def write_amazon_metadata(
    path: str | os.PathLike[str],
    records: Iterable[Mapping[str, Any]],
    format: Literal["python", "json"] = "python",
    gzip: bool = True,
) -> None:
    """Write records in the real layouts (for tests, examples and synthetic data).

    ``format="python"`` writes the 2014 layout: each record as Python 2 printed it
    (``str(dict)``), strings as Python 2 byte strings: UTF-8 bytes outside printable ASCII as
    ``\\xNN`` escapes, single quotes unless the text holds a single quote and no double quote.
    ``format="json"`` writes JSON lines (``json.dumps``, ASCII-escaped) like the 2018 files.
    Key order is the records' own. ``gzip=True`` compresses (the real files are ``.json.gz``).

    Example::

        fr.io.write_amazon_metadata("meta_Toy.json.gz", [
            {"asin": "0000031852", "title": "Girls' Tutu", "price": 3.17,
             "related": {"also_bought": ["B00JHONN1S"]}, "categories": [["Toys", "Dance"]]},
        ])
    """
    if format not in ("python", "json"):
        raise ValueError(f"format must be 'python' or 'json', not {format!r}")
    render = _py2_repr if format == "python" else json.dumps
    opener = _gzip.open if gzip else open
    # A new file renamed over the old one: a reader of the old file keeps its bytes.
    with replacing(path) as tmp, opener(tmp, "wb") as out:  # type: ignore[operator]
        for n, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                raise TypeError(f"record {n}: expected a dict, got {type(rec).__name__}")
            out.write(render(dict(rec)).encode("utf-8") + b"\n")


def _py2_str(s: str | bytes) -> str:
    """``repr`` of a Python 2 byte string holding ``s`` (UTF-8 encoded)."""
    if isinstance(s, str) and s.isascii() and s.isprintable() and "\\" not in s:
        # Fast path: nothing to escape unless the text holds both kinds of quote.
        if "'" not in s:
            return "'" + s + "'"
        if '"' not in s:
            return '"' + s + '"'
    data = s.encode("utf-8") if isinstance(s, str) else s
    quote = '"' if b"'" in data and b'"' not in data else "'"
    parts = []
    for b in data:
        c = chr(b)
        if c == "\\" or c == quote:
            parts.append("\\" + c)
        elif c == "\t":
            parts.append("\\t")
        elif c == "\n":
            parts.append("\\n")
        elif c == "\r":
            parts.append("\\r")
        elif 0x20 <= b < 0x7F:
            parts.append(c)
        else:
            parts.append(f"\\x{b:02x}")
    return quote + "".join(parts) + quote


def _py2_repr(obj: Any) -> str:
    if obj is None or isinstance(obj, bool):
        return repr(obj)
    if isinstance(obj, (int, np.integer)):
        return repr(int(obj))
    if isinstance(obj, (float, np.floating)):
        return repr(float(obj))
    if isinstance(obj, (str, bytes)):
        return _py2_str(obj)
    if isinstance(obj, Mapping):
        return "{" + ", ".join(f"{_py2_repr(k)}: {_py2_repr(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, tuple):
        inner = ", ".join(_py2_repr(x) for x in obj)
        return "(" + inner + ("," if len(obj) == 1 else "") + ")"
    if isinstance(obj, (list, np.ndarray)):
        return "[" + ", ".join(_py2_repr(x) for x in obj) + "]"
    raise TypeError(f"cannot write a {type(obj).__name__} as a Python literal")
