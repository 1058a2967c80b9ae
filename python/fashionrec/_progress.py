"""Progress bars and callbacks for training loops that run in Rust."""

from __future__ import annotations

from typing import Any, Callable

from ._guard import callback_stops

EpochCallback = Callable[[int, dict], Any]


class FitProgress:
    """Turns the core's training events into a tqdm bar (in notebooks and terminals) and
    calls the user's ``callback(epoch, logs)`` after each epoch; the callback returns a false
    value (``False``, ``0``, ``np.False_``) to stop training, ``None`` to go on
    (:func:`fashionrec._guard.callback_stops`)."""

    def __init__(self, name: str, epochs: int, enabled: bool, callback: EpochCallback | None):
        self._callback = callback
        self._bar = None
        if enabled and epochs > 0:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=epochs, desc=name, unit="epoch", bar_format=bar_format(0, epochs))
        self._epochs = epochs

    def __call__(self, event: dict) -> bool:
        if event["event"] == "progress":
            if self._bar is not None:
                # The fill moves within an epoch; the count shows whole epochs done.
                self._bar.n = round(event["epoch"] - 1 + event["samples"] / max(event["total"], 1), 3)
                self._bar.bar_format = bar_format(event["epoch"] - 1, self._epochs)
                self._bar.refresh()
            return True
        epoch = event["epoch"]
        logs = {k: v for k, v in event.items() if k not in ("event", "epoch")}
        if self._bar is not None:
            self._bar.n = epoch
            self._bar.bar_format = bar_format(epoch, self._epochs)
            shown = {k: f"{v:.4f}" for k, v in logs.items() if k != "seconds"}
            self._bar.set_postfix(shown, refresh=True)
        if self._callback is not None:
            if callback_stops(self._callback(epoch, logs)):
                return False
        return True

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def bar_format(done: int, epochs: int) -> str:
    """tqdm's format with whole epochs ("3/50 epochs"): the bar's ``n`` is fractional within
    an epoch (the fill moves), so the count is written in rather than read from ``n``."""
    return "{desc}: {percentage:3.0f}%|{bar}| " + f"{int(done)}/{int(epochs)} epochs" + " [{elapsed}<{remaining}{postfix}]"
