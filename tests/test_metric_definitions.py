"""The Quantus-level metrics (faithfulness correlation, sensitivity-n, monotonicity x2, IROF, Average Drop /
Increase in Confidence, local Lipschitz, RIS/ROS, random logit, smooth and efficient MPRT): hand-computed cases on
linear models whose answers follow from the definitions, and cross-checks against slow references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import metrics
from metrics.correlation import set_size, subsets
from metrics.irof import irof_curves, superpixels
from metrics.randomization import randomize_block
from metrics.sanity import discrete_entropy, other_classes


class Linear(nn.Module):
    """Class k's logit = sum over channels and pixels of W[k] * x (+ bias): every map has a closed form."""

    def __init__(self, weights: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        k = weights.shape[0]
        self.shape = tuple(weights.shape[1:])
        self.lin = nn.Linear(weights[0].numel(), k)
        with torch.no_grad():
            self.lin.weight.copy_(weights.reshape(k, -1))
            self.lin.bias.copy_(torch.zeros(k) if bias is None else bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))


def two_class(w: torch.Tensor) -> nn.Module:
    """Class 0's logit = sum(w * x) for x [B,1,H,W], class 1's = 0: p0 = sigmoid(sum(w * x))."""
    return Linear(torch.stack([w, torch.zeros_like(w)]).unsqueeze(1)).eval()


def score(name: str, model: nn.Module, x: torch.Tensor, target: int | torch.Tensor, m: torch.Tensor, key: str = "map", **kw) -> torch.Tensor:
    return metrics.score(name, model, x, target, {key: m}, batch_size=4, **kw)[key]


# ---------------------------------------------------------------------------------- faithfulness correlation, sensitivity-n


def test_subsets_are_numpys_legacy_draws_run_by_run_then_image_by_image() -> None:
    got = subsets(5, 2, 3, 100, 7)
    rng = np.random.RandomState(5)
    want = [[rng.choice(100, 7, replace=False) for _ in range(2)] for _ in range(3)]
    assert got.shape == (3, 2, 7) and np.array_equal(got.numpy(), np.array(want))


def test_faithfulness_correlation_is_plus_or_minus_one_for_the_exact_contributions_of_a_linear_model() -> None:
    w = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1)) + 0.5
    model = two_class(w)
    exact = w * x[0, 0]  # removing S lowers the logit by exactly the sum of w*x over S
    assert float(score("faithfulness_correlation", model, x, 0, exact[None], subset_size=10, n_runs=20)[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(score("faithfulness_correlation", model, x, 0, -exact[None], subset_size=10, n_runs=20)[0]) == pytest.approx(-1.0, abs=1e-6)
    assert float(score("faithfulness_correlation", model, x, 0, torch.ones(1, 8, 8), subset_size=10, n_runs=20)[0]) == 0.0  # constant sums: undefined -> 0


def test_faithfulness_correlation_equals_a_slow_reference_and_sensitivity_n_is_it_at_one_size(tiny) -> None:
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    m = torch.randn(2, 12, 12, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([0, 2])
    got = metrics.score("faithfulness_correlation", tiny, x, t, {"a": m}, seed=4, subset_size=30, n_runs=15)["a"]
    rng = np.random.RandomState(4)
    sums, drops = np.zeros((2, 15)), np.zeros((2, 15))
    with torch.no_grad():
        y = tiny(x)[[0, 1], t]
        for r in range(15):
            for i in range(2):
                s = rng.choice(144, 30, replace=False)
                xr = x[i].clone().reshape(3, -1)
                xr[:, s] = 0.0
                drops[i, r] = float(y[i] - tiny(xr.reshape(1, 3, 12, 12))[0, t[i]])
                sums[i, r] = float(m[i].flatten()[s].sum())
    want = [stats.pearsonr(sums[i], drops[i]).statistic for i in range(2)]
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    via_n = metrics.score("sensitivity_n", tiny, x, t, {"a": m}, seed=4, fraction=30 / 144, n_runs=15)["a"]
    torch.testing.assert_close(via_n, got)
    assert set_size(0.5, 144) == 72 and set_size(1e-9, 144) == 1


def test_sensitivity_n_curve_is_the_metric_at_each_size(tiny) -> None:
    x = torch.randn(1, 3, 10, 10, generator=torch.Generator().manual_seed(5))
    m = torch.randn(1, 10, 10, generator=torch.Generator().manual_seed(6))
    sizes, curve = metrics.sensitivity_n_curve(tiny, x, m, 1, fractions=(0.05, 0.5), n_runs=6, seed=2)
    assert sizes == [5, 50] and curve.shape == (1, 2)
    for j, f in enumerate((0.05, 0.5)):
        assert float(curve[0, j]) == pytest.approx(float(score("sensitivity_n", tiny, x, 1, m, seed=2, fraction=f, n_runs=6)[0]), abs=1e-7)


# ---------------------------------------------------------------------------------- monotonicity


def test_monotonicity_arya_by_hand_on_four_pixels() -> None:
    # p0 = sigmoid(sum w*x) with x = 1 from an all-zero start: restoring a pixel adds its weight to the logit; the
    # curve is read after each step (as AIX360 and Quantus do: the all-zero start is not a point)
    model = two_class(torch.tensor([[1.0, 2.0], [-3.0, 4.0]]))
    x = torch.ones(1, 1, 2, 2)
    good = torch.tensor([[[3.0, 4.0], [1.0, 2.0]]])  # ascending: -3, 4, 1, 2 -> logits -3, 1, 2, 4 one by one; 1, 4 by two
    bad = torch.tensor([[[3.0, 1.0], [4.0, 2.0]]])  # ascending: 2, 4, 1, -3 -> logits 2, 6, 7, 4 one by one; 6, 4 by two
    assert float(score("monotonicity_arya", model, x, 0, good, step=1)[0]) == 1.0
    assert float(score("monotonicity_arya", model, x, 0, good, step=2)[0]) == 1.0
    assert float(score("monotonicity_arya", model, x, 0, bad, step=1)[0]) == 0.0
    assert float(score("monotonicity_arya", model, x, 0, bad, step=2)[0]) == 0.0
    assert float(score("monotonicity_arya", model, x, 0, bad, step=4)[0]) == 1.0  # one point: nothing can fall


def test_monotonicity_nguyen_ranks_effects_like_the_weights() -> None:
    # x = 0 and p_x = 0.5; setting pixel j to a grey level u moves the logit by w_j * u, so the effect
    # E[(sigmoid(w_j u) - 0.5)^2] grows with |w_j|: |w| itself has rank correlation 1, its reverse -1
    w = torch.tensor([[0.1, -0.4], [1.5, -6.0]])
    model, x = two_class(w), torch.zeros(1, 1, 2, 2)
    assert float(score("monotonicity_nguyen", model, x, 0, w.abs()[None], step=1, n_samples=50)[0]) == pytest.approx(1.0)
    assert float(score("monotonicity_nguyen", model, x, 0, -w[None], step=1, n_samples=50)[0]) == pytest.approx(1.0)  # |map| is ranked
    assert float(score("monotonicity_nguyen", model, x, 0, 1 / w.abs()[None], step=1, n_samples=50)[0]) == pytest.approx(-1.0)


# ---------------------------------------------------------------------------------- IROF


def quadrants() -> torch.Tensor:
    """A 16 x 16 image of four flat quadrants of different colours, [1,3,16,16] in [0,1]."""
    x = torch.zeros(1, 3, 16, 16)
    for (r, c), colour in zip(((0, 0), (0, 8), (8, 0), (8, 8)), ((0.9, 0.1, 0.1), (0.1, 0.9, 0.1), (0.1, 0.1, 0.9), (0.9, 0.9, 0.1)), strict=True):
        x[0, :, r : r + 8, c : c + 8] = torch.tensor(colour).view(3, 1, 1)
    return x


class TopLeft(nn.Module):
    """Class 0's logit = 10 * (mean of the top-left quadrant's red channel - 0.5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 10 * (x[:, 0, :8, :8].mean(dim=(1, 2)) - 0.5)
        return torch.stack([z, torch.zeros_like(z)], 1)


def test_irof_by_hand_on_four_superpixels() -> None:
    x = quadrants()
    seg = superpixels(x[0], n_segments=4)
    assert seg.unique().numel() == 4 and all(seg[r : r + 8, c : c + 8].unique().numel() == 1 for r in (0, 8) for c in (0, 8))
    m = torch.zeros(1, 16, 16)
    m[0, :8, :8], m[0, :8, 8:], m[0, 8:, :8] = 4.0, 3.0, 2.0  # order: top-left first, then the others
    res = irof_curves(TopLeft(), x, m, 0, n_segments=4)
    p0 = torch.sigmoid(torch.tensor(10 * (0.9 - 0.5)))
    red_mean = float(x[0, 0].mean())  # the "mean" substrate: the image's per-channel mean
    r = float(torch.sigmoid(torch.tensor(10 * (red_mean - 0.5))) / p0)
    torch.testing.assert_close(res.curves["map"][0], torch.tensor([1.0, r, r, r, r]), atol=1e-6, rtol=0)
    want = 1 - (0.5 + 3.5 * r) / 4  # trapezoid of [1, r, r, r, r] on [0, 1]
    assert float(score("irof", TopLeft(), x, 0, m, n_segments=4)[0]) == pytest.approx(want, abs=1e-6)
    assert float(res.quantus_aoc()["map"][0]) == pytest.approx(4 - 3 * r, abs=1e-5)  # n - trapz([r, r, r, r])
    last = score("irof", TopLeft(), x, 0, -m, n_segments=4)  # top-left removed last: a smaller area over the curve
    assert float(last[0]) < want


# ---------------------------------------------------------------------------------- Average Drop / Increase in Confidence


def test_average_drop_and_increase_in_confidence_by_hand() -> None:
    x = torch.ones(1, 1, 2, 2)
    m = torch.tensor([[[0.0, 2.0], [4.0, 4.0]]])  # min-max -> [0, 0.5, 1, 1]: the product has sum 2.5
    up = two_class(torch.full((2, 2), 1.0))  # p0 = sigmoid(sum x)
    y, o = torch.sigmoid(torch.tensor(4.0)), torch.sigmoid(torch.tensor(2.5))
    assert float(score("average_drop", up, x, 0, m)[0]) == pytest.approx(float((y - o) / y), abs=1e-6)
    assert float(score("increase_in_confidence", up, x, 0, m)[0]) == 0.0
    down = two_class(torch.full((2, 2), -1.0))  # dimming the image raises p0
    assert float(score("average_drop", down, x, 0, m)[0]) == 0.0
    assert float(score("increase_in_confidence", down, x, 0, m)[0]) == 1.0
    assert float(score("average_drop", up, x, 0, torch.ones(1, 2, 2))[0]) == pytest.approx(float((y - 0.5) / y), abs=1e-6)  # constant map -> 0


def test_average_drop_multiplies_pixels_not_normalized_inputs(shapes) -> None:
    import zoo

    x = shapes.preprocess(zoo.sample_images()["shapes: circle"])
    m = torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(0))
    ours = metrics.score("average_drop", shapes, x, 0, {"a": m})["a"]
    lo, hi = m.min(), m.max()
    masked = shapes.normalize(shapes.denormalize(x) * ((m - lo) / (hi - lo)).unsqueeze(1))
    with torch.no_grad():
        y, o = shapes.model(x).softmax(-1)[0, 0], shapes.model(masked).softmax(-1)[0, 0]
    assert float(ours[0]) == pytest.approx(max(0.0, float((y - o) / y)), abs=1e-4)


# ---------------------------------------------------------------------------------- local Lipschitz, RIS, ROS


def test_local_lipschitz_by_hand_on_a_linear_model() -> None:
    model = Linear(torch.stack([torch.full((1, 6, 6), 2.0), torch.zeros(1, 6, 6)])).eval()
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0)) + 0.5
    import explainers

    e = explainers.explain("input_x_gradient", model, x, 0)  # 2 * x: moves by 2 * (x' - x)
    lle = metrics.score("local_lipschitz_estimate", model, x, 0, {"input_x_gradient": e}, n_samples=4, normalise=False)
    torch.testing.assert_close(lle["input_x_gradient"], torch.full((2,), 2.0), rtol=1e-5, atol=0)
    s = explainers.explain("saliency", model, x, 0)  # |w| whatever the input: never moves
    assert metrics.score("local_lipschitz_estimate", model, x, 0, {"saliency": s}, n_samples=4)["saliency"].abs().max() == 0


def test_relative_stability_by_hand_on_a_linear_model() -> None:
    import explainers
    from metrics.stability import noisy_inputs

    model = Linear(torch.stack([torch.full((1, 6, 6), 2.0), torch.zeros(1, 6, 6)]), torch.tensor([0.0, -5.0])).eval()
    x = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0)) + 0.5
    e = {"input_x_gradient": explainers.explain("input_x_gradient", model, x, 0)}
    # e = 2x, so (e - e')/e = (x - x')/x: RIS is exactly 1
    ris = metrics.score("relative_input_stability", model, x, 0, e, n_samples=5, radius=0.05, seed=3)["input_x_gradient"]
    assert float(ris[0]) == pytest.approx(1.0, abs=1e-6)
    # ROS: the same numerator over ||h(x) - h(x')|| = |2 sum(x - x')| (class 1's logit is constant)
    ctx = metrics.MetricContext(model, x, torch.tensor([0]), seed=3)
    xs = noisy_inputs(ctx, 5, "uniform", 0.05)[:, 0].double()
    num = ((x.double() - xs) / x.double()).flatten(1).norm(dim=1)
    want = float((num / (2 * (x.double() - xs).flatten(1).sum(1)).abs()).max())
    ros = metrics.score("relative_output_stability", model, x, 0, e, n_samples=5, radius=0.05, seed=3)["input_x_gradient"]
    assert float(ros[0]) == pytest.approx(want, rel=1e-4)  # the engine's float32 logits: ~1e-5 of a small difference


class Peak(nn.Module):
    """Class 0 wins only at x0 itself: logit0 = 1e-3 - 1e3 ||x - x0||^2, logit1 = 0."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("x0", x0)
        self.scale = nn.Linear(1, 1)  # a parameter, so the model has a block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 1e-3 - 1e3 * (x - self.x0).square().flatten(1).sum(1)
        return torch.stack([z, torch.zeros_like(z)], 1)


def test_relative_stability_keeps_only_samples_with_the_same_label_and_is_nan_without_any() -> None:
    import explainers
    from metrics.stability import noisy_inputs

    x = torch.full((1, 1, 4, 4), 0.5)
    edge = Linear(torch.stack([torch.ones(1, 4, 4), torch.zeros(1, 4, 4)]), torch.tensor([0.0, 8.0])).eval()  # 8 vs 8 at x: label 0
    e = {"input_x_gradient": explainers.explain("input_x_gradient", edge, x, 0)}  # = x
    ros = metrics.score("relative_output_stability", edge, x, 0, e, n_samples=40, radius=0.5, seed=2)["input_x_gradient"]
    xs = noisy_inputs(metrics.MetricContext(edge, x, torch.tensor([0]), seed=2), 40, "uniform", 0.5)[:, 0].double()
    ratio = ((x.double() - xs) / x.double()).flatten(1).norm(dim=1) / (x.double() - xs).flatten(1).sum(1).abs()
    kept = xs.flatten(1).sum(1) >= 8  # class 0 keeps the argmax (ties go to the first class)
    assert 5 < int(kept.sum()) < 35
    assert float(ros[0]) == pytest.approx(float(ratio[kept].max()), rel=1e-5)
    assert float(ratio[kept].max()) != pytest.approx(float(ratio.max()), rel=1e-3), "the case must tell kept from all samples"
    peak = Peak(x.clone()).eval()
    e = {"saliency": explainers.explain("saliency", peak, x, 0)}
    for name in ("relative_input_stability", "relative_output_stability"):
        assert math.isnan(float(metrics.score(name, peak, x, 0, e, n_samples=3)["saliency"][0])), "no admissible sample"


# ---------------------------------------------------------------------------------- random logit, smooth / efficient MPRT


def test_other_classes_never_draw_the_target_and_reach_every_other_class() -> None:
    t = torch.tensor([0, 3, 9] * 30)
    seen = set()
    for s in range(5):
        off = other_classes(s, t, 10)
        assert not (off == t).any() and int(off.max()) < 10
        seen |= set(off[t == 3].tolist())
    assert seen == set(range(10)) - {3}
    idx = np.random.RandomState(7).randint(0, 9, size=3)  # Quantus: index into the classes without the target
    assert other_classes(7, torch.tensor([0, 3, 9]), 10).tolist() == [[c for c in range(10) if c != y][i] for y, i in zip((0, 3, 9), idx, strict=True)]


def test_random_logit_is_the_ssim_of_the_two_classes_weights() -> None:
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, 1, 16, 16, generator=g)
    model, x = Linear(w).eval(), torch.rand(1, 1, 16, 16, generator=g)
    import explainers

    s = explainers.explain("saliency", model, x, 0)  # |W[0]|
    got = metrics.score("random_logit", model, x, 0, {"saliency": s})["saliency"]
    a, b = w[0, 0].abs().numpy(), w[1, 0].abs().numpy()  # two classes: the other one is class 1
    want = structural_similarity(a / a.max(), b / b.max(), data_range=1.0)
    assert float(got[0]) == pytest.approx(want, abs=1e-5)


def test_smooth_and_efficient_mprt_by_hand_on_a_one_block_linear_model() -> None:
    import explainers

    g = torch.Generator().manual_seed(1)
    model = Linear(torch.randn(3, 1, 8, 8, generator=g)).eval()
    x = torch.rand(1, 1, 8, 8, generator=g)
    s = explainers.explain("saliency", model, x, 2)  # |W[2]|, whatever the input: smoothing changes nothing
    randomized = Linear(torch.zeros(3, 1, 8, 8))
    randomized.load_state_dict(model.state_dict())
    randomize_block(randomized, ("lin",), 5 * 1009 + 1)  # the one block, step 1 of the cascade, seed 5
    new = randomized.lin.weight[2].detach().abs().reshape(8, 8)
    sm = metrics.score("smooth_mprt", model, x, 2, {"saliency": s}, seed=5, n_samples=3)["saliency"]
    assert float(sm[0]) == pytest.approx(stats.spearmanr(s[0].flatten(), new.flatten()).statistic, abs=1e-6)
    em = metrics.score("efficient_mprt", model, x, 2, {"saliency": s}, seed=5, n_bins=10)["saliency"]
    h0, h1 = (float(stats.entropy(np.histogram(v.numpy(), bins=10)[0])) for v in (s[0], new))
    assert float(em[0]) == pytest.approx((h1 - h0) / h0, abs=1e-6)
    assert torch.equal(model.lin.weight, Linear(torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))).lin.weight)  # untouched


def test_discrete_entropy_by_hand() -> None:
    maps = torch.tensor([[[0.0, 0.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 1.0]], [[2.0, 2.0], [2.0, 2.0]]])
    got = discrete_entropy(maps, 2)
    assert got.tolist() == pytest.approx([math.log(2), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), 0.0])
    const = metrics.score("efficient_mprt", Linear(torch.randn(2, 1, 2, 2)).eval(), torch.ones(1, 1, 2, 2), 0, {"saliency": maps[2:]})
    assert float(const["saliency"][0]) == 0.0  # a constant original map has no complexity to rise from: no rise
