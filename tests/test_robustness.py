"""Robustness: sensitivity against captum on identical samples, PGD/FGSM bounds, the fragility attack, invariant controls."""

from __future__ import annotations

import pytest
import torch
from captum.metrics import sensitivity_max

import explainers
import metrics
import zoo
from core.errors import MethodNotApplicable, ParameterError


def test_sensitivity_equals_captums_on_identical_samples(tiny) -> None:
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ours = metrics.sensitivity(tiny, x, 1, "saliency", radius=8, n_samples=6, seed=3)
    samples = metrics.sensitivity_samples(tiny, x, 8, 6, 3)
    torch.testing.assert_close(ours.samples, samples)

    def explanation(inputs, target: torch.Tensor) -> torch.Tensor:
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs  # captum passes a tuple
        return (explainers.explain("saliency", tiny, inputs, target),)  # captum iterates over a tuple of outputs

    def same_samples(inputs, radius: float) -> torch.Tensor:
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
        assert inputs.shape[0] == 6 and radius == pytest.approx(8 / 255)
        return samples

    theirs = sensitivity_max(explanation, x, perturb_func=same_samples, perturb_radius=8 / 255, n_perturb_samples=6, target=torch.tensor([1]))
    assert ours.max == pytest.approx(float(theirs[0]), rel=1e-5)
    assert ours.mean <= ours.max and ours.values.shape == (6,)
    # samples stay in the ball and in the valid pixel range (a bare module's input is its pixel space)
    assert float((samples - x).abs().max()) <= 8 / 255 + 1e-6 and float(samples.min()) >= 0 and float(samples.max()) <= 1


def test_invariant_methods_give_the_expected_values(shapes) -> None:
    x = shapes.preprocess(zoo.sample_images()["shapes: square"])
    # the random control draws an independent U[0,1) map for every input: ||a - b|| / ||a|| -> sqrt((1/6) / (1/3))
    rand = metrics.sensitivity(shapes, x, 1, "random", radius=4, n_samples=4)
    assert rand.mean == pytest.approx(0.5**0.5, abs=0.02) and rand.max == pytest.approx(0.5**0.5, abs=0.03)
    tiny_move = metrics.sensitivity(shapes, x, 1, "edge_sobel", radius=1e-6, n_samples=3)
    assert tiny_move.max < 1e-5
    e = explainers.explain("edge_sobel", shapes, x, 1)[0]
    d = metrics.dissimilarity(e, e)
    assert d == {"topk_intersection": 1.0, "spearman": pytest.approx(1.0), "ssim": pytest.approx(1.0), "com_shift_px": 0.0}


class Margin(torch.nn.Module):
    """logit 0 = w.(x - 0.5), logit 1 = 0: at x = 0.5 + 0.01 sign(w) class 0 wins by 0.01 ||w||_1, and any
    eps > 0.01 (2.55/255) in the direction -sign(w) provably flips it."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3 * 16 * 16, generator=torch.Generator().manual_seed(0)), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.flatten(1) - 0.5) @ self.w
        return torch.stack([z, torch.zeros_like(z)], dim=1)


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_pgd_and_fgsm_flip_within_the_ball_and_valid_pixels(attack: str) -> None:
    model = Margin().eval()
    x = (0.5 + 0.01 * model.w.sign()).view(1, 3, 16, 16)
    res = metrics.adversarial(model, x, 0, attack=attack, eps=4, steps=10, methods=["saliency"])
    assert res.pred_clean == 0 and res.changed and res.pred_adv == 1
    assert float(res.delta.abs().max()) <= 4 / 255 + 1e-6
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    assert set(res.scores["saliency"]) == {"topk_intersection", "spearman", "ssim", "com_shift_px"}
    assert model.w.grad is None
    small = metrics.adversarial(model, x, 0, attack=attack, eps=2, steps=10)  # 2/255 < 0.01: provably no flip
    assert not small.changed


def test_pgd_respects_the_models_normalization(shapes) -> None:
    x = shapes.preprocess(zoo.sample_images()["shapes: circle"])
    res = metrics.adversarial(shapes, x, 0, eps=4, steps=5)
    px = shapes.denormalize(res.x_adv)
    assert float((px - shapes.denormalize(x)).abs().max()) <= 4 / 255 + 1e-5
    assert float(px.min()) >= 0 and float(px.max()) <= 1


def test_fragility_keeps_the_label_and_beats_random_noise(shapes) -> None:
    wins = 0
    for cls in ("circle", "square", "triangle", "cross"):
        x = shapes.preprocess(zoo.sample_images()[f"shapes: {cls}"])
        target = shapes.classes.index(cls)
        res = metrics.fragility(shapes, x, target, "saliency", attack="topk", eps=8, steps=10, seed=0)
        assert res.label_kept
        assert int(shapes.predict(res.x_attacked).argmax()) == target
        px = shapes.denormalize(res.x_attacked) - shapes.denormalize(x)
        assert float(px.abs().max()) <= 8 / 255 + 1e-5
        wins += res.attacked["topk_intersection"] < res.random["topk_intersection"]
    assert wins >= 3  # the targeted attack moves the top-k pixels more than random signs of the same size


def test_fragility_refuses_non_differentiable_methods_and_bad_input(shapes) -> None:
    x = shapes.preprocess(zoo.sample_images()["shapes: circle"])
    with pytest.raises(MethodNotApplicable, match="differentiable"):
        metrics.fragility(shapes, x, 0, "gradcam")
    with pytest.raises(ParameterError, match="topk or com"):
        metrics.fragility(shapes, x, 0, "saliency", attack="nope")
    with pytest.raises(ParameterError, match="one image"):
        metrics.sensitivity(shapes, x.repeat(2, 1, 1, 1), 0, "saliency")
