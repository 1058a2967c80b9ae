"""Loaders for real data sets, and the built-in synthetic data."""

from .anime import anime, synthetic_anime_ratings
from .asos import asos
from .catalogues import fashion_products, hm
from .compatibility import fashion_compatibility
from .dvbpr import dvbpr
from .movielens import movielens_100k, movielens_100k_features, read_movielens_ratings
from .synthetic import demo, synthetic
from .visual_taste import VisualTaste, synthetic_catalogue, visual_taste

__all__ = [
    "VisualTaste",
    "anime",
    "asos",
    "demo",
    "dvbpr",
    "fashion_compatibility",
    "fashion_products",
    "hm",
    "movielens_100k",
    "movielens_100k_features",
    "read_movielens_ratings",
    "synthetic",
    "synthetic_anime_ratings",
    "synthetic_catalogue",
    "visual_taste",
]
