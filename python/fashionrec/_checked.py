"""Every public call's arguments checked against its signature, by one mechanism.

The annotations of the public functions and methods already say what each argument may be
(``k: int``, ``as_frame: bool``, ``path: str | os.PathLike``, ``loss: Literal["bpr", ...]``,
``train: Interactions``). :func:`install` wraps every public callable of the package (at import,
so a function added later is covered without a line of its own) in a check of its arguments
against those annotations, before any work, so that a wrong type or a value no call can use is a
``TypeError`` / ``ValueError`` that names the call and the argument, never a message from deep
inside (``'float' object is not iterable``, ``can't convert negative int to unsigned``) or a
value silently cast (``1.5`` read as ``1``).

The rules, for each argument whose annotation names one of these types (a union accepts a value
any member accepts; other types, ``Any`` and containers' contents are left to the function):

* ``int``: a Python or numpy integer (not a bool, not a float: ``1.5`` is not an index or a
  count), within int64, and not negative unless the parameter is listed in ``SIGNED``;
* ``float``: a real number (ints accepted), not NaN, not infinite;
* ``bool``: ``True``/``False`` (numpy's too);
* ``str``: text that UTF-8 can encode (no lone surrogates); ``Literal[...]``: one of the values;
* ``os.PathLike``: a ``str`` or path object without NUL bytes;
* a package class (``Interactions``, ``ImageBank``, ``Recommender``...): an instance of it;
* ``None``: None.
"""

from __future__ import annotations

import ast
import functools
import inspect
import math
import os
import typing
from typing import Any, Callable

import numpy as np

#: int parameters that may be negative (by name).
SIGNED = frozenset({"category"})
#: float parameters that may be infinite (by name): an upper bound or a timeout where inf means none.
UNBOUNDED = frozenset({"timeout"})
#: Interactions parameters that a call learns from or measures on: an empty one is refused.
NONEMPTY = frozenset({"train", "test", "validation", "positives", "negatives", "pairs", "data"})
#: Names of the package's classes an annotation may name, resolved at the first call.
_CLASSES = (
    "Interactions", "ImageBank", "ImageSource", "ImageFeatures", "Recommender", "ConvAutoencoder",
)  # fmt: skip
_INT64_MAX = 2**63 - 1
_QUOTE = 80


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type. A TypeError, and a ValueError too: the library raised
    ValueError for every invalid hyper-parameter before this check existed, and code that
    catches either keeps working."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE else f"{text[:_QUOTE]}... ({len(text)} characters)"


class _Rule:
    """What one annotation accepts: a check per union member; None when unchecked."""

    def __init__(self, annotation: str | list[ast.AST], names: dict[str, Any]):
        """From an annotation's text, or (for a container's elements) the parsed nodes of a
        union; an empty list accepts anything."""
        self.names = names  # the function's module globals, for aliases (IdType = Literal[...])
        self.members: list[tuple[str, Any]] = []
        self.open = False  # some member is not checked here: anything passes
        try:
            nodes = [ast.parse(annotation, mode="eval").body] if isinstance(annotation, str) else annotation
        except SyntaxError:
            nodes = []
        for node in nodes:
            self._add(node)
        self.open |= not nodes
        if any(k == "PathLike" for k, _ in self.members):  # `str | os.PathLike`: a str is a path
            self.members = [m for m in self.members if m[0] != "str"]

    def _add(self, node: ast.AST) -> None:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            self._add(node.left)
            self._add(node.right)
            return
        if isinstance(node, ast.Constant) and node.value is None:
            self.members.append(("none", None))
            return
        base = node.value if isinstance(node, ast.Subscript) else node
        name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
        if isinstance(base, ast.Attribute) and getattr(base.value, "id", "") == "_core":
            name = ""  # the core's own classes: internal, not checked here
        if name == "Literal" and isinstance(node, ast.Subscript):
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            values = [e.value for e in elts if isinstance(e, ast.Constant)]
            self.members.append(("literal", tuple(values)))
        elif name in ("int", "float", "bool", "str", "PathLike"):
            self.members.append((name, None))
        elif name in ("Sequence", "list", "tuple"):  # the elements' rule (bare: any elements)
            elts = [] if not isinstance(node, ast.Subscript) else node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            self.members.append(("sequence", _Rule(elts, self.names)))
        elif name == "Iterable":
            self.members.append(("iterable", None))
        elif name in ("Callable", "EpochCallback"):
            self.members.append(("callable", None))
        elif name in ("Mapping", "dict"):
            self.members.append(("mapping", None))
        elif name == "Axes":
            self.members.append(("axes", None))
        elif name == "DataFrame":
            self.members.append(("frame", None))
        elif name in _CLASSES:
            self.members.append(("class", name))
        elif typing.get_origin(self.names.get(name)) is typing.Literal:
            self.members.append(("literal", typing.get_args(self.names[name])))
        else:
            self.open = True

    def check(self, where: str, param: str, value: Any) -> None:
        if self.open or not self.members:
            return
        problems = []
        for kind, arg in self.members:
            problem = _CHECKS[kind](param, value, arg)
            if problem is None:
                return
            problems.append(problem)
        # A value of the right type but not usable says why (ValueError); else the types allowed.
        typed = [p for p in problems if not p.startswith("must be ")]
        if typed:
            why = typed[0]
            if why.startswith("is one of: "):
                raise ValueError(f"{where}: {param} must be {why[len('is one of: '):]}, got {_shown(value)}")
            raise ValueError(f"{where}: {param}={_shown(value)}: {why}")
        wanted = " or ".join(dict.fromkeys(p[len("must be ") :] for p in problems))
        raise ArgumentTypeError(f"{where}: {param} must be {wanted}, not {type(value).__name__} {_shown(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int(param: str, value: Any, _: Any) -> str | None:
    if not _is_int(value):
        return "must be an integer"
    v = int(value)
    if v > _INT64_MAX or v < -_INT64_MAX - 1:
        return "does not fit in int64"
    if v < 0 and param not in SIGNED:
        return "must not be negative"
    return None


def _float(param: str, value: Any, _: Any) -> str | None:
    if not (_is_int(value) or isinstance(value, (float, np.floating))):
        return "must be a number"
    v = float(value)
    if math.isnan(v):
        return "is NaN, not a finite number"
    if math.isinf(v) and param not in UNBOUNDED:
        return "is not finite"
    return None


def _bool(param: str, value: Any, _: Any) -> str | None:
    return None if isinstance(value, (bool, np.bool_)) else "must be True or False"


def _str(param: str, value: Any, _: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not text UTF-8 can encode (it holds a lone surrogate)"
    return None


def _path(param: str, value: Any, _: Any) -> str | None:
    if not isinstance(value, (str, os.PathLike)):
        return "must be a path (str or os.PathLike)"
    path = os.fspath(value)
    if isinstance(path, bytes):
        return "must be a path (str or os.PathLike)"
    if "\x00" in path:
        return "holds a NUL byte, which no file name can"
    return _str(param, path, None)


def _literal(param: str, value: Any, allowed: tuple) -> str | None:
    if any(type(value) is type(a) and value == a for a in allowed):
        return None
    choices = " or ".join(map(repr, allowed)) if len(allowed) <= 2 else "one of " + ", ".join(map(repr, allowed))
    if any(type(value) is type(a) for a in allowed):
        return "is one of: " + choices  # the right type, another value
    return "must be " + choices


def _sequence(param: str, value: Any, inner: _Rule) -> str | None:
    from collections.abc import Mapping

    if isinstance(value, (str, bytes, Mapping)) or not (hasattr(value, "__len__") and hasattr(value, "__iter__")):
        return "must be a list"
    if getattr(value, "ndim", 1) != 1:
        return f"must be one-dimensional, not of shape {getattr(value, 'shape', '?')}"
    if inner.open or not inner.members:
        return None
    for i, x in enumerate(value.tolist() if hasattr(value, "tolist") else value):
        for kind, arg in inner.members:
            if _CHECKS[kind](param, x, arg) is None:
                break
        else:
            return f"element {i} ({_shown(x)}) {_CHECKS[inner.members[0][0]](param, x, inner.members[0][1])}"
    return None


def _iterable(param: str, value: Any, _: Any) -> str | None:
    return None if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)) else "must be iterable"


def _callable(param: str, value: Any, _: Any) -> str | None:
    return None if callable(value) else "must be callable"


def _mapping(param: str, value: Any, _: Any) -> str | None:
    from collections.abc import Mapping

    return None if isinstance(value, Mapping) else "must be a dict"


def _frame(param: str, value: Any, _: Any) -> str | None:
    import pandas as pd

    return None if isinstance(value, pd.DataFrame) else "must be a pandas DataFrame"


def _axes(param: str, value: Any, _: Any) -> str | None:
    return None if hasattr(value, "figure") and hasattr(value, "plot") else "must be a matplotlib Axes"


def _none(param: str, value: Any, _: Any) -> str | None:
    return None if value is None else "must be None"


def _class(param: str, value: Any, name: str) -> str | None:
    import fashionrec

    cls = getattr(fashionrec, name, None) or getattr(fashionrec.io, name, None)
    if cls is not None and isinstance(value, cls):
        if name == "Interactions" and param in NONEMPTY and len(value) == 0:
            return "has no interactions"
        return None
    if cls is None:
        return None
    return f"must be {'an' if name[0] in 'AEIOU' else 'a'} {name}"


_CHECKS: dict[str, Callable[[str, Any, Any], str | None]] = {
    "int": _int, "float": _float, "bool": _bool, "str": _str, "PathLike": _path,
    "literal": _literal, "none": _none, "class": _class, "sequence": _sequence,
    "callable": _callable, "iterable": _iterable, "mapping": _mapping, "frame": _frame, "axes": _axes,
}  # fmt: skip


def checked(func: Callable, where: str) -> Callable:
    """`func` with its arguments checked against its annotations first (see the module).

    The wrapper is one more frame between a public function and its caller: a warning raised
    in a public function uses ``stacklevel=3`` to point at the caller's line."""
    if getattr(func, "__checked__", False):
        return func
    sig = inspect.signature(func)
    rules = {
        name: _Rule(p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "Any"), func.__globals__)
        for name, p in sig.parameters.items()
        if p.annotation is not inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    rules = {n: r for n, r in rules.items() if not r.open and r.members}
    label = f"{where}()"

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise ArgumentTypeError(f"{label}: {e}") from None
        for name, value in bound.arguments.items():
            rule = rules.get(name)
            if rule is not None:
                rule.check(label, name, value)
        return func(*args, **kwargs)

    wrapper.__checked__ = True  # type: ignore[attr-defined]
    return wrapper


def install(modules: list[Any]) -> None:
    """Wrap every public function of `modules`, and every public method and constructor of
    their public classes defined in this package, with :func:`checked`."""
    done: dict[int, Callable] = {}
    for mod in modules:
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        for name in names:
            obj = getattr(mod, name, None)
            if not getattr(obj, "__module__", "").startswith("fashionrec"):
                continue
            if inspect.isclass(obj):
                _install_class(obj)
            elif inspect.isfunction(obj):
                if id(obj) not in done:
                    done[id(obj)] = checked(obj, obj.__qualname__)
                setattr(mod, name, done[id(obj)])
                home = __import__(obj.__module__, fromlist=["_"])
                if getattr(home, obj.__name__, None) is obj:
                    setattr(home, obj.__name__, done[id(obj)])


def _install_class(cls: type) -> None:
    from dataclasses import is_dataclass

    if is_dataclass(cls) or issubclass(cls, (BaseException, tuple)) or cls.__dict__.get("__checked_class__"):
        return
    cls.__checked_class__ = True  # type: ignore[attr-defined]
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("fashionrec") and base is not object:
            _install_class(base)
    for name, attr in list(vars(cls).items()):
        if name.startswith("_") and name != "__init__":
            continue
        where = cls.__name__ if name == "__init__" else f"{cls.__name__}.{name}"
        if isinstance(attr, classmethod):
            setattr(cls, name, classmethod(checked(attr.__func__, where)))
        elif isinstance(attr, staticmethod):
            setattr(cls, name, staticmethod(checked(attr.__func__, where)))
        elif inspect.isfunction(attr):
            setattr(cls, name, checked(attr, where))
