"""Fashion product catalogues with images. OWNER: helper B."""

from __future__ import annotations


def fashion_products(folder):  # replaced by helper B
    raise NotImplementedError


def hm(folder):  # replaced by helper B
    raise NotImplementedError
