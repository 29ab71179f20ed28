"""Faithfulness correlation (Bhatt et al. 2020) and sensitivity-n (Ancona et al. 2018): over random sets S of pixels,
the Pearson correlation between the map's sum over S and the drop of the target's logit when S is removed.

Definition (per image; category: faithfulness; higher is better):

- S: ``k`` distinct pixels drawn uniformly, ``n_runs`` times (``np.random.RandomState(seed).choice(H*W, k,
  replace=False)`` run by run and image by image: Quantus's draws after ``np.random.seed(seed)``);
- removing S sets its pixels to 0 on every channel, in the model's input space (the dataset mean for a normalized
  model); the drop is ``f(x) - f(x with S removed)``, f = the target's logit;
- the score is Pearson's r between the sums and the drops over the runs (0 when either is constant).

Bhatt et al. define faithfulness correlation as Ancona et al.'s sensitivity-n correlation at one set size, so the
two keys compute the same quantity and differ in how the size is given: ``subset_size`` in pixels (Bhatt's and
Quantus's 224 by default), or ``fraction`` of the image's pixels for sensitivity-n, whose curve over n
(``sensitivity_n_curve``) is what Ancona et al. plot. Quantus's ``SensitivityN`` is another computation (pixels
removed cumulatively in map order, correlation across the images of a batch); ours is checked against Quantus's
``FaithfulnessCorrelation``, which is Ancona's definition per image.

Written by hand (numpy draws, torch batches) because captum has no such metric and Quantus runs one batch of
forwards per run with numpy copies of the image; the forwards do not depend on the map, so every method scored at
once shares them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from core.errors import ParameterError
from core.registry import Param
from metrics.common import prepare
from metrics.perturb import engine, legacy_rng, output, outputs, pearson_rows
from metrics.registry import MetricContext, metric

FRACTIONS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.6, 0.9)


def subsets(seed: int, b: int, runs: int, n_pixels: int, k: int) -> torch.Tensor:
    """Random pixel sets, long [runs, B, k]: ``RandomState(seed).choice(n_pixels, k, replace=False)`` for each run,
    then each image (the order Quantus draws in)."""
    rng = legacy_rng(seed)
    return torch.from_numpy(np.stack([np.stack([rng.choice(n_pixels, k, replace=False) for _ in range(b)]) for _ in range(runs)]))


def subset_correlation(ctx: MetricContext, maps: dict[str, torch.Tensor], k: int, runs: int) -> dict[str, torch.Tensor]:
    """Pearson's r [B] per map between the sum over ``runs`` random sets of ``k`` pixels and the target logit's drop
    when they are set to 0 (see the module docstring); one forward per run and image, shared by the maps."""
    x = ctx.x
    b, c, h, w = x.shape
    if not 1 <= k <= h * w:
        raise ParameterError(f"the set size must lie in [1, {h * w}] pixels; got {k}")
    if runs < 2:
        raise ParameterError(f"a correlation needs at least 2 runs; got {runs}")
    idx = subsets(ctx.seed, b, runs, h * w, k).to(x.device)  # [R,B,k]
    run = engine(ctx, b * (runs + 1))
    y = output(run(x), ctx.target, "logit")
    flat, rows = x.flatten(2), idx.flatten(0, 1)  # rows in run-major order: row r*B + i is image i

    def build(lo: int, hi: int) -> torch.Tensor:
        keep = torch.ones(hi - lo, h * w, dtype=torch.bool, device=x.device).scatter_(1, rows[lo:hi], False)
        return (flat[torch.arange(lo, hi, device=x.device) % b] * keep.unsqueeze(1)).view(hi - lo, c, h, w)

    drops = y.unsqueeze(0) - outputs(run, runs * b, build, ctx.target.repeat(runs), "logit").view(runs, b)
    out = {}
    for name, m in maps.items():
        sums = m.flatten(1).unsqueeze(0).expand(runs, -1, -1).gather(2, idx).sum(2)  # [R,B]
        out[name] = pearson_rows(sums.T, drops.T).float().cpu()
    return out


def set_size(fraction: float, n_pixels: int) -> int:
    """Ancona's n for a share of the pixels: round(fraction * H*W), at least 1."""
    return min(n_pixels, max(1, round(fraction * n_pixels)))


_RUNS = Param("n_runs", 100, 2, 10000, 1, help="random pixel sets per image")
_CONV = "r over {runs} random sets; removed pixels set to 0 in input space (all channels); f = target logit; seeded draws as Quantus's np.random.choice"


@metric(
    title="Faithfulness correlation",
    category="faithfulness",
    higher_is_better=True,
    paper="Bhatt et al. 2020, Evaluating and Aggregating Feature-based Model Explanations (IJCAI)",
    conventions="Pearson r between the map's sum over |S| = subset_size random pixels and f(x) - f(x without S); " + _CONV.format(runs="n_runs"),
    params=(Param("subset_size", 224, 1, 50176, 1, help="pixels per random set |S|"), _RUNS),
    cost=lambda p, h, w: p["n_runs"] + 1,
)
def faithfulness_correlation(ctx: MetricContext, maps: dict[str, torch.Tensor], *, subset_size: int = 224, n_runs: int = 100) -> dict[str, torch.Tensor]:
    """Faithfulness correlation [B] per method (maps {name: [B,H,W]})."""
    return subset_correlation(ctx, maps, subset_size, n_runs)


@metric(
    title="Sensitivity-n",
    category="faithfulness",
    higher_is_better=True,
    paper="Ancona et al. 2018, Towards Better Understanding of Gradient-based Attribution Methods (ICLR)",
    conventions="Pearson r between the map's sum over n = fraction x H x W random pixels and f(x) - f(x without them); " + _CONV.format(runs="n_runs"),
    params=(Param("fraction", 0.1, 0.0001, 1.0, 0.01, help="n as a share of the image's pixels"), _RUNS),
    cost=lambda p, h, w: p["n_runs"] + 1,
)
def sensitivity_n(ctx: MetricContext, maps: dict[str, torch.Tensor], *, fraction: float = 0.1, n_runs: int = 100) -> dict[str, torch.Tensor]:
    """Sensitivity-n at n = ``fraction`` of the pixels: Pearson's r [B] per method."""
    return subset_correlation(ctx, maps, set_size(fraction, ctx.x.shape[-2] * ctx.x.shape[-1]), n_runs)


def sensitivity_n_curve(
    model: Any,
    x: torch.Tensor,
    attribution: torch.Tensor | dict[str, torch.Tensor],
    target: int | torch.Tensor,
    *,
    fractions: Sequence[float] = FRACTIONS,
    n_runs: int = 100,
    seed: int = 0,
    batch_size: int | None = None,
) -> tuple[list[int], Any]:
    """Ancona et al.'s curve: (the set sizes n, Pearson's r [B, len(fractions)] per map) for ``x`` [B,C,H,W] and maps
    [B,H,W] or {name: [B,H,W]} (a tensor when one map was given)."""
    if not fractions or any(not 0 < float(f) <= 1 for f in fractions):
        raise ParameterError(f"fractions must lie in (0, 1]; got {tuple(fractions)!r}")
    inp = prepare(model, x, attribution, target)
    ctx = MetricContext(inp.net, inp.x, inp.target, seed=seed, batch_size=batch_size, source=model)
    sizes = [set_size(float(f), inp.x.shape[-2] * inp.x.shape[-1]) for f in fractions]
    points = [subset_correlation(ctx, inp.maps, k, n_runs) for k in sizes]
    return sizes, inp.unwrap({m: torch.stack([p[m] for p in points], dim=1) for m in inp.maps})
