import numpy as np
import pandas as pd
import pytest

import fashionrec as fr


def _pairs(x: fr.Interactions) -> set[tuple[int, int]]:
    return set(map(tuple, x.to_pandas(raw_ids=False)[["user", "item"]].values.tolist()))


def test_leave_one_out_protocol():
    data = fr.datasets.synthetic(200, 100, mean_items_per_user=8, seed=1)
    train, val, test = fr.split.leave_one_out(data, seed=5)
    assert _pairs(train) | _pairs(val) | _pairs(test) == _pairs(data)
    assert len(train) + len(val) + len(test) == len(data)
    counts = np.diff(data.to_csr()[0])
    assert (np.diff(val.to_csr()[0]) == (counts > 2)).all()
    assert (np.diff(test.to_csr()[0]) == (counts > 2)).all()
    assert train.same_ids(data) and test.same_ids(data)
    again = fr.split.leave_one_out(data, seed=5)[2]
    assert _pairs(again) == _pairs(test)
    assert _pairs(fr.split.leave_one_out(data, seed=6)[2]) != _pairs(test)
    tr, te = fr.split.leave_one_out(data, validation=False, seed=5)
    assert len(tr) + len(te) == len(data)


def test_random_split_exact_and_seeded():
    data = fr.datasets.synthetic(100, 50, mean_items_per_user=6, seed=2)
    train, test = fr.split.random_split(data, 0.25, seed=0)
    assert len(test) == round(0.25 * len(data))
    assert _pairs(train) | _pairs(test) == _pairs(data) and not (_pairs(train) & _pairs(test))
    with pytest.raises(ValueError, match="test_fraction must be in"):
        fr.split.random_split(data, 1.5)


def test_from_frames_unknown_test_ids():
    tr = pd.DataFrame({"user_id": [1, 2], "item_id": ["a", "b"]})
    te = pd.DataFrame({"user_id": [1, 3], "item_id": ["b", "a"]})
    with pytest.raises(ValueError, match=r"column 'user_id', row 1: unknown id 3"):
        fr.split.from_frames(tr, te)
    with pytest.warns(UserWarning, match="dropped 1"):
        train, test = fr.split.from_frames(tr, te, unknown="drop")
    assert test.same_ids(train) and len(test) == 1
