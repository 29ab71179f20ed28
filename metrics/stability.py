"""How much a map moves when the input moves a little, relative to how much the input (or the output) moved.
Category: robustness; lower is better for all three. Maps of the perturbed inputs are recomputed with the same
method, parameters and seed (``ctx.explain``); the maps given are those of the clean inputs.

- Local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018, "On the Robustness of Interpretability Methods"):
  max over ``n_samples`` inputs x' = x + N(0, sigma^2) (every value, model input space) of
  ||e(x) - e(x')||_2 / (||x - x'||_2 + 1e-10), maps divided by their own max |value| first (``normalise``).
- Relative input stability, RIS (Agarwal et al. 2022, "Rethinking Stability for Attribution-based Explanations"):
  max over x' = x + U(-radius, radius) (every value, input space) that keep the predicted label of
  ||(e - e')/e||_2 / max(||(x - x')/x||_2, 1e-6), the divisions elementwise (a 0 divisor counts as 1e-6).
- Relative output stability, ROS (same paper): the same numerator over max(||h(x) - h(x')||_2, 1e-6), h = logits.

RIS and ROS are NaN for an image where no sample keeps the label (no admissible x'; the leaderboard counts it as
failed): near a decision boundary even small noise flips the label (EfficientNet-Lite0's top two classes for the
cat photo are 0.379 and 0.375: at radius 0.02, 1 sample in 10 keeps the label, at 0.05 none does), hence the
small default radius (0.02 in input space, about 2.5/255 of pixel range for Lite0). Noise is drawn with
``RandomState(seed)`` ([B, C*H*W] per sample, sample by sample, as Quantus does) and shared by every method.
Hand-written: captum has only max-sensitivity; Quantus loops over samples in numpy.
"""

from __future__ import annotations

import math

import torch

from core.registry import Param
from metrics.perturb import check_positive, engine, explain_many, legacy_rng
from metrics.registry import MetricContext, metric

EPS_MIN = 1e-6
_SAMPLES = Param("n_samples", 10, 1, 1000, 1, help="perturbed inputs per image (maps recomputed for each)")


def noisy_inputs(ctx: MetricContext, n_samples: int, kind: str, scale: float) -> torch.Tensor:
    """``n_samples`` perturbed copies of ``ctx.x``, [S,B,C,H,W]: + N(0, scale^2) (``kind="normal"``) or
    + U(-scale, scale) (``"uniform"``) on every value, drawn with ``RandomState(ctx.seed)`` sample by sample."""
    check_positive(n_samples=n_samples, scale=scale)
    rng, x = legacy_rng(ctx.seed), ctx.x
    size = (x.shape[0], x[0].numel())
    draw = (lambda: rng.normal(0.0, scale, size)) if kind == "normal" else (lambda: rng.uniform(-scale, scale, size))
    noise = torch.stack([torch.from_numpy(draw()) for _ in range(n_samples)]).view(n_samples, *x.shape).to(x.device)
    return (x.double().unsqueeze(0) + noise).float()


def _recomputed(ctx: MetricContext, method: str, xs: torch.Tensor) -> torch.Tensor:
    """Maps [S,B,H,W] of ``method`` for the perturbed inputs ``xs`` [S,B,C,H,W]."""
    s, b = xs.shape[:2]
    return explain_many(ctx, method, xs.flatten(0, 1), ctx.target.repeat(s)).view(s, b, *xs.shape[-2:])


def _by_max(m: torch.Tensor) -> torch.Tensor:
    top = m.abs().flatten(-2).amax(-1)[..., None, None]
    return torch.where(top > 0, m / top.clamp(min=1e-30), m)


@metric(
    title="Local Lipschitz estimate",
    category="robustness",
    higher_is_better=False,
    paper="Alvarez-Melis & Jaakkola 2018, On the Robustness of Interpretability Methods (WHI, ICML workshop)",
    conventions="max over x' = x + N(0, sigma^2) in input space of ||e(x) - e(x')||_2 / ||x - x'||_2; maps / max|map| when normalise",
    params=(
        Param("sigma", 0.1, 0.0001, 10.0, 0.01, help="std of the Gaussian perturbation, model input space"),
        _SAMPLES,
        Param("normalise", True, help="divide each map by its max |value| first (Quantus's default, per image)"),
    ),
    explains=True,
    cost=lambda p, h, w: p["n_samples"],
)
def local_lipschitz_estimate(
    ctx: MetricContext, maps: dict[str, torch.Tensor], *, sigma: float = 0.1, n_samples: int = 10, normalise: bool = True
) -> dict[str, torch.Tensor]:
    """Local Lipschitz estimate [B] per method (maps keyed by method name)."""
    xs = noisy_inputs(ctx, n_samples, "normal", sigma)
    den = (xs - ctx.x.unsqueeze(0)).flatten(2).double().norm(dim=2) + 1e-10  # [S,B]
    out = {}
    for method, m in maps.items():
        e, e2 = m.unsqueeze(0), _recomputed(ctx, method, xs)
        if normalise:
            e, e2 = _by_max(e), _by_max(e2)
        out[method] = ((e - e2).flatten(2).double().norm(dim=2) / den).amax(0).float().cpu()
    return out


def _relative_change(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||(a - b) / a||_2 over everything after the first two dims, a 0 divisor counting as EPS_MIN -> [S,B]."""
    a, b = a.double(), b.double()
    return ((a - b) / torch.where(a == 0, torch.full_like(a, EPS_MIN), a)).flatten(2).norm(dim=2)


def _stability(ctx: MetricContext, maps: dict[str, torch.Tensor], radius: float, n_samples: int, relative_to: str) -> dict[str, torch.Tensor]:
    """RIS (``relative_to="input"``) or ROS (``"output"``) [B] per method; NaN where no sample keeps the label."""
    x = ctx.x
    xs = noisy_inputs(ctx, n_samples, "uniform", radius)
    run = engine(ctx, x.shape[0] * (n_samples + 1))
    h, hs = run(x).double(), run(xs.flatten(0, 1)).double().view(n_samples, x.shape[0], -1)
    kept = hs.argmax(-1) == h.argmax(-1).unsqueeze(0)  # [S,B]
    den = _relative_change(x.unsqueeze(0).expand_as(xs), xs) if relative_to == "input" else (h.unsqueeze(0) - hs).norm(dim=2)
    den = den.clamp(min=EPS_MIN)
    out = {}
    for method, m in maps.items():
        ratio = _relative_change(m.unsqueeze(0).expand(n_samples, -1, -1, -1), _recomputed(ctx, method, xs)) / den
        ratio = torch.where(kept, ratio, torch.full_like(ratio, -math.inf)).amax(0)
        out[method] = torch.where(kept.any(0), ratio, torch.full_like(ratio, math.nan)).float().cpu()
    return out


_RADIUS = Param("radius", 0.02, 0.0001, 10.0, 0.01, help="half-width of the uniform perturbation, model input space")
_RCONV = "max over x' = x + U(-radius, radius) in input space with the same predicted label of ||(e - e')/e||_2 / "


@metric(
    title="Relative input stability",
    category="robustness",
    higher_is_better=False,
    paper="Agarwal et al. 2022, Rethinking Stability for Attribution-based Explanations (arXiv:2203.06877)",
    conventions=_RCONV + "max(||(x - x')/x||_2, 1e-6); elementwise divisions, a 0 divisor counts as 1e-6; NaN if no sample keeps the label",
    params=(_RADIUS, _SAMPLES),
    explains=True,
    cost=lambda p, h, w: p["n_samples"],
)
def relative_input_stability(ctx: MetricContext, maps: dict[str, torch.Tensor], *, radius: float = 0.02, n_samples: int = 10) -> dict[str, torch.Tensor]:
    """RIS [B] per method (maps keyed by method name)."""
    return _stability(ctx, maps, radius, n_samples, "input")


@metric(
    title="Relative output stability",
    category="robustness",
    higher_is_better=False,
    paper="Agarwal et al. 2022, Rethinking Stability for Attribution-based Explanations (arXiv:2203.06877)",
    conventions=_RCONV + "max(||h(x) - h(x')||_2, 1e-6), h = logits; a 0 map value counts as 1e-6; NaN if no sample keeps the label",
    params=(_RADIUS, _SAMPLES),
    explains=True,
    cost=lambda p, h, w: p["n_samples"],
)
def relative_output_stability(ctx: MetricContext, maps: dict[str, torch.Tensor], *, radius: float = 0.02, n_samples: int = 10) -> dict[str, torch.Tensor]:
    """ROS [B] per method (maps keyed by method name)."""
    return _stability(ctx, maps, radius, n_samples, "output")
