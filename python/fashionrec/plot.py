"""Plots of models with matplotlib: embeddings coloured by a label, training curves, and a
user's history beside their recommendations.

Example (in a notebook)::

    import fashionrec as fr
    items = fr.datasets.movielens_100k_features("ml-100k")[1]       # or any per-item table
    fr.plot.embeddings(model, labels=items["genre"], method="tsne")  # item vectors by genre
    fr.plot.history(model)                                          # loss and val_ metrics
    fr.plot.recommendations(model, [1, 2], images=bank, k=5, exclude=train)

Each function returns the matplotlib Figure (drawn on ``ax`` when one is given). PCA needs
only numpy; ``method="tsne"`` needs scikit-learn and ``method="umap"`` umap-learn, both in
the ``plot`` extra: ``pip install "fashionrec[plot]"``.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import numpy as np

from ._ids import numbers

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .images import ImageBank
    from .interactions import Interactions
    from .models.base import Recommender

Method = Literal["pca", "tsne", "umap"]

#: Labels beyond this many (the least frequent) are drawn together as "other".
MAX_LABELS = 20
NO_LABEL = "(no label)"
OTHER = "(other)"


# -- embeddings ------------------------------------------------------------------------------


def embeddings(
    model: Recommender,
    labels: Mapping[Any, Any] | Sequence[Any] | None = None,
    method: Method = "pca",
    items: Sequence[Any] | None = None,
    users: bool = False,
    ax: Axes | None = None,
    *,
    seed: int = 0,
    point_size: float = 8.0,
) -> Figure:
    """Scatter the model's item vectors (or user vectors with ``users=True``) in 2-D.

    ``items``: the raw ids to draw (users' ids with ``users=True``); default all.
    ``labels``: a colour per point from a label such as genre or category, either a mapping
    from raw id to label (a dict, or a pandas Series indexed by id) or a sequence aligned with
    the ids drawn. Ids without a label are grey; beyond the 19 most frequent labels the rest
    are drawn as "(other)". A label must be one value (for a list of genres, pick one, e.g.
    ``genres.str[0]``). ``method``: ``"pca"`` (numpy), ``"tsne"`` (scikit-learn) or
    ``"umap"`` (umap-learn); ``seed`` seeds the last two.
    """
    ids, vectors = _vectors(model, items, users)
    coords = project(vectors, method, seed=seed)
    fig, ax = _figure(ax, (7, 6))
    what = "user" if users else "item"
    if labels is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=point_size, color="C0", label=f"{len(ids)} {what}s")
    else:
        names = _labels_for(ids, labels)
        for name, colour, mask in _groups(names):
            ax.scatter(coords[mask, 0], coords[mask, 1], s=point_size, color=colour, label=f"{name} ({mask.sum()})")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=2, frameon=False)
    ax.set_title(f"{type(model).__name__} {what} vectors ({_METHOD_NAMES[method]}, {len(ids)} {what}s)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


_METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def project(vectors: np.ndarray, method: Method = "pca", *, seed: int = 0) -> np.ndarray:
    """2-D coordinates of the rows of ``vectors`` (float64 ``(n, 2)``) by PCA, t-SNE or UMAP."""
    x = numbers(vectors, "vectors")
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"vectors must be a 2-D array of at least 2 rows, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or inf")
    if method == "pca":
        centred = x - x.mean(axis=0)
        # Right singular vectors = principal axes; fix each axis's sign for stable plots.
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        axes = vt[:2]
        axes *= np.where(axes[np.arange(len(axes)), np.argmax(np.abs(axes), axis=1)] < 0, -1.0, 1.0)[:, None]
        out = centred @ axes.T
        return out if out.shape[1] == 2 else np.column_stack([out, np.zeros(len(out))])
    if method == "tsne":
        TSNE = _optional("sklearn.manifold", "scikit-learn", "t-SNE").TSNE
        perplexity = min(30.0, max(1.0, (len(x) - 1) / 3))
        # Exact gradients below a few hundred points: faster there than Barnes-Hut's tree.
        exact = "exact" if len(x) <= 500 else "barnes_hut"
        return TSNE(n_components=2, init="pca", perplexity=perplexity, method=exact, random_state=seed).fit_transform(x)
    if method == "umap":
        umap = _optional("umap", "umap-learn", "UMAP")
        return umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1), random_state=seed).fit_transform(x)
    raise ValueError(f"method must be 'pca', 'tsne' or 'umap', not {method!r}")


def _optional(module: str, package: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{what} plots need {package}, which is not installed: pip install \"fashionrec[plot]\" "
            f"(or pip install {package})"
        ) from e


def _vectors(model: Recommender, ids: Sequence[Any] | None, users: bool) -> tuple[np.ndarray, np.ndarray]:
    """(raw ids, their vectors) of the model's items or users."""
    if users:
        all_ids, all_vectors, index, what = model.user_ids, model.user_vectors(), model._core.user_index, "users"
    else:
        all_ids, all_vectors, index, what = model.item_ids, model.item_vectors(), model._core.item_index, "items"
    all_vectors = np.asarray(all_vectors)
    if ids is None:
        return all_ids, all_vectors
    from ._ids import index_arg

    rows = index_arg(index, ids, what)
    if len(rows) < 2:
        raise ValueError(f"{what}: give at least 2 to draw, got {len(rows)}")
    return all_ids[rows], all_vectors[rows]


def _labels_for(ids: np.ndarray, labels: Any) -> list[Any]:
    import pandas as pd

    if isinstance(labels, pd.Series):
        labels = labels.to_dict()
    if isinstance(labels, Mapping):
        out = [labels.get(i.item() if isinstance(i, np.generic) else i) for i in ids]
    else:
        out = list(labels)
        if len(out) != len(ids):
            raise ValueError(f"labels has {len(out)} entries for {len(ids)} points; pass a mapping from id to label")
    for i, value in zip(ids, out):
        if isinstance(value, (list, tuple, set, np.ndarray)):
            raise ValueError(f"the label of id {i!r} is a list ({value!r}); give one label per id")
    return [NO_LABEL if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in out]


def _groups(names: list[Any]):
    """(label, colour, mask) per label, most frequent first; rare ones merged into OTHER."""
    counts = Counter(n for n in names if n != NO_LABEL)
    keep = [n for n, _ in counts.most_common()]
    if len(keep) > MAX_LABELS:
        keep = keep[: MAX_LABELS - 1]
    kept = set(keep)
    arr = np.array([n if (n in kept or n == NO_LABEL) else OTHER for n in names], dtype=object)
    import matplotlib

    palette = matplotlib.colormaps["tab20" if len(keep) > 10 else "tab10"]
    for k, name in enumerate(keep):
        yield name, palette(k % palette.N), arr == name
    for name, colour in ((OTHER, "0.45"), (NO_LABEL, "0.8")):
        mask = arr == name
        if mask.any():
            yield name, colour, mask


# -- training curves ------------------------------------------------------------------------


#: The most tiles a figure's row (or users a figure) may have: beyond it a figure is unreadable
#: and its canvas can outgrow memory.
MAX_TILES = 100


def history(model: Recommender | Mapping[str, Sequence[float]], ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Training curves from ``model.history_`` (or a history dict): the loss per epoch and,
    when fit had ``validation``, every ``val_`` metric per epoch on a second panel.

    ``ax``: one Axes (the metrics then go on its twin axis, right) or two Axes (loss, metrics).
    """
    if isinstance(getattr(model, "history_", None), list):
        raise TypeError("plot.history draws one model's curves: pass one of the Ensemble's models (ensemble.models[k])")
    hist = model if isinstance(model, Mapping) else model.history_
    epochs = list(hist.get("epoch") or range(1, len(hist.get("loss", [])) + 1))
    if not epochs:
        raise ValueError("the history is empty: fit the model first")
    metrics = [k for k in hist if k.startswith("val_")]
    title = "training" if isinstance(model, Mapping) else type(model).__name__
    twin = False
    if ax is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2 if metrics else 1, figsize=(11 if metrics else 6, 4), squeeze=False)
        loss_ax, metric_ax = axes[0, 0], (axes[0, 1] if metrics else None)
    elif isinstance(ax, Sequence) or isinstance(ax, np.ndarray):
        if len(ax) != 2:
            raise ValueError(f"ax: give one Axes or two (loss, metrics), got {len(ax)}")
        loss_ax, metric_ax = ax[0], ax[1]
        fig = loss_ax.figure
    else:
        loss_ax, fig = ax, ax.figure
        metric_ax = ax.twinx() if metrics else None
        twin = True
    loss_ax.plot(epochs, hist["loss"], color="C0", marker="o", markersize=3, label="loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss")
    loss_ax.set_title(f"{title}: loss")
    if metric_ax is not None:
        for k, name in enumerate(metrics, start=1):
            values = [np.nan if v is None else v for v in hist[name]]
            metric_ax.plot(epochs, values, color=f"C{k}", marker="o", markersize=3, label=name)
        metric_ax.set_xlabel("epoch")
        metric_ax.set_ylabel("validation metric")
        metric_ax.legend(loc="best", fontsize=8, frameon=False)
        if not twin:
            metric_ax.set_title(f"{title}: validation")
    fig.tight_layout()
    return fig


# -- recommendations -------------------------------------------------------------------------


def recommendations(
    model: Recommender,
    users: Sequence[Any],
    images: ImageBank | None = None,
    k: int = 5,
    exclude: Interactions | None = None,
    *,
    history: Interactions | None = None,
    names: Mapping[Any, str] | None = None,
    tile: float = 1.6,
) -> Figure:
    """A grid per user: the items of their history (first row, up to ``k``) and their top-``k``
    recommendations (second row), as images from ``images`` (an :class:`~fashionrec.ImageBank`
    whose ids are the model's item ids; an item without a row there is a grey tile) or, without
    a bank, as tiles with the item id (and ``names[item]``, e.g. a title).

    ``exclude`` (usually the training data) is left out of the recommendations and is the
    history shown, unless ``history`` gives another one (e.g. the test items).
    """
    import matplotlib.pyplot as plt

    users = list(users)
    if not users:
        raise ValueError("users is empty")
    if not 1 <= k <= MAX_TILES:
        raise ValueError(f"k must be between 1 and {MAX_TILES} (tiles per row), got {k}")
    if len(users) > MAX_TILES:
        raise ValueError(f"users: {len(users)} users, at most {MAX_TILES} fit in one figure")
    if not 0 < tile <= 20:
        raise ValueError(f"tile must be a size in inches, above 0 and at most 20, got {tile}")
    shown = history if history is not None else exclude
    if history is not None:
        model._check_same_ids(history, "history")
    recs, scores = model.recommend(users, k=k, exclude=exclude)
    row_of = None if images is None else {_key(i): r for r, i in enumerate(images.ids)}
    fig, axes = plt.subplots(2 * len(users), k, figsize=(tile * k, 2 * tile * len(users) + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    for u, user in enumerate(users):
        past = [] if shown is None else list(shown.items_of(user))[:k]
        rows = [(past, None, "history"), (list(recs[u]), scores[u], f"top-{k}")]
        for r, (items, item_scores, what) in enumerate(rows):
            line = axes[2 * u + r]
            line[0].set_ylabel(f"user {user}\n{what}" if r == 0 else what, fontsize=8)
            for c, item in enumerate(items):
                if item is None or (not isinstance(item, str) and item == -1):
                    continue  # padding: fewer candidates than k
                caption = str(item) if names is None else f"{names.get(_key(item), item)}"[:24]
                if item_scores is not None:
                    caption += f"\n{item_scores[c]:.3f}"
                _draw_item(line[c], _key(item), images, row_of, caption)
    fig.suptitle(f"{type(model).__name__}: history and top-{k}", fontsize=10)
    fig.tight_layout()
    return fig


def _draw_item(ax: Axes, item: Any, bank: ImageBank | None, row_of: dict | None, caption: str) -> None:
    ax.set_title(caption, fontsize=7)
    if bank is None:
        ax.set_facecolor("0.93")
        ax.text(0.5, 0.5, str(item), ha="center", va="center", fontsize=9, transform=ax.transAxes)
        return
    row = row_of.get(item)
    if row is None:
        ax.set_facecolor("0.8")
        ax.text(0.5, 0.5, "no image", ha="center", va="center", fontsize=7, transform=ax.transAxes)
        return
    ax.imshow(bank.images([row])[0])


def _key(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _figure(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    return fig, ax


__all__ = ["embeddings", "history", "project", "recommendations"]
