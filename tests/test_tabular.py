"""fr.io.read_interactions_csv / read_id_list: parsing, filters, id maps, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fashionrec as fr
from fashionrec import _core
from fashionrec.io._tabular import arrow_ids, write_int_csv

RATINGS = "user_id,anime_id,rating\n1,20,8\n2,10,-1\n1,10,7\n3,30,9\n"


def write(tmp_path: Path, text: str | bytes, name: str = "rating.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def triples(x: fr.Interactions) -> list[tuple]:
    f = x.to_pandas()
    cols = ["user", "item"] + (["value"] if "value" in f else [])
    return sorted(map(tuple, f[cols].values.tolist()))


def test_reads_ids_and_values(tmp_path):
    x, rep = fr.io.read_interactions_csv(write(tmp_path, RATINGS), "user_id", "anime_id", "rating", report=True)
    assert x.shape == (3, 3) and list(x.user_ids) == [1, 2, 3] and list(x.item_ids) == [10, 20, 30]
    assert x.user_ids.dtype == np.int64
    assert triples(x) == [(1, 10, 7.0), (1, 20, 8.0), (2, 10, -1.0), (3, 30, 9.0)]
    assert (rep.rows, rep.kept, rep.pairs, rep.dropped, rep.user_type, rep.parallel) == (4, 4, 4, 0, "int", True)


@pytest.mark.parametrize(
    "text",
    [
        "\ufeffuser_id,anime_id,rating\r\n1,20,8\r\n2,10,-1\r\n1,10,7\r\n3,30,9",  # BOM, CRLF, no final newline
        '"user_id","anime_id","rating"\n"1",20,8\n2,"10",-1\n1,10,"7"\n3,30,9\n',  # quoted (sequential path)
        "user_id,anime_id,rating\n\n1,20,8\n2,10,-1\n\n1,10,7\n3,30,9\n\n",  # blank lines
    ],
)
def test_line_ends_bom_quotes_and_blank_lines_read_the_same(tmp_path, text):
    x, rep = fr.io.read_interactions_csv(write(tmp_path, text), "user_id", "anime_id", "rating", report=True)
    assert triples(x) == [(1, 10, 7.0), (1, 20, 8.0), (2, 10, -1.0), (3, 30, 9.0)]
    assert rep.parallel == ('"' not in text)
    assert rep.blank_lines == text.count("\n\n")


def test_string_ids_quoted_delimiters_and_forced_types(tmp_path):
    p = write(tmp_path, 'user,item\n"smith, j",007\nbob,"it ""x"""\nbob,007\n')
    x = fr.io.read_interactions_csv(p, "user", "item")
    assert list(x.user_ids) == ["bob", "smith, j"] and list(x.item_ids) == ["007", 'it "x"']
    p = write(tmp_path, "user,item\nu1,007\nu2,7\n")
    assert list(fr.io.read_interactions_csv(p, "user", "item").item_ids) == [7]  # 007 and 7 are one int id
    assert list(fr.io.read_interactions_csv(p, "user", "item", item_type="str").item_ids) == ["007", "7"]
    with pytest.raises(ValueError, match=r"line 2, column 'user': 'u1' is not an integer id"):
        fr.io.read_interactions_csv(p, "user", "item", user_type="int")
    # auto: one non-integer makes the whole column strings; forced int, it is an error.
    p = write(tmp_path, "user,item\n1,10\n2,1e3\n")
    assert list(fr.io.read_interactions_csv(p, "user", "item").item_ids) == ["10", "1e3"]
    with pytest.raises(ValueError, match=r"line 3, column 'item': '1e3' is not an integer id"):
        fr.io.read_interactions_csv(p, "user", "item", item_type="int")


def test_headerless_positions_and_delimiter(tmp_path):
    p = write(tmp_path, "7\t1\t4.5\n8\t2\t3\n", "r.tsv")
    x = fr.io.read_interactions_csv(p, 0, 1, 2, header=False, delimiter="\t")
    assert triples(x) == [(7, 1, 4.5), (8, 2, 3.0)]
    with pytest.raises(ValueError, match="0-based position"):
        fr.io.read_interactions_csv(p, "user", 1, header=False, delimiter="\t")
    with pytest.raises(ValueError, match=r"column 5 is out of range: the lines have 3 fields"):
        fr.io.read_interactions_csv(p, 0, 5, header=False, delimiter="\t")
    with pytest.raises(TypeError, match="user_col must be a string or an integer"):
        fr.io.read_interactions_csv(p, True, 1, header=False, delimiter="\t")


def test_filters_run_while_reading_and_are_counted(tmp_path):
    per_item = {10: (6, -1), 20: (5, 3), 30: (4, 8), 40: (3, 9)}  # item: (rows, rating)
    rows = [(u, i, r) for i, (n, r) in per_item.items() for u in range(1, n + 1)]
    frame = pd.DataFrame(rows, columns=["user_id", "anime_id", "rating"])
    p = tmp_path / "r.csv"
    frame.to_csv(p, index=False)
    x, rep = fr.io.read_interactions_csv(
        p, "user_id", "anime_id", "rating", drop_values=[-1], min_value=5, drop_items=[40], report=True
    )
    # The same selection made independently in pandas.
    want = frame[(frame.rating >= 5) & (frame.anime_id != 40)]
    assert triples(x) == sorted(map(tuple, want.astype(float).values.tolist()))
    # -1 is below min_value: each row is counted under the first filter that drops it.
    assert rep.dropped_min_value == int((frame.rating < 5).sum())
    assert rep.dropped_values == 0
    assert rep.dropped_items == int(((frame.rating >= 5) & (frame.anime_id == 40)).sum())
    assert rep.rows == len(frame) and rep.kept == len(want) and rep.dropped == len(frame) - len(want)
    x, rep = fr.io.read_interactions_csv(
        p, "user_id", "anime_id", "rating", drop_values=-1, keep_items={20, 30, 40}, min_item_rows=4, report=True
    )
    kept = frame[(frame.rating != -1) & frame.anime_id.isin([20, 30, 40])]
    big = kept.anime_id.value_counts()
    assert list(x.item_ids) == sorted(big[big >= 4].index) == [20, 30]
    assert rep.dropped_min_item_rows == int(big[big < 4].sum()) == 3 and rep.items_below_min_rows == 1
    assert "below min_item_rows" in str(rep)
    with pytest.raises(ValueError, match="give value_col too"):
        fr.io.read_interactions_csv(p, "user_id", "anime_id", min_value=3)
    with pytest.raises(ValueError, match="no rows left after the filters: 18 rows read"):
        fr.io.read_interactions_csv(p, "user_id", "anime_id", "rating", min_value=100)


def test_like_catalogues_unknown_and_duplicates(tmp_path):
    train = fr.io.read_interactions_csv(write(tmp_path, RATINGS), "user_id", "anime_id", "rating")
    p = write(tmp_path, "user_id,anime_id,rating\n1,30,5\n3,99,4\n2,20,3\n", "test.csv")
    with pytest.raises(ValueError, match=r"test.csv: line 3, column 'anime_id': unknown id 99 \(not among the 3"):
        fr.io.read_interactions_csv(p, "user_id", "anime_id", "rating", like=train)
    with pytest.warns(UserWarning, match="dropped 1 rows"):
        test, rep = fr.io.read_interactions_csv(
            p, "user_id", "anime_id", "rating", like=train, unknown="drop", report=True
        )
    assert test.same_ids(train) and len(test) == 2 and rep.dropped_unknown == 1 and rep.kept == 2
    with pytest.raises(ValueError, match="min_item_rows cannot be used with like="):
        fr.io.read_interactions_csv(p, "user_id", "anime_id", like=train, min_item_rows=2)
    x = fr.io.read_interactions_csv(
        write(tmp_path, RATINGS), "user_id", "anime_id", user_ids=[1, 2, 3, 4], item_ids=[10, 20, 30, 50]
    )
    assert x.shape == (4, 4) and list(x.item_ids) == [10, 20, 30, 50]
    x = fr.io.read_interactions_csv(
        write(tmp_path, RATINGS), "user_id", "anime_id", item_ids=[10, 20, 30, 50], min_item_rows=2
    )
    assert list(x.item_ids) == [10]  # the catalogue keeps only the items with enough rows
    dup = write(tmp_path, "u,i,v\na,1,1\nb,1,1\na,1,3\n", "dup.csv")
    with pytest.raises(ValueError, match=r"dup.csv: lines 2 and 4 hold the same pair \(column 'u' \"a\", column 'i' 1\)"):
        fr.io.read_interactions_csv(dup, "u", "i", "v", duplicates="error")
    x, rep = fr.io.read_interactions_csv(dup, "u", "i", "v", report=True)
    assert triples(x) == [("a", 1, 4.0), ("b", 1, 1.0)] and rep.merged_duplicates == 1


def test_large_file_parallel_chunks_match_pandas(tmp_path):
    rng = np.random.default_rng(0)
    n = 400_000  # about 6 MB: several parallel chunks
    cols = {"user_id": rng.integers(0, 5000, n), "anime_id": rng.integers(0, 3000, n), "rating": rng.integers(-1, 11, n)}
    p = write_int_csv(tmp_path / "big.csv", cols)
    x, rep = fr.io.read_interactions_csv(p, "user_id", "anime_id", "rating", drop_values=-1, report=True)
    frame = pd.read_csv(p)
    ref = fr.Interactions.from_pandas(frame[frame.rating != -1], "user_id", "anime_id", "rating")
    assert rep.parallel and rep.rows == n and rep.dropped_values == int((frame.rating == -1).sum())
    for a, b in zip(x.to_csr(), ref.to_csr()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x.user_ids, ref.user_ids)
    with pytest.raises(ValueError, match=r"big.csv: line 400002, column 'rating': 'bad' is not a number"):
        with open(p, "a") as f:
            f.write("1,2,bad\n")
        fr.io.read_interactions_csv(p, "user_id", "anime_id", "rating")


@pytest.mark.parametrize(
    "content, message",
    [
        (RATINGS + "4,10,abc\n", r"line 6, column 'rating': 'abc' is not a number"),
        (RATINGS + "4,10\n", r"line 6, expected 3 fields, found 2 \(a truncated line\?\)"),
        (RATINGS + "4,10,5,6\n", r"line 6, expected 3 fields, found 4"),
        (RATINGS + "4,,5\n", r"line 6, column 'anime_id': the id is empty"),
        (RATINGS.replace("3,30,9", '3,30,"9'), r"line 5, a quoted field opened on line 5 is never closed"),
        (RATINGS + "4,10,inf\n", r"line 6, column 'rating': 'inf' is not a finite"),
        ("", "the file is empty"),
        ("user_id,anime_id,rating\n", "no data rows"),
        ("user_id;anime_id;rating\n1;2;3\n", r"no column \"user_id\" in the header .*is the delimiter ',' right\?"),
        ("uid,anime_id,rating\n1,2,3\n", r"line 1: no column \"user_id\" in the header \(columns: \[\"uid\""),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "this is a JPEG image, not delimited text"),
        (b"user_id,anime_id,rating\n1,2\x00,3\n", "binary data \\(a NUL byte at offset 27\\)"),
    ],
)
def test_bad_files_name_the_file_and_place(tmp_path, content, message):
    p = write(tmp_path, content, "bad.csv")
    with pytest.raises(ValueError, match=message) as e:
        fr.io.read_interactions_csv(p, "user_id", "anime_id", "rating")
    assert str(e.value).startswith(f"{p}: ")


def test_bad_utf8_string_id_and_a_parquet_passed_by_mistake(tmp_path):
    p = write(tmp_path, b"user_id,anime_id\nab\xffc,1\n", "latin.csv")
    with pytest.raises(ValueError, match=r"latin.csv: line 2, column 'user_id': 'ab.c' is not valid UTF-8"):
        fr.io.read_interactions_csv(p, "user_id", "anime_id", user_type="str")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user_id": [1], "anime_id": [2]}), tmp_path / "r.parquet")
    with pytest.raises(ValueError, match=r"r.parquet: this is a Parquet file"):
        fr.io.read_interactions_csv(tmp_path / "r.parquet", "user_id", "anime_id")
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        fr.io.read_interactions_csv(tmp_path / "nothere.csv", "user_id", "anime_id")


def test_id_lists(tmp_path):
    ids = fr.io.read_id_list(write(tmp_path, "\ufeff30\r\n10\r\n20", "ids.csv"))
    assert ids.dtype == np.int64 and ids.tolist() == [30, 10, 20]
    ids = fr.io.read_id_list(write(tmp_path, "pmfkU\nUDRRw\n", "users.csv"))
    assert ids.dtype == object and ids.tolist() == ["pmfkU", "UDRRw"]
    assert fr.io.read_id_list(write(tmp_path, "id\n5\n6\n", "h.csv"), header=True).tolist() == [5, 6]
    assert fr.io.read_id_list(write(tmp_path, "5\n6\n", "s.csv"), id_type="str").tolist() == ["5", "6"]
    with pytest.raises(ValueError, match=r"d.csv: line 4: id \"b\" is already on line 2"):
        fr.io.read_id_list(write(tmp_path, "a\nb\nc\nb\n", "d.csv"))
    with pytest.raises(ValueError, match=r"b.csv: line 2 is blank"):
        fr.io.read_id_list(write(tmp_path, "1\n\n2\n", "b.csv"))
    with pytest.raises(ValueError, match=r"i.csv: line 2: 'x' is not an integer id"):
        fr.io.read_id_list(write(tmp_path, "1\nx\n", "i.csv"), id_type="int")
    with pytest.raises(ValueError, match=r"p.png: this is a PNG image"):
        fr.io.read_id_list(write(tmp_path, b"\x89PNG\r\n\x1a\n", "p.png"))


def test_utf8_column_is_a_string_id_form(tmp_path):
    data = np.frombuffer("añobcd".encode(), dtype=np.uint8).copy()
    col = _core.Utf8Column(np.array([0, 3, 4, 7], dtype=np.int64), data)
    assert len(col) == 3 and col.to_list() == ["añ", "o", "bcd"]
    a, _ = _core.Interactions.from_ids(col, np.array([1, 2, 1]), None)
    b, _ = _core.Interactions.from_ids(["añ", "o", "bcd"], np.array([1, 2, 1]), None)
    assert fr.Interactions(a).to_pandas().equals(fr.Interactions(b).to_pandas())
    bad = _core.Utf8Column(np.array([0, 2, 3], dtype=np.int64), data)  # cuts 'ñ' in half
    with pytest.raises(ValueError, match=r"column 'u', row 0: the id bytes .* are not valid UTF-8"):
        _core.Interactions.from_ids(bad, np.array([1, 2]), None, user_col="u")
    with pytest.raises(ValueError, match=r"column 'u', row 1: offsets 3..99 are out of range for 7 bytes"):
        _core.Interactions.from_ids(_core.Utf8Column(np.array([0, 3, 99]), data), np.array([1, 2]), None, user_col="u")


def test_arrow_ids_sliced_chunked_large_and_bad():
    pa = pytest.importorskip("pyarrow")
    arr = pa.array(["x", "yy", "zzz", "w"], type=pa.binary()).slice(1, 3)
    assert arrow_ids(arr, "c", "f").to_list() == ["yy", "zzz", "w"]
    chunked = pa.chunked_array([pa.array(["a", "b"], pa.large_string()), pa.array(["c"], pa.large_string())])
    assert arrow_ids(chunked, "c", "f").to_list() == ["a", "b", "c"]
    assert arrow_ids(pa.array([3, 1], pa.int32()), "c", "f").tolist() == [3, 1]
    assert arrow_ids(pa.array(["p", "q", "p"]).dictionary_encode(), "c", "f").to_list() == ["p", "q", "p"]
    if hasattr(pa, "string_view"):
        assert arrow_ids(pa.array(["v", "w"], pa.string_view()), "c", "f").to_list() == ["v", "w"]
    with pytest.raises(ValueError, match=r"f.parquet: column 'c', row 1: the id is missing \(null\)"):
        arrow_ids(pa.array(["a", None]), "c", "f.parquet")
    with pytest.raises(ValueError, match=r"f: column 'c' must hold string ids, found int64"):
        arrow_ids(pa.array([1]), "c", "f", "str")
    with pytest.raises(ValueError, match=r"must hold integer or string ids, found double"):
        arrow_ids(pa.array([1.5]), "c", "f")
