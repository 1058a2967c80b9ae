"""Hyper-parameters to the core: every invalid one is a ValueError that names it.

The core reads a model's parameters as JSON and names a bad one by its path (an unknown key,
a wrong type or range). Python's ``json.dumps`` writes NaN and infinities as
``NaN``/``Infinity``, which are not JSON: those, and values that are not plain data, are
refused here with the parameter's name.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .. import _core

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
    """A new core model of registry name ``kind``, or a ValueError naming the bad parameter
    (the core names it: an unknown key, a wrong type or range by its path)."""
    plain = {name: _plain(name, value) for name, value in params.items()}
    return _core.Model(kind, json.dumps(plain, allow_nan=False))
