"""Average Drop and Increase in Confidence (Chattopadhay et al. 2018, "Grad-CAM++", WACV). Category: faithfulness.

The "explanation map" image is the image multiplied, pixel by pixel, by the map min-max normalized to [0, 1]
((m - min) / (max - min); an all-equal map gives 0), in pixel space [0, 1] (a bare module's input is taken as
pixels). With Y the target's softmax probability on the image and O on the explanation map image:

- Average Drop: max(0, Y - O) / Y per image; the paper's number is the mean over images x 100. Lower is better.
- Increase in Confidence: 1 where O > Y, else 0; the paper's number is the mean over images x 100. Higher is better.

Hand-written: two forwards per image (the image's shared by every map); Quantus has neither metric.
"""

from __future__ import annotations

import torch

from metrics.common import pixel_domain
from metrics.perturb import engine, output
from metrics.registry import MetricContext, metric

_CONV = "image x (map - min)/(max - min) in pixel space; Y, O = target's softmax probability on the image and on that product"


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """Each map [B,H,W] scaled to [0, 1] by its own min and max (0 where the map is constant)."""
    flat = maps.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    span = high - low
    return torch.where(span > 0, (flat - low) / span.clamp(min=1e-30), torch.zeros_like(flat)).view_as(maps)


def confidences(ctx: MetricContext, maps: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(Y [B], {method: O [B]}): the target's probability on the image and on each explanation map image."""
    to_px, to_in = pixel_domain(ctx.source, ctx.x)
    x, b = ctx.x, ctx.x.shape[0]
    names = list(maps)
    masked = [to_in(to_px(x) * minmax(maps[n]).unsqueeze(1)) for n in names]
    run = engine(ctx, b * (len(names) + 1))
    p = output(run(torch.cat([x, *masked])), ctx.target.repeat(len(names) + 1), "probability").cpu().split(b)
    return p[0], dict(zip(names, p[1:], strict=True))


@metric(
    title="Average Drop",
    category="faithfulness",
    higher_is_better=False,
    paper="Chattopadhay et al. 2018, Grad-CAM++ (WACV)",
    conventions="max(0, Y - O)/Y per image (the paper's % = 100 x the mean); " + _CONV,
    cost=lambda p, h, w: 2,
)
def average_drop(ctx: MetricContext, maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """max(0, Y - O) / Y, [B] per method."""
    y, o = confidences(ctx, maps)
    return {m: (y - v).clamp(min=0) / y.clamp(min=1e-30) for m, v in o.items()}


@metric(
    title="Increase in Confidence",
    category="faithfulness",
    higher_is_better=True,
    paper="Chattopadhay et al. 2018, Grad-CAM++ (WACV)",
    conventions="1 if O > Y else 0 per image (the paper's % = 100 x the mean); " + _CONV,
    cost=lambda p, h, w: 2,
)
def increase_in_confidence(ctx: MetricContext, maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """1.0 where the explanation map image is more confident than the image, else 0.0: [B] per method."""
    y, o = confidences(ctx, maps)
    return {m: (v > y).float() for m, v in o.items()}
