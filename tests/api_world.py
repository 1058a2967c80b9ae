"""Valid arguments for every public callable, for tests/test_api_fuzz.py.

The fuzz test calls each public function and method once with valid arguments and then with one
argument at a time replaced by a hostile value. This module builds the valid ones: a tiny data
set, fitted models of every kind, and the files the readers read (inside ``user/``, the folder
whose files the test checks are never changed by a failed call).

Valid values are looked up by parameter name (``VALUES``), or by ``"qualname.param"`` first
(``VALUES_FOR``) where a name means different things in different calls (``path``). A new
public function with a required parameter of a new name makes the fuzz test fail until a value
is added here, so nothing public goes unprobed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

import fashionrec as fr

sys.path.insert(0, str(Path(__file__).resolve().parent))

N_USERS, N_ITEMS, SIZE = 6, 8, 32


def _train() -> fr.Interactions:
    users = np.repeat(np.arange(N_USERS), 3)
    items = (users * 3 + np.tile(np.arange(3), N_USERS)) % N_ITEMS
    return fr.Interactions.from_arrays(users, items, n_users=N_USERS, n_items=N_ITEMS)


class World:
    """Everything a valid call needs, built once per child process in ``tmp``."""

    def __init__(self, tmp: Path):
        from test_datasets_anime import catalogue
        from test_datasets_asos import make_asos
        from test_datasets_catalogues import hm_tables, make_fashion, make_hm
        from test_dvbpr import fake_jpeg

        self.tmp = tmp
        self.user = tmp / "user"
        self.user.mkdir()
        self.scratch = tmp / "scratch"
        self.scratch.mkdir()
        rng = np.random.default_rng(0)
        self.train = _train()
        self.test = fr.Interactions.from_arrays(
            np.arange(N_USERS), (np.arange(N_USERS) * 3 + 5) % N_ITEMS, n_users=N_USERS, n_items=N_ITEMS
        )
        self.pairs = fr.Interactions.from_arrays(
            np.arange(N_ITEMS), (np.arange(N_ITEMS) + 2) % N_ITEMS, n_users=N_ITEMS, n_items=N_ITEMS
        )
        self.features = rng.standard_normal((N_ITEMS, 4)).astype(np.float32)
        self.categories = np.arange(N_ITEMS) % 2
        self.user_frame = pd.DataFrame({"age": rng.normal(30, 5, N_USERS), "group": list("ab" * (N_USERS // 2))})
        self.item_frame = pd.DataFrame({"genre": (np.arange(N_ITEMS) % 2).astype(np.float32)})
        pixels = rng.integers(0, 256, (N_ITEMS, SIZE, SIZE, 3), dtype=np.uint8)
        self.pngs = fr.testing.write_pngs(pixels, self.user / "images")
        self.bank = fr.ImageBank.from_files(self.pngs, size=SIZE, ids=self.train.item_ids)
        self.source = fr.ImageSource.from_files(self.pngs)

        # Files a user has: every one must be unchanged after a call that failed.
        self.csv = self.user / "ratings.csv"
        self.csv.write_text("user_id,item_id,rating\n1,10,4\n2,11,5\n3,10,3\n")
        self.id_list = self.user / "ids.txt"
        self.id_list.write_text("a\nb\nc\n")
        self.feature_file = self.user / "features.b"
        asins = [f"B{k:09d}" for k in range(N_ITEMS)]
        fr.io.write_image_features(self.feature_file, asins, rng.standard_normal((N_ITEMS, 4096)).astype(np.float32))
        self.meta = self.user / "meta.json.gz"
        fr.io.write_amazon_metadata(self.meta, [{"asin": a, "related": {"also_bought": asins[:2]}} for a in asins])
        self.meta_frame = fr.io.read_amazon_metadata(self.meta)
        self.dvbpr_file = self.user / "tiny.npy"
        split = fr.split.leave_one_out(fr.datasets.synthetic(10, 10, mean_items_per_user=4, seed=1), seed=1)
        fr.io.write_dvbpr(self.dvbpr_file, *split, [fake_jpeg(i) for i in range(10)])
        self.anime = catalogue(30)
        self.anime_csv = self.user / "anime.csv"
        fr.testing.write_anime_ratings(self.user / "rating.csv", self.anime, n_users=20)
        self.anime.reset_index().assign(name="x", genre="Comedy", episodes=1).to_csv(self.anime_csv, index=False)
        self.asos = make_asos(self.user / "asos")
        self.fashion = make_fashion(self.user / "fashion", n=40, imaged=10)
        self.hm = make_hm(self.user / "hm", hm_tables())
        self.movielens = self.user / "ml-100k"
        self._write_movielens()

        self.models = self._fit_models()
        self.model_file = self.user / "model.fashionrec"
        self.models[fr.BPR].save(self.model_file)
        self.cae_file = self.user / "cae.fashionrec"
        self.models[fr.ConvAutoencoder].save(self.cae_file)

    def _write_movielens(self) -> None:
        d = self.movielens
        d.mkdir()
        rows = "".join(f"{u}\t{i}\t{4 + (u + i) % 2}\t88125{u}{i}\n" for u in range(1, 5) for i in range(1, 6))
        (d / "u.data").write_text(rows)
        for name in ("u1.base", "u1.test"):
            (d / name).write_text(rows)
        (d / "u.user").write_text("".join(f"{u}|{20 + u}|M|student|0{u}000\n" for u in range(1, 5)))
        genres = "|".join(["0"] * 18 + ["1"])
        (d / "u.item").write_text("".join(f"{i}|Film {i} (1995)|01-Jan-1995||http://x|{genres}\n" for i in range(1, 6)))

    # -- models ------------------------------------------------------------------------------

    def recipe(self, cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
        """(small constructor arguments, what `fit` needs besides the interactions)."""
        small = dict(epochs=1, device="cpu")
        if cls is fr.ConvAutoencoder:
            return dict(small, latent=4, image_size=SIZE, channels=2, depth=2, batch_size=4), {}
        if cls is fr.Popularity:
            return {}, {}
        fit: dict[str, Any] = {}
        if cls is fr.VBPR:
            fit = dict(item_features=self.features)
        elif cls is fr.CompatibilityModel:
            fit = dict(item_features=self.features, categories=self.categories)
        elif cls is fr.HybridBPR:
            fit = dict(user_features=self.user_frame, item_features=self.item_frame)
        elif cls is fr.DVBPR:
            fit = dict(images=self.bank)
            return dict(small, factors=4, image_size=SIZE, batch_size=4, fc_width=8, embed_batch=4), fit
        return dict(small, factors=4, batch_size=8, threads=1), fit

    def data_for(self, cls: type) -> fr.Interactions:
        """The interactions a model of class `cls` trains on (item x item pairs for compatibility)."""
        return self.pairs if cls is fr.CompatibilityModel else self.train

    def _fit_models(self) -> dict[type, Any]:
        out: dict[type, Any] = {}
        for cls in MODEL_CLASSES:
            args, fit = self.recipe(cls)
            if cls is fr.ConvAutoencoder:
                out[cls] = cls(**args).fit(self.bank, progress=False)
            else:
                out[cls] = cls(**args).fit(self.data_for(cls), progress=False, **fit)
        out[fr.Ensemble] = fr.Ensemble([out[fr.BPR], out[fr.BPR]])
        return out

    def receiver(self, cls: type) -> Any:
        """An instance whose methods are probed."""
        if cls in self.models:
            return self.models[cls]
        if cls is fr.Interactions:
            return self.train
        if cls is fr.ImageBank:
            return self.bank
        if cls is fr.ImageSource:
            return self.source
        if cls is fr.io.ImageFeatures:
            return fr.io.ImageFeatures(self.feature_file)
        raise LookupError(f"no instance of {cls.__qualname__} to probe: add one to World.receiver")


MODEL_CLASSES = [
    fr.BPR, fr.VBPR, fr.DVBPR, fr.HybridBPR, fr.CompatibilityModel, fr.SampledSoftmax,
    fr.TripletModel, fr.DeepTripletModel, fr.Popularity, fr.ConvAutoencoder,
]  # fmt: skip

Value = Callable[[World], Any]
VALUES_FOR: dict[str, Value] = {
    # by parameter name
    "train": lambda w: w.train,
    "test": lambda w: w.test,
    "data": lambda w: w.train,
    "pairs": lambda w: w.pairs,
    "positives": lambda w: w.test,
    "negatives": lambda w: w.train,
    "positive": lambda w: np.array([0.9, 0.8]),
    "negative": lambda w: np.array([0.1, 0.2]),
    "validation": lambda w: w.test,
    "model": lambda w: w.models[fr.BPR],
    "model_a": lambda w: w.models[fr.BPR],
    "model_b": lambda w: w.models[fr.BPR],
    "models": lambda w: [w.models[fr.BPR], w.models[fr.BPR]],
    "users": lambda w: np.array([0, 1]),
    "items": lambda w: np.array([0, 1]),
    "user": lambda w: 0,
    "ids": lambda w: np.array([0, 1]),
    "i": lambda w: np.array([0, 1]),
    "j": lambda w: np.array([2, 3]),
    "row": lambda w: 0,
    "rows": lambda w: np.array([0, 1]),
    "indices": lambda w: np.array([0, 1]),
    "asins": lambda w: [f"B{k:09d}" for k in range(2)],
    "bank": lambda w: w.bank,
    "images": lambda w: w.bank,
    "image": lambda w: np.zeros((4, 4, 3), np.uint8),
    "size": lambda w: 8,
    "data_bytes": lambda w: w.pngs[0].read_bytes(),
    "source": lambda w: w.source,
    "paths": lambda w: [str(p) for p in w.pngs],
    "score": lambda w: w.models[fr.BPR].score,
    "expected": lambda w: {"auc": 0.5},
    "vectors": lambda w: np.random.default_rng(0).standard_normal((5, 3)),
    "items_frame": lambda w: w.item_frame,
    "df": lambda w: pd.DataFrame({"user_id": [1, 2], "item_id": [3, 4]}),
    "text": lambda w: "[1, 2]",
    "records": lambda w: [{"asin": "B1"}],
    "features": lambda w: np.zeros((2, 4096), np.float32),
    "meta": lambda w: w.meta_frame,
    "jpeg_bytes": lambda w: [b"\xff\xd8\xff\xe0" + bytes(40)] * N_ITEMS,
    "folder": lambda w: w.scratch / "out",
    "out_path": lambda w: w.scratch / "out.safetensors",
    "weights": lambda w: w.scratch / "missing-weights.safetensors",
    # where one name means different things
    "load.path": lambda w: w.model_file,
    "save.path": lambda w: w.scratch / "saved.fashionrec",
    "of_seeds.n": lambda w: 2,
    "same_ids.other": lambda w: w.test,
    "Recommender.load.path": lambda w: w.model_file,
    "Ensemble.load.path": lambda w: w.model_file,
    "ConvAutoencoder.load.path": lambda w: w.cae_file,
    "ImageBank.open.path": lambda w: w.scratch / "bank.cache",
    "read_id_list.path": lambda w: w.id_list,
    "read_image_features.path": lambda w: w.feature_file,
    "ImageFeatures.path": lambda w: w.feature_file,
    "read_amazon_metadata.path": lambda w: w.meta,
    "read_interactions_csv.path": lambda w: w.csv,
    "write_amazon_metadata.path": lambda w: w.scratch / "meta.json.gz",
    "write_dvbpr.path": lambda w: w.scratch / "out.npy",
    "write_dvbpr.validation": lambda w: w.test,
    "write_image_features.path": lambda w: w.scratch / "out.b",
    "write_anime_ratings.path": lambda w: w.scratch / "rating.csv",
    "write_anime_ratings.items": lambda w: w.anime,
    "synthetic_anime_ratings.items": lambda w: w.anime,
    "visual_taste.items": lambda w: fr.datasets.synthetic_catalogue(40, 8)[0],
    "write_pngs.images": lambda w: np.zeros((2, 4, 4, 3), np.uint8),
    "dvbpr.path": lambda w: w.dvbpr_file,
    "movielens_100k.path": lambda w: w.movielens,
    "movielens_100k_features.path": lambda w: w.movielens,
    "read_movielens_ratings.path": lambda w: w.movielens / "u.data",
    "anime.anime_csv": lambda w: w.anime_csv,
    "asos.folder": lambda w: w.asos,
    "fashion_products.folder": lambda w: w.fashion,
    "fashion_compatibility.folder": lambda w: w.fashion,
    "hm.folder": lambda w: w.hm,
    "decode_image.data": lambda w: w.pngs[0].read_bytes(),
    "convert_inception_weights.source": lambda w: w.scratch / "missing.pth",
    "inception_features.images": lambda w: w.bank,
    "compatibility_pairs.asins": lambda w: [f"B{k:09d}" for k in range(N_ITEMS)],
    "parse_literal.text": lambda w: "[1, 2]",
    "write_image_features.asins": lambda w: ["B000000001", "B000000002"],
    "evaluate_pairs.positives": lambda w: w.pairs,
    "evaluate_pairs.negatives": lambda w: w.pairs,
    "embeddings.labels": lambda w: None,
    "recommendations.users": lambda w: [0],
    "reconstruct.rows": lambda w: np.array([0, 1]),
    "history.model": lambda w: w.models[fr.BPR],
}
