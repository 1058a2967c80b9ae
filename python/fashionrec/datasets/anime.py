"""Anime Recommendations Database (Kaggle, CooperUnion; myanimelist.net).

* ``anime.csv``: anime_id, name, genre, type, episodes, rating, members for 12,294 anime.
  Names keep the scrape's HTML entities (``Gintama&#039;``); genre, type and rating can be
  missing; episodes can be ``Unknown``.
* ``rating.csv``: user_id, anime_id, rating (1-10, or -1 for "watched but not rated"), about
  7.8M rows. It is large, so it is read in Rust with the filters applied while reading.

:func:`synthetic_anime_ratings` (and ``fashionrec.testing.write_anime_ratings``) make a rating file in the same
layout from ``anime.csv`` (for tests, notebooks and benchmarks when the real one is absent).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from ..interactions import Duplicates, Interactions, UnknownIds
from ..io._tabular import CsvReport, csv_records, read_interactions_csv

ANIME_COLUMNS = ("anime_id", "name", "genre", "type", "episodes", "rating", "members")


@dataclass(frozen=True)
class AnimeData:
    """What :func:`anime` returns.

    ``items``: one row per line of anime.csv (none dropped), indexed by ``anime_id``: name
    (HTML entities decoded), genre (list of str, empty when missing), type (categorical, NaN
    when missing), episodes (float, NaN for "Unknown"), rating (float, NaN when missing),
    members (int). ``ratings``: the interactions (value = rating), or None without
    ``rating_csv``; its item ids are the anime that passed the item filters, and
    ``items.loc[ratings.item_ids]`` lines the metadata up with its item indices. ``report``:
    what reading rating.csv kept and dropped (a :class:`fashionrec.io.CsvReport`).
    """

    items: pd.DataFrame
    ratings: Interactions | None = None
    report: CsvReport | None = None

    def __repr__(self) -> str:
        r = "" if self.ratings is None else f", ratings={self.ratings!r}"
        return f"<AnimeData: {len(self.items):,} anime{r}>"


def anime(
    anime_csv: str | os.PathLike,
    rating_csv: str | os.PathLike | None = None,
    *,
    min_rating: float | None = None,
    unrated: Literal["drop", "keep"] = "drop",
    min_item_ratings: int | None = None,
    min_members: int | None = None,
    types: str | Sequence[str] | None = None,
    unknown: UnknownIds = "error",
    duplicates: Duplicates = "last",
) -> AnimeData:
    """The anime metadata and, with ``rating_csv``, the ratings as Interactions.

    Filters on the ratings (the seed notebooks' options), each counted in ``.report``:

    * ``unrated``: the -1 rows ("watched, not rated"): ``"drop"`` them, or ``"keep"`` them as
      interactions with value -1 (watching is implicit feedback too).
    * ``min_rating``: keep ratings >= it (this also drops -1 rows, so it cannot be combined
      with ``unrated="keep"``).
    * ``types``: keep only anime of these types (e.g. ``"TV"`` or ``["TV", "Movie"]``);
      ``min_members``: keep only anime with at least this many members. Both act on the item
      id map too: the other anime get no index.
    * ``min_item_ratings``: after the filters above, drop the anime with fewer ratings (and
      their index).

    Users are those with a rating left. An anime id in rating.csv that anime.csv lacks is an
    error naming the line (``unknown="drop"`` drops and counts such rows). A user who rated
    an anime twice keeps one rating (``duplicates="last"``; merges are counted in the report).

    Example::

        data = fr.datasets.anime("anime.csv", "rating.csv", min_rating=6, types="TV")
        data.ratings, data.report          # Interactions, what was dropped
        data.items.loc[data.ratings.item_ids, ["name", "genre"]]
    """
    items = read_anime_items(anime_csv)
    if rating_csv is None:
        return AnimeData(items)
    if unrated not in ("drop", "keep"):
        raise ValueError(f"unrated must be 'drop' or 'keep', not {unrated!r}")
    if unrated == "keep" and min_rating is not None and min_rating > -1:
        raise ValueError(
            f"min_rating={min_rating} would drop the -1 rows that unrated='keep' keeps; use one or the other"
        )
    keep = np.ones(len(items), dtype=bool)
    if types is not None:
        wanted = [types] if isinstance(types, str) else list(types)
        known = list(items["type"].cat.categories)
        bad = [t for t in wanted if t not in known]
        if bad:
            raise ValueError(f"types {bad} are not anime types of {anime_csv} (types: {known})")
        keep &= items["type"].isin(wanted).to_numpy()
    if min_members is not None:
        keep &= (items["members"] >= min_members).to_numpy()
    ids = items.index.to_numpy(dtype=np.int64)
    ratings, report = read_interactions_csv(
        rating_csv,
        "user_id",
        "anime_id",
        "rating",
        user_type="int",
        item_type="int",
        min_value=min_rating,
        drop_values=(-1,) if unrated == "drop" else (),
        drop_items=ids[~keep] if not keep.all() else None,
        min_item_rows=min_item_ratings,
        item_ids=ids[keep],
        unknown=unknown,
        duplicates=duplicates,
        report=True,
    )
    return AnimeData(items, ratings, report)


def read_anime_items(path: str | os.PathLike) -> pd.DataFrame:
    """anime.csv as a DataFrame indexed by anime_id (see :class:`AnimeData`). A malformed
    line (field count, a non-numeric id, episodes, rating or members, a repeated id) is a
    ValueError naming the file, the line and the column."""
    path = Path(path)
    ids: list[int] = []
    names: list[str] = []
    genres: list[list[str]] = []
    kinds: list[str | None] = []
    episodes: list[float] = []
    ratings: list[float] = []
    members: list[int] = []
    seen: dict[int, int] = {}

    def number(text: str, line: int, col: str, kind: type, missing: tuple[str, ...] = ()) -> float | int:
        if text in missing:
            return np.nan
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{path}: line {line}, column {col!r}: {text!r} is not a number") from None

    for line, f in csv_records(path, ANIME_COLUMNS):
        aid = number(f[0], line, "anime_id", int)
        if aid in seen:
            raise ValueError(f"{path}: line {line}: anime_id {aid} is already on line {seen[aid]}")
        seen[aid] = line
        ids.append(aid)
        names.append(html.unescape(f[1]))
        genres.append([g.strip() for g in f[2].split(",") if g.strip()])
        kinds.append(f[3] or None)
        episodes.append(number(f[4], line, "episodes", float, ("Unknown", "")))
        ratings.append(number(f[5], line, "rating", float, ("",)))
        members.append(number(f[6], line, "members", int))
    if not ids:
        raise ValueError(f"{path}: no anime in the file (only a header)")
    frame = pd.DataFrame(
        {
            "name": names,
            "genre": genres,
            "type": pd.Categorical(kinds),
            "episodes": np.asarray(episodes, dtype=np.float64),
            "rating": np.asarray(ratings, dtype=np.float64),
            "members": np.asarray(members, dtype=np.int64),
        },
        index=pd.Index(np.asarray(ids, dtype=np.int64), name="anime_id"),
    )
    return frame


def synthetic_anime_ratings(
    items: pd.DataFrame,
    n_users: int = 1000,
    *,
    mean_ratings: float = 106.0,
    unrated: float = 0.19,
    popularity: float = 1.0,
    seed: int = 0,
) -> pd.DataFrame:
    """A rating table in rating.csv's layout (user_id, anime_id, rating; sorted by user then
    anime), drawn from anime.csv's metadata, the same for the same seed.

    Realistic where it matters for loaders and models: the number of ratings per user is
    log-normal (mean about ``mean_ratings``; the real data: 106, median 57), anime are picked
    in proportion to ``members ** popularity``, a rating is the anime's mean ``rating`` (6.5
    when missing) plus a user bias plus noise, rounded to 1..10, and each user leaves a share
    of what they watched unrated (-1; ``unrated`` is the mean share, per-user shares vary).
    A user never rates an anime twice (the heaviest users, who would need more distinct anime
    than the popularity draw gives, end up with somewhat fewer rows).

    Example::

        items = fr.datasets.anime("anime.csv").items
        frame = fr.datasets.synthetic_anime_ratings(items, n_users=500, seed=1)
    """
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1, not {n_users}")
    if not 0 <= unrated < 1:
        raise ValueError(f"unrated is a share in [0, 1), not {unrated}")
    if not 1 <= mean_ratings <= 1e6:
        raise ValueError(f"mean_ratings must be between 1 and 1e6 ratings a user, not {mean_ratings}")
    if not 0 <= popularity <= 10:
        raise ValueError(f"popularity is an exponent of the members count, between 0 and 10, not {popularity}")
    for col in ("members", "rating"):
        if col not in items.columns:
            raise ValueError(f"items needs a {col!r} column (the items of fr.datasets.anime)")
    rng = np.random.default_rng(seed)
    anime_ids = items.index.to_numpy(dtype=np.int64)
    n_items = len(anime_ids)
    weight = np.maximum(items["members"].to_numpy(dtype=np.float64), 1.0) ** popularity
    weight /= weight.sum()
    sigma = 1.1
    counts = rng.lognormal(np.log(mean_ratings) - sigma**2 / 2, sigma, size=n_users)
    counts = np.clip(np.rint(counts), 1, max(1, n_items // 2)).astype(np.int64)
    # Draw a quarter more than wanted (with replacement), merge repeats, then keep a random
    # `counts[u]` of each user's distinct anime: rows come out one per (user, anime).
    draws = np.ceil(counts * 1.25).astype(np.int64) + 2
    users = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), draws)
    span = int(anime_ids.max()) + 1
    key = users * span + anime_ids[rng.choice(n_items, size=len(users), p=weight)]
    key.sort()  # user, then anime id, as in the real file
    key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    users = key // span
    order = np.argsort(users + rng.random(len(key)))  # random order within each user's block
    rank = np.empty(len(key), dtype=np.int64)
    rank[order] = np.arange(len(key)) - np.searchsorted(users, users[order])
    key = key[rank < counts[users - 1]]
    users = key // span
    aid = key % span
    by_id = np.argsort(anime_ids)
    item = by_id[np.searchsorted(anime_ids, aid, sorter=by_id)]  # row of each anime in `items`
    base = np.nan_to_num(items["rating"].to_numpy(dtype=np.float64), nan=6.5)
    bias = rng.normal(0.0, 0.7, size=n_users)
    score = base[item] + bias[users - 1] + rng.normal(0.0, 1.1, size=len(key))
    rating = np.clip(np.rint(score), 1, 10).astype(np.int64)
    share = rng.beta(0.6, 0.6 * (1 - unrated) / unrated, size=n_users) if unrated > 0 else np.zeros(n_users)
    rating[rng.random(len(key)) < share[users - 1]] = -1
    return pd.DataFrame({"user_id": users, "anime_id": aid, "rating": rating})


