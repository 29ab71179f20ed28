"""The compatibility report on the Methods page and as a badge on the Compare grid's tiles."""

from __future__ import annotations

from torch import nn

import explainers
from dashboard import grid
from tests.app.conftest import open_app


def test_methods_page_shows_the_chosen_models_compatibility_table():
    at = open_app("methods")
    assert not at.exception
    assert any("On the chosen model" in m.value for m in at.markdown)
    table = at.dataframe[0].value
    assert list(table.columns) == ["method", "applies", "why"] and len(table) == len(explainers.names())
    assert set(table["applies"]) == {"exact"}, "every method is exact on the synthetic ReLU CNN"
    assert any("activations: ReLU (module) x4" in c.value for c in at.caption)


def test_the_tile_badge_names_approximate_and_not_applicable_methods_only():
    silu = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    report = explainers.compatibility(silu)
    assert grid.badge(report, "guided_backprop") == grid.BADGES["approximate"]
    assert grid.badge(report, "saliency") == "" and grid.badge(None, "guided_backprop") == ""
    flat = explainers.compatibility(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)))
    assert grid.badge(flat, "gradcam") == grid.BADGES["not applicable"]
