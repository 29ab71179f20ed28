"""Degenerate maps and out-of-range parameters through the public metric/visualization functions: a clear
``ValueError`` subclass naming the problem, or a finite, documented value; never a division by zero."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import metrics
import zoo
from core.errors import ParameterError
from dashboard import render
from explainers import visualize as V

H = W = 64


@pytest.fixture(scope="module")
def case(shapes):
    x = shapes.preprocess(zoo.sample_images()["shapes: circle"])
    mask = shapes.preprocess_mask(zoo.sample_masks()["shapes: circle"])
    return shapes, x, mask


DEGENERATE = {
    "zeros": torch.zeros(1, H, W),
    "constant": torch.full((1, H, W), 3.0),
    "negative": -torch.ones(1, H, W),
    "one_pixel": torch.zeros(1, H, W).index_put_((torch.tensor([0]), torch.tensor([5]), torch.tensor([7])), torch.tensor(1e-30)),
}


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_every_registered_metric_is_finite_on_degenerate_maps(case, name: str) -> None:
    model, x, mask = case
    m = {name: DEGENERATE[name]}
    for metric in metrics.names():
        extra = {"n_samples": 4} if metric == "infidelity" else ({"step": 512} if metric in ("deletion", "insertion") else {})
        got = metrics.score(metric, model, x, 0, m, mask=mask, **extra)[name]
        assert got.shape == (1,) and torch.isfinite(got).all(), (metric, name, got)


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_similarities_complexity_and_rendering_never_divide_by_zero(name: str) -> None:
    a = DEGENERATE[name][0]
    b = torch.rand(H, W, generator=torch.Generator().manual_seed(0))
    for s in metrics.SIMILARITIES:
        for u, v in ((a, a), (a, b), (b, a)):
            assert math.isfinite(metrics.map_similarity(u, v, s)), (s, name)
    d = metrics.dissimilarity(a, b)
    assert all(math.isfinite(v) for v in d.values())
    assert math.isfinite(float(metrics.gini(a[None]))) and math.isfinite(float(metrics.entropy(a[None])))
    for signed in (True, False):
        norm = render.normalize_map(a.numpy(), signed=signed)
        assert np.isfinite(norm).all()
    fig = render.randomization_figure(["m"], ["original", "fc"], [np.stack([a.numpy(), a.numpy()])], per_map=True)
    assert fig.dtype == np.uint8


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x: metrics.deletion_insertion(m, x, torch.rand(1, H, W), 0, step=-3), "step"),
        (lambda m, x: metrics.score("deletion", m, x, 0, {"a": torch.rand(1, H, W)}, step=10**7), "step"),
        (lambda m, x: metrics.score("deletion", m, x, 0, {"a": torch.rand(1, H, W)}, substrate="noise"), "substrate"),
        (lambda m, x: metrics.road(m, x, torch.rand(1, H, W), 0, percentages=(0, 50)), "percentages"),
        (lambda m, x: metrics.road(m, x, torch.rand(1, H, W), 0, percentages=(50, 100)), "percentages"),
        (lambda m, x: metrics.infidelity(m, x, torch.rand(1, H, W), 0, n_samples=0), "n_samples"),
        (lambda m, x: metrics.infidelity(m, x, torch.rand(1, H, W), 0, sigma=-1.0), "sigma"),
        (lambda m, x: metrics.sensitivity(m, x, 0, "saliency", radius=0), "radius"),
        (lambda m, x: metrics.sensitivity(m, x, 0, "saliency", n_samples=0), "n_samples"),
        (lambda m, x: metrics.adversarial(m, x, 0, eps=-2), "eps"),
        (lambda m, x: metrics.adversarial(m, x, 0, steps=0), "steps"),
        (lambda m, x: metrics.adversarial(m, x, 0, attack="cw"), "fgsm or pgd"),
        (lambda m, x: metrics.fragility(m, x, 0, "saliency", eps=0), "eps"),
        (lambda m, x: metrics.fragility(m, x, 0, "saliency", steps=0), "steps"),
        (lambda m, x: metrics.model_randomization(m, x, 0, []), "at least one method"),
        (lambda m, x: metrics.model_randomization(m, x, 0, ["saliency"], seed=0, mode="both"), "mode"),
        (lambda m, x: metrics.deletion_insertion(m, x, torch.rand(1, H, W), 7), "out of range"),
        (lambda m, x: metrics.sensitivity(m, x, 7, "saliency"), "out of range"),
        (lambda m, x: V.maximize(m, V.Objective("class", 0), steps=0), "steps"),
        (lambda m, x: V.maximize(m, V.Objective("mood", 0), steps=1), "objective"),
        (lambda m, x: V.feature_maps(m, x, "fc"), "feature map"),
    ],
)
def test_out_of_range_parameters_raise_clear_errors(case, call, message: str) -> None:
    model, x, _ = case
    with pytest.raises(ParameterError, match=message):
        call(model, x)


def test_an_eps_above_the_pixel_range_is_clipped_not_a_crash(case) -> None:
    model, x, _ = case
    res = metrics.adversarial(model, x, 0, eps=400, steps=2)  # 400/255 > 1: the ball covers every image
    px = model.denormalize(res.x_adv)
    assert float(px.min()) >= 0 and float(px.max()) <= 1
