"""MovieLens 100k (GroupLens, https://grouplens.org/datasets/movielens/100k/).

Reads the release's own files: ``u.data`` and the splits ``u1.base``/``u1.test`` ...
``u5``, ``ua``, ``ub`` (tab-separated user, item, rating, timestamp), ``u.user``
(``|``-separated), ``u.item`` (Latin-1, 5 fields then 19 genre flags), ``u.genre``,
``u.occupation``. Nothing is downloaded: pass the folder of the unpacked release.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..interactions import Interactions

SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
RATING_COLUMNS = ("user_id", "item_id", "rating", "timestamp")


def _lines(path: Path, encoding: str = "latin-1") -> list[str]:
    try:
        text = path.read_bytes().decode(encoding)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file (is this the unpacked ml-100k folder?)") from None
    return text.splitlines()


def read_movielens_ratings(path: str | os.PathLike) -> pd.DataFrame:
    """One ratings file (``u.data``, ``u1.base``, ...) as a DataFrame with int64 columns
    user_id, item_id, rating, timestamp. A malformed line is a ValueError naming the file,
    the line number and the field."""
    path = Path(path)
    rows = []
    for no, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise ValueError(f"{path}, line {no}: expected 4 tab-separated fields, found {len(fields)}: {line!r}")
        try:
            rows.append([int(f) for f in fields])
        except ValueError:
            col = next(c for c, f in zip(RATING_COLUMNS, fields) if not f.strip().lstrip("-").isdigit())
            raise ValueError(f"{path}, line {no}: field {col!r} is not an integer: {line!r}") from None
    if not rows:
        raise ValueError(f"{path}: no ratings in the file")
    frame = pd.DataFrame(np.asarray(rows, dtype=np.int64), columns=list(RATING_COLUMNS))
    bad = ~frame["rating"].between(1, 5)
    if bad.any():
        no = int(np.argmax(bad.to_numpy()))
        raise ValueError(f"{path}, row {no}: rating {frame['rating'].iat[no]} is outside 1..5")
    return frame


def _catalogue(folder: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """All user and item ids from u.user / u.item when present (so every split has the full
    943 x 1682 id space, including users or items absent from one split)."""
    users = items = None
    if (folder / "u.user").exists():
        users = _read_users(folder).index.to_numpy()
    if (folder / "u.item").exists():
        items = _read_items(folder).index.to_numpy()
    return users, items


def movielens_100k(
    path: str | os.PathLike,
    split: str | None = "u1",
    min_rating: int | None = 4,
) -> tuple[Interactions, Interactions] | Interactions:
    """MovieLens 100k as Interactions in raw MovieLens ids.

    ``split`` names a provided split (``"u1"`` ... ``"u5"``, ``"ua"``, ``"ub"``): returns
    ``(train, test)`` from ``<split>.base`` / ``<split>.test``, sharing one id map; ``None``
    returns all of ``u.data`` as one Interactions. Ratings ``>= min_rating`` are the
    positives (``None`` keeps every rating); the rating is kept as the value. The id maps
    cover every user of ``u.user`` and item of ``u.item``.
    """
    folder = Path(path)
    user_ids, item_ids = _catalogue(folder)

    def build(name: str) -> Interactions:
        frame = read_movielens_ratings(folder / name)
        if min_rating is not None:
            frame = frame[frame["rating"] >= min_rating]
        return Interactions.from_pandas(
            frame, "user_id", "item_id", "rating", user_ids=user_ids, item_ids=item_ids, duplicates="error"
        )

    if split is None:
        return build("u.data")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, not {split!r}")
    train = build(f"{split}.base")
    test_frame = read_movielens_ratings(folder / f"{split}.test")
    if min_rating is not None:
        test_frame = test_frame[test_frame["rating"] >= min_rating]
    test = Interactions.from_pandas(test_frame, "user_id", "item_id", "rating", like=train, duplicates="error")
    return train, test


def _read_items(folder: Path) -> pd.DataFrame:
    genres = _read_genres(folder)
    path = folder / "u.item"
    rows = []
    for no, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        f = line.split("|")
        if len(f) != 5 + len(genres):
            raise ValueError(f"{path}, line {no}: expected {5 + len(genres)} '|'-separated fields, found {len(f)}")
        try:
            flags = [int(x) for x in f[5:]]
            rows.append([int(f[0]), f[1], f[2], f[3], f[4], *flags])
        except ValueError:
            raise ValueError(f"{path}, line {no}: movie id and genre flags must be integers: {line!r}") from None
    frame = pd.DataFrame(rows, columns=["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres])
    frame["release_date"] = pd.to_datetime(frame["release_date"], format="%d-%b-%Y", errors="coerce")
    frame[genres] = frame[genres].astype(np.int8)
    return frame.set_index("item_id")


def _read_genres(folder: Path) -> list[str]:
    path = folder / "u.genre"
    pairs = [ln.split("|") for ln in _lines(path) if ln.strip()]
    try:
        ordered = sorted(pairs, key=lambda p: int(p[1]))
    except (IndexError, ValueError):
        raise ValueError(f"{path}: expected lines 'genre|index'") from None
    return [p[0] for p in ordered]


def _read_users(folder: Path) -> pd.DataFrame:
    path = folder / "u.user"
    rows = []
    for no, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        f = line.split("|")
        if len(f) != 5:
            raise ValueError(f"{path}, line {no}: expected 5 '|'-separated fields, found {len(f)}")
        try:
            rows.append([int(f[0]), int(f[1]), f[2], f[3], f[4]])
        except ValueError:
            raise ValueError(f"{path}, line {no}: user id and age must be integers: {line!r}") from None
    return pd.DataFrame(rows, columns=["user_id", "age", "gender", "occupation", "zip_code"]).set_index("user_id")


def movielens_100k_features(
    path: str | os.PathLike, ids_like: Interactions | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Side features: ``(users, items)`` DataFrames indexed by raw id.

    users: age, gender, occupation (categorical over ``u.occupation``), zip_code.
    items: title, release_date, video_release_date, imdb_url and one 0/1 column per genre
    (``u.genre`` order). With ``ids_like`` (an Interactions from :func:`movielens_100k`),
    rows are in its user/item index order, ready to stack next to model inputs.
    """
    folder = Path(path)
    users = _read_users(folder)
    occupations = [ln.strip() for ln in _lines(folder / "u.occupation") if ln.strip()]
    unknown = set(users["occupation"]) - set(occupations)
    if unknown:
        raise ValueError(f"{folder / 'u.user'}: occupations {sorted(unknown)} are not listed in u.occupation")
    users["occupation"] = pd.Categorical(users["occupation"], categories=occupations)
    users["gender"] = pd.Categorical(users["gender"], categories=["F", "M"])
    items = _read_items(folder)
    if ids_like is not None:
        users = users.reindex(ids_like.user_ids)
        items = items.reindex(ids_like.item_ids)
    return users, items
