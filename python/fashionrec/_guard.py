"""What every training entry point (``Recommender.fit``, ``ConvAutoencoder.fit``) does around
the core's fit: one fit at a time per model, and the rule for reading a callback's return
value. (Torch's global random generator needs no guard: the core never draws from it; a fit's
draws come from its own generators, ``src/nets/random.rs``.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_create = threading.Lock()  # makes each model's fit lock once


def callback_stops(ret: Any) -> bool:
    """A user's callback stops training when what it returned is false by Python's truth
    rules (``False``, ``0``, ``np.False_``, an empty container); ``None`` (no return
    statement) continues. The core reads ``_core`` callbacks the same way."""
    return ret is not None and not bool(ret)


@contextmanager
def fitting(model: Any) -> Iterator[None]:
    """Hold ``model``'s fit lock for a whole fit, the Python side included (aligning side data,
    replacing the core model, the history after it): a second fit, from another thread, is
    refused at once with a RuntimeError, never queued and never run alongside. The core's own
    write lock (``_core.Model.fit``, a try-lock too) refuses it the same way for callers of
    ``_core`` directly. Re-entrant within one thread (a subclass's fit calling the base's)."""
    with _create:
        lock = model.__dict__.get("_fit_lock")
        if lock is None:
            lock = model.__dict__["_fit_lock"] = threading.Lock()
    me = threading.get_ident()
    if model.__dict__.get("_fit_owner") == me:
        yield
        return
    if not lock.acquire(blocking=False):
        raise RuntimeError(
            f"fit refused: this {type(model).__name__} is already fitting in another thread; a model runs "
            "one fit at a time: wait for that fit to return, or fit a copy"
        )
    model.__dict__["_fit_owner"] = me
    try:
        yield
    finally:
        model.__dict__["_fit_owner"] = None
        lock.release()
