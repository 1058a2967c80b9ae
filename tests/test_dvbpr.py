"""The DVBPR reader and writer, checked against numpy's own reading and writing of the layout."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest

import fashionrec as fr

from conftest import data_dir


def fake_jpeg(i: int) -> bytes:
    # Varied sizes across the SHORT_BINSTRING / BINSTRING boundary (256 bytes).
    return b"\xff\xd8\xff\xe0" + bytes([i % 256]) * (40 + 37 * i)


@pytest.fixture(scope="module")
def splits():
    data = fr.datasets.synthetic(60, 80, mean_items_per_user=9, seed=4)
    return fr.split.leave_one_out(data, validation=True, seed=1)


def test_round_trip_and_numpy_reads_the_same_layout(splits, tmp_path):
    train, val, test = splits
    jpegs = [fake_jpeg(i) for i in range(80)]
    cats = np.where(np.arange(80) == 7, -1, np.arange(80) % 6)  # item 7 has no category
    asins = [f"B{i:09d}" for i in range(80)]
    path = fr.io.write_dvbpr(tmp_path / "tiny.npy", train, val, test, jpegs, categories=cats, item_asins=asins)

    # numpy reads it as it reads the real (Python 2) files.
    arr = np.load(path, allow_pickle=True, encoding="bytes")
    assert arr.shape == (6,) and arr.dtype == object
    user_train, user_val, user_test, items, user_num, item_num = arr
    assert (user_num, item_num) == (60, 80)
    assert sorted(user_train) == list(range(60))
    u = int(train.user_index([0])[0])
    assert [d[b"productid"] for d in user_train[u]] == train.items_of(0).tolist()
    assert user_train[u][0][b"asin"] == asins[user_train[u][0][b"productid"]].encode()
    assert items[13][b"imgs"] == jpegs[13] and items[13][b"c"] == [0, 1, 0, 0, 0, 0]
    assert items[7][b"c"] == [0] * 6

    data = fr.datasets.dvbpr(path)
    assert (data.n_users, data.n_items) == (60, 80)
    for ours, theirs in ((data.train, train), (data.validation, val), (data.test, test)):
        for part in range(2):
            assert np.array_equal(ours.to_csr()[part], theirs.to_csr()[part])
    assert data.train.same_ids(data.test)
    assert data.categories.tolist() == cats.tolist() and data.item_asins == asins
    assert all(data.images.read(i) == jpegs[i] for i in range(80))
    assert data.images.container == path and "bytes" in data.images.locate(3)
    assert data.merged == {"train": 0, "validation": 0, "test": 0}
    assert "60 users x 80 items" in repr(data) and "6 categories" in repr(data)


def save_py3(path, elements):
    """What Python 3's numpy writes for the same object array (pickle protocol 3+)."""
    arr = np.empty(6, dtype=object)
    arr[:] = elements
    np.save(path, arr, allow_pickle=True)


def test_reads_numpy_written_variants(tmp_path):
    # Python 3 pickles (str keys, bytes images, FRAME/MEMOIZE opcodes), lists instead of dicts,
    # numpy ints, a numpy one-hot array, repeated pairs and extra review fields.
    user_train = [[{"productid": np.int64(2), "overall": 5.0, "reviewerID": "A1"}, {"productid": 1}], [{"productid": 2}, {"productid": 2}]]
    user_val = {0: [{"productid": 0}], 1: []}
    user_test = {1: [{"productid": 0}]}
    items = {i: {"imgs": fake_jpeg(i), "c": np.eye(4)[i]} for i in range(3)}
    path = tmp_path / "py3.npy"
    save_py3(path, [user_train, user_val, user_test, items, np.int64(2), 3])
    with pytest.warns(UserWarning, match=r"repeated \(user, item\) pairs were merged \(train 1\)"):
        data = fr.datasets.dvbpr(path)
    assert data.train.items_of(0).tolist() == [1, 2] and data.train.items_of(1).tolist() == [2]
    assert data.merged["train"] == 1 and len(data.validation) == 1 and len(data.test) == 1
    assert data.categories.tolist() == [0, 1, 2] and data.item_asins is None
    assert data.images.read(2) == fake_jpeg(2)


@pytest.mark.parametrize(
    "elements, message",
    [
        ([{0: [{"productid": 9}]}, {}, {}, {}, 1, 3], r"user_train\[0\]\[0\]: productid 9 is outside 0\.\.item_num \(3\)"),
        ([{5: []}, {}, {}, {}, 2, 3], r"user_train: key 5 is outside 0\.\.user_num \(2\)"),
        ([{0: [{"asin": "B1"}]}, {}, {}, {}, 1, 3], r"user_train\[0\]\[0\] has no 'productid'"),
        ([{}, {}, {}, {0: {"imgs": b"x", "c": [1, 1, 0]}}, 1, 3], r"items\[0\]\['c'\]: 2 nonzero entries"),
        ([{}, {}, {}, {0: "imgs"}, 1, 3], r"items\[0\] is a str, expected a dict"),
        ([{}, {}, {}, {}, "many", 3], r"user_num \(element 4\) is a str, not an int"),
    ],
)
def test_bad_contents_are_named_with_offsets(tmp_path, elements, message):
    path = tmp_path / "bad.npy"
    save_py3(path, elements)
    with pytest.raises(ValueError, match=message) as err:
        fr.datasets.dvbpr(path)
    assert "bad.npy" in str(err.value) and "byte offset" in str(err.value)


def test_truncated_and_wrong_files(splits, tmp_path):
    train, val, test = splits
    path = fr.io.write_dvbpr(tmp_path / "full.npy", train, val, test, [fake_jpeg(i) for i in range(80)])
    full = path.read_bytes()
    for cut in (len(full) - 1, len(full) // 2, 200):
        p = tmp_path / f"cut{cut}.npy"
        p.write_bytes(full[:cut])
        with pytest.raises(ValueError, match=rf"cut{cut}\.npy: byte offset \d+: truncated") as err:
            fr.datasets.dvbpr(p)
        assert f"ends at byte offset {cut}" in str(err.value) or "STOP" in str(err.value)
    p = tmp_path / "header.npy"
    p.write_bytes(full[:40])
    with pytest.raises(ValueError, match="header.npy: truncated: the .npy header says"):
        fr.datasets.dvbpr(p)
    p = tmp_path / "photo.npy"
    p.write_bytes(fake_jpeg(3))
    with pytest.raises(ValueError, match=r"photo.npy: not a \.npy file.*first bytes: ff d8 ff e0"):
        fr.datasets.dvbpr(p)
    p = tmp_path / "floats.npy"
    np.save(p, np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"holds a '<f4' array of shape \[3, 4\], not the object array"):
        fr.datasets.dvbpr(p)
    p = tmp_path / "empty.npy"
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.npy: the file is empty"):
        fr.datasets.dvbpr(p)
    with pytest.raises(FileNotFoundError, match="nowhere.npy"):
        fr.datasets.dvbpr(tmp_path / "nowhere.npy")


class _Exploit:
    """Unpickling this runs a shell command: `np.load(allow_pickle=True)` would."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_the_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    save_py3(path, [_Exploit(marker), {}, {}, {}, 1, 1])
    with pytest.raises(ValueError, match=r"user_train is a (posix|os)\.system\(\.\.\.\), expected a dict or a list"):
        fr.datasets.dvbpr(path)
    assert not marker.exists()


def test_corrupt_pickle_opcode_is_located(tmp_path, splits):
    train, val, test = splits
    path = fr.io.write_dvbpr(tmp_path / "x.npy", train, val, test, [fake_jpeg(i) for i in range(80)])
    raw = bytearray(path.read_bytes())
    header = 128
    raw[header + 60] = 0xFF  # an opcode slot inside the array prefix
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"x.npy: byte offset {header + 60}: unknown opcode 0xff"):
        fr.datasets.dvbpr(path)


def test_writer_checks_its_input(splits, tmp_path):
    train, val, test = splits
    jpegs = [fake_jpeg(i) for i in range(80)]
    with pytest.raises(ValueError, match="79 images for 80 items"):
        fr.io.write_dvbpr(tmp_path / "a.npy", train, val, test, jpegs[:-1])
    with pytest.raises(TypeError, match=r"jpeg_bytes\[2\] is a str"):
        fr.io.write_dvbpr(tmp_path / "a.npy", train, val, test, jpegs[:2] + ["x"] + jpegs[3:])
    other = fr.datasets.synthetic(10, 80, mean_items_per_user=5, seed=0)
    with pytest.raises(ValueError, match="user_validation uses other user/item ids"):
        fr.io.write_dvbpr(tmp_path / "a.npy", train, other, test, jpegs)
    assert not (tmp_path / "a.npy").exists() and not list(tmp_path.glob("*.partial"))


def test_bank_from_a_dvbpr_file_of_real_photos(tmp_path):
    folder = data_dir("fashion-product-images-small") / "images"
    paths = sorted(folder.glob("*.jpg"))[:40]
    data = fr.Interactions.from_arrays(np.arange(40) % 10, np.arange(40), n_users=10, n_items=40)
    train, test = fr.split.random_split(data, 0.25, seed=0)
    jpegs = [p.read_bytes() for p in paths]
    jpegs[9] = jpegs[9][: len(jpegs[9]) // 3]  # a truncated download
    path = fr.io.write_dvbpr(tmp_path / "photos.npy", train, test, test, jpegs)
    d = fr.datasets.dvbpr(path)
    with pytest.raises(ValueError, match=r"image of item 9 \(.*photos\.npy, bytes \d+\.\.\d+\): truncated JPEG.*starts at byte offset \d+ of the file"):
        fr.ImageBank.from_source(d.images, size=64, progress=False)
    with pytest.warns(UserWarning, match="1 of 40 images could not be decoded"):
        bank = fr.ImageBank.from_source(d.images, size=64, on_error="skip", cache=True, progress=False)
    assert bank.cache_path == path.with_name("photos.npy.fr-images-64x64-bilinear.bank")
    assert [k for k, _ in bank.skipped] == [9]
    direct = fr.ImageBank.from_files(paths, size=64, progress=False)
    keep = [i for i in range(40) if i != 9]
    assert np.array_equal(bank.array()[keep], direct.array()[keep])
    with pytest.warns(UserWarning, match="1 of 40 images could not be decoded"):
        again = fr.ImageBank.from_source(fr.datasets.dvbpr(path).images, size=64, on_error="skip", cache=True, progress=False)
    assert again.cache_status == "reused" and [k for k, _ in again.skipped] == [9]


def test_python2_pickle_bytes_match_the_cpickle_layout(splits, tmp_path):
    """Our writer's stream is a valid protocol-2 pickle of the right shape (pickletools agrees)."""
    import pickletools

    train, val, test = splits
    path = fr.io.write_dvbpr(tmp_path / "p.npy", train, val, test, [fake_jpeg(i) for i in range(80)])
    raw = path.read_bytes()
    ops = [op.name for op, _, _ in pickletools.genops(io.BytesIO(raw[128:]))]
    assert ops[:3] == ["PROTO", "GLOBAL", "BINPUT"] and ops[-1] == "STOP"
    assert "BINSTRING" in ops and "SHORT_BINSTRING" in ops and "BINGET" in ops and "SETITEMS" in ops
    assert "BINUNICODE" not in ops and "BINBYTES" not in ops  # Python 2 str, as the real files
    assert pickle.loads(raw[128:], encoding="bytes").shape == (6,)
