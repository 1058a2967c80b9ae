"""fr.ConvAutoencoder: training on an image bank, codes, reconstructions, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest

import fashionrec as fr

Image = pytest.importorskip("PIL.Image")


def pattern(i: int, size: int) -> np.ndarray:
    """Simple, learnable images: a colour gradient and a block, varying with i."""
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:size, 0:size] / size
    colour = rng.uniform(0, 255, 3)
    img = colour * (0.3 + 0.7 * (x if i % 2 else y))[..., None]
    a, b = rng.integers(0, size // 2, 2)
    img[a : a + size // 3, b : b + size // 3] = 255 - colour
    return img.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> fr.ImageBank:
    folder = tmp_path_factory.mktemp("cae")
    paths = []
    for i in range(40):
        p = folder / f"{i}.png"
        Image.fromarray(pattern(i, 32)).save(p)
        paths.append(p)
    return fr.ImageBank.from_files(paths, size=32, progress=False)


def small(**kw) -> fr.ConvAutoencoder:
    args = dict(latent=16, image_size=32, channels=8, depth=3, epochs=12, lr=3e-3, batch_size=8, device="cpu", seed=0)
    args.update(kw)
    return fr.ConvAutoencoder(**args)


@pytest.fixture(scope="module")
def fitted(bank) -> fr.ConvAutoencoder:
    return small().fit(bank, progress=False)


def test_fit_learns_to_reconstruct(bank, fitted):
    h = fitted.history_
    assert h["epoch"] == list(range(1, 13)) and all(s > 0 for s in h["seconds"])
    assert h["loss"][-1] < 0.5 * h["loss"][0], h["loss"]
    originals = bank.images(np.arange(len(bank))).astype(np.float64)
    recon = fitted.reconstruct(bank, np.arange(len(bank)))
    assert recon.dtype == np.uint8 and recon.shape == (40, 32, 32, 3)
    # Better than the best constant guess (the mean image): the code carries the image
    # (0.72 of its error after these 12 short epochs; an untrained network is far above 1).
    err = np.mean((recon - originals) ** 2)
    mean_err = np.mean((originals.mean(axis=0) - originals) ** 2)
    assert err < 0.85 * mean_err, (err, mean_err)


def test_encode_gives_one_code_per_image(bank, fitted):
    codes = fitted.encode(bank)
    assert codes.shape == (40, 16) and codes.dtype == np.float32 and np.isfinite(codes).all()
    assert np.linalg.matrix_rank(codes) > 8, "codes differ between images"
    assert fitted.reconstruct(bank, [3, 0]).shape == (2, 32, 32, 3)
    assert fitted.reconstruct(bank, 3).shape == (32, 32, 3)  # a scalar row: one image
    assert np.array_equal(fitted.reconstruct(bank, 3), fitted.reconstruct(bank, [3])[0])


def test_save_and_load_round_trip(bank, fitted, tmp_path):
    path = tmp_path / "cae.safetensors"
    fitted.save(path)
    back = fr.ConvAutoencoder.load(path, device="cpu")
    assert back.get_params() == fitted.get_params() and back.history_ == fitted.history_
    np.testing.assert_array_equal(back.encode(bank), fitted.encode(bank))
    assert list(tmp_path.iterdir()) == [path], "no temporary file left"
    (tmp_path / "junk").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="junk"):
        fr.ConvAutoencoder.load(tmp_path / "junk")


def test_same_seed_same_training(bank):
    a = small(epochs=2).fit(bank, progress=False)
    b = small(epochs=2).fit(bank, progress=False)
    np.testing.assert_allclose(a.history_["loss"], b.history_["loss"], rtol=1e-5)


def test_callback_stops_training(bank):
    seen = []
    cae = small(epochs=5).fit(bank, progress=False, callback=lambda e, logs: seen.append(e) or e < 2)
    assert seen == [1, 2] and cae.history_["epoch"] == [1, 2]


def test_bad_settings_and_inputs_are_value_errors(bank):
    with pytest.raises(ValueError, match="multiple of 2\\^depth = 8"):
        small(image_size=30)
    with pytest.raises(ValueError, match="lr"):
        small(lr=0)
    with pytest.raises(ValueError, match="image_size=64"):
        small(image_size=64).fit(bank, progress=False)
    with pytest.raises(RuntimeError, match="not fitted"):
        small().encode(bank)
    with pytest.raises(TypeError, match="ImageBank"):
        small().fit(np.zeros((2, 32, 32, 3), np.uint8))
    fitted = small(epochs=1).fit(bank, progress=False)
    with pytest.raises(ValueError, match="out of range"):
        fitted.reconstruct(bank, [40])
