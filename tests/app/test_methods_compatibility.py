"""The compatibility report in the dashboard: a table on the Methods page for the chosen model, and a badge in the
caption of a Compare tile whose method is not exact on it."""

from __future__ import annotations

import importlib

import pytest

from dashboard import cache
from tests.app.conftest import open_app

COMPAT = importlib.import_module("explainers.compatibility")  # the module (``explainers.compatibility`` is the function)


@pytest.fixture(autouse=True)
def _fresh_reports():
    cache.compatibility.clear()
    yield
    cache.compatibility.clear()


def test_the_methods_page_shows_the_chosen_models_compatibility():
    at = open_app("methods")
    assert not at.exception
    assert any("Compatibility with synthetic_shapes" in m.value for m in at.markdown)
    frames = [df.value for df in at.dataframe]
    verdicts = next(f for f in frames if "verdict" in f.columns)
    assert list(verdicts["method"]) == COMPAT.EXPLAINERS.names()
    assert set(verdicts["verdict"]) == {"exact"}  # a plain ReLU CNN with a pooled head
    summary = next(f for f in frames if "what" in f.columns)
    assert "ReLU (module) x4" in set(summary["value"])


def test_a_tile_says_when_its_method_is_approximate_on_the_model(monkeypatch):
    monkeypatch.setattr(COMPAT, "_cam", lambda s, name: (COMPAT.APPROX, "trip-wire reason"))
    at = open_app(methods=["gradcam", "saliency"])
    assert not at.exception
    captions = [img.proto.imgs[0].caption for img in at.get("image")]
    assert any(c.startswith("Grad-CAM") and c.endswith("approximate: trip-wire reason") for c in captions), captions
    assert not any(c.startswith("Saliency") and "approximate" in c for c in captions)
