import numpy as np

import fashionrec as fr
from fashionrec import _core


def test_triples_are_valid_reproducible_and_uniform():
    data = fr.datasets.synthetic(50, 40, mean_items_per_user=10, seed=0)
    indptr, indices, _ = data.to_csr()
    rows = [set(indices[indptr[u] : indptr[u + 1]].tolist()) for u in range(data.n_users)]
    u, p, n = _core.sample_triples(data._core, 20000, n_negatives=2, seed=7)
    assert n.shape == (20000, 2)
    assert all(p[k] in rows[u[k]] for k in range(len(u)))
    assert not any(j in rows[u[k]] for k in range(len(u)) for j in n[k])
    u2, p2, n2 = _core.sample_triples(data._core, 20000, n_negatives=2, seed=7)
    assert np.array_equal(u, u2) and np.array_equal(n, n2)
    u3, _, _ = _core.sample_triples(data._core, 20000, n_negatives=2, seed=8)
    assert not np.array_equal(u, u3)
    # Positives are uniform over interactions, so each user appears in proportion to its degree.
    share = np.bincount(u, minlength=data.n_users) / len(u)
    assert np.abs(share - np.diff(indptr) / len(data)).max() < 0.01
