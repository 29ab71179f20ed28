"""The Robustness page driven by AppTest: each perturbation, maps before/after, scores, the curve over eps."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_app


def _page(methods: list[str]) -> AppTest:
    return open_app("robustness", image="shapes: cross", methods=methods)


def _click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label.startswith(label)).click().run()


@pytest.mark.parametrize("kind", ["noise", "fgsm", "pgd", "topk"])
def test_each_perturbation_shows_images_maps_and_scores(kind: str):
    at = _page(["saliency", "gradcam"])
    at.radio(key="robust::kind").set_value(kind).run()
    assert any("Press" in i.value and "on this machine" in i.value for i in at.info)  # the time estimate before the run
    _click(at, "Run")
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    if kind == "noise":
        assert table["max_sensitivity"].iloc[0] >= table["avg_sensitivity"].iloc[0] > 0
    if kind == "topk":  # Grad-CAM cannot be attacked (not differentiable in its input): left out, said once, no warning box
        assert list(table["method"]) == ["Saliency"]
        assert any("left out: Grad-CAM" in c.value for c in at.caption) and not at.warning
        assert table["label kept"].iloc[0] == 1.0
    else:
        assert list(table["method"]) == ["Saliency", "Grad-CAM"]
        assert table["topk_intersection"].notna().all()
    assert len(at.get("image")) >= 3 + 2 + 1  # clean, perturbed, difference, then maps and the colour bar


def test_curve_over_eps():
    at = _page(["saliency"])
    at.radio(key="robust::kind").set_value("fgsm").run()
    _click(at, "Run")
    _click(at, "Compute the curve")
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1
