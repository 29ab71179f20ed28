"""Our metrics against Quantus 0.6, the library that implements them, after aligning conventions
(``benchmarks/quantus_aligned.py`` says how): every value within 1e-4 (relative for RIS / ROS, whose ratios are
unbounded). Skipped where Quantus is not installed (``make bench`` installs it into .venv-bench; run
``.venv-bench/bin/python -m pytest tests/test_metrics_quantus.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("quantus")

import explainers  # noqa: E402
import metrics  # noqa: E402
from benchmarks import quantus_aligned as qa  # noqa: E402
from metrics.irof import _substrate, irof_curves  # noqa: E402
from tests.conftest import make_tiny  # noqa: E402

SEED = 11


@pytest.fixture(scope="module")
def grey():
    """A 1-channel 16 x 16 case (one value per pixel in both libraries): the tiny CNN, two images, two maps."""
    net = qa.Grey(make_tiny()).eval()
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 2])
    maps = {"saliency": explainers.explain("saliency", net, x, t), "random": torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(1))}
    return net, x, t, maps


@pytest.fixture(scope="module")
def rgb():
    net = make_tiny()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([1, 0])
    return net, x, t, {"saliency": explainers.explain("saliency", net, x, t)}


def ours(name: str, net, x, t, m: torch.Tensor, key: str, **kw) -> np.ndarray:
    return metrics.score(name, net, x, t, {key: m}, seed=SEED, **kw)[key].double().numpy()


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("faithfulness_correlation", {"subset_size": 20, "n_runs": 12}),
        ("sensitivity_n", {"fraction": 0.3, "n_runs": 12}),
        ("monotonicity_arya", {"step": 16}),
        ("monotonicity_nguyen", {"step": 16, "n_samples": 4}),
    ],
)
def test_pixel_metrics_agree_with_quantus(name, kw, grey) -> None:
    net, x, t, maps = grey
    for key, m in maps.items():
        np.testing.assert_allclose(ours(name, net, x, t, m, key, **kw), getattr(qa, name)(net, x, m, t, SEED, **kw), atol=1e-4, err_msg=key)


def test_monotonicity_agrees_on_monotone_and_non_monotone_maps() -> None:
    from tests.test_metric_definitions import two_class

    model = two_class(torch.tensor([[1.0, 2.0], [-3.0, 4.0]]))
    x = torch.ones(2, 1, 2, 2)
    m = torch.tensor([[[3.0, 4.0], [1.0, 2.0]], [[3.0, 1.0], [4.0, 2.0]]])  # monotone, then not (tests/test_metric_definitions.py)
    np.testing.assert_array_equal(ours("monotonicity_arya", model, x, 0, m, "map", step=2), [1.0, 0.0])
    np.testing.assert_array_equal(qa.monotonicity_arya(model, x, m, torch.zeros(2).long(), SEED, step=2), [1.0, 0.0])


def test_irof_agrees_with_quantus_on_its_scale(grey) -> None:
    net, x, t, maps = grey
    for substrate in ("mean", "zero"):
        got = irof_curves(net, x, maps["saliency"], t, substrate=substrate).quantus_aoc()["map"].double().numpy()
        want = qa.irof(net, x, maps["saliency"], t, SEED, fill=_substrate(x, substrate))
        np.testing.assert_allclose(got, want, atol=1e-4, err_msg=substrate)


@pytest.mark.parametrize(
    ("name", "kw", "rel"),
    [
        ("local_lipschitz_estimate", {"sigma": 0.1, "n_samples": 3, "normalise": False}, False),
        ("relative_input_stability", {"radius": 0.02, "n_samples": 3}, True),
        ("relative_output_stability", {"radius": 0.1, "n_samples": 3}, True),  # float32 logits: |h(x) - h(x')| must dwarf their rounding
        ("efficient_mprt", {"n_bins": 20}, False),
        ("smooth_mprt", {"n_samples": 3, "noise": 0.1}, False),
    ],
)
def test_recomputing_metrics_agree_with_quantus(name, kw, rel, rgb) -> None:
    net, x, t, maps = rgb
    got = ours(name, net, x, t, maps["saliency"], "saliency", **kw)
    want = getattr(qa, name)(net, x, maps["saliency"], t, SEED, method="saliency", **kw)
    assert np.isfinite(want).all()
    np.testing.assert_allclose(got, want, rtol=1e-4 if rel else 0, atol=0 if rel else 1e-4)


def test_per_image_normalisation_and_random_logit_agree_one_image_at_a_time(rgb) -> None:
    """Quantus normalises by the batch's max: one image per call makes that ours (per image)."""
    net, x, t, maps = rgb
    for i in range(2):
        xi, ti, mi = x[i : i + 1], t[i : i + 1], maps["saliency"][i : i + 1]
        got = ours("local_lipschitz_estimate", net, xi, ti, mi, "saliency", sigma=0.1, n_samples=3)
        np.testing.assert_allclose(
            got, qa.local_lipschitz_estimate(net, xi, mi, ti, SEED, method="saliency", sigma=0.1, n_samples=3, normalise=True), atol=1e-4
        )
        got = ours("random_logit", net, xi, ti, mi, "saliency")
        np.testing.assert_allclose(got, qa.random_logit(net, xi, mi, ti, SEED, method="saliency", n_classes=3), atol=1e-4)
