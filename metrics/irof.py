"""IROF, Iterative Removal Of Features (Rieger & Hansen 2020, "IROF: a low resource evaluation metric for
explanation methods", ICLR workshop). Category: faithfulness; higher is better.

Definition followed:

- superpixels: ``skimage.segmentation.slic(image, n_segments, compactness=10, start_label=0)`` of the image in
  pixel space [0,1], channels last, float64 (Quantus segments what the model is given: for a normalized model
  its segments differ from ours; for a bare module they are the same);
- the superpixels are ranked by the mean of the map over their pixels, highest first (stable order);
- they are removed cumulatively in that order (all channels) and replaced by the substrate: ``mean`` (default),
  the original image's per-channel mean, or ``zero`` (0 in input space);
- the curve is p_k / p_0 for k = 0..n removed superpixels (p: the target's softmax probability), on [0, 1];
- IROF = the area over the curve, 1 - AUC, AUC by the trapezoid rule on [0, 1] (``metrics.auc``).

Quantus's ``IROF`` returns n - ``np.trapz(curve[1:])`` (unnormalized, without the k = 0 point) and replaces
superpixels by the mean of the whole, already perturbed batch; ``IrofCurves.quantus_aoc`` gives its number from
ours. Written by hand on the batched forward engine: one forward per removal step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from skimage.segmentation import slic

from core.errors import ParameterError
from core.registry import Param
from metrics.common import pixel_domain, prepare
from metrics.deletion_insertion import auc, compose
from metrics.perturb import engine, output, outputs
from metrics.registry import MetricContext, metric

SUBSTRATES = ("mean", "zero")


def superpixels(pixels: torch.Tensor, n_segments: int = 100) -> torch.Tensor:
    """SLIC superpixels of one image [C,H,W] in [0,1] -> long [H,W] labelled 0..n-1 (scikit-image, compactness 10)."""
    img = np.moveaxis(pixels.detach().cpu().double().numpy(), 0, -1)
    labels = slic(img, n_segments=int(n_segments), compactness=10.0, start_label=0, channel_axis=-1)
    _, dense = np.unique(labels, return_inverse=True)  # 0..n-1 even if slic skipped a label
    return torch.from_numpy(dense.reshape(labels.shape)).long()


@dataclass(frozen=True)
class IrofCurves:
    """Per map, one curve per image (lengths differ: n_i + 1 points for n_i superpixels): p_k / p_0."""

    curves: dict[str, list[torch.Tensor]]
    segments: torch.Tensor  # [B,H,W]

    def aoc(self) -> dict[str, torch.Tensor]:
        """IROF [B] per map: 1 - trapezoid AUC on [0, 1]."""
        return {m: torch.stack([1 - auc(c) for c in cs]) for m, cs in self.curves.items()}

    def quantus_aoc(self) -> dict[str, torch.Tensor]:
        """Quantus 0.6's number from the same curves: n - trapz(curve[1:]) with unit spacing."""
        return {m: torch.stack([(c.numel() - 1) - torch.trapezoid(c[1:].double()) for c in cs]).float() for m, cs in self.curves.items()}


def _substrate(x: torch.Tensor, substrate: str) -> torch.Tensor:
    if substrate == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    if substrate == "zero":
        return torch.zeros_like(x)
    raise ParameterError(f"substrate must be one of {', '.join(SUBSTRATES)}; got {substrate!r}")


def _curves(ctx: MetricContext, maps: dict[str, torch.Tensor], n_segments: int, substrate: str) -> IrofCurves:
    x = ctx.x
    b = x.shape[0]
    fill = _substrate(x, substrate)
    pixels = pixel_domain(ctx.source, x)[0](x)
    segments = torch.stack([superpixels(pixels[i], n_segments) for i in range(b)]).to(x.device)
    flat = segments.flatten(1)
    counts = [int(flat[i].max()) + 1 for i in range(b)]
    jobs = [(i, k) for i in range(b) for k in range(1, counts[i] + 1)]  # image, superpixels removed
    run = engine(ctx, len(maps) * len(jobs) + b)
    p0 = output(run(x), ctx.target, "probability")
    ji = torch.tensor([j[0] for j in jobs], device=x.device)
    jk = torch.tensor([j[1] for j in jobs], device=x.device)
    curves: dict[str, list[torch.Tensor]] = {}
    for name, m in maps.items():
        # each pixel's rank = the rank of its superpixel by mean attribution (highest first, stable)
        ranks = torch.empty_like(flat)
        for i in range(b):
            means = torch.zeros(counts[i], dtype=torch.float64, device=x.device).scatter_add_(0, flat[i], m[i].flatten().double())
            means /= torch.bincount(flat[i], minlength=counts[i]).double()
            order = torch.argsort(means, descending=True, stable=True)
            ranks[i] = torch.empty_like(order).scatter_(0, order, torch.arange(counts[i], device=x.device))[flat[i]]

        def build(lo: int, hi: int, ranks: torch.Tensor = ranks) -> torch.Tensor:
            return compose(x[ji[lo:hi]], ranks[ji[lo:hi]], jk[lo:hi], fill[ji[lo:hi]])

        p = outputs(run, len(jobs), build, ctx.target[ji], "probability")
        per = torch.split(p, counts)
        curves[name] = [torch.cat([torch.ones(1, device=x.device), per[i] / p0[i]]).cpu() for i in range(b)]
    return IrofCurves(curves, segments.cpu())


def irof_curves(
    model: Any,
    x: torch.Tensor,
    attribution: torch.Tensor | dict[str, torch.Tensor],
    target: int | torch.Tensor,
    *,
    n_segments: int = 100,
    substrate: str = "mean",
    batch_size: int | None = None,
) -> IrofCurves:
    """IROF curves of ``x`` [B,C,H,W] for maps [B,H,W] or {name: [B,H,W]} (keyed "map" for one tensor)."""
    inp = prepare(model, x, attribution, target)
    return _curves(MetricContext(inp.net, inp.x, inp.target, batch_size=batch_size, source=model), inp.maps, n_segments, substrate)


@metric(
    title="IROF",
    category="faithfulness",
    higher_is_better=True,
    paper="Rieger & Hansen 2020, IROF: a low resource evaluation metric for explanation methods (ICLR workshop)",
    conventions="1 - AUC on [0,1] of p_k/p_0 as SLIC superpixels (skimage, n_segments, compactness 10, pixel space) are replaced "
    "by the substrate in decreasing order of mean attribution; p = target's softmax probability",
    params=(
        Param("n_segments", 100, 4, 1000, 1, help="SLIC's target number of superpixels"),
        Param("substrate", "mean", choices=SUBSTRATES, help="what removed superpixels become: the image's per-channel mean, or 0 in input space"),
    ),
    cost=lambda p, h, w: p["n_segments"],
)
def irof(ctx: MetricContext, maps: dict[str, torch.Tensor], *, n_segments: int = 100, substrate: str = "mean") -> dict[str, torch.Tensor]:
    """IROF [B] per method."""
    return _curves(ctx, maps, n_segments, substrate).aoc()
