import shutil

import numpy as np
import pytest

import fashionrec as fr


def test_u1_split_shapes_and_values(ml100k):
    train, test = fr.datasets.movielens_100k(ml100k, split="u1", min_rating=4)
    assert train.shape == test.shape == (943, 1682)
    assert list(train.user_ids[:3]) == [1, 2, 3] and train.item_ids[-1] == 1682
    assert (len(train), len(test)) == (44140, 11235)
    assert train.has_values and set(np.unique(train.to_pandas()["value"])) == {4.0, 5.0}
    everything = fr.datasets.movielens_100k(ml100k, split=None, min_rating=None)
    assert len(everything) == 100_000


def test_side_features(ml100k):
    train, _ = fr.datasets.movielens_100k(ml100k)
    users, items = fr.datasets.movielens_100k_features(ml100k, ids_like=train)
    assert list(users.index) == list(train.user_ids) and list(items.index) == list(train.item_ids)
    assert list(users.columns) == ["age", "gender", "occupation", "zip_code"]
    assert len(users["occupation"].cat.categories) == 21
    genres = items.columns[4:]
    assert len(genres) == 19 and genres[0] == "unknown"
    assert items.loc[1, "title"] == "Toy Story (1995)" and items.loc[1, "Animation"] == 1


def test_bpr_defaults_reach_the_targets(ml100k):
    """Accuracy of the defaults on the issue's protocol (speed is measured in benches/)."""
    train, test = fr.datasets.movielens_100k(ml100k, split="u1", min_rating=4)
    model = fr.BPR(factors=64, device="cpu").fit(train, progress=False)
    res = fr.evaluate(model, test, train=train, metrics=["auc", "ndcg@10", "precision@10"])
    assert res["users"] == 456
    assert res["auc"] >= 0.90 and res["ndcg@10"] >= 0.34, res


def test_malformed_files_are_named(ml100k, tmp_path):
    for name in ("u.user", "u.item", "u.genre", "u.occupation", "u1.base", "u1.test"):
        shutil.copy(ml100k / name, tmp_path / name)
    lines = (tmp_path / "u1.base").read_text().splitlines()
    lines[41] = lines[41].replace("\t", "\tx", 1)
    (tmp_path / "u1.base").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"u1.base, line 42: field 'item_id' is not an integer"):
        fr.datasets.movielens_100k(tmp_path)
    (tmp_path / "u1.base").write_text("1\t2\t3\n")
    with pytest.raises(ValueError, match=r"u1.base, line 1: expected 4 tab-separated fields, found 3"):
        fr.datasets.movielens_100k(tmp_path)
    with pytest.raises(FileNotFoundError, match="u2.base"):
        fr.datasets.movielens_100k(tmp_path, split="u2")
    with pytest.raises(ValueError, match="split must be one of"):
        fr.datasets.movielens_100k(tmp_path, split="u9")
