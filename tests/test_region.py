"""Region measures (relevance mass as the share in any region, relevance rank accuracy) against hand computations,
and their set-level summary against the leaderboard's bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import metrics
from core.errors import ParameterError
from metrics.leaderboard import bootstrap_ci

# a 3 x 3 map and two regions; positive mass = 1 + 2 + 3 + 4 = 10 (the -5 counts for nothing)
MAP = torch.tensor([[[4.0, 0.0, -5.0], [0.0, 3.0, 0.0], [2.0, 0.0, 1.0]]])
CORNER = torch.tensor([[[True, True, False], [True, True, False], [False, False, False]]])  # 4 px: holds 4 and 3
EDGE = torch.tensor([[[False, False, True], [False, False, True], [False, False, True]]])  # 3 px: holds -5, 0, 1


def test_the_share_in_any_region_by_hand():
    shares = metrics.region_scores({"m": MAP}, {"corner": CORNER, "edge": EDGE})
    assert shares["corner"]["m"].item() == pytest.approx(7 / 10)
    assert shares["edge"]["m"].item() == pytest.approx(1 / 10)
    # the registered metric with the region as its mask is the same number
    assert metrics.score("relevance_mass", torch.nn.Identity(), torch.zeros(1, 3, 3, 3), 0, {"m": MAP}, mask=EDGE)["m"].item() == pytest.approx(0.1)
    assert metrics.area_share(CORNER).item() == pytest.approx(4 / 9)
    # a constant map scores the region's area share; a map with no positive value scores 0
    assert metrics.positive_share(torch.ones(1, 3, 3), CORNER).item() == pytest.approx(4 / 9)
    assert metrics.positive_share(-MAP.abs(), CORNER).item() == 0.0


def test_relevance_rank_accuracy_by_hand_with_ties_in_raster_order():
    # K = 4 for the corner: the four highest pixels are 4, 3, 2, 1 -> two of them (4, 3) inside
    assert metrics.rank_accuracy(MAP, CORNER).item() == pytest.approx(2 / 4)
    # K = 3 for the edge: 4, 3, 2 -> none inside
    assert metrics.rank_accuracy(MAP, EDGE).item() == 0.0
    # a constant map: the top K are the first K pixels in raster order (stable sort)
    first_row = torch.tensor([[[True, True, True], [False] * 3, [False] * 3]])
    assert metrics.rank_accuracy(torch.ones(1, 3, 3), first_row).item() == 1.0
    assert metrics.rank_accuracy(torch.ones(1, 3, 3), EDGE).item() == pytest.approx(1 / 3)  # (0,2) is among the first 3
    assert metrics.rank_accuracy(MAP, torch.zeros(1, 3, 3, dtype=torch.bool)).item() == 0.0  # empty region
    via = metrics.score("relevance_rank", torch.nn.Identity(), torch.zeros(1, 3, 3, 3), 0, {"m": MAP}, mask=CORNER)
    assert via["m"].item() == pytest.approx(0.5)
    by_name = metrics.region_scores({"m": MAP}, {"c": CORNER}, measure="relevance_rank")
    assert by_name["c"]["m"].item() == pytest.approx(0.5)


def test_a_batch_of_maps_with_one_region_per_image_and_one_for_all():
    maps = torch.stack([MAP[0], torch.ones(3, 3)])
    per_image = metrics.region_scores({"m": maps}, {"r": torch.cat([CORNER, EDGE])})["r"]["m"]
    torch.testing.assert_close(per_image, torch.tensor([0.7, 1 / 3]))
    shared = metrics.region_scores({"m": maps}, {"r": CORNER[0]})["r"]["m"]  # [H,W] applies to every image
    torch.testing.assert_close(shared, torch.tensor([0.7, 4 / 9]))


def test_over_a_set_mean_and_the_leaderboards_bootstrap_interval():
    values = torch.tensor([0.1, 0.4, 0.35, 0.8, float("nan"), 0.6])
    got = metrics.over_set(values, seed=3)
    kept = np.array([0.1, 0.4, 0.35, 0.8, 0.6])
    assert got.n == 5 and got.mean == pytest.approx(kept.mean())
    assert (got.low, got.high) == pytest.approx(bootstrap_ci(kept, 3, 2000), rel=1e-6)  # values arrive as float32
    assert got.low < got.mean < got.high
    assert metrics.over_set(torch.tensor([0.5, 0.5])).low == 0.5  # no spread: a point
    assert math.isnan(metrics.over_set(torch.tensor([float("nan")])).mean)


def test_bad_regions_and_measures_are_refused():
    with pytest.raises(ParameterError, match="does not match"):
        metrics.region_scores({"m": MAP}, {"r": torch.ones(1, 4, 4, dtype=torch.bool)})
    with pytest.raises(ParameterError, match="measure must be one of"):
        metrics.region_scores({"m": MAP}, {"r": CORNER}, measure="iou")
    with pytest.raises(ParameterError, match="needs a ground-truth mask"):
        metrics.score("relevance_rank", torch.nn.Identity(), torch.zeros(1, 3, 3, 3), 0, {"m": MAP})
