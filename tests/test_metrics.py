"""Metrics: slow references written from the papers' definitions, oracles, hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

import metrics
from core.errors import ParameterError
from metrics.road import NEIGHBOURS

# ---------------------------------------------------------------------------------- helpers


class RegionModel(nn.Module):
    """Two classes; class 0's logit depends only on the mean of a known 4x4 region (rows/cols 5..8)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        region = x[:, :, 5:9, 5:9].mean(dim=(1, 2, 3))
        return torch.stack([20 * (region - 0.5), torch.zeros_like(region)], dim=1)


def region_case() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    x = torch.zeros(1, 3, 16, 16)
    x[:, :, 5:9, 5:9] = 1.0
    truth = torch.zeros(1, 16, 16)
    truth[:, 5:9, 5:9] = 1.0
    truth += 0.01 * torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))  # no ties outside
    return RegionModel().eval(), x, truth


def slow_curves(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target: int, step: int, substrate: str) -> tuple[list[float], list[float]]:
    """Deletion and insertion of one image [1,C,H,W], a per-step loop straight from the definition."""
    _, c, h, w = x.shape
    p = h * w
    order = torch.argsort(attribution.flatten(), descending=True, stable=True)
    if substrate == "zero":
        sub = torch.zeros_like(x)
    elif substrate == "mean":
        sub = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    else:
        sub = gaussian_blur(x, [11, 11], [5.0, 5.0])
    blur = gaussian_blur(x, [11, 11], [5.0, 5.0])
    dele, ins = [], []
    with torch.no_grad():
        for k in range(math.ceil(p / step) + 1):
            idx = order[: min(k * step, p)]
            d = x.clone().reshape(1, c, p)
            d[:, :, idx] = sub.reshape(1, c, p)[:, :, idx]
            i = blur.clone().reshape(1, c, p)
            i[:, :, idx] = x.reshape(1, c, p)[:, :, idx]
            dele.append(float(model(d.reshape_as(x)).softmax(-1)[0, target]))
            ins.append(float(model(i.reshape_as(x)).softmax(-1)[0, target]))
    return dele, ins


# ---------------------------------------------------------------------------------- deletion / insertion


def test_auc_formula_on_hand_computed_curves() -> None:
    assert float(metrics.auc(torch.tensor([1.0, 0.0, 0.0, 0.0]))) == pytest.approx(1 / 6)
    assert float(metrics.auc(torch.tensor([0.2, 0.4, 0.6, 0.8]))) == pytest.approx(0.5)
    assert float(metrics.auc(torch.tensor([0.0, 1.0]))) == pytest.approx(0.5)
    with pytest.raises(ParameterError):
        metrics.auc(torch.tensor([1.0]))


@pytest.mark.parametrize("substrate", ["zero", "mean", "blur"])
@pytest.mark.parametrize("step", [7, 256, 1000])
def test_fast_path_matches_slow_reference(tiny: nn.Module, substrate: str, step: int) -> None:
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    maps = {
        "smooth": torch.randn(2, 16, 16, generator=g),
        "ties": torch.randint(0, 3, (2, 16, 16), generator=g).float(),  # many ties: the stable order matters
    }
    target = torch.tensor([0, 2])
    res = metrics.deletion_insertion(tiny, x, maps, target, step=step, substrate=substrate, batch_size=3)
    n = math.ceil(256 / step) + 1
    assert res.pixels.tolist() == [min(k * step, 256) for k in range(n)]
    for name, m in maps.items():
        assert res.deletion[name].shape == (2, n)
        for b in range(2):
            dele, ins = slow_curves(tiny, x[b : b + 1], m[b], int(target[b]), step, substrate)
            torch.testing.assert_close(res.deletion[name][b], torch.tensor(dele), atol=1e-5, rtol=0)
            torch.testing.assert_close(res.insertion[name][b], torch.tensor(ins), atol=1e-5, rtol=0)
            assert float(res.deletion_auc[name][b]) == pytest.approx(float(metrics.auc(torch.tensor(dele))), abs=1e-6)
    # every needed forward and no more: 3 shared endpoints per image + the inner points of 2 curves x 2 maps
    assert res.forwards == 3 * 2 + 2 * 2 * 2 * (n - 2)


def test_oracle_region_model_true_map_beats_inverted() -> None:
    model, x, truth = region_case()
    res = metrics.deletion_insertion(model, x, {"true": truth, "inverted": -truth}, 0, step=4)
    assert float(res.deletion_auc["true"][0]) < 0.06  # the region goes first: the probability falls to ~0 in 4 of 64 steps
    assert float(res.deletion_auc["inverted"][0]) > 0.9
    assert float(res.insertion_auc["true"][0]) > 0.9
    assert float(res.insertion_auc["inverted"][0]) < 0.06
    assert float(res.deletion["true"][0, 0]) == pytest.approx(1.0, abs=1e-4)  # shared first point: the image itself


def test_ties_follow_raster_order_and_single_map_api(tiny: nn.Module) -> None:
    x = torch.randn(1, 3, 6, 6)
    flat = torch.zeros(1, 6, 6)  # all tied: raster order
    out = metrics.perturbed(x, flat, 1, curve="deletion", step=3, substrate="zero")
    changed = (out != x).any(dim=1).flatten()
    assert changed.tolist() == [True] * 3 + [False] * 33
    res = metrics.deletion_insertion(tiny, x, flat, 1, step=3)
    assert isinstance(res.deletion, torch.Tensor) and res.deletion.shape == (1, 13)
    assert res.deletion_auc.shape == (1,)
    ins = metrics.perturbed(x, flat, 12, curve="insertion", step=3)
    torch.testing.assert_close(ins, x)  # the last insertion point is the image


def test_bad_inputs_raise_clear_errors(tiny: nn.Module) -> None:
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ParameterError, match="shape"):
        metrics.deletion_insertion(tiny, x, torch.zeros(1, 7, 8), 0)
    with pytest.raises(ParameterError, match="NaN"):
        metrics.deletion_insertion(tiny, x, torch.full((1, 8, 8), float("nan")), 0)
    with pytest.raises(ParameterError, match="step"):
        metrics.deletion_insertion(tiny, x, torch.zeros(1, 8, 8), 0, step=0)
    with pytest.raises(ParameterError, match="blur"):
        metrics.deletion_insertion(tiny, torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4), 0)
    with pytest.raises(ParameterError, match="substrate"):
        metrics.deletion_insertion(tiny, x, torch.zeros(1, 8, 8), 0, substrate="noise")
    with pytest.raises(ParameterError, match="no parameter"):
        metrics.score("deletion", tiny, x, 0, {"a": torch.zeros(1, 8, 8)}, stp=3)
    with pytest.raises(ParameterError, match="mask"):
        metrics.score("pointing_game", tiny, x, 0, {"a": torch.zeros(1, 8, 8)})
    with pytest.raises(ParameterError, match="out of range"):
        metrics.deletion_insertion(tiny, x, torch.zeros(1, 8, 8), 3)  # a bare module: checked at the first forward
    with pytest.raises(ParameterError, match="out of range"):
        metrics.score("deletion", type("M", (), {"model": tiny, "classes": ["a", "b", "c"]})(), x, 5, {"a": torch.zeros(1, 8, 8)})


def test_registry_score_equals_direct_call_and_metadata(tiny: nn.Module) -> None:
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    m = {"a": torch.randn(1, 8, 8, generator=torch.Generator().manual_seed(1))}
    direct = metrics.deletion_insertion(tiny, x, m, 1, step=5)
    via = metrics.score("deletion", tiny, x, 1, m, step=5)
    torch.testing.assert_close(via["a"], direct.deletion_auc["a"])
    for name in metrics.names():
        spec = metrics.get(name)
        assert spec.paper and spec.conventions and spec.category in metrics.CATEGORIES
    assert metrics.get("deletion").higher_is_better is False and metrics.get("insertion").higher_is_better is True


# ---------------------------------------------------------------------------------- ROAD


def test_imputation_solves_the_neighbour_system() -> None:
    """Slow reference: a dense system, one equation per removed pixel written from the definition."""
    g = torch.Generator().manual_seed(0)
    img = torch.randn(2, 6, 7, generator=g)
    removed = torch.rand(6, 7, generator=g) < 0.4
    removed[0, 0] = removed[5, 6] = True  # corners: fewer neighbours
    out = metrics.impute(img, removed, noise=0.0)
    idx = [(r, c) for r in range(6) for c in range(7) if removed[r, c]]
    pos = {rc: i for i, rc in enumerate(idx)}
    a = np.zeros((len(idx), len(idx)))
    rhs = np.zeros((len(idx), 2))
    for i, (r, c) in enumerate(idx):
        for dr, dc, wt in NEIGHBOURS:
            rr, cc = r + dr, c + dc
            if 0 <= rr < 6 and 0 <= cc < 7:
                a[i, i] += wt
                if removed[rr, cc]:
                    a[i, pos[(rr, cc)]] -= wt
                else:
                    rhs[i] += wt * img[:, rr, cc].double().numpy()
    want = np.linalg.solve(a, rhs)
    got = np.stack([out[:, r, c].double().numpy() for r, c in idx])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert torch.equal(out[:, ~removed], img[:, ~removed])


def test_road_oracle_and_seeded_determinism() -> None:
    model, x, truth = region_case()
    maps = {"true": truth, "inverted": -truth}
    res = metrics.road(model, x, maps, 0, percentages=(10, 50))
    assert float(res.morf["true"].mean()) < 0.05 < 0.95 < float(res.morf["inverted"][0, 0])
    assert float(res.lerf["true"][0, 0]) > 0.95
    again = metrics.road(model, x, maps, 0, percentages=(10, 50))
    assert torch.equal(res.morf["true"], again.morf["true"])
    removed = truth[0] > 0.5
    a = metrics.impute(x[0], removed, noise=0.1, generator=torch.Generator().manual_seed(0))
    b = metrics.impute(x[0], removed, noise=0.1, generator=torch.Generator().manual_seed(0))
    c = metrics.impute(x[0], removed, noise=0.1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float((a - metrics.impute(x[0], removed, noise=0.0))[:, removed].std()) == pytest.approx(0.1, rel=0.3)


# ---------------------------------------------------------------------------------- infidelity


class LinearModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 3 * 8 * 8, generator=torch.Generator().manual_seed(0)), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.t()


def test_infidelity_zero_for_the_exact_linear_map_and_rescaling() -> None:
    model = LinearModel().eval()
    x = torch.randn(2, 3, 8, 8)
    exact = model.w[0].view(3, 8, 8).sum(0).expand(2, 8, 8)  # I.Phi == f(x) - f(x - I) for per-pixel noise
    noise = torch.randn(2, 8, 8, generator=torch.Generator().manual_seed(5))
    for normalize in (False, True):
        got = metrics.score("infidelity", model, x, 0, {"exact": exact, "noise": noise}, normalize=normalize, n_samples=20)
        assert float(got["exact"].abs().max()) < 1e-4  # float32 rounding of f(x) - f(x - I)
        assert float(got["noise"].min()) > 1e-2
    scaled = metrics.score("infidelity", model, x, 0, {"a": 5 * exact + noise, "b": exact + noise / 5}, normalize=True, n_samples=20)
    torch.testing.assert_close(scaled["a"], scaled["b"], rtol=1e-3, atol=1e-5)  # optimal rescaling: scale-free
    raw = metrics.score("infidelity", model, x, 0, {"a": 5 * exact, "b": exact}, normalize=False, n_samples=20)
    assert float(raw["a"].min()) > float(raw["b"].max())


# ---------------------------------------------------------------------------------- localization and complexity


def test_pointing_game_and_relevance_mass_by_hand() -> None:
    mask = torch.zeros(1, 10, 10, dtype=torch.bool)
    mask[0, 2:4, 2:4] = True
    inside = torch.zeros(1, 10, 10)
    inside[0, 3, 3] = 1.0
    near = torch.zeros(1, 10, 10)
    near[0, 3, 6] = 1.0  # 3 px right of the mask
    assert metrics.pointing_hits(inside, mask, 0).item() == 1.0
    assert metrics.pointing_hits(near, mask, 0).item() == 0.0
    assert metrics.pointing_hits(near, mask, 3).item() == 1.0
    assert metrics.pointing_hits(near, mask, 2).item() == 0.0
    m = torch.zeros(1, 10, 10)
    m[0, 2, 2], m[0, 9, 9], m[0, 0, 9] = 3.0, 1.0, -5.0  # negative relevance is ignored
    assert metrics.positive_share(m, mask).item() == pytest.approx(0.75)
    assert metrics.positive_share(-m.abs(), mask).item() == 0.0


def test_gini_and_entropy_by_hand() -> None:
    n = 16
    one = torch.zeros(1, 4, 4)
    one[0, 1, 2] = -2.0
    flat = torch.ones(1, 4, 4)
    assert metrics.gini(one).item() == pytest.approx((n - 1) / n)
    assert metrics.gini(flat).item() == pytest.approx(0.0, abs=1e-7)
    two = torch.zeros(1, 4, 4)
    two[0, 0, 0], two[0, 0, 1] = 1.0, 3.0  # sorted: 14 zeros, 1, 3 -> (13*1 + 15*3) / (16*4)
    assert metrics.gini(two).item() == pytest.approx((13 + 45) / 64)
    assert metrics.entropy(flat).item() == pytest.approx(math.log(n))
    assert metrics.entropy(one).item() == pytest.approx(0.0, abs=1e-7)
    assert metrics.entropy(two).item() == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))


def test_paper_qualitative_check_rise_and_gradcam_beat_gradients_on_insertion(lite0) -> None:
    """Petsiuk et al.: RISE and Grad-CAM above plain gradients on insertion (EfficientNet-Lite0, the cat photo)."""
    import explainers
    import zoo

    x = lite0.preprocess(zoo.sample_images()["chelsea"])
    t = int(lite0.predict(x)[0].argmax())
    maps = {m: explainers.explain(m, lite0, x, t) for m in ("saliency", "gradcam", "rise")}
    res = metrics.deletion_insertion(lite0, x, maps, t, step=1792, curves=("insertion",))
    ins = {m: float(v[0]) for m, v in res.insertion_auc.items()}
    assert ins["rise"] > ins["saliency"] + 0.1 and ins["gradcam"] > ins["saliency"] + 0.02, ins
    # 50176 / 1792 = 28 steps -> 29 points: 27 inner points per map, plus the image and the blurred image once
    assert res.deletion is None and res.forwards == 3 * 27 + 2
