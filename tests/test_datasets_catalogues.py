"""fr.datasets.fashion_products and fr.datasets.hm: real folders when present, and small
folders in the same layouts for the checks and the bad-input cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fashionrec as fr

from conftest import data_dir

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(32)  # never decoded by the loaders
COLOURS = ["Navy Blue", "Black", "White", "Red", "Green", "Grey", "Pink"]
TYPES = ["Shirts", "Tshirts", "Jeans", "Watches"]


# -- fashion-product-images-small ---------------------------------------------------------------


def make_fashion(folder: Path, n: int = 400, imaged: int = 60) -> Path:
    """styles.csv (LF, no final newline), styles_text.csv (CRLF), images/<id>.jpg."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    styles = ["id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage"]
    names = ["productDisplayName"]
    for k in range(n):
        pid = 10000 + k
        gender = ["Men", "Women"][k % 2]
        colour = COLOURS[rng.integers(len(COLOURS))] if k != 5 else "NA"
        kind = TYPES[k % len(TYPES)]
        year = "" if k == 7 else str(2010 + k % 8)
        styles.append(f"{pid},{gender},Apparel,Topwear,{kind},{colour},Fall,{year},Casual")
        names.append(f"Brand{k} {gender} {colour if colour != 'NA' else ''} {kind}")
        if k < imaged:
            (folder / "images" / f"{pid}.jpg").write_bytes(JPEG)
    (folder / "styles.csv").write_text("\n".join(styles))
    (folder / "styles_text.csv").write_bytes(("\r\n".join(names) + "\r\n").encode())
    return folder


def test_real_fashion_products():
    folder = data_dir("fashion-product-images-small")
    cat = fr.datasets.fashion_products(folder)
    items = cat.items
    assert len(items) == 44_446 and items.index.is_unique and len(cat.images) == 9_583
    assert items.loc[15970, "productDisplayName"] == "Turtle Check Men Navy Blue Shirt"
    assert items.loc[59263, "productDisplayName"] == "Titan Women Silver Watch"
    # styles_text.csv line 12432 is a quoted name with a doubled quote; it belongs to row 12430.
    assert items["productDisplayName"].iloc[12430] == 'Nike Women\'s EM Tempo 3.5" Pink Short'
    missing = items.isna().sum()
    assert missing[["baseColour", "season", "year", "usage", "productDisplayName"]].tolist() == [15, 21, 1, 317, 7]
    assert int(items["has_image"].sum()) == 9_583
    assert cat.images.ids.tolist() == sorted(cat.images.ids.tolist()) and cat.images.ids[0] == 10000
    assert cat.categories.index.tolist() == cat.images.ids.tolist()
    assert len(cat.categories.cat.categories) == 75
    assert cat.categories.value_counts()[["Tshirts", "Shirts", "Casual Shoes"]].tolist() == [1647, 1361, 697]
    assert Path(cat.images.paths[0]) == folder / "images" / "10000.jpg"


def test_small_fashion_products(tmp_path):
    cat = fr.datasets.fashion_products(make_fashion(tmp_path / "f"))
    items = cat.items
    assert len(items) == 400 and len(cat.images) == 60 and int(items["has_image"].sum()) == 60
    assert items.loc[10003, "productDisplayName"].startswith("Brand3 Women")
    assert pd.isna(items.loc[10005, "baseColour"]) and pd.isna(items.loc[10007, "year"])
    assert items["year"].dtype == "Int64" and items.loc[10008, "year"] == 2010
    assert str(items["articleType"].dtype) == "category"
    assert cat.categories.tolist() == [TYPES[k % 4] for k in range(60)]
    codes = cat.categories.cat.codes.to_numpy()
    assert (codes[::4] == codes[0]).all() and len(set(codes)) == 4
    cat = fr.datasets.fashion_products(tmp_path / "f", category="baseColour")
    assert cat.categories.name == "baseColour"


def test_misaligned_or_short_styles_text_is_named(tmp_path):
    folder = make_fashion(tmp_path / "f")
    lines = (folder / "styles_text.csv").read_bytes().split(b"\r\n")
    shifted = [lines[0]] + lines[2:-1] + [b"Brand Extra Men Black Shirts", b""]  # one row lost, one added
    (folder / "styles_text.csv").write_bytes(b"\r\n".join(shifted))
    with pytest.raises(ValueError, match=r"styles_text.csv: lines 2\.\.201 do not line up with .*styles.csv lines 2\.\.201"):
        fr.datasets.fashion_products(folder)
    (folder / "styles_text.csv").write_bytes(b"\r\n".join(lines[:-2]))
    with pytest.raises(ValueError, match=r"styles_text.csv: 399 product names for the 400 rows of"):
        fr.datasets.fashion_products(folder)
    # A blank line is an empty name, not a skipped row: the rows still line up.
    lines[4] = b""
    (folder / "styles_text.csv").write_bytes(b"\r\n".join(lines))
    assert pd.isna(fr.datasets.fashion_products(folder).items.loc[10003, "productDisplayName"])


def test_bad_styles_rows_and_images_are_named(tmp_path):
    folder = make_fashion(tmp_path / "f")
    styles = (folder / "styles.csv").read_text().split("\n")
    good = list(styles)
    styles[3] += ",extra"
    (folder / "styles.csv").write_text("\n".join(styles))
    with pytest.raises(ValueError, match=r"styles.csv: line 4: expected 9 fields, found 10"):
        fr.datasets.fashion_products(folder)
    styles = list(good)
    fields = styles[10].split(",")
    styles[10] = ",".join(fields[:7] + ["20x8"] + fields[8:])
    (folder / "styles.csv").write_text("\n".join(styles))
    with pytest.raises(ValueError, match=r"styles.csv: line 11, column 'year': '20x8' is not a year"):
        fr.datasets.fashion_products(folder)
    styles = list(good)
    styles[12] = styles[2]
    (folder / "styles.csv").write_text("\n".join(styles))
    with pytest.raises(ValueError, match=r"styles.csv: line 13: id 10001 is already on line 3"):
        fr.datasets.fashion_products(folder)
    (folder / "styles.csv").write_text("\n".join(good))
    (folder / "images" / "99999.jpg").write_bytes(JPEG)
    with pytest.raises(ValueError, match=r"images/99999.jpg: product 99999 is not in .*styles.csv"):
        fr.datasets.fashion_products(folder)
    (folder / "images" / "99999.jpg").unlink()
    (folder / "images" / "10001_b.jpg").write_bytes(JPEG)
    with pytest.raises(ValueError, match=r"10001_b.jpg' is not named <product id>.jpg"):
        fr.datasets.fashion_products(folder)
    (folder / "images" / "10001_b.jpg").unlink()
    (folder / "styles.csv").write_bytes(JPEG)
    with pytest.raises(ValueError, match=r"styles.csv: this is a JPEG image"):
        fr.datasets.fashion_products(folder)


# -- H&M ----------------------------------------------------------------------------------------

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def hm_tables(n_articles: int = 30, n_customers: int = 20) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(1)
    articles = pd.DataFrame(
        {
            "article_id": 108775015 + np.arange(n_articles, dtype=np.int64) * 1000,
            "prod_name": [f"Article {k}" for k in range(n_articles)],
            "product_group_name": rng.choice(["Garment Upper body", "Accessories"], n_articles),
        }
    )
    customers = pd.DataFrame(
        {"customer_id": [f"{k:064x}" for k in range(n_customers)], "age": rng.integers(18, 70, n_customers)}
    )
    n = 60
    tx = pd.DataFrame(
        {
            "t_dat": [f"2020-0{1 + k % 9}-1{k % 10}" for k in range(n)],
            "customer_id": customers["customer_id"].to_numpy()[rng.integers(0, n_customers, n)],
            "article_id": articles["article_id"].to_numpy()[rng.integers(0, n_articles, n)],
            "price": rng.random(n).round(4),
        }
    )
    tx.loc[n - 1] = [tx.t_dat[0], tx.customer_id[0], tx.article_id[0], 0.5]  # a repeated purchase
    return {"articles": articles, "customers": customers, "transactions": tx}


def make_hm(folder: Path, tables: dict[str, pd.DataFrame], layout: str = "parquet", nested: bool = False) -> Path:
    folder.mkdir(parents=True)
    names = {
        "parquet": ("articles_sample.parquet", "customers_sample.parquet", "transactions_sample.parquet"),
        "csv": ("articles.csv", "customers.csv", "transactions_train.csv"),
    }[layout]
    for (key, frame), name in zip(tables.items(), names):
        if layout == "parquet":
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / name)
        else:
            out = frame.copy()
            if "article_id" in out:  # Kaggle writes article ids zero-padded to 10 digits
                out["article_id"] = out["article_id"].map(lambda x: f"{x:010d}")
            out.to_csv(folder / name, index=False)
    (folder / "images").mkdir()
    for aid in tables["articles"]["article_id"][:8]:
        name = f"{aid:010d}.jpg"
        sub = folder / "images" / name[:3] if nested else folder / "images"
        sub.mkdir(exist_ok=True)
        (sub / name).write_bytes(JPEG)
    return folder


def test_real_hm_sample():
    data = fr.datasets.hm(data_dir("hm-sample"))
    assert (len(data.items), len(data.customers), len(data.transactions)) == (1000, 4946, 5000)
    assert data.interactions.shape == (4946, 1000)
    assert data.interactions.to_pandas()["value"].sum() == 5000  # every purchase counted once
    assert data.report["merged_purchases"] == 5000 - len(data.interactions)
    assert len(data.images) == 100 and int(data.items["has_image"].sum()) == 100
    assert data.transactions["t_dat"].min() == pd.Timestamp("2018-09-20")
    assert data.transactions["t_dat"].max() == pd.Timestamp("2020-09-22")
    assert Path(data.images.paths[0]).name == f"{data.images.ids[0]:010d}.jpg"
    bought = set(data.transactions["article_id"])
    assert sum(int(i) in bought for i in data.images.ids) == 53


@pytest.mark.parametrize("layout, nested", [("parquet", False), ("csv", True)])
def test_small_hm_both_layouts(tmp_path, layout, nested):
    tables = hm_tables()
    data = fr.datasets.hm(make_hm(tmp_path / "h", tables, layout, nested))
    assert data.items.index.tolist() == tables["articles"]["article_id"].tolist()
    assert data.interactions.shape == (20, 30)
    pairs = tables["transactions"].groupby(["customer_id", "article_id"]).size()
    got = data.interactions.to_pandas().set_index(["user", "item"])["value"]
    assert got.sort_index().tolist() == pairs.sort_index().astype(float).tolist()
    assert data.report["merged_purchases"] == len(tables["transactions"]) - len(pairs) >= 1
    assert data.images.ids.tolist() == tables["articles"]["article_id"][:8].tolist()
    assert data.transactions["t_dat"].dtype.kind == "M" and len(data.transactions) == 60


def test_hm_unknown_ids_bad_schema_and_dates(tmp_path):
    tables = hm_tables()
    tables["transactions"].loc[5, "customer_id"] = "f" * 64
    folder = make_hm(tmp_path / "a", tables)
    with pytest.raises(ValueError, match=r"transactions_sample.parquet: column 'customer_id', row 5: unknown id \"ffff"):
        fr.datasets.hm(folder)
    with pytest.warns(UserWarning, match="dropped 1 transactions"):
        data = fr.datasets.hm(folder, unknown="drop")
    assert data.report["dropped_unknown"] == 1

    folder = make_hm(tmp_path / "b", hm_tables())
    (folder / "images" / "0999999999.jpg").write_bytes(JPEG)
    with pytest.raises(ValueError, match=r"images/0999999999.jpg: article 999999999 is not in .*articles_sample"):
        fr.datasets.hm(folder)
    with pytest.warns(UserWarning, match="dropped 1 images"):
        data = fr.datasets.hm(folder, unknown_images="drop")
    assert data.report["images_dropped"] == 1 and len(data.images) == 8

    tables = hm_tables()
    tables["transactions"]["article_id"] = tables["transactions"]["article_id"].astype(str)
    folder = make_hm(tmp_path / "c", tables)
    with pytest.raises(ValueError, match=r"transactions_sample.parquet: column 'article_id' must hold integers"):
        fr.datasets.hm(folder)

    tables = hm_tables()
    tables["transactions"].loc[3, "t_dat"] = "20-09-2020"
    folder = make_hm(tmp_path / "d", tables)
    with pytest.raises(ValueError, match=r"transactions_sample.parquet: column 't_dat', row 3: '20-09-2020' is not a date"):
        fr.datasets.hm(folder)

    folder = make_hm(tmp_path / "e", hm_tables(), layout="csv")
    text = (folder / "transactions_train.csv").read_text().splitlines()
    (folder / "transactions_train.csv").write_text("\n".join(text[:10] + [text[10].rsplit(",", 2)[0]]) + "\n")
    with pytest.raises(ValueError, match=r"transactions_train.csv: .*Expected 4 columns, got 2"):
        fr.datasets.hm(folder)

    folder = make_hm(tmp_path / "f", hm_tables())
    (folder / "customers_sample.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"no customers file \(looked for customers_sample.parquet"):
        fr.datasets.hm(folder)
