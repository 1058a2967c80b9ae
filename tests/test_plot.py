"""fashionrec.plot draws what it says: points per label, curves per metric, image tiles."""

import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

import fashionrec as fr  # noqa: E402
from fashionrec import plot  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def points(ax):
    """{legend label: (n points, rgba colour)} of the scatter collections of ax."""
    return {c.get_label(): (len(c.get_offsets()), tuple(c.get_facecolor()[0])) for c in ax.collections}


def test_embeddings_by_label(fitted):
    ids = fitted.item_ids
    labels = {int(i): ("even" if i % 2 == 0 else "odd") for i in ids[:-10]}  # the last 10: no label
    fig = plot.embeddings(fitted, labels=labels)
    (ax,) = fig.axes
    drawn = points(ax)
    n_even = sum(v == "even" for v in labels.values())
    assert drawn.keys() == {f"even ({n_even})", f"odd ({len(labels) - n_even})", f"{plot.NO_LABEL} (10)"}
    assert sum(n for n, _ in drawn.values()) == len(ids)
    assert len({colour for _, colour in drawn.values()}) == 3
    assert drawn[f"{plot.NO_LABEL} (10)"][1] == to_rgba("0.8")
    assert ax.get_title() == f"BPR item vectors (PCA, {len(ids)} items)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [c.get_label() for c in ax.collections]


def test_embeddings_pca_coordinates(fitted):
    fig = plot.embeddings(fitted)
    (collection,) = fig.axes[0].collections
    xy = np.asarray(collection.get_offsets())
    v = fitted.item_vectors().astype(np.float64)
    # Principal axes: centred, uncorrelated, the first with the largest variance there is.
    assert np.allclose(xy.mean(axis=0), 0, atol=1e-6)
    cov = np.cov(xy.T)
    assert abs(cov[0, 1]) < 1e-6 * cov[0, 0] and cov[0, 0] >= cov[1, 1]
    top = np.linalg.eigvalsh(np.cov(v.T))[::-1][:2]
    assert np.allclose(np.diag(cov), top, rtol=1e-6)


def test_embeddings_subsets_users_and_many_labels(fitted):
    some = fitted.item_ids[5:45]
    fig = plot.embeddings(fitted, labels=[f"g{k}" for k in range(40)], items=some)
    drawn = points(fig.axes[0])
    assert len(drawn) == plot.MAX_LABELS and f"{plot.OTHER} (21)" in drawn
    assert sum(n for n, _ in drawn.values()) == 40
    fig = plot.embeddings(fitted, users=True, method="pca")
    assert sum(n for n, _ in points(fig.axes[0]).values()) == fitted.n_users
    assert "user vectors" in fig.axes[0].get_title()
    _, ax = plt.subplots()
    assert plot.embeddings(fitted, ax=ax) is ax.figure


def test_embeddings_bad_labels_and_methods(fitted, monkeypatch):
    with pytest.raises(ValueError, match="labels has 3 entries"):
        plot.embeddings(fitted, labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="is a list"):
        plot.embeddings(fitted, labels={int(fitted.item_ids[0]): ["Drama", "Comedy"]})
    with pytest.raises(ValueError, match="method must be"):
        plot.embeddings(fitted, method="mds")
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    with pytest.raises(ImportError, match=r'pip install "fashionrec\[plot\]"'):
        plot.embeddings(fitted, method="umap")


def test_embeddings_tsne(fitted):
    pytest.importorskip("sklearn", reason="scikit-learn (the plot extra) is not installed")
    some = fitted.item_ids[:60]
    fig = plot.embeddings(fitted, items=some, method="tsne", labels=["a", "b", "c"] * 20)
    assert sum(n for n, _ in points(fig.axes[0]).values()) == 60
    assert "t-SNE" in fig.axes[0].get_title()


def test_history_curves(small):
    train, test = small
    model = fr.BPR(factors=8, epochs=4, device="cpu").fit(train, validation=test, progress=False)
    fig = plot.history(model)
    loss_ax, metric_ax = fig.axes
    (loss,) = loss_ax.get_lines()
    assert list(loss.get_ydata()) == model.history_["loss"] and list(loss.get_xdata()) == [1, 2, 3, 4]
    curves = {line.get_label(): list(line.get_ydata()) for line in metric_ax.get_lines()}
    assert curves == {"val_auc": model.history_["val_auc"], "val_ndcg@10": model.history_["val_ndcg@10"]}
    assert loss_ax.get_title() == "BPR: loss" and metric_ax.get_title() == "BPR: validation"
    # One axes given: the metrics go on its twin.
    _, ax = plt.subplots()
    fig = plot.history(model, ax=ax)
    assert len(fig.axes) == 2 and len(fig.axes[1].get_lines()) == 2
    # No validation: loss only.
    fig = plot.history({"epoch": [1, 2], "loss": [0.6, 0.5]})
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "training: loss"
    with pytest.raises(ValueError, match="history is empty"):
        plot.history(fr.BPR())


def test_recommendations_grid_with_images(tmp_path, small, fitted):
    from PIL import Image

    train, _ = small
    # A bank with an image for every item but the first two, rows in another order than the model's.
    ids = list(fitted.item_ids[2:][::-1])
    paths = []
    for k, item in enumerate(ids):
        p = tmp_path / f"{item}.png"
        Image.new("RGB", (8, 8), (int(item) % 256, 0, 0)).save(p)
        paths.append(p)
    bank = fr.ImageBank.from_files(paths, size=8, ids=ids, progress=False)
    users = list(fitted.user_ids[:2])
    fig = plot.recommendations(fitted, users, images=bank, k=4, exclude=train)
    assert len(fig.axes) == 2 * 2 * 4
    recs, _ = fitted.recommend(users, k=4, exclude=train)
    for u, user in enumerate(users):
        history = list(train.items_of(user))[:4]
        for row, items in ((2 * u, history), (2 * u + 1, list(recs[u]))):
            for c, item in enumerate(items):
                ax = fig.axes[row * 4 + c]
                assert ax.get_title().split("\n")[0] == str(item)
                images = [a for a in ax.get_children() if isinstance(a, AxesImage)]
                if item in ids:
                    # The tile shows this item's own image (red channel = id % 256).
                    assert len(images) == 1 and images[0].get_array()[0, 0, 0] == int(item) % 256
                else:
                    assert not images and "no image" in [t.get_text() for t in ax.texts]
    assert fig.axes[0].get_ylabel() == f"user {users[0]}\nhistory" and fig.axes[4].get_ylabel() == "top-4"


def test_recommendations_without_images(small, fitted):
    train, _ = small
    user = fitted.user_ids[3]
    names = {int(i): f"item number {i}" for i in fitted.item_ids}
    fig = plot.recommendations(fitted, [user], k=3, exclude=train, names=names)
    recs, scores = fitted.recommend([user], k=3, exclude=train)
    top = fig.axes[3:6]
    assert [ax.texts[0].get_text() for ax in top] == [str(i) for i in recs[0]]
    assert [ax.get_title() for ax in top] == [f"item number {i}\n{s:.3f}" for i, s in zip(recs[0], scores[0])]
    assert not any(isinstance(a, AxesImage) for ax in fig.axes for a in ax.get_children())
