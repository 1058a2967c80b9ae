"""fr.datasets.asos: the real files when present, and small files in the same layout."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest

import fashionrec as fr

from conftest import data_dir

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
# The module (fr.datasets.asos is the function of the same name).
asos_module = importlib.import_module("fashionrec.datasets.asos")


def make_asos(folder: Path, train=None, valid=None, users=None, products=None) -> Path:
    """A miniature ASOS folder: binary user ids and int32 product ids, as in the release."""
    folder.mkdir(exist_ok=True)
    users = users or ["AAAAAAAAAAAAAAAAAAA1", "BBBBBBBBBBBBBBBBBBB2", "CCCCCCCCCCCCCCCCCCC3"]
    products = products or [100, 200, 300, 400]
    (folder / asos_module.USERS).write_text("\n".join(users) + "\n")
    (folder / asos_module.PRODUCTS).write_text("\n".join(map(str, products)) + "\n")
    train = train or [(users[0], 100), (users[0], 200), (users[1], 300)]
    valid = valid or [(users[1], 100)]
    for name, rows in ((asos_module.TRAIN, train), (asos_module.VALID, valid)):
        table = pa.table(
            {
                "dummyUserId": pa.array([u.encode() for u, _ in rows], pa.binary()),
                "productId": pa.array([p for _, p in rows], pa.int32()),
            }
        )
        pq.write_table(table, folder / name)
    return folder


def test_real_asos_shares_catalogue_ids():
    folder = data_dir("asos-dsf2020")
    train, valid = fr.datasets.asos(folder)
    assert (len(train), len(valid)) == (165_042, 35_567)
    assert train.shape == valid.shape == (43_607, 29_696)
    assert train.same_ids(valid)
    assert train.user_ids.dtype == object and all(len(u) == 20 for u in train.user_ids[:100])
    assert train.item_ids.dtype == np.int64
    # Every catalogue entry has an index, though not every user is active in valid.
    users = fr.io.read_id_list(folder / asos_module.USERS)
    assert sorted(users.tolist()) == train.user_ids.tolist()
    assert len(valid.to_pandas().user.unique()) == 19_533


def test_small_asos_round_trip(tmp_path):
    train, valid = fr.datasets.asos(make_asos(tmp_path / "a"))
    assert train.shape == (3, 4) and train.same_ids(valid)
    assert sorted(map(tuple, train.to_pandas().values.tolist())) == [
        ("AAAAAAAAAAAAAAAAAAA1", 100),
        ("AAAAAAAAAAAAAAAAAAA1", 200),
        ("BBBBBBBBBBBBBBBBBBB2", 300),
    ]
    assert valid.items_of("BBBBBBBBBBBBBBBBBBB2").tolist() == [100]


def test_unknown_ids_name_file_column_and_row(tmp_path):
    folder = make_asos(tmp_path / "a", train=[("AAAAAAAAAAAAAAAAAAA1", 100), ("ZZZZZZZZZZZZZZZZZZZ9", 200)])
    with pytest.raises(ValueError, match=r"train_with.*\.parquet: column 'dummyUserId', row 1: unknown id \"ZZZZ"):
        fr.datasets.asos(folder)
    folder = make_asos(tmp_path / "b", valid=[("AAAAAAAAAAAAAAAAAAA1", 100), ("AAAAAAAAAAAAAAAAAAA1", 999)])
    with pytest.raises(ValueError, match=r"valid_with.*\.parquet: column 'productId', row 1: unknown id 999"):
        fr.datasets.asos(folder)


def test_duplicates_and_bad_catalogues(tmp_path):
    rows = [("AAAAAAAAAAAAAAAAAAA1", 100), ("AAAAAAAAAAAAAAAAAAA1", 100)]
    folder = make_asos(tmp_path / "a", train=rows)
    with pytest.raises(ValueError, match=r"train_with.*: rows 0 and 1 hold the same \(user, item\) pair"):
        fr.datasets.asos(folder)
    train, _ = fr.datasets.asos(folder, duplicates="sum")
    assert len(train) == 1
    folder = make_asos(tmp_path / "b", products=[100, 200, 300, 200])
    with pytest.raises(ValueError, match=r"productIds.csv: line 4: id 200 is already on line 2"):
        fr.datasets.asos(folder)
    folder = make_asos(tmp_path / "c")
    (folder / asos_module.PRODUCTS).write_text("100\n2x0\n")
    with pytest.raises(ValueError, match=r"productIds.csv: line 2: '2x0' is not an integer id"):
        fr.datasets.asos(folder)


def test_wrong_schema_truncated_and_wrong_type_files(tmp_path):
    folder = make_asos(tmp_path / "a")
    pq.write_table(pa.table({"dummyUserId": ["AAAAAAAAAAAAAAAAAAA1"], "productId": ["100"]}), folder / asos_module.TRAIN)
    with pytest.raises(ValueError, match=r"train_with.*\.parquet: column 'productId' must hold integers, found string"):
        fr.datasets.asos(folder)
    pq.write_table(pa.table({"user": ["AAAAAAAAAAAAAAAAAAA1"], "productId": [100]}), folder / asos_module.TRAIN)
    with pytest.raises(ValueError, match=r"train_with.*\.parquet: no column 'dummyUserId' \(columns: \['user'"):
        fr.datasets.asos(folder)
    folder = make_asos(tmp_path / "b")
    data = (folder / asos_module.VALID).read_bytes()
    (folder / asos_module.VALID).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"valid_with.*\.parquet: not a readable Parquet file"):
        fr.datasets.asos(folder)
    folder = make_asos(tmp_path / "c")
    shutil.copy(folder / asos_module.USERS, folder / asos_module.TRAIN)  # a CSV where the parquet should be
    with pytest.raises(ValueError, match=r"train_with.*\.parquet: not a readable Parquet file"):
        fr.datasets.asos(folder)
    folder = make_asos(tmp_path / "d")
    shutil.copy(folder / asos_module.TRAIN, folder / asos_module.USERS)  # a parquet where the CSV should be
    with pytest.raises(ValueError, match=r"dummy_ids.csv: this is a Parquet file"):
        fr.datasets.asos(folder)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        fr.datasets.asos(tmp_path / "missing")


def test_null_user_id_is_named(tmp_path):
    folder = make_asos(tmp_path / "a")
    table = pa.table({"dummyUserId": pa.array([b"AAAAAAAAAAAAAAAAAAA1", None], pa.binary()), "productId": pa.array([1, 2], pa.int32())})
    pq.write_table(table, folder / asos_module.TRAIN)
    with pytest.raises(ValueError, match=r"train_with.*\.parquet: column 'dummyUserId', row 1: the id is missing"):
        fr.datasets.asos(folder)
