import numpy as np
import pandas as pd
import pytest

import fashionrec as fr


def test_from_arrays_merges_duplicates_and_infers_shape():
    x = fr.Interactions.from_arrays([0, 2, 2, 1], [1, 0, 0, 3], values=[1.0, 2.0, 3.0, 4.0])
    assert (x.n_users, x.n_items, len(x)) == (3, 4, 3)
    assert list(x.user_ids) == [0, 1, 2] and list(x.item_ids) == [0, 1, 2, 3]
    frame = x.to_pandas()
    assert frame.values.tolist() == [[0, 1, 1.0], [1, 3, 4.0], [2, 0, 5.0]]
    x = fr.Interactions.from_arrays([0], [0], n_users=5, n_items=7)
    assert x.shape == (5, 7)


def test_from_pandas_string_and_int_ids_sorted_and_order_free():
    df = pd.DataFrame({"user": ["bob", "amy", "bob", "cat"], "item": [30, 10, 20, 30]})
    a = fr.Interactions.from_pandas(df, "user", "item")
    b = fr.Interactions.from_pandas(df.iloc[::-1], "user", "item")
    assert list(a.user_ids) == ["amy", "bob", "cat"] and list(a.item_ids) == [10, 20, 30]
    assert a.user_ids.dtype == object and a.item_ids.dtype == np.int64
    for part in range(2):
        assert np.array_equal(a.to_csr()[part], b.to_csr()[part])
    assert sorted(a.items_of("bob").tolist()) == [20, 30]
    assert a.to_pandas().sort_values(["user", "item"]).values.tolist() == [
        ["amy", 10],
        ["bob", 20],
        ["bob", 30],
        ["cat", 30],
    ]


def test_like_shares_ids_and_unknown_ids_are_named():
    train = fr.Interactions.from_pandas(pd.DataFrame({"u": ["a", "b"], "i": [1, 2]}), "u", "i")
    test = fr.Interactions.from_pandas(pd.DataFrame({"u": ["b"], "i": [1]}), "u", "i", like=train)
    assert test.same_ids(train) and test.shape == train.shape
    bad = pd.DataFrame({"u": ["a", "a", "zed"], "i": [1, 2, 1]})
    with pytest.raises(ValueError, match=r"column 'u', row 2: unknown id \"zed\""):
        fr.Interactions.from_pandas(bad, "u", "i", like=train)
    with pytest.warns(UserWarning, match="dropped 1 of 3 rows"):
        kept = fr.Interactions.from_pandas(bad, "u", "i", like=train, unknown="drop")
    assert len(kept) == 2


def test_catalogue_ids_give_indices_to_items_without_interactions():
    x = fr.Interactions.from_ids(["u1"], ["b"], item_ids=["a", "b", "c"])
    assert list(x.item_ids) == ["a", "b", "c"] and x.n_items == 3
    with pytest.raises(ValueError, match="column 'item', row 0: unknown id \"z\""):
        fr.Interactions.from_ids(["u1"], ["z"], item_ids=["a", "b"])


@pytest.mark.parametrize(
    "users, items, kwargs, message",
    [
        ([0, -1], [0, 0], {}, r"column 'users', row 1: negative index \(-1\)"),
        ([0, 5], [0, 0], {"n_users": 3}, r"column 'users', row 1: index out of range for n_users=3"),
        ([], [], {}, "no interactions"),
        ([0, 1], [0], {}, "differ in length"),
        ([0, 1], [0, 1], {"values": [1.0, np.nan]}, r"column 'values', row 1: value NaN is not finite"),
        ([0, 1.5], [0, 1], {}, r"column 'users': indices must be integers, not float64"),
        ([0.0, 1.0], [0, 1], {}, r"column 'users': indices must be integers, not float64"),
    ],
)
def test_from_arrays_errors_name_column_and_row(users, items, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fr.Interactions.from_arrays(users, items, **kwargs)


@pytest.mark.parametrize(
    "users, message",
    [
        (pd.Series([1.0, np.nan, 3.0]), r"column 'user_id', row 1: id is nan"),
        (pd.Series(["a", None, "c"]), r"column 'user_id', row 1: id missing"),
        (pd.Series(["a", 5, "c"]), r"column 'user_id', row 1: id 5 is not a string"),
        (pd.Series([1, "x", 3], dtype=object), r"column 'user_id', row 1: 'x' is not an integer"),
        (pd.Series([1.0, 2.5, 3.0]), r"column 'user_id', row 1: id 2.5 is not an integer"),
    ],
)
def test_bad_id_columns(users, message):
    df = pd.DataFrame({"user_id": users, "item_id": [1, 2, 3]})
    with pytest.raises(ValueError, match=message):
        fr.Interactions.from_pandas(df)


def test_missing_column_and_duplicates_error():
    df = pd.DataFrame({"user_id": [1, 1], "item_id": [2, 2], "r": [1.0, 5.0]})
    with pytest.raises(ValueError, match="value_col='rating' is not a column of the DataFrame"):
        fr.Interactions.from_pandas(df, value_col="rating")
    with pytest.raises(ValueError, match="rows 0 and 1 hold the same"):
        fr.Interactions.from_pandas(df, value_col="r", duplicates="error")
    assert fr.Interactions.from_pandas(df, value_col="r", duplicates="max").to_pandas()["value"].tolist() == [5.0]
    with pytest.raises(ValueError, match="duplicates must be one of"):
        fr.Interactions.from_pandas(df, duplicates="first")


def test_index_lookup_and_repr():
    x = fr.Interactions.from_ids([10, 20], [7, 8])
    assert x.user_index([20, 10]).tolist() == [1, 0]
    assert x.user_index(20) == 1 and np.ndim(x.user_index(20)) == 0  # a scalar id: one index
    assert x.user_index([20]).shape == (1,)
    with pytest.raises(ValueError, match=r"^user_index\(\): ids\[0\] = 30 is not a known user id"):
        x.user_index([30])
    with pytest.raises(ValueError, match=r"item_index\(\): ids: the ids are integers, but strings were given"):
        x.item_index(["7"])
    with pytest.raises(ValueError, match=r"^items_of\(\): user\[0\] = 30 is not a known user id"):
        x.items_of(30)
    assert repr(x) == "<Interactions: 2 users x 2 items, 2 interactions>"
