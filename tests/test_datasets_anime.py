"""fr.datasets.anime, its filters, and the synthetic rating.csv generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fashionrec as fr

from conftest import data_dir

ANIME = """anime_id,name,genre,type,episodes,rating,members
1,Gintama&#039;,"Action, Comedy, Sci-Fi",TV,51,9.16,151266
2,Kimi no Na wa.,"Drama, Romance",Movie,1,9.37,200630
3,Obscure &amp; Rare,,OVA,Unknown,,120
4,Music clip,Music,Music,1,5.5,900
5,Untyped,Comedy,,12,6.1,3000
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def catalogue(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """An anime table shaped like the real one: heavy-tailed members, ratings 3..9.5, some NaN."""
    rng = np.random.default_rng(seed)
    rating = np.round(rng.uniform(3, 9.5, n), 2)
    rating[rng.random(n) < 0.03] = np.nan
    return pd.DataFrame(
        {
            "type": pd.Categorical(rng.choice(["TV", "Movie", "OVA"], n)),
            "rating": rating,
            "members": np.rint(rng.lognormal(8, 2, n)).astype(np.int64) + 1,
        },
        index=pd.Index(np.arange(1, n + 1) * 3, name="anime_id"),
    )


def test_metadata_is_decoded_and_every_row_kept(tmp_path):
    items = fr.datasets.anime(write(tmp_path, "anime.csv", ANIME)).items
    assert items.index.tolist() == [1, 2, 3, 4, 5]
    assert items.loc[1, "name"] == "Gintama'" and items.loc[3, "name"] == "Obscure & Rare"
    assert items.loc[1, "genre"] == ["Action", "Comedy", "Sci-Fi"] and items.loc[3, "genre"] == []
    assert str(items["type"].dtype) == "category" and pd.isna(items.loc[5, "type"])
    assert np.isnan(items.loc[3, "episodes"]) and items.loc[1, "episodes"] == 51
    assert np.isnan(items.loc[3, "rating"]) and items["members"].dtype == np.int64


def test_real_anime_csv():
    items = fr.datasets.anime(data_dir("anime-recommendations") / "anime.csv").items
    assert len(items) == 12_294 and items.index.is_unique
    assert (items["genre"].map(len) == 0).sum() == 62
    assert items["type"].isna().sum() == 25 and items["rating"].isna().sum() == 230
    assert items["episodes"].isna().sum() == 340
    assert items["type"].value_counts()[["TV", "OVA", "Movie", "Special", "ONA", "Music"]].tolist() == [
        3787,
        3311,
        2348,
        1676,
        659,
        488,
    ]
    assert items.loc[9969, "name"] == "Gintama'"
    assert not items["name"].str.contains("&#039;").any()


def test_real_anime_with_generated_ratings(tmp_path):
    anime_csv = data_dir("anime-recommendations") / "anime.csv"
    items = fr.datasets.anime(anime_csv).items
    path = fr.testing.write_anime_ratings(tmp_path / "rating.csv", items, n_users=200, seed=3)
    data = fr.datasets.anime(anime_csv, path, types="TV", min_item_ratings=3)
    assert set(items.loc[data.ratings.item_ids, "type"]) == {"TV"}
    assert (data.ratings.item_counts() >= 3).all()
    r = data.report
    assert r.rows == r.kept + r.dropped_values + r.dropped_items + r.dropped_min_item_rows
    assert r.dropped_values > 0 and r.dropped_items > 0 and r.dropped_min_item_rows > 0


def test_generator_is_deterministic_and_realistic():
    items = catalogue()
    a = fr.datasets.synthetic_anime_ratings(items, n_users=400, seed=7)
    assert a.equals(fr.datasets.synthetic_anime_ratings(items, n_users=400, seed=7))
    assert not a.equals(fr.datasets.synthetic_anime_ratings(items, n_users=400, seed=8))
    assert list(a.columns) == ["user_id", "anime_id", "rating"]
    assert not a.duplicated(["user_id", "anime_id"]).any()
    assert a.equals(a.sort_values(["user_id", "anime_id"], ignore_index=True))
    assert set(a["rating"]) <= {-1, *range(1, 11)} and a["anime_id"].isin(items.index).all()
    assert 0.12 < (a["rating"] == -1).mean() < 0.26  # 19% unrated on average
    per_user = a.groupby("user_id").size()
    assert per_user.median() < per_user.mean()  # a long tail of heavy users
    # Popular anime get more ratings; well-rated anime get better ratings.
    counts = a["anime_id"].value_counts().reindex(items.index, fill_value=0)
    assert np.corrcoef(np.log(items["members"]), np.log1p(counts))[0, 1] > 0.6
    rated = a[a["rating"] > 0]
    mean = rated.groupby("anime_id")["rating"].mean()
    base = items.loc[mean.index, "rating"]
    assert np.corrcoef(base[base.notna()], mean[base.notna()])[0, 1] > 0.5


def test_rating_filters_match_a_pandas_reference(tmp_path):
    items = catalogue()
    anime_csv = tmp_path / "anime.csv"
    frame = items.reset_index().assign(name="x", genre="Action", episodes=12)
    frame[["anime_id", "name", "genre", "type", "episodes", "rating", "members"]].to_csv(anime_csv, index=False)
    path = fr.testing.write_anime_ratings(tmp_path / "rating.csv", items, n_users=300, seed=1)
    ratings = pd.read_csv(path)

    data = fr.datasets.anime(anime_csv, path)
    assert (data.report.rows, data.report.dropped_values) == (len(ratings), int((ratings.rating == -1).sum()))
    assert data.ratings.n_items == len(items)  # every anime has an index
    assert data.ratings.to_pandas()["value"].min() >= 1

    data = fr.datasets.anime(anime_csv, path, min_rating=6, types=["TV", "Movie"], min_members=500, min_item_ratings=10)
    tv = items.index[items["type"].isin(["TV", "Movie"]) & (items["members"] >= 500)]
    want = ratings[(ratings.rating >= 6) & ratings.anime_id.isin(tv)]
    counts = want.anime_id.value_counts()
    want = want[want.anime_id.isin(counts.index[counts >= 10])]
    got = data.ratings.to_pandas()
    assert sorted(map(tuple, got.values.tolist())) == sorted(map(tuple, want.astype(float).values.tolist()))
    assert data.ratings.item_ids.tolist() == sorted(want.anime_id.unique())
    r = data.report
    assert r.dropped_min_value == int((ratings.rating < 6).sum())
    assert r.dropped_items == int(((ratings.rating >= 6) & ~ratings.anime_id.isin(tv)).sum())
    assert r.kept == len(want) and r.rows == len(ratings)

    keep = fr.datasets.anime(anime_csv, path, unrated="keep")
    unrated = int((ratings.rating == -1).sum())
    assert len(keep.ratings) == len(ratings) and (keep.ratings.to_pandas()["value"] == -1).sum() == unrated > 0


def test_bad_anime_and_rating_files(tmp_path):
    good = write(tmp_path, "anime.csv", ANIME)
    bad = write(tmp_path, "a1.csv", ANIME.replace("3000", "3k"))
    with pytest.raises(ValueError, match=r"a1.csv: line 6, column 'members': '3k' is not a number"):
        fr.datasets.anime(bad)
    bad = write(tmp_path, "a2.csv", ANIME + "6,Cut off,Comedy,TV\n")
    with pytest.raises(ValueError, match=r"a2.csv: line 7: expected 7 fields, found 4 \(a truncated line\?\)"):
        fr.datasets.anime(bad)
    bad = write(tmp_path, "a3.csv", ANIME + "2,Again,Comedy,TV,1,5,10\n")
    with pytest.raises(ValueError, match=r"a3.csv: line 7: anime_id 2 is already on line 3"):
        fr.datasets.anime(bad)
    bad = write(tmp_path, "a4.csv", ANIME.replace("anime_id,name", "id,name"))
    with pytest.raises(ValueError, match=r"a4.csv: line 1: expected the header 'anime_id,name,"):
        fr.datasets.anime(bad)
    bad = write(tmp_path, "a5.csv", b"\xff\xd8\xff\xe0\x00\x10JFIF")
    with pytest.raises(ValueError, match=r"a5.csv: this is a JPEG image"):
        fr.datasets.anime(bad)
    ratings = write(tmp_path, "rating.csv", "user_id,anime_id,rating\n1,1,8\n1,2,-1\n2,4,x\n")
    with pytest.raises(ValueError, match=r"rating.csv: line 4, column 'rating': 'x' is not a number"):
        fr.datasets.anime(good, ratings)
    ratings = write(tmp_path, "r2.csv", "user_id,anime_id,rating\n1,1,8\n1,77,9\n")
    with pytest.raises(ValueError, match=r"r2.csv: line 3, column 'anime_id': unknown id 77 .*unknown='drop'"):
        fr.datasets.anime(good, ratings)
    with pytest.warns(UserWarning, match="dropped 1 rows"):
        data = fr.datasets.anime(good, ratings, unknown="drop")
    assert data.report.dropped_unknown == 1 and len(data.ratings) == 1
    with pytest.raises(ValueError, match=r"types \['Anime'\] are not anime types"):
        fr.datasets.anime(good, ratings, types="Anime")
    with pytest.raises(ValueError, match="min_rating=5 would drop the -1 rows"):
        fr.datasets.anime(good, ratings, min_rating=5, unrated="keep")
