"""Shared fixtures. Real data sets live outside the repository (../shared/data, or the folder
named by FASHIONREC_DATA); tests that need one skip, saying so, when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import fashionrec as fr

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASHIONREC_DATA", ROOT.parent / "shared" / "data"))


def data_dir(name: str) -> Path:
    path = DATA / name
    if not path.is_dir():
        pytest.skip(f"real data set {name!r} not found at {path} (set FASHIONREC_DATA to its parent folder)")
    return path


@pytest.fixture(scope="session")
def ml100k() -> Path:
    return data_dir("ml-100k")


@pytest.fixture(scope="session")
def small() -> tuple[fr.Interactions, fr.Interactions]:
    """A small synthetic train/test split (300 users x 200 items)."""
    data = fr.datasets.synthetic(300, 200, mean_items_per_user=20, seed=3)
    return fr.split.random_split(data, 0.2, seed=3)


@pytest.fixture(scope="session")
def fitted(small) -> fr.BPR:
    train, _ = small
    return fr.BPR(factors=16, epochs=20, device="cpu", seed=1).fit(train, progress=False)
