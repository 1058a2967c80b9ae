"""Anime recommendations data. OWNER: helper B."""

from __future__ import annotations


def anime(anime_csv, rating_csv=None, **filters):  # replaced by helper B
    raise NotImplementedError
