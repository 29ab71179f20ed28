"""The README's tables name every registered method, metric and model: adding one without documenting it fails."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import explainers
import metrics
import zoo

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize(
    ("kind", "names"), [("method", explainers.names()), ("metric", metrics.names()), ("model", zoo.model_names())]
)
def test_every_registered_name_is_in_the_readme(kind: str, names: list[str]) -> None:
    missing = [n for n in names if f"`{n}`" not in README]
    assert not missing, f"README lists no {kind} named {missing}"


def test_no_placeholder_is_left_in_the_readme() -> None:
    for marker in ("TODO", "TBD", "FIXME", "BENCH_", "LITE0_TABLE", "FIT_TIME"):
        assert marker not in README, marker


def test_the_readme_names_the_default_model_and_image() -> None:
    assert zoo.DEFAULT_MODEL in README and f"skimage.data.{zoo.DEFAULT_IMAGE}()" in README


def test_every_python_snippet_is_valid_python() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 5
    for block in blocks:
        ast.parse(block)  # a SyntaxError names the line
