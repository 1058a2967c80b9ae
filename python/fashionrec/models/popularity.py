"""The popularity baseline."""

from __future__ import annotations

from .base import Recommender


class Popularity(Recommender):
    """Scores every item by its number of training interactions, the same for every user:
    the baseline any personalised model should beat."""

    kind = "popularity"

    def __init__(self) -> None:
        super().__init__()

    def fit(self, train, *, validation=None, metrics=(), progress: bool = False, callback=None) -> Popularity:
        """Count the interactions per item. There are no epochs: ``validation``, ``metrics``,
        ``progress`` and ``callback`` are accepted for API compatibility and unused."""
        return super().fit(train, progress=False)  # type: ignore[return-value]
