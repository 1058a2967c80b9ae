"""Hyper-parameters to the core: every invalid one is a ValueError that names it.

The core reads a model's parameters as JSON. Python's ``json.dumps`` writes NaN and
infinities as ``NaN``/``Infinity``, which are not JSON, and the core's JSON reader reports a
wrong type or range as a position ("at line 1 column 13"), not a name; both are turned into
messages that name the parameter here.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .. import _core

#: Characters of a bad value an error message quotes at most.
QUOTE_CHARS = 200

_POSITION = re.compile(r" at line \d+ column \d+$")


def _short(text: str) -> str:
    return text if len(text) <= QUOTE_CHARS else f"{text[:QUOTE_CHARS]}... ({len(text)} characters in all)"


def _plain(name: str, value: Any) -> Any:
    """`value` as a JSON-ready Python value (numpy scalars unwrapped), checked for NaN/inf."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if isinstance(value, dict):  # a nested configuration (sampler=...)
        return {k: _plain(f"{name}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):  # e.g. layer sizes
        return [_plain(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"{name} must be a number, a string or a list/dict of them, not {type(value).__name__}")
    return value


def core_model(kind: str, params: dict[str, Any]) -> _core.Model:
    """A new core model of registry name ``kind``, or a ValueError naming the bad parameter."""
    plain = {name: _plain(name, value) for name, value in params.items()}
    try:
        return _core.Model(kind, json.dumps(plain, allow_nan=False))
    except ValueError as e:
        if not _POSITION.search(str(e)):
            raise  # the core's own checks already name the parameter
        # A type or range error: find the parameter by trying each alone (the rest default).
        for name, value in plain.items():
            try:
                _core.Model(kind, json.dumps({name: value}))
            except ValueError as one:
                reason = _POSITION.sub("", str(one)).split(": ", 1)[-1]
                raise ValueError(f"{name}={_short(repr(value))}: {_short(reason)}") from None
        raise
