"""The examples of the model pages run: every fenced ```python block of docs/models/*.md (and
of README.md and docs/getting-started.md, the first model a newcomer trains) is executed as it is, on the built-in synthetic data, in a temporary folder (for the files an
example writes). Blocks fenced ```py show real data sets the tests do not have and are not run.

A failing example names its page and its first line, and shows the block."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs" / "models").glob("*.md"))
FIRST_STEPS = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def examples(pages=None) -> list:
    found = []
    for page in PAGES + FIRST_STEPS if pages is None else pages:
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 2
            found.append(pytest.param(page, line, m.group(1), id=f"{page.stem}:{line}"))
    return found


def test_every_model_page_has_a_runnable_example():
    pages = {p.stem for p in PAGES} - {"index"}
    with_example = {p.stem for p, *_ in (e.values for e in examples(PAGES))}
    assert pages, "no model pages under docs/models"
    assert pages <= with_example, f"model pages without a ```python example: {sorted(pages - with_example)}"


@pytest.mark.parametrize("page, line, code", examples())
def test_model_page_example_runs(page, line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    compiled = compile(code, f"{page.relative_to(ROOT)}:{line}", "exec")
    try:
        exec(compiled, {"__name__": "__docs_example__"})
    except Exception as e:  # show the block with the error
        raise AssertionError(
            f"the example at {page.relative_to(ROOT)}:{line} failed: {type(e).__name__}: {e}\n"
            + textwrap.indent(code, "    ")
        ) from e


def test_every_public_name_has_an_api_entry():
    """Each name of ``fashionrec.__all__`` is rendered (``::: fashionrec.X``) or linked
    (``#fashionrec.X``) from docs/api.md. Read from the source, so it holds for a fresh clone."""
    import ast

    init = (ROOT / "python" / "fashionrec" / "__init__.py").read_text(encoding="utf-8")
    names = next(
        ast.literal_eval(node.value)
        for node in ast.parse(init).body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)
    )
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [n for n in names if f"::: fashionrec.{n}\n" not in api and f"#fashionrec.{n})" not in api and f"#fashionrec.{n} }}" not in api]
    assert not missing, f"public names without an entry in docs/api.md: {missing}"
