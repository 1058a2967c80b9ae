"""The Rust literal parser against Python itself: random objects -> repr() -> both parsers.

``PROPTEST_CASES`` raises the number of random cases (default 300 per test, about a second).
"""

from __future__ import annotations

import ast
import json
import math
import os
import random
import warnings
from typing import Any

import pytest

from fashionrec import _core

CASES = int(os.environ.get("PROPTEST_CASES", "300"))
SEED = int(os.environ.get("FASHIONREC_FUZZ_SEED", "20240601"))


def _random_str(rng: random.Random) -> str:
    kind = rng.random()
    n = rng.randrange(0, 12)
    if kind < 0.3:
        return "".join(rng.choice("ab '\"\\\n\t\r\x00\x7f#,:[]{}()") for _ in range(n))
    if kind < 0.6:
        return "".join(chr(rng.randrange(0x80, 0x800)) for _ in range(n))
    # Any code point but surrogates (see test_lone_surrogates_are_an_error), BMP or not.
    top = 0x10000 if kind < 0.8 else 0x110000
    out = []
    for _ in range(n):
        cp = rng.randrange(0, top)
        out.append(chr(cp if not 0xD800 <= cp < 0xE000 else 0xE000))
    return "".join(out)


def _random_hashable(rng: random.Random, depth: int) -> Any:
    r = rng.random()
    if r < 0.35:
        return _random_str(rng)
    if r < 0.6:
        return rng.choice([rng.randrange(-1000, 1000), rng.getrandbits(200) - (1 << 199), rng.randrange(-(2**63), 2**63)])
    if r < 0.7:
        return rng.choice([None, True, False])
    if r < 0.8:
        return _random_float(rng)
    if r < 0.9:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(8)))
    if depth > 0:
        return tuple(_random_hashable(rng, depth - 1) for _ in range(rng.randrange(3)))
    return "leaf"


def _random_float(rng: random.Random) -> float:
    return rng.choice(
        [
            rng.uniform(-1e6, 1e6),
            rng.random() * 10 ** rng.randrange(-320, 308),
            float(rng.randrange(-5, 5)),
            -0.0,
            5e-324,
            1.7976931348623157e308,
        ]
    )


def _random_object(rng: random.Random, depth: int = 4) -> Any:
    if depth == 0 or rng.random() < 0.4:
        return _random_hashable(rng, 1)
    kind = rng.randrange(5)
    n = rng.randrange(0, 5)
    if kind == 0:
        return [_random_object(rng, depth - 1) for _ in range(n)]
    if kind == 1:
        return tuple(_random_object(rng, depth - 1) for _ in range(n))
    if kind == 2:
        return {_random_hashable(rng, 1): _random_object(rng, depth - 1) for _ in range(n)}
    if kind == 3:
        return {_random_hashable(rng, 1) for _ in range(n)}
    return _random_hashable(rng, 2)


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (Python's == says 1 == 1.0 == True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a) and all(
            type(x) is type(y) for x, y in zip(a, b)
        )
    if isinstance(a, set):
        return a == b
    return a == b


def test_repr_of_random_objects_matches_ast_literal_eval():
    rng = random.Random(SEED)
    for case in range(CASES):
        obj = _random_object(rng)
        text = repr(obj)
        expected = ast.literal_eval(text)
        got = _core.parse_literal(text)
        assert _same(got, expected), f"case {case}: {text!r}\n ours: {got!r}\n ast:  {expected!r}"
        # The same text as UTF-8 bytes, with surrounding whitespace.
        assert _same(_core.parse_literal((" \t" + text + " \n").encode()), expected)


def test_json_dumps_of_random_objects_matches_json_loads():
    rng = random.Random(SEED + 1)

    def jsonable(x: Any, depth: int = 3) -> Any:
        r = rng.random()
        if depth == 0 or r < 0.5:
            return rng.choice([None, True, False, rng.randrange(-(2**70), 2**70), _random_float(rng), _random_str(rng)])
        if r < 0.75:
            return [jsonable(x, depth - 1) for _ in range(rng.randrange(4))]
        return {_random_str(rng): jsonable(x, depth - 1) for _ in range(rng.randrange(4))}

    for case in range(CASES):
        obj = jsonable(None)
        for ensure_ascii in (True, False):
            text = json.dumps(obj, ensure_ascii=ensure_ascii, indent=rng.choice([None, 1]))
            expected = json.loads(text)
            got = _core.parse_literal(text, "json")
            assert _same(got, expected), f"case {case}: {text!r}\n ours: {got!r}\n json: {expected!r}"


# Fragments for random texts: ours and Python must agree on accept/reject and on the value.
# Left out are the documented extensions (Python 2 forms: 017 octal, 1L, ur''), which Python 3
# rejects on purpose, and newlines (literal_eval only strips spaces/tabs around the text).
_TOKENS = [
    "[", "]", "(", ")", "{", "}", ",", ":", " ", "1", "2", "-", "+", ".", "e", "_", "x", "'a'", '"b"',
    "'", '"', "\\", "u", "b", "r", "True", "None", "set()", "0x1", "1.5", "'\\x41'", "b'\\x41'",
]


def _python_eval(text: str) -> tuple[bool, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning: invalid escape sequence
        try:
            return True, ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False, None


def _ours(text: str) -> tuple[bool, Any]:
    try:
        return True, _core.parse_literal(text)
    except (ValueError, TypeError):
        return False, None


def test_random_token_texts_are_accepted_and_rejected_like_python():
    rng = random.Random(SEED + 2)
    for case in range(CASES * 4):
        text = "".join(rng.choice(_TOKENS) for _ in range(rng.randrange(1, 12)))
        if "ur'" in text or 'ur"' in text or "..." in text:
            continue  # Python 2's ur'' prefix (accepted on purpose); Ellipsis (not data)
        ok_py, v_py = _python_eval(text)
        ok_us, v_us = _ours(text)
        assert ok_py == ok_us, f"case {case}: {text!r}: python {'accepts' if ok_py else 'rejects'}, ours {'accepts' if ok_us else 'rejects'}"
        if ok_py:
            assert _same(v_us, v_py), f"case {case}: {text!r}: ours {v_us!r}, python {v_py!r}"


def test_regressions_found_by_fuzzing():
    # A top-level tuple without parentheses (found by the token test above).
    text = "b'\\x41'b'a','\\x41','\\x41'"
    assert _core.parse_literal(text) == ast.literal_eval(text) == (b"Aa", "A", "A")
    assert _core.parse_literal("1,") == (1,)
    # A sign before a parenthesised number.
    assert _core.parse_literal("-(1)") == ast.literal_eval("-(1)") == -1
    # \N in a text string is Python 3's named escape: an error, not a different string.
    with pytest.raises(ValueError, match="N"):
        _core.parse_literal("'\\Nonebx'")


def test_documented_differences_from_python3():
    # Python 2 forms Python 3 rejects.
    assert _core.parse_literal("[017, 10L, 0xffL]") == [15, 10, 255]
    assert _core.parse_literal("ur'\\u00e9\\n'") == "é\\n"
    # Python 2 byte strings: \x escapes are UTF-8 bytes (Python 3 would give 'â\x80\x99').
    assert _core.parse_literal("'\\xe2\\x80\\x99'") == "’"
    assert ast.literal_eval("'\\xe2\\x80\\x99'") == "\xe2\x80\x99"
    # ... but never for u'' strings.
    assert _core.parse_literal("u'\\xe2\\x80\\x99'") == "\xe2\x80\x99"


def test_ellipsis_is_not_a_data_literal():
    assert ast.literal_eval("...") is Ellipsis
    with pytest.raises(ValueError, match="byte 0"):
        _core.parse_literal("...")


def test_lone_surrogates_are_an_error():
    # Python strs may hold lone surrogates; UTF-8 (and so Rust) text cannot.
    with pytest.raises(ValueError, match="surrogate"):
        _core.parse_literal(repr("a\ud800b"))
    # A pair written as two escapes is one character (Python 2 narrow builds, JSON).
    assert _core.parse_literal("'\\ud83d\\ude00'") == "\U0001f600"
    assert _core.parse_literal('"\\ud83d\\ude00"', "json") == "\U0001f600"


def test_deep_nesting_is_an_error_not_a_crash():
    for text in ["[" * 100_000, "(" * 100_000 + ")" * 100_000, '{"a":' * 10_000]:
        with pytest.raises(ValueError, match="nested deeper than 512"):
            _core.parse_literal(text, "json" if text.startswith("{") else "python")
    deep = _core.parse_literal("[" * 500 + "7" + "]" * 500)
    for _ in range(500):
        (deep,) = deep
    assert deep == 7
