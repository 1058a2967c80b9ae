"""DVBPR on pretrained backbones: tower="cae" (a convolutional autoencoder's frozen encoder,
given or pretrained in fit) and tower="inception_v3" (ImageNet weights from a safetensors
file, frozen or fine-tuned), each with a trained head; on tiny generated catalogues."""

from __future__ import annotations

import numpy as np
import pytest

import fashionrec as fr

CAE_SIZE = 32
INCEPTION_SIZE = 75  # the smallest image Inception v3 takes


def catalogue(tmp_path_factory, n_items: int, size: int, n_users: int, per_user: int):
    items, pixels = fr.datasets.synthetic_catalogue(n_items, size, seed=2)
    paths = fr.testing.write_pngs(pixels, tmp_path_factory.mktemp("catalogue"))
    vt = fr.datasets.visual_taste(items, n_users=n_users, items_per_user=per_user, min_group=2, cold_fraction=0.25, seed=2)
    ids = vt.train.item_ids
    bank = fr.ImageBank.from_files([paths[int(i)] for i in ids], size=size, ids=ids, progress=False)
    # New products the models never saw: other images of the same generator.
    _, new_pixels = fr.datasets.synthetic_catalogue(6, size, seed=9)
    new = fr.ImageBank.from_files(fr.testing.write_pngs(new_pixels, tmp_path_factory.mktemp("new")), size=size, progress=False)
    return vt, bank, new


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return catalogue(tmp_path_factory, 80, CAE_SIZE, n_users=40, per_user=6)


@pytest.fixture(scope="module")
def cae(small):
    _, bank, _ = small
    return fr.ConvAutoencoder(latent=16, image_size=CAE_SIZE, channels=8, depth=3, epochs=3, lr=3e-3, device="cpu", seed=0).fit(
        bank, progress=False
    )


def cae_dvbpr(**kw) -> fr.DVBPR:
    params = dict(factors=8, tower="cae", image_size=CAE_SIZE, epochs=4, lr=3e-3, batch_size=32, device="cpu", seed=0)
    params.update(kw)
    return fr.DVBPR(**params)


def check_round_trip(model: fr.DVBPR, bank: fr.ImageBank, new: fr.ImageBank, path) -> fr.DVBPR:
    """Saved and loaded: identical scores and embeddings (the file holds the frozen backbone);
    new images embed in the same space, and the catalogue's own images give its embeddings."""
    users = model.user_ids[:5]
    model.save(path)
    back = fr.load(path, device="cpu")
    assert isinstance(back, fr.DVBPR)
    np.testing.assert_array_equal(back.score(users), model.score(users))
    np.testing.assert_array_equal(back.item_embeddings(), model.item_embeddings())
    again = back.embed_images(bank)
    np.testing.assert_allclose(again, model.item_embeddings(), rtol=1e-5, atol=1e-5)
    fresh = back.embed_images(new)
    assert fresh.shape == (len(new), model.get_params()["factors"]) and np.isfinite(fresh).all()
    np.testing.assert_array_equal(fresh, model.embed_images(new))
    return back


def test_cae_tower_on_a_given_encoder(small, cae, tmp_path):
    vt, bank, new = small
    codes = cae.encode(bank)
    model = cae_dvbpr(encoder=cae, head={"hidden": 32, "dropout": 0.1})
    # The encoder's shape is the model's (not the defaults).
    assert {k: model.get_params()[k] for k in ("latent", "cae_channels", "cae_depth")} == {"latent": 16, "cae_channels": 8, "cae_depth": 3}
    model.fit(vt.train, images=bank, validation=vt.validation, metrics=["auc"], progress=False)
    loss = model.history_["loss"]
    assert len(loss) == 4 and np.isfinite(loss).all() and loss[-1] < loss[0], loss
    assert model.pretrain_history_["epoch"] == []  # given, not pretrained
    np.testing.assert_array_equal(cae.encode(bank), codes)  # the encoder was not trained
    s = model.score(vt.train.user_ids[:3])
    assert s.shape == (3, len(bank)) and np.isfinite(s).all()
    np.testing.assert_allclose(s, model.user_embeddings()[:3] @ model.item_embeddings().T, rtol=1e-4, atol=1e-5)
    check_round_trip(model, bank, new, tmp_path / "cae.safetensors")


def test_cae_tower_pretrains_its_autoencoder_and_resumes_exactly(small, tmp_path):
    vt, bank, _ = small
    kw = dict(latent=8, cae_channels=4, cae_depth=3, pretrain_epochs=2, pretrain_lr=3e-3, head={"hidden": 0})
    full = cae_dvbpr(epochs=3, **kw).fit(vt.train, images=bank, progress=False)
    pre = full.pretrain_history_["loss"]
    assert full.pretrain_history_["epoch"] == [1, 2] and np.isfinite(pre).all() and pre[1] < pre[0], pre
    # Interrupted after 2 epochs, then resumed to 3 from the checkpoint (which holds the
    # pretrained encoder: the resumed fit does not pretrain again).
    ck = tmp_path / "ck"
    cae_dvbpr(epochs=2, **kw).fit(vt.train, images=bank, progress=False, checkpoint_dir=ck)
    resumed = cae_dvbpr(epochs=3, **kw).fit(vt.train, images=bank, progress=False, checkpoint_dir=ck, resume=True)
    assert resumed.pretrain_history_["epoch"] == []
    assert resumed.history_["loss"] == full.history_["loss"]
    np.testing.assert_array_equal(resumed.score(vt.train.user_ids[:4]), full.score(vt.train.user_ids[:4]))


def test_cae_tower_bad_input_names_it(small, cae, tmp_path):
    vt, bank, _ = small
    with pytest.raises(ValueError, match=r"encoder.*32x32.*image_size=64"):
        cae_dvbpr(encoder=cae, image_size=64)
    with pytest.raises(ValueError, match=r"encoder= is for tower='cae'.*\"cnnf\""):
        fr.DVBPR(tower="cnnf", image_size=CAE_SIZE, encoder=cae)
    unfitted = fr.ConvAutoencoder(latent=4, image_size=CAE_SIZE, device="cpu")
    with pytest.raises(ValueError, match="encoder: .*not fitted"):
        cae_dvbpr(encoder=unfitted)
    with pytest.raises(TypeError, match="ConvAutoencoder"):
        cae_dvbpr(encoder="cae.safetensors")
    with pytest.raises(ValueError, match="image_size must be a multiple of 2\\^depth"):
        cae_dvbpr(image_size=36)
    with pytest.raises(ValueError, match="head dropout"):
        cae_dvbpr(head={"dropout": 1.5})
    with pytest.raises(ValueError, match="head= is for"):
        fr.DVBPR(tower="cnnf", head={"hidden": 4})
    # A resumed fit given another encoder than its checkpoint's is refused.
    ck = tmp_path / "ck"
    cae_dvbpr(encoder=cae, epochs=1).fit(vt.train, images=bank, progress=False, checkpoint_dir=ck)
    other = fr.ConvAutoencoder(latent=16, image_size=CAE_SIZE, channels=8, depth=3, epochs=1, device="cpu", seed=5).fit(bank, progress=False)
    with pytest.raises(ValueError, match="another encoder"):
        cae_dvbpr(encoder=other, epochs=2).fit(vt.train, images=bank, progress=False, checkpoint_dir=ck, resume=True)


# -- Inception v3 ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return catalogue(tmp_path_factory, 24, INCEPTION_SIZE, n_users=8, per_user=3)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A randomly initialised torchvision Inception v3, converted (never ImageNet's: nothing
    is downloaded)."""
    tv = pytest.importorskip("torchvision", reason="torchvision builds the randomly initialised weights file")
    import torch

    torch.manual_seed(0)
    net = tv.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    return fr.io.convert_inception_weights(net, tmp_path_factory.mktemp("w") / "inception.safetensors")


def inception_dvbpr(path, **kw) -> fr.DVBPR:
    params = dict(
        factors=4, tower="inception_v3", weights=path, image_size=INCEPTION_SIZE, epochs=2, lr=1e-3, batch_size=16,
        embed_batch=32, device="cpu", seed=0,
    )
    params.update(kw)
    return fr.DVBPR(**params)


def test_inception_tower_frozen_saves_its_backbone(tiny, weights, tmp_path):
    vt, bank, new = tiny
    model = inception_dvbpr(weights).fit(vt.train, images=bank, progress=False)
    loss = model.history_["loss"]
    assert len(loss) == 2 and np.isfinite(loss).all()
    assert model.item_embeddings().shape == (len(bank), 4)
    ck = tmp_path / "ck"
    inception_dvbpr(weights, epochs=1).fit(vt.train, images=bank, progress=False, checkpoint_dir=ck)
    # Neither the loaded model nor a resumed fit needs the weights file: the backbone is in
    # the saved model and in the checkpoint.
    moved = tmp_path / "gone.safetensors"
    weights.rename(moved)
    try:
        back = check_round_trip(model, bank, new, tmp_path / "inception.safetensors")
        resumed = inception_dvbpr(weights).fit(vt.train, images=bank, progress=False, checkpoint_dir=ck, resume=True)
    finally:
        moved.rename(weights)
    assert back.get_params()["train_backbone"] is False
    assert resumed.history_["loss"] == loss
    np.testing.assert_array_equal(resumed.item_embeddings(), model.item_embeddings())


def test_inception_tower_fine_tuned(tiny, weights, tmp_path):
    vt, bank, new = tiny
    frozen = inception_dvbpr(weights, epochs=1).fit(vt.train, images=bank, progress=False)
    tuned = inception_dvbpr(weights, epochs=1, train_backbone=True).fit(vt.train, images=bank, progress=False)
    assert np.isfinite(tuned.history_["loss"]).all()
    # Same seed, head and batches: the embeddings differ only because the backbone moved.
    assert not np.allclose(tuned.item_embeddings(), frozen.item_embeddings())
    check_round_trip(tuned, bank, new, tmp_path / "tuned.safetensors")


def test_inception_tower_bad_input_names_it(tiny, weights, tmp_path):
    vt, bank, _ = tiny
    missing = tmp_path / "no-such-weights.safetensors"
    with pytest.raises(FileNotFoundError, match="no-such-weights.safetensors"):
        inception_dvbpr(missing).fit(vt.train, images=bank, progress=False)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="junk.safetensors"):
        inception_dvbpr(junk).fit(vt.train, images=bank, progress=False)
    with pytest.raises(ValueError, match="needs weights="):
        fr.DVBPR(tower="inception_v3", image_size=INCEPTION_SIZE)
    with pytest.raises(ValueError, match="at least 75"):
        inception_dvbpr(weights, image_size=64)
    with pytest.raises(ValueError, match="weights= is for tower='inception_v3'"):
        fr.DVBPR(tower="cnnf", weights=weights)
    with pytest.raises(ValueError, match="train_backbone=True is for"):
        cae_dvbpr(train_backbone=True)
