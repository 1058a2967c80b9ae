"""McAuley image features (image_features_*.b): generated files in the real layout."""

from __future__ import annotations

import gc
import re
import struct
import warnings

import numpy as np
import pytest

import fashionrec as fr

RECORD = 10 + 4 * 4096


def _asins(n: int) -> list[str]:
    return [f"B{k:09d}" for k in range(n)]


@pytest.fixture()
def small_file(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((5, 4096)).astype(np.float32)
    path = tmp_path / "image_features_Test.b"
    fr.io.write_image_features(path, _asins(5), feats)
    return path, feats


def test_writer_produces_the_real_layout(small_file):
    path, feats = small_file
    raw = path.read_bytes()
    assert len(raw) == 5 * RECORD
    # Record 3: 10 ASCII bytes, then 4096 little-endian float32, no padding or header.
    rec = raw[3 * RECORD : 4 * RECORD]
    assert rec[:10] == b"B000000003"
    assert struct.unpack("<4096f", rec[10:]) == tuple(feats[3].tolist())


def test_read_is_a_zero_copy_view_that_keeps_the_map_alive(small_file):
    path, feats = small_file
    asins, view = fr.io.read_image_features(path)
    assert asins == _asins(5)
    assert view.shape == (5, 4096) and view.dtype == np.float32
    assert view.strides == (RECORD, 4)
    assert not view.flags.writeable and not view.flags.owndata
    assert np.array_equal(view, feats)
    with pytest.raises(ValueError):
        view[0, 0] = 1.0
    # The array's base is the Rust object that owns the map: no other reference is needed.
    base = view.base
    assert isinstance(base, fr._core.ImageFeatures)
    del asins, base
    gc.collect()
    assert np.array_equal(view[4], feats[4])


def test_index_rows_and_properties(small_file):
    path, feats = small_file
    f = fr.io.ImageFeatures(path)
    assert (len(f), f.dim, f.n_duplicates) == (5, 4096, 0)
    assert "records=5" in repr(f)
    idx = f.index(["B000000004", "B000000001"])
    assert idx.tolist() == [4, 1] and idx.dtype == np.int64
    assert f.index("B000000002") == 2 and np.ndim(f.index("B000000002")) == 0  # one ASIN: one row
    assert f.index(["B000000002"]).tolist() == [2]
    assert f.rows(2).shape == (4096,) and np.array_equal(f.rows(2), feats[2])  # a scalar row
    batch = f.rows(idx)
    assert batch.flags.c_contiguous and batch.flags.writeable and batch.dtype == np.float32
    assert np.array_equal(batch, feats[[4, 1]])
    assert f.rows([]).shape == (0, 4096)
    assert np.isclose(f.sum(), feats.astype(np.float64).sum(), rtol=1e-5)
    with pytest.raises(ValueError, match=r'ASIN "NOPE" \(position 1\) is not in .*image_features_Test.b'):
        f.index(["B000000000", "NOPE"])
    with pytest.raises(ValueError, match=r"indices\[1\]: row 5 is out of range"):
        f.rows([0, 5])
    with pytest.raises(ValueError, match=r"indices\[0\]: row -1 is out of range"):
        f.rows([-1])
    with pytest.raises(ValueError, match="integers"):
        f.rows([0.5])


def test_rows_feed_torch_while_the_view_does_not(small_file):
    torch = pytest.importorskip("torch")
    path, feats = small_file
    f = fr.io.ImageFeatures(path)
    t = torch.from_numpy(f.rows([0, 2]))
    assert torch.equal(t, torch.from_numpy(feats[[0, 2]]))
    # The unaligned zero-copy view is refused by torch (strides not a multiple of 4 bytes
    # per row are fine for numpy, not for torch): the documented reason rows() exists.
    with pytest.raises((ValueError, RuntimeError, TypeError)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.from_numpy(f.features)


def test_other_dim_and_duplicates(tmp_path):
    path = tmp_path / "d.b"
    asins = ["AAAAAAAAAA", "BBBBBBBBBB", "AAAAAAAAAA"]
    fr.io.write_image_features(path, asins, np.arange(9, dtype=np.float32).reshape(3, 3))
    with pytest.warns(UserWarning, match=r"1 records repeat an earlier ASIN \(the first is record 2, 'AAAAAAAAAA'\)"):
        f = fr.io.ImageFeatures(path, dim=3)
    assert f.n_duplicates == 1 and len(f) == 3
    assert f.index(["AAAAAAAAAA"]).tolist() == [0]
    assert f.features[2].tolist() == [6.0, 7.0, 8.0]


def test_truncated_file_names_record_offset_and_size(small_file, tmp_path):
    path, _ = small_file
    cut = tmp_path / "cut.b"
    cut.write_bytes(path.read_bytes()[: 3 * RECORD + 1234])
    msg = re.escape(str(cut)) + r".*truncated.*record 3 at byte offset 49182 has only 1234 bytes"
    with pytest.raises(ValueError, match=msg):
        fr.io.read_image_features(cut)


def test_wrong_type_files_are_named(tmp_path):
    jpeg = tmp_path / "photo.b"
    jpeg.write_bytes(bytes([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]) + b"JFIF\x00" + bytes(RECORD * 2))
    with pytest.raises(ValueError, match=r"photo.b: record 0 \(byte offset 0\).*ff d8 ff e0.*not an image-features file"):
        fr.io.read_image_features(jpeg)
    # A CSV of the right size starts with printable text, so it is caught at the next record.
    csv = tmp_path / "ratings.b"
    line = b"user,item,rating\n1,2,3\n" + b"9" * (RECORD - 23 - 1) + b"\n"
    csv.write_bytes(line + b"\x00" * RECORD)
    with pytest.raises(ValueError, match=r"ratings.b: record 1 \(byte offset 16394\).*00 00 00"):
        fr.io.read_image_features(csv)
    empty = tmp_path / "empty.b"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.b: the file is empty"):
        fr.io.read_image_features(empty)
    with pytest.raises(FileNotFoundError, match="missing.b"):
        fr.io.read_image_features(tmp_path / "missing.b")
    with pytest.raises(ValueError, match="dim"):
        fr.io.ImageFeatures(jpeg, dim=0)


def test_corrupt_asin_in_the_middle(small_file):
    path, _ = small_file
    raw = bytearray(path.read_bytes())
    raw[2 * RECORD + 4] = 0x80
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"record 2 \(byte offset 32788\)"):
        fr.io.read_image_features(path)


def test_check_finite_names_record_asin_and_column(small_file):
    path, feats = small_file
    raw = bytearray(path.read_bytes())
    raw[3 * RECORD + 10 + 4 * 77 : 3 * RECORD + 10 + 4 * 78] = struct.pack("<f", float("nan"))
    raw[4 * RECORD + 10 : 4 * RECORD + 14] = struct.pack("<f", float("inf"))
    path.write_bytes(bytes(raw))
    fr.io.read_image_features(path)  # not checked by default
    with pytest.raises(ValueError, match=r"record 3 \(byte offset 49182, ASIN 'B000000003'\) has NaN in column 77"):
        fr.io.read_image_features(path, check_finite=True)


def test_writer_rejects_bad_input(tmp_path):
    p = tmp_path / "w.b"
    with pytest.raises(ValueError, match=r"position 1: 'short'"):
        fr.io.write_image_features(p, ["AAAAAAAAAA", "short"], np.zeros((2, 4)))
    with pytest.raises(ValueError, match="2 ASINs but 3"):
        fr.io.write_image_features(p, ["AAAAAAAAAA", "BBBBBBBBBB"], np.zeros((3, 4)))
    with pytest.raises(ValueError, match="2-D"):
        fr.io.write_image_features(p, ["AAAAAAAAAA"], np.zeros(4))
    fr.io.write_image_features(p, ["AAAAAAAAAA"], np.ones((1, 4)))
    fr.io.write_image_features(p, ["BBBBBBBBBB"], np.full((1, 4), 2.0), append=True)
    asins, feats = fr.io.read_image_features(p, dim=4)
    assert asins == ["AAAAAAAAAA", "BBBBBBBBBB"] and feats.tolist() == [[1.0] * 4, [2.0] * 4]
