"""Amazon metadata (meta_*.json.gz): generated files in the 2014 and 2018 layouts."""

from __future__ import annotations

import gzip
import json
import math
import re

import numpy as np
import pytest

import fashionrec as fr

# Lines as they appear in McAuley's 2014 files (Python 2 str(dict)): double quotes when the
# text holds a single quote, UTF-8 bytes as \x escapes, an occasional u'' string.
LINES_2014 = [
    "{'asin': '0000031852', 'title': 'Girls Ballet Tutu Zebra Hot Pink', 'price': 3.17, "
    "'imUrl': 'http://ecx.images-amazon.com/images/I/51fAmVkTbyL._SY300_.jpg', "
    "'related': {'also_bought': ['B00JHONN1S', 'B002BZX8Z6', '0000031895'], "
    "'also_viewed': ['B002BZX8Z6', 'B00JHONN1S'], 'bought_together': ['B002BZX8Z6']}, "
    "'salesRank': {'Toys & Games': 211836}, 'brand': 'Coxlure', "
    "'categories': [['Sports & Outdoors', 'Other Sports', 'Dance']]}",
    "{'asin': '0000031895', 'title': \"Girl's Tutu \\xe2\\x80\\x94 Pink\", "
    "'related': {'also_bought': ['0000031852'], 'buy_after_viewing': ['0000031852', 'B00JHONN1S']}, "
    "'categories': [['Clothing, Shoes & Jewelry', 'Girls'], ['Sports & Outdoors']], "
    "'description': u'Caf\\xe9 \\u2019n\\u2019 more'}",
    "{'asin': 'B00JHONN1S', 'salesRank': {}, 'categories': [['Toys']], 'price': 12}",
]

LINES_2018 = [
    json.dumps(
        {
            "category": ["Clothing, Shoes & Jewelry", "Women", "Tops"],
            "description": ["Soft.", "Cotton."],
            "title": "Women’s Tee",
            "also_buy": ["B000000002", "B000000003"],
            "brand": "Acme",
            "rank": "2,345 in Clothing, Shoes & Jewelry (",
            "also_view": ["B000000003"],
            "main_cat": "Fashion",
            "price": "$1,012.99",
            "asin": "B000000001",
            "imageURL": ["http://a/1.jpg"],
            "imageURLHighRes": ["http://a/1H.jpg"],
        }
    ),
    json.dumps({"asin": "B000000002", "price": "$10.00 - $15.00", "rank": ["#12 in Toys (See Top 100)"], "flag": True}),
    json.dumps({"asin": "B000000003", "price": "", "category": [], "also_buy": []}),
]


def _write(path, lines, compress=True):
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def test_reads_2014_python_literal_lines(tmp_path):
    path = _write(tmp_path / "meta_Toys.json.gz", LINES_2014)
    df = fr.io.read_amazon_metadata(path, description=True)
    assert df["asin"].tolist() == ["0000031852", "0000031895", "B00JHONN1S"]
    assert df.attrs["format"] == "python" and df.attrs["lines"] == 3 and df.attrs["skipped"] == []
    first = df.iloc[0]
    assert first["title"] == "Girls Ballet Tutu Zebra Hot Pink" and first["brand"] == "Coxlure"
    assert first["price"] == 3.17
    assert first["also_bought"] == ["B00JHONN1S", "B002BZX8Z6", "0000031895"]
    assert first["also_viewed"] == ["B002BZX8Z6", "B00JHONN1S"]
    assert first["bought_together"] == ["B002BZX8Z6"] and first["buy_after_viewing"] == []
    assert first["sales_rank"] == {"Toys & Games": 211836}
    assert first["categories"] == [["Sports & Outdoors", "Other Sports", "Dance"]]
    assert first["image_url"].endswith("51fAmVkTbyL._SY300_.jpg")
    second = df.iloc[1]
    # Python 2 byte string: the \x escapes are UTF-8 bytes of an em dash.
    assert second["title"] == "Girl's Tutu — Pink"
    assert second["description"] == "Café ’n’ more"
    assert math.isnan(second["price"])
    assert second["categories"] == [["Clothing, Shoes & Jewelry", "Girls"], ["Sports & Outdoors"]]
    assert second["buy_after_viewing"] == ["0000031852", "B00JHONN1S"]
    assert df.iloc[2]["price"] == 12.0 and df.iloc[2]["sales_rank"] == {}
    assert df["price"].dtype == np.float64
    assert "description" not in fr.io.read_amazon_metadata(path).columns


def test_reads_2018_json_lines(tmp_path):
    path = _write(tmp_path / "meta_Clothing.json", LINES_2018, compress=False)
    df = fr.io.read_amazon_metadata(path, description=True)
    assert df.attrs["format"] == "json"
    a, b, c = (df.iloc[k] for k in range(3))
    assert a["price"] == 1012.99 and a["title"] == "Women’s Tee" and a["main_cat"] == "Fashion"
    assert a["categories"] == [["Clothing, Shoes & Jewelry", "Women", "Tops"]]
    assert a["also_bought"] == ["B000000002", "B000000003"] and a["also_viewed"] == ["B000000003"]
    assert a["sales_rank"] == {"Clothing, Shoes & Jewelry": 2345}
    assert a["image_url"] == "http://a/1H.jpg" and a["description"] == "Soft.\nCotton."
    # A price range is not a price: NaN, as documented.
    assert math.isnan(b["price"]) and b["sales_rank"] == {"Toys": 12}
    assert math.isnan(c["price"]) and c["categories"] == [] and c["also_bought"] == []
    with pytest.raises(ValueError, match=r"line 2, byte column \d+: unexpected name 'true'"):
        fr.io.read_amazon_metadata(path, format="python")


def test_writer_round_trips_both_layouts(tmp_path):
    records = [
        {
            "asin": "0000031852",
            "title": "Girls' Tutu “Zebra” \\ tab\there",
            "price": 3.17,
            "related": {"also_bought": ["B00JHONN1S"], "bought_together": ["0000031853"]},
            "salesRank": {"Toys & Games": 211836},
            "categories": [["Toys", "Dance"]],
            "brand": 'say "hi"',
        },
        {"asin": "0000031853", "title": "both ' and \"", "related": {}, "categories": []},
    ]
    py_path = tmp_path / "meta_py.json.gz"
    fr.io.write_amazon_metadata(py_path, records)
    lines = gzip.decompress(py_path.read_bytes()).decode("ascii").splitlines()
    # Python 2's repr: double quotes around text with a single quote, UTF-8 as \x escapes.
    assert lines[0].startswith("{'asin': '0000031852', 'title': \"Girls' Tutu \\xe2\\x80\\x9cZebra")
    assert "'brand': 'say \"hi\"'" in lines[0]
    assert "'title': 'both \\' and \"'" in lines[1]
    js_path = tmp_path / "meta_js.json"
    fr.io.write_amazon_metadata(js_path, records, format="json", gzip=False)
    assert json.loads(js_path.read_text().splitlines()[0]) == records[0]
    for path, fmt in [(py_path, "python"), (js_path, "json")]:
        df = fr.io.read_amazon_metadata(path)
        assert df.attrs["format"] == fmt
        assert df["title"].tolist() == [r["title"] for r in records]
        assert df.iloc[0]["bought_together"] == ["0000031853"]
        assert df.iloc[0]["brand"] == 'say "hi"'
    with pytest.raises(ValueError, match="format"):
        fr.io.write_amazon_metadata(py_path, records, format="yaml")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="record 0"):
        fr.io.write_amazon_metadata(py_path, [["not", "a", "dict"]])  # type: ignore[list-item]


def test_many_chunks_keep_line_numbers(tmp_path):
    # > 4 MiB of text, so the parser sees several chunks; blank lines are not rows.
    lines = []
    for k in range(9000):
        lines.append(repr({"asin": f"A{k:09d}", "title": f"item {k}", "description": "x" * 500}))
        if k == 7000:
            lines.append("")
    lines[8500] = lines[8500].replace("'item 8499'", "'item 8499")  # an unbalanced quote
    path = _write(tmp_path / "meta_big.json.gz", lines)
    with pytest.raises(ValueError) as err:
        fr.io.read_amazon_metadata(path)
    msg = str(err.value)
    # The quote cut from 'item 8499' makes the string run on to the next quote.
    assert str(path) in msg and "line 8501, byte column 46: expected ',' or '}'" in msg
    with pytest.warns(UserWarning, match=r"skipped 1 malformed line\(s\) \(the first: line 8501"):
        df = fr.io.read_amazon_metadata(path, on_error="skip")
    assert len(df) == 8999 and df.attrs["lines"] == 9001
    assert df.attrs["skipped"][0][0] == 8501
    assert df["asin"].iloc[7001] == "A000007001"
    assert "A000008499" not in set(df["asin"])


def test_malformed_lines_name_file_line_and_column(tmp_path):
    cases = {
        "{'asin': 'A', 'title': 'unbalanced}": r"line 2, byte column 24: unterminated string",
        "{'asin': 'A', 'price': [1, 2]}": r"line 2, byte column 24: 'price' is a list",
        "{'title': 'no asin here'}": r"line 2, byte column 1: no 'asin' key",
        # ('A' 'title' would be one string: Python concatenates adjacent literals.)
        "{'asin': 'A', 'price': 1 'title': 'x'}": r"line 2, byte column 26: expected ',' or '\}'",
        "{'asin': 'A', 'related': {'also_bought': ['B', 7]}}": r"line 2, byte column \d+: 'related.also_bought' item 1 is an int",
        "['asin', 'A']": r"line 2, byte column 1: expected a dict",
        "{'asin': 'A'} trailing": r"line 2, byte column 15: unexpected 't' after the end",
    }
    for k, (bad, expected) in enumerate(cases.items()):
        path = _write(tmp_path / f"meta_{k}.json.gz", ["{'asin': 'OK'}", bad, "{'asin': 'OK2'}"])
        with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + expected):
            fr.io.read_amazon_metadata(path)
        with pytest.warns(UserWarning, match="skipped 1"):
            df = fr.io.read_amazon_metadata(path, on_error="skip")
        assert df["asin"].tolist() == ["OK", "OK2"]
        (line, message), = df.attrs["skipped"]
        assert line == 2 and re.match(expected.split(": ", 1)[0].replace("line 2, ", ""), message)


def test_truncated_gzip_names_file_and_progress(tmp_path):
    lines = [repr({"asin": f"A{k:09d}", "title": f"item {k} " * 20}) for k in range(20000)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    cut = tmp_path / "meta_cut.json.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as err:
        fr.io.read_amazon_metadata(cut)
    msg = str(err.value)
    assert str(cut) in msg and "truncated or corrupt" in msg
    assert re.search(rf"after {len(data) // 2} of {len(data) // 2} compressed bytes; \d+ bytes of text \(\d+ complete lines\)", msg), msg
    # Even when skipping malformed lines, a cut stream is an error (records would be lost).
    with pytest.raises(ValueError, match="truncated"):
        fr.io.read_amazon_metadata(cut, on_error="skip")
    # A wrong checksum in the trailer: every line parses, the stream is still corrupt.
    bad = bytearray(data)
    bad[-8] ^= 0xFF
    (tmp_path / "meta_bad.json.gz").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="meta_bad.json.gz: the gzip stream is truncated or corrupt"):
        fr.io.read_amazon_metadata(tmp_path / "meta_bad.json.gz")


def test_wrong_type_files(tmp_path):
    jpeg = tmp_path / "photo.json.gz"
    jpeg.write_bytes(bytes([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]) + b"JFIF\x00\x01\n" + bytes(range(256)))
    with pytest.raises(ValueError, match=r"photo.json.gz: line 1, byte column 1: expected a dict"):
        fr.io.read_amazon_metadata(jpeg)
    csv = tmp_path / "ratings.csv"
    csv.write_text("user,item,rating\n1,2,5\n")
    with pytest.raises(ValueError, match=r"ratings.csv: line 1, byte column 1: expected a dict \('\{'\), found 'u'"):
        fr.io.read_amazon_metadata(csv)
    feats = tmp_path / "image_features_x.b"
    fr.io.write_image_features(feats, ["B000000001"], np.zeros((1, 8)))
    with pytest.raises(ValueError, match=r"image_features_x.b: line 1, byte column 1"):
        fr.io.read_amazon_metadata(feats)
    with pytest.raises(FileNotFoundError):
        fr.io.read_amazon_metadata(tmp_path / "missing.json.gz")
    with pytest.raises(ValueError, match="format"):
        fr.io.read_amazon_metadata(csv, format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error"):
        fr.io.read_amazon_metadata(csv, on_error="ignore")  # type: ignore[arg-type]
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    df = fr.io.read_amazon_metadata(empty)
    assert len(df) == 0 and "asin" in df.columns and df.attrs["format"] is None


def test_compatibility_pairs(tmp_path):
    path = _write(tmp_path / "meta.json.gz", LINES_2014)
    meta = fr.io.read_amazon_metadata(path)
    asins = ["B00JHONN1S", "0000031852", "0000031895"]
    pairs = fr.io.compatibility_pairs(meta, asins)
    i, j = pairs
    # 0000031852 -> B00JHONN1S, 0000031895 (B002BZX8Z6 is not in asins); 0000031895 -> 0000031852.
    assert list(zip(i.tolist(), j.tolist())) == [(1, 0), (1, 2), (2, 1)]
    assert i.dtype == np.int64 and len(pairs) == 3
    assert (pairs.edges, pairs.kept, pairs.missing_target, pairs.missing_source) == (4, 3, 1, 0)
    assert "1 whose related ASIN is not" in repr(pairs)
    both = fr.io.compatibility_pairs(meta, asins, ["also_bought", "buy_after_viewing", "also_buy"])
    assert both.relations == ("also_bought", "buy_after_viewing")
    # 0000031895 -> 0000031852 again (a duplicate), and -> B00JHONN1S (new).
    assert list(zip(*both)) == [(1, 0), (1, 2), (2, 0), (2, 1)]
    assert both.duplicates == 1 and both.edges == 6
    # Only some records in the list: their edges are counted as missing_source.
    few = fr.io.compatibility_pairs(meta, ["0000031852", "0000031852"], "also_viewed")
    assert few.kept == 0 and few.missing_source == 0 and few.missing_target == 2
    # Self-loops are dropped and counted.
    meta2 = meta.copy()
    meta2.at[0, "also_bought"] = ["0000031852", "0000031852"]
    loops = fr.io.compatibility_pairs(meta2, asins)
    assert loops.self_loops == 2 and loops.kept == 1


def test_compatibility_pairs_with_image_features(tmp_path):
    feats_path = tmp_path / "image_features_Toys.b"
    fr.io.write_image_features(feats_path, ["0000031895", "0000031852"], np.zeros((2, 4)))
    feats = fr.io.ImageFeatures(feats_path, dim=4)
    meta = fr.io.read_amazon_metadata(_write(tmp_path / "meta.json.gz", LINES_2014))
    pairs = fr.io.compatibility_pairs(meta, feats, "also_bought")
    assert list(zip(*pairs)) == [(0, 1), (1, 0)]
    # 0000031852 -> B00JHONN1S and B002BZX8Z6 have no features; B00JHONN1S lists no edges.
    assert (pairs.missing_source, pairs.missing_target, pairs.kept) == (0, 2, 2)


def test_compatibility_pairs_bad_input():
    import pandas as pd

    meta = pd.DataFrame({"asin": ["A", "B"], "also_bought": [["B"], None]})
    assert list(zip(*fr.io.compatibility_pairs(meta, ["A", "B"]))) == [(0, 1)]
    with pytest.raises(ValueError, match="unknown relation 'similar'"):
        fr.io.compatibility_pairs(meta, ["A"], "similar")
    with pytest.raises(ValueError, match="no column 'also_viewed'"):
        fr.io.compatibility_pairs(meta, ["A"], "also_viewed")
    with pytest.raises(ValueError, match="relation is empty"):
        fr.io.compatibility_pairs(meta, ["A"], [])
    bad = pd.DataFrame({"asin": ["A", "B"], "also_bought": [["B"], ["A", 3]]})
    with pytest.raises(TypeError, match=r"column 'also_bought', row 1, item 1"):
        fr.io.compatibility_pairs(bad, ["A", "B"])
    bad = pd.DataFrame({"asin": ["A", "B"], "also_bought": [["B"], "A"]})
    with pytest.raises(TypeError, match=r"column 'also_bought', row 1: a str"):
        fr.io.compatibility_pairs(bad, ["A", "B"])


def test_parse_literal_public_helper():
    assert fr.io.parse_literal("{'descr': '|O', 'fortran_order': False, 'shape': (6,), }   \n") == {
        "descr": "|O",
        "fortran_order": False,
        "shape": (6,),
    }
    assert fr.io.parse_literal(b"'Don\\xe2\\x80\\x99t'") == "Don’t"
    assert fr.io.parse_literal('{"a": [1, 2.5, null]}', "json") == {"a": [1, 2.5, None]}
    with pytest.raises(ValueError, match=r"byte 6: expected ',' or '\]' after a list item, found '3'"):
        fr.io.parse_literal("[1, 2 3]")
    with pytest.raises(ValueError, match="NaN"):
        fr.io.parse_literal("NaN", "json")
    with pytest.raises(ValueError, match="dialect"):
        fr.io.parse_literal("1", "yaml")  # type: ignore[arg-type]


def test_python2_string_repr_matches_bytes_repr():
    # Python 2 printed a str (bytes) exactly as Python 3 prints bytes, minus the b prefix.
    from fashionrec.io._amazon import _py2_str

    import random

    rng = random.Random(5)
    alphabet = "ab '\"\\\t\n\r\x00\x7fé’😀"
    for _ in range(500):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 10)))
        assert _py2_str(s) == repr(s.encode("utf-8"))[1:], s
        assert fr.io.parse_literal(_py2_str(s)) == s
