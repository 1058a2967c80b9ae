"""DVBPR and VBPR through the Python API, on a small generated catalogue (32x32 images)."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pandas as pd
import pytest

import fashionrec as fr

SIZE = 32


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    items, pixels = fr.datasets.synthetic_catalogue(120, SIZE, seed=1)
    folder = tmp_path_factory.mktemp("catalogue")
    paths = fr.testing.write_pngs(pixels, folder)
    vt = fr.datasets.visual_taste(items, n_users=60, items_per_user=8, min_group=3, cold_fraction=0.25, seed=1)
    ids = vt.train.item_ids
    bank = fr.ImageBank.from_files([paths[int(i)] for i in ids], size=SIZE, ids=ids, progress=False)
    return vt, bank, pixels


def small(**kw) -> fr.DVBPR:
    params = dict(factors=8, image_size=SIZE, epochs=2, lr=1e-3, batch_size=32, fc_width=256, device="cpu", seed=0)
    params.update(kw)
    return fr.DVBPR(**params)


@pytest.fixture(scope="module")
def fitted(task):
    vt, bank, _ = task
    return small(epochs=3).fit(vt.train, images=bank, validation=vt.validation, metrics=["auc"], progress=False)


def test_fit_scores_every_bank_item_cold_ones_included(task, fitted):
    vt, bank, _ = task
    assert fitted.n_items == len(bank) == vt.train.n_items
    s = fitted.score(vt.train.user_ids[:3])
    assert s.shape == (3, len(bank)) and np.isfinite(s).all()
    emb = fitted.item_embeddings()
    assert emb.shape == (len(bank), 8)
    cold = vt.train.item_index(vt.cold_items)
    assert np.abs(emb[cold]).sum() > 0
    # Scores are theta_u . phi(image_i), the embeddings being phi.
    theta = fitted.user_embeddings()
    np.testing.assert_allclose(s, theta[:3] @ emb.T, rtol=1e-4, atol=1e-5)
    assert fitted.history_["epoch"] == [1, 2, 3]
    assert all(0 <= a <= 1 for a in fitted.history_["val_auc"])
    items, scores = fitted.recommend(vt.train.user_ids[0], k=5, exclude=vt.train)
    assert len(items) == 5 and np.all(np.diff(scores) <= 0)
    assert fitted.similar_items(vt.cold_items[0], k=3)[0].shape == (3,)


def test_save_load_scores_without_images_and_embeds_new_ones(task, fitted, tmp_path):
    vt, bank, _ = task
    path = tmp_path / "dvbpr.safetensors"
    fitted.save(path)
    back = fr.load(path, device="cpu")
    assert isinstance(back, fr.DVBPR)
    users = vt.train.user_ids[:4]
    np.testing.assert_array_equal(back.score(users), fitted.score(users))
    np.testing.assert_allclose(back.embed_images(bank), fitted.item_embeddings(), atol=1e-5)


#: DVBPR's configuration keys before format 3 (the one vocabulary), and what they became.
OLD_NAMES = {"factors": "k", "reg_cnn": "lambda_cnn", "reg_fc": "lambda_fc", "reg_user": "lambda_u"}


def _as_older_format(path, out, version: str) -> None:
    """The model file at `path` as fashionrec wrote it in format `version` ("1": no checksum;
    "2": a CRC-32 over the tensors and the metadata): the configuration in the old names, with
    the fields that were then in it (checkpoint_dir, resume)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    meta = header["__metadata__"]
    config = json.loads(meta["config"])
    config = {OLD_NAMES.get(key, key): value for key, value in config.items()}
    config.update(checkpoint_dir="/gone/ckpt", resume=False)
    meta["config"] = json.dumps(config)
    meta["format_version"] = version
    meta.pop("checksum")
    if version == "2":  # the checksum the core writes (tests/test_hostile_inputs.py: _edit_tensor)
        h = 0
        for key in sorted(k for k in header if k != "__metadata__"):
            t = header[key]
            h = zlib.crc32(key.encode() + b"\0" + t["dtype"].encode() + b"\0", h)
            for d in t["shape"]:
                h = zlib.crc32(struct.pack("<Q", d), h)
            a, b = t["data_offsets"]
            h = zlib.crc32(body[a:b], h)
        for key in sorted(meta):
            h = zlib.crc32(key.encode() + b"\0" + meta[key].encode() + b"\0", h)
        meta["checksum"] = f"crc32:{h:08x}"
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    out.write_bytes(struct.pack("<Q", len(text)) + text + body)


@pytest.mark.parametrize("version", ["1", "2"])
def test_model_files_in_the_old_names_load(task, fitted, tmp_path, version):
    vt, _, _ = task
    path = tmp_path / "dvbpr.safetensors"
    fitted.save(path)
    old = tmp_path / f"format{version}.safetensors"
    _as_older_format(path, old, version)
    assert b"lambda_u" in old.read_bytes() and b"reg_user" not in old.read_bytes()
    back = fr.load(old, device="cpu")
    assert back.get_params() == fitted.get_params()
    users = vt.train.user_ids[:4]
    np.testing.assert_array_equal(back.score(users), fitted.score(users))


def test_evaluate_warm_and_cold_items(task, fitted):
    vt, _, _ = task
    cold = fr.evaluate(fitted, vt.cold_test, train=vt.train, items=vt.cold_items, metrics=["auc", "sampled_auc"])
    warm = fr.evaluate(fitted, vt.test, train=vt.train, exclude=[vt.validation], items=vt.warm_items, metrics=["auc"])
    assert cold["users"] > 0 and warm["users"] > 0
    assert 0 <= cold["auc"] <= 1 and 0 <= cold["sampled_auc"] <= 1


def test_resumed_fit_equals_an_uninterrupted_one(task, tmp_path):
    vt, bank, _ = task
    full = small(epochs=3).fit(vt.train, images=bank, progress=False, checkpoint_dir=tmp_path / "a")
    small(epochs=2).fit(vt.train, images=bank, progress=False, checkpoint_dir=tmp_path / "b")
    resumed = small(epochs=3).fit(vt.train, images=bank, progress=False, checkpoint_dir=tmp_path / "b", resume=True)
    np.testing.assert_array_equal(resumed.item_embeddings(), full.item_embeddings())
    np.testing.assert_array_equal(resumed.user_embeddings(), full.user_embeddings())
    assert resumed.history_["loss"] == full.history_["loss"]
    with pytest.raises(ValueError, match="other settings"):
        small(epochs=3, lr=5e-4).fit(vt.train, images=bank, progress=False, checkpoint_dir=tmp_path / "b", resume=True)


def test_bad_input_is_a_value_error(task, tmp_path):
    vt, bank, pixels = task
    with pytest.raises(ValueError, match="image_size"):
        small(image_size=64).fit(vt.train, images=bank, progress=False)
    with pytest.raises(ValueError, match="tower"):
        fr.DVBPR(tower="vgg")
    with pytest.raises(ValueError, match="too small"):
        fr.DVBPR(image_size=16)
    with pytest.raises(ValueError, match="images"):
        small().fit(vt.train, progress=False)
    # A training item whose photo could not be decoded.
    ids = vt.train.item_ids
    counts = vt.train.item_counts()
    victim = int(ids[np.argmax(counts)])
    paths = fr.testing.write_pngs(pixels[ids], tmp_path, ids=ids)
    paths[int(np.argmax(counts))].write_bytes(b"not an image")
    with pytest.warns(UserWarning):
        broken = fr.ImageBank.from_files(paths, size=SIZE, ids=ids, on_error="skip", progress=False)
    with pytest.raises(ValueError, match=f"training item {victim} has no image"):
        small(epochs=1).fit(vt.train, images=broken, progress=False)


def test_vbpr_scores_cold_items_by_their_visual_term(task, tmp_path):
    vt, bank, _ = task
    feats = bank.array().reshape(len(bank), 4, SIZE // 4, 4, SIZE // 4, 3).mean(axis=(2, 4))
    feats = (feats.reshape(len(bank), -1) / 127.5 - 1).astype(np.float32)
    m = fr.VBPR(factors=8, visual_factors=8, epochs=20, lr=0.01, device="cpu", seed=0)
    m.fit(vt.train, item_features=feats, progress=False)
    s = m.score(vt.train.user_ids[:5])
    assert s.shape == (5, len(bank))
    cold = fr.evaluate(m, vt.cold_test, train=vt.train, items=vt.cold_items, metrics=["auc"])
    bpr = fr.BPR(factors=8, epochs=20, device="cpu", seed=0).fit(vt.train, progress=False)
    cold_bpr = fr.evaluate(bpr, vt.cold_test, train=vt.train, items=vt.cold_items, metrics=["auc"])
    # Colour is in the pixels: VBPR ranks cold items; BPR-MF's cold items all score 0 (a tie).
    assert cold["auc"] > cold_bpr["auc"] + 0.1, (cold, cold_bpr)
    path = tmp_path / "vbpr.safetensors"
    m.save(path)
    np.testing.assert_array_equal(fr.load(path, device="cpu").score(vt.train.user_ids[:5]), s)
    with pytest.raises(ValueError, match="item_features"):
        fr.VBPR(device="cpu").fit(vt.train, progress=False)


def test_vbpr_embeds_new_items_from_their_features_as_dvbpr_embeds_photos(task):
    """embed_features: new items after fit, scored as cold items are ([0, E f], beta' . f)."""
    vt, bank, _ = task
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(len(bank), 6)).astype(np.float32)
    m = fr.VBPR(factors=4, visual_factors=3, epochs=3, device="cpu", seed=0).fit(vt.train, item_features=feats, progress=False)
    new = rng.normal(size=(5, 6)).astype(np.float32)
    vectors, bias = m.embed_features(new)
    assert vectors.shape == (5, 4 + 3) and bias.shape == (5,) and vectors.dtype == np.float32
    assert not vectors[:, :4].any()  # no collaborative part, as a cold item
    # The catalogue's cold items are scored exactly as the same features embedded after fit.
    cold = vt.train.item_index(vt.cold_items[:3])
    v, b = m.embed_features(pd.DataFrame(feats[cold], columns=list("abcdef")))
    s = m.score(vt.train.user_ids[:4])
    np.testing.assert_allclose(m.user_vectors()[:4] @ v.T + b, s[:, cold], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v[:, 4:], m.item_vectors()[cold, 4:], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="the features have 5 numeric column"):
        m.embed_features(new[:, :5])
    with pytest.raises(TypeError, match="features must be"):
        m.embed_features([[1.0] * 6])
    with pytest.raises(ValueError, match="cannot embed new items"):
        fr.BPR(factors=4, epochs=1, device="cpu").fit(vt.train, progress=False)._core.embed_new_items(fr._core.SideInfo())
