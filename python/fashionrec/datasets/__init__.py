"""Loaders for real data sets, and the built-in synthetic data."""

from .movielens import movielens_100k, movielens_100k_features, read_movielens_ratings
from .synthetic import demo, synthetic

__all__ = ["demo", "movielens_100k", "movielens_100k_features", "read_movielens_ratings", "synthetic"]
