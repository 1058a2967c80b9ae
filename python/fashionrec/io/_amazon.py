"""Amazon metadata (``meta_*.json.gz``). OWNER: helper A."""

from __future__ import annotations


def read_amazon_metadata(path):  # replaced by helper A
    raise NotImplementedError


def compatibility_pairs(meta, asins, relation="also_bought"):  # replaced by helper A
    raise NotImplementedError
