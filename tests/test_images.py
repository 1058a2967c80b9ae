"""Image decoding, Pillow-exact resizing and the image bank."""

from __future__ import annotations

import io
import os
import time
import warnings

import numpy as np
import pytest

import fashionrec as fr
from fashionrec import _core
from fashionrec.images import decode_image, resize_image

from conftest import data_dir

Image = pytest.importorskip("PIL.Image")
PIL_FILTERS = {
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like image (smooth gradients and a few edges) that JPEG compresses well."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * (c + 1) + y * (3 - c)) * 255.0 / (w + h) for c in range(3)], axis=-1)
    img += 40 * np.sin(x / (5 + seed % 7))[..., None] + rng.normal(0, 4, img.shape)
    img[h // 3 : h // 2, w // 4 : w // 2] = rng.integers(0, 256, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg_bytes(img: np.ndarray, quality: int = 90, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality, **kw)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# -- resizing ------------------------------------------------------------------------------


@pytest.mark.skipif(int(Image.__version__.split(".")[0]) != 13, reason="the pass order checked is Pillow 13's")
def test_resize_is_bit_exact_with_pillow():
    rng = np.random.default_rng(0)
    cases = [((224, 224), (224, 224)), ((1750, 1166), (224, 224)), ((60, 80), (224, 224)), ((3, 500), (7, 2))]
    cases += [(tuple(rng.integers(1, 180, 2)), tuple(rng.integers(1, 180, 2))) for _ in range(40)]
    for (h, w), (oh, ow) in cases:
        img = rng.integers(0, 256, (int(h), int(w), 3), dtype=np.uint8)
        for name, f in PIL_FILTERS.items():
            ref = np.asarray(Image.fromarray(img).resize((int(ow), int(oh)), f))
            got = resize_image(img, (int(oh), int(ow)), name)
            assert np.array_equal(ref, got), (name, (h, w), (oh, ow))


def test_resize_rejects_bad_input():
    with pytest.raises(ValueError, match="filter must be one of"):
        resize_image(np.zeros((4, 4, 3), np.uint8), 2, "nearest-ish")
    with pytest.raises(ValueError, match="positive"):
        resize_image(np.zeros((4, 4, 3), np.uint8), 0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        resize_image(np.zeros((4, 4, 4), np.uint8), 2)


# -- decoding ------------------------------------------------------------------------------


def test_jpeg_decodes_close_to_pillow():
    for seed, (h, w) in enumerate([(224, 224), (97, 131), (300, 200)]):
        img = smooth_image(h, w, seed)
        for sub in (0, 2):  # 4:4:4 and 4:2:0 chroma
            data = jpeg_bytes(img, subsampling=sub)
            ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
            got = decode_image(data).astype(int)
            assert got.shape == ref.shape
            diff = np.abs(got - ref)
            # Decoders differ by IDCT / upsampling rounding only (libjpeg-turbo vs zune-jpeg).
            assert diff.max() <= 8 and diff.mean() < 0.5, (seed, sub, diff.max(), diff.mean())


@pytest.mark.skipif(not fr._core.jpeg_decoder().startswith("libjpeg-turbo"), reason="built without nasm: full-size JPEGs go through zune-jpeg")
def test_jpeg_is_pillows_to_the_bit_with_libjpeg_turbo():
    """With libjpeg-turbo's SIMD built in, every JPEG goes through Pillow's own decoder."""
    for seed, (h, w) in enumerate([(224, 224), (97, 131), (300, 200)]):
        img = smooth_image(h, w, seed)
        for sub in (0, 1, 2):
            data = jpeg_bytes(img, subsampling=sub)
            ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            assert np.array_equal(decode_image(data), ref), (seed, sub)
    grey = jpeg_bytes(smooth_image(40, 50, 1)[..., 0])
    assert np.array_equal(decode_image(grey), np.asarray(Image.open(io.BytesIO(grey)).convert("RGB")))


def test_grey_and_cmyk_free_modes_become_rgb():
    grey = smooth_image(40, 50, 1)[..., 0]
    data = jpeg_bytes(grey)
    got = decode_image(data)
    ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert got.shape == (40, 50, 3) and np.abs(got.astype(int) - ref).max() <= 2


def test_png_modes_are_exact():
    rgb = smooth_image(33, 21, 2)
    rgba = Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)]), "RGBA")
    for im in [Image.fromarray(rgb), rgba, Image.fromarray(rgb[..., 0], "L"), Image.fromarray(rgb).convert("P"), Image.fromarray(rgb).convert("LA")]:
        data = png_bytes(im)
        ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert np.array_equal(decode_image(data), ref), im.mode


def test_bad_image_bytes_say_what_is_wrong():
    data = jpeg_bytes(smooth_image(64, 64, 3))
    with pytest.raises(ValueError, match=rf"truncated JPEG: the data ends at byte {len(data) // 2}"):
        decode_image(data[: len(data) // 2])
    with pytest.raises(ValueError, match="GIF"):
        decode_image(b"GIF89a\x01\x00\x01\x00")
    with pytest.raises(ValueError, match="not a JPEG or PNG"):
        decode_image(b"user_id,item_id\n1,2\n")
    with pytest.raises(ValueError, match="empty"):
        decode_image(b"")


def test_real_fashion_photos_match_pillow():
    folder = data_dir("fashion-product-images-small") / "images"
    paths = sorted(folder.glob("*.jpg"))[:200]
    bank = fr.ImageBank.from_files(paths, size=224, progress=False)
    ref = np.stack([np.asarray(Image.open(p).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)) for p in paths])
    diff = np.abs(bank.array().astype(int) - ref)
    assert diff.max() <= 8 and diff.mean() < 0.2, (diff.max(), diff.mean())


def test_large_hm_photos_are_resized_like_pillow():
    folder = data_dir("hm-sample") / "images"
    paths = sorted(folder.glob("*.jpg"))[:12]
    full = fr.ImageBank.from_files(paths, size=(224, 160), filter="bicubic", reduce=False, progress=False)
    reduced = fr.ImageBank.from_files(paths, size=(224, 160), filter="bicubic", progress=False)
    assert not full.reduce and reduced.reduce
    for k, p in enumerate(paths):
        # Resize what we decoded with PIL: equal if the resize is Pillow's.
        ours = decode_image(p.read_bytes())
        assert ours.shape[0] > 1000
        ref = np.asarray(Image.fromarray(ours).resize((160, 224), Image.Resampling.BICUBIC))
        assert np.array_equal(full.array()[k], ref), p.name
        small = decode_image(p.read_bytes(), reduce_to=(224, 160))
        assert small.shape[0] < ours.shape[0] // 2
        ref = np.asarray(Image.fromarray(small).resize((160, 224), Image.Resampling.BICUBIC))
        assert np.array_equal(reduced.array()[k], ref), p.name
        # The reduced decode is Pillow's draft decode.
        im = Image.open(p)
        im.draft("RGB", (160, 224))
        draft = np.asarray(im.convert("RGB")).astype(int)
        assert draft.shape == small.shape and np.abs(draft - small).mean() < 0.05, p.name


@pytest.mark.parametrize("mode,sub", [("RGB", 2), ("RGB", 0), ("L", 0)])
def test_large_jpegs_are_decoded_at_reduced_scale_as_pillow_draft(mode, sub):
    img = smooth_image(700, 1000, 5)
    data = jpeg_bytes(img if mode == "RGB" else img[..., 1], subsampling=sub)
    for target, scale in [((300, 300), 2), ((160, 224), 4), ((64, 64), 8), ((351, 100), 1)]:
        got = decode_image(data, reduce_to=target)
        assert got.shape == (-(-700 // scale), -(-1000 // scale), 3), (target, got.shape)
        im = Image.open(io.BytesIO(data))
        im.draft("RGB", target[::-1])
        ref = np.asarray(im.convert("RGB")).astype(int)
        assert ref.shape == got.shape
        diff = np.abs(got.astype(int) - ref)
        if scale > 1:  # libjpeg's reduced IDCT, with the settings of Pillow's draft mode
            if (sub, scale) == (2, 2):
                # 4:2:0 at 1/2: Pillow's libjpeg-turbo 3 upsamples chroma with other rounding.
                assert diff.max() <= 2 and diff.mean() < 0.5, (target, diff.max(), diff.mean())
            else:
                assert diff.max() == 0, (target, diff.max(), diff.mean())
    assert decode_image(data).shape == (700, 1000, 3)


def test_reduced_decoding_is_as_strict_as_the_full_one():
    data = jpeg_bytes(smooth_image(640, 640, 7))
    for cut in (len(data) // 3, len(data) - 40, len(data) - 2):
        with pytest.raises(ValueError, match=rf"truncated JPEG: the data ends at byte {cut}"):
            decode_image(data[:cut], reduce_to=64)
    bad = bytearray(data)
    bad[len(bad) // 2 : len(bad) // 2 + 64] = b"\xff\xd9" * 32  # end-of-image markers mid-scan
    with pytest.raises(ValueError, match="JPEG"):
        decode_image(bytes(bad), reduce_to=64)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (and no pixel data)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """``data`` with its frame header (SOF0) claiming width x height."""
    at = data.index(b"\xff\xc0") + 5
    return data[:at] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[at + 4 :]


def test_decompression_bombs_are_refused_before_decoding(tmp_path):
    with pytest.raises(ValueError, match=r"PNG header declares 60000x60000 = 3600000000 pixels, above the limit"):
        decode_image(_png_header_only(60000, 60000))
    jpeg = _jpeg_with_size(jpeg_bytes(smooth_image(16, 16, 1)), 60000, 60000)
    with pytest.raises(ValueError, match=r"JPEG header declares 60000x60000 .* raise max_pixels"):
        decode_image(jpeg)
    small = jpeg_bytes(smooth_image(40, 50, 1))
    with pytest.raises(ValueError, match="40 = 2000 pixels, above the limit of 1999"):
        decode_image(small, max_pixels=1999)
    assert decode_image(small, max_pixels=None).shape == (40, 50, 3)
    p = tmp_path / "a.jpg"
    p.write_bytes(small)
    with pytest.raises(ValueError, match=r"image of item 0 .*a\.jpg.*above the limit of 1000"):
        fr.ImageBank.from_files([p], size=8, max_pixels=1000, progress=False)
    assert len(fr.ImageBank.from_files([p], size=8, max_pixels=2000, progress=False)) == 1
    with pytest.raises(ValueError, match="max_pixels must be"):
        decode_image(small, max_pixels=0)


def test_huge_targets_are_refused_before_allocating(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    for size in [(10**6, 10**6), 10**5, (1, 10**12), 10**30]:
        with pytest.raises(ValueError, match="size"):
            resize_image(img, size)
    p = tmp_path / "a.jpg"
    p.write_bytes(jpeg_bytes(smooth_image(40, 50, 1)))
    for size in [(10**6, 10**6), 10**30]:
        with pytest.raises(ValueError, match="size"):
            fr.ImageBank.from_files([p], size=size, progress=False)


# -- the bank ------------------------------------------------------------------------------


@pytest.fixture()
def image_dir(tmp_path):
    paths = []
    for i in range(12):
        p = tmp_path / f"img{i:02d}.jpg"
        p.write_bytes(jpeg_bytes(smooth_image(80 + i, 60 + 2 * i, i)))
        paths.append(p)
    return tmp_path, paths


def test_bank_array_is_a_read_only_view_and_batches_are_normalised(image_dir):
    _, paths = image_dir
    bank = fr.ImageBank.from_files(paths, size=32, ids=[f"sku{i}" for i in range(12)], progress=False)
    a, b = bank.array(), bank.array()
    assert a.shape == (12, 32, 32, 3) and a.dtype == np.uint8
    assert np.shares_memory(a, b) and not a.flags.writeable and a.base is not None
    with pytest.raises(ValueError):
        a[0, 0, 0, 0] = 1
    del bank
    assert a.sum() > 0  # the view keeps the bank alive
    bank = fr.ImageBank.from_files(paths, size=(32, 24), progress=False)
    assert bank.size == (32, 24) and len(bank) == 12 and bank.cache_path is None and bank.cache_status is None
    x = bank.batch([3, 0])
    assert tuple(x.shape) == (2, 3, 32, 24) and str(x.dtype) == "torch.float32"
    expect = bank.array()[[3, 0]].transpose(0, 3, 1, 2) / 127.5 - 1
    assert np.allclose(x.numpy(), expect, atol=1e-6)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert np.array_equal(bank.images([5, 5]), bank.array()[[5, 5]])
    with pytest.raises(ValueError, match="out of range"):
        bank.images([12])


def test_a_scalar_row_gives_one_image_a_sequence_a_batch(image_dir):
    """numpy's rule: bank.images(5) is (H, W, 3), bank.images([5]) is (1, H, W, 3)."""
    _, paths = image_dir
    bank = fr.ImageBank.from_files(paths, size=(32, 24), progress=False)
    assert bank.images(5).shape == (32, 24, 3) and bank.images(np.int64(5)).shape == (32, 24, 3)
    assert np.array_equal(bank.images(5), bank.array()[5])
    assert bank.images([5]).shape == (1, 32, 24, 3) and bank.images(np.array([5])).shape == (1, 32, 24, 3)
    assert tuple(bank.batch(5).shape) == (3, 32, 24) and tuple(bank.batch([5]).shape) == (1, 3, 32, 24)
    assert np.array_equal(bank.batch(5).numpy(), bank.batch([5])[0].numpy())


def test_bank_errors_name_the_item_and_file_or_are_listed(image_dir):
    folder, paths = image_dir
    bad = folder / "img05.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    (folder / "notes.jpg").write_text("not an image")
    paths = paths + [folder / "notes.jpg", folder / "missing.jpg"]
    # Files that are not there are found before anything is allocated or decoded.
    with pytest.raises(ValueError, match=r"image of item 13 \(.*missing\.jpg\): cannot read the file"):
        fr.ImageBank.from_files(paths, size=16, progress=False)
    with pytest.raises(ValueError, match=r"image of item 5 \(.*img05\.jpg\): truncated JPEG: the data ends at byte 300"):
        fr.ImageBank.from_files(paths[:-1], size=16, progress=False)
    with pytest.warns(UserWarning, match="3 of 14 images could not be decoded"):
        bank = fr.ImageBank.from_files(paths, size=16, ids=range(100, 114), on_error="skip", progress=False)
    skipped = dict(bank.skipped)
    assert sorted(skipped) == [105, 112, 113]
    assert "truncated JPEG" in skipped[105] and "img05.jpg" in skipped[105]
    assert "not a JPEG or PNG" in skipped[112]
    assert "cannot read the file" in skipped[113] and "missing.jpg" in skipped[113]
    assert bank.array()[[5, 12, 13]].max() == 0 and bank.array()[4].max() > 0
    with pytest.raises(ValueError, match="on_error must be"):
        fr.ImageBank.from_files(paths, size=16, on_error="ignore", progress=False)


def test_cache_is_reused_rebuilt_and_opened(image_dir):
    folder, paths = image_dir
    cache = folder / "bank.frb"
    a = fr.ImageBank.from_files(paths, size=20, cache=cache, progress=False)
    assert a.cache_status == "built" and a.cache_path == cache
    t = time.perf_counter()
    b = fr.ImageBank.from_files(paths, size=20, cache=cache, progress=False)
    assert b.cache_status == "reused" and np.array_equal(a.array(), b.array())
    assert not b.array().flags.writeable
    opened = fr.ImageBank.open(cache)
    assert opened.cache_status == "opened" and np.array_equal(opened.array(), a.array())
    # A changed source image makes the cache stale: rebuilt, with a warning.
    os.utime(paths[2], ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.warns(UserWarning, match="rebuilt: the source images changed"):
        c = fr.ImageBank.from_files(paths, size=20, cache=cache, progress=False)
    assert c.cache_status == "rebuilt"
    with pytest.warns(UserWarning, match="rebuilt: it holds 20x20"):
        fr.ImageBank.from_files(paths, size=24, cache=cache, progress=False)
    assert time.perf_counter() - t < 60
    # cache=True: a file next to the images.
    d = fr.ImageBank.from_files(paths, size=20, cache=True, progress=False)
    assert d.cache_path.parent == folder and d.cache_path.name.startswith(".fr-images-20x20-bilinear")
    # A damaged cache file is named.
    cache.write_bytes(cache.read_bytes()[:-10])
    with pytest.raises(ValueError, match="bank.frb: truncated or damaged image bank"):
        fr.ImageBank.open(cache)
    with pytest.raises(ValueError, match="not a fashionrec image bank"):
        fr.ImageBank.open(paths[0])


def test_cache_path_of_another_kind_is_refused_not_overwritten(image_dir):
    folder, paths = image_dir
    notes = folder / "notes.csv"
    notes.write_text("user,item\n1,2\n")
    with pytest.raises(ValueError, match="notes.csv exists and is not a fashionrec image bank: refusing"):
        fr.ImageBank.from_files(paths, size=8, cache=notes, progress=False)
    assert notes.read_text() == "user,item\n1,2\n"
    with pytest.raises(ValueError, match="is a directory"):
        fr.ImageBank.from_files(paths, size=8, cache=folder, progress=False)
    # Switching reduce rebuilds the bank's own cache (the pixels differ).
    cache = folder / "bank.frb"
    fr.ImageBank.from_files(paths, size=8, cache=cache, progress=False)
    with pytest.warns(UserWarning, match="rebuilt: it was built with reduced-scale JPEG decoding, not with full"):
        b = fr.ImageBank.from_files(paths, size=8, cache=cache, reduce=False, progress=False)
    assert not b.reduce and not fr.ImageBank.open(cache).reduce


def test_cancelled_build_leaves_no_file(image_dir):
    folder, paths = image_dir
    src = fr.ImageSource.from_files(paths * 50)  # 600 images: two progress reports

    def stop(done, total):
        raise KeyboardInterrupt

    before = set(os.listdir(folder))
    with pytest.raises(KeyboardInterrupt):
        _core.ImageBank.build(src.core(), 8, 8, cache=str(folder / "c.frb"), progress=stop)
    assert set(os.listdir(folder)) == before


def test_image_source_reads_and_locates(image_dir):
    _, paths = image_dir
    src = fr.ImageSource.from_files(paths, ids=np.arange(12) * 10)
    assert len(src) == 12 and src.ids[3] == 30 and src.container is None
    assert src.read(4) == paths[4].read_bytes() and src.locate(4) == str(paths[4])
    with pytest.raises(IndexError):
        src.read(12)
    with pytest.raises(ValueError, match="ids has 2 entries for 12 images"):
        fr.ImageSource.from_files(paths, ids=[1, 2])


def test_show_draws_a_grid(image_dir):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    _, paths = image_dir
    bank = fr.ImageBank.from_files(paths, size=16, progress=False)
    fig = bank.show(range(10), ncols=4)
    assert len(fig.axes) == 12 and fig.axes[0].get_title() == "0"
    one = bank.show(3, ncols=2)
    assert one.axes[0].get_title() == "3"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import matplotlib.pyplot as plt

        plt.close(fig)
