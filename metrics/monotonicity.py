"""Monotonicity, in its two published versions (category: faithfulness; higher is better for both).

- Arya et al. 2019 ("One Explanation Does Not Fit All", AIX360's ``monotonicity_metric``): starting from an
  all-zero image (0 in the model's input space), the pixels are put back ``step`` at a time in increasing order of
  the signed map (least relevant first; ties in raster order); the image scores 1 when the target's softmax
  probability never decreases along the way (``all(diff >= 0)`` over the ceil(H*W/step) points after each
  addition), else 0. The mean over images is the share of monotone images.
- Nguyen & Martinez 2020 ("On Quantitative Aspects of Model Interpretability"): pixels in increasing order of
  |map|, in groups of ``step``; for each group, ``n_samples`` times, the group is set to one grey level drawn
  uniformly in [0,1] pixel space (``RandomState(seed).uniform``, group by group then sample by sample: Quantus's
  draws); the group's effect is the mean of (p - p_x)^2 / p_x^2 (p: the target's softmax probability); the score
  is Spearman's rank correlation between the groups' |map| sums and their effects (0 when either is constant).

Written by hand on the batched forward engine (no installed library has either; AIX360 and Quantus run one
forward per step in a Python loop).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from core.registry import Param
from metrics.common import pixel_domain, pixel_ranks
from metrics.deletion_insertion import compose, pixel_counts
from metrics.perturb import check_positive, engine, legacy_rng, output, outputs, spearman_rows
from metrics.registry import MetricContext, metric

_STEP = Param("step", 224, 1, 50176, 1, help="pixels per step (224 on 224x224: 224 steps)")


@metric(
    title="Monotonicity (Arya)",
    category="faithfulness",
    higher_is_better=True,
    paper="Arya et al. 2019, One Explanation Does Not Fit All (AIX360)",
    conventions="1 if the target's softmax probability never decreases as pixels are restored onto a zero image (input space), "
    "step pixels at a time, least relevant (signed map) first; mean = share of monotone images",
    params=(_STEP,),
    cost=lambda p, h, w: math.ceil(h * w / p["step"]),
)
def monotonicity_arya(ctx: MetricContext, maps: dict[str, torch.Tensor], *, step: int = 224) -> dict[str, torch.Tensor]:
    """1.0 where the probability curve is monotone, else 0.0: [B] per method."""
    x = ctx.x
    b = x.shape[0]
    counts = pixel_counts(x.shape[-2], x.shape[-1], step)[1:].to(x.device)  # pixels restored after each step
    n = counts.numel()
    run = engine(ctx, len(maps) * b * n)
    zero = torch.zeros_like(x)
    out = {}
    for name, m in maps.items():
        ranks = pixel_ranks(-m)  # ascending order of the signed map, ties in raster order

        def build(lo: int, hi: int, ranks: torch.Tensor = ranks) -> torch.Tensor:
            i, j = torch.arange(lo, hi, device=x.device).div(n, rounding_mode="floor"), torch.arange(lo, hi, device=x.device) % n
            return compose(zero[i], ranks[i], counts[j], x[i])

        p = outputs(run, b * n, build, ctx.target.repeat_interleave(n), "probability").view(b, n)
        out[name] = (p.diff(dim=1) >= 0).all(dim=1).float().cpu()
    return out


@metric(
    title="Monotonicity (Nguyen & Martinez)",
    category="faithfulness",
    higher_is_better=True,
    paper="Nguyen & Martinez 2020, On Quantitative Aspects of Model Interpretability (arXiv:2007.07584)",
    conventions="Spearman between each group's |map| sum (groups of step pixels, increasing |map|) and the mean of (p - p_x)^2/p_x^2 "
    "when the group is set to a uniform random grey level (pixel space), n_samples times; p = target's softmax probability",
    params=(_STEP, Param("n_samples", 10, 1, 1000, 1, help="random grey levels per group")),
    cost=lambda p, h, w: math.ceil(h * w / p["step"]) * p["n_samples"] + 1,
)
def monotonicity_nguyen(ctx: MetricContext, maps: dict[str, torch.Tensor], *, step: int = 224, n_samples: int = 10) -> dict[str, torch.Tensor]:
    """Spearman's rho [B] per method (see the module docstring)."""
    x = ctx.x
    b, c, h, w = x.shape
    n_groups = pixel_counts(h, w, step).numel() - 1
    check_positive(n_samples=n_samples)
    rng = legacy_rng(ctx.seed)
    grey = torch.tensor(np.array([[rng.uniform(0, 1, size=b) for _ in range(n_samples)] for _ in range(n_groups)]), dtype=torch.float32)  # [G,S,B]
    levels = pixel_domain(ctx.source, x)[1](grey.permute(2, 0, 1).reshape(-1, 1, 1, 1).expand(-1, c, 1, 1)).to(x.device)  # [B*G*S,C,1,1]
    run = engine(ctx, len(maps) * b * n_groups * n_samples + b)
    p_x = output(run(x), ctx.target, "probability")
    weight = torch.where(p_x.abs() >= 1e-5, 1 / p_x.abs().clamp(min=1e-5), torch.ones_like(p_x)).square()
    per_image = n_groups * n_samples
    out = {}
    for name, m in maps.items():
        group = pixel_ranks(-m.abs()).div(step, rounding_mode="floor")  # [B,H*W]: each pixel's group

        def build(lo: int, hi: int, group: torch.Tensor = group) -> torch.Tensor:
            rows = torch.arange(lo, hi, device=x.device)
            i, g = rows.div(per_image, rounding_mode="floor"), (rows % per_image).div(n_samples, rounding_mode="floor")
            inside = (group[i] == g.unsqueeze(1)).view(-1, 1, h, w)
            return torch.where(inside, levels[lo:hi], x[i])

        p = outputs(run, b * per_image, build, ctx.target.repeat_interleave(per_image), "probability").view(b, n_groups, n_samples)
        effect = (p - p_x.view(b, 1, 1)).square().mean(2) * weight.view(b, 1)
        sums = torch.zeros(b, n_groups, device=x.device).scatter_add_(1, group, m.abs().flatten(1))
        out[name] = spearman_rows(sums, effect).float()
    return out
