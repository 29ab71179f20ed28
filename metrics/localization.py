"""Localization against a ground-truth object mask [B,H,W] (e.g. the synthetic-shapes set).

- Pointing game (Zhang et al. 2016, "Top-down Neural Attention by Excitation Backprop", ECCV): a hit when the
  map's maximum (first in raster order on ties) lies within ``tolerance`` pixels of the mask. TorchRay's
  protocol uses 15 px at 224 px; the default here scales it to the input, round(15 * H / 224).
- Relevance mass accuracy (Arras et al. 2022, "CLEVR-XAI", Information Fusion): the share of the map's
  positive relevance that falls inside the mask (0 when the map has no positive value). With any other region as
  the mask it is the region's share of the map (``metrics.region``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.errors import ParameterError
from core.registry import Param
from metrics.registry import MetricContext, metric


def _check(attribution: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if mask is None:
        raise ParameterError("this metric needs a ground-truth mask (the synthetic-shapes images have one)")
    mask = torch.as_tensor(mask).to(attribution.device).bool()
    if mask.dim() == 2:
        mask = mask.unsqueeze(0).expand(attribution.shape[0], -1, -1)
    if mask.shape != attribution.shape:
        raise ParameterError(f"mask shape {tuple(mask.shape)} does not match the map's {tuple(attribution.shape)}")
    return mask


def default_tolerance(h: int) -> int:
    """TorchRay's 15 px at 224 px, scaled to an input of height ``h``."""
    return round(15 * h / 224)


def pointing_hits(attribution: torch.Tensor, mask: torch.Tensor, tolerance: int | None = None) -> torch.Tensor:
    """1.0 where argmax of the map [B,H,W] is within ``tolerance`` px (Euclidean) of the mask [B,H,W], else 0.0 -> [B]."""
    mask = _check(attribution, mask)
    b, h, w = attribution.shape
    tol = default_tolerance(h) if tolerance is None else int(tolerance)
    if tol < 0:
        raise ParameterError("tolerance must be >= 0")
    if tol:
        r = torch.arange(-tol, tol + 1, device=mask.device)
        disc = ((r.view(-1, 1) ** 2 + r.view(1, -1) ** 2) <= tol * tol).float()[None, None]
        mask = F.conv2d(mask.float().unsqueeze(1), disc, padding=tol).squeeze(1) > 0
    flat = attribution.flatten(1)
    peak = torch.argmax(flat, dim=1)  # first maximum in raster order
    return mask.flatten(1).gather(1, peak.view(-1, 1)).squeeze(1).float()


def positive_share(attribution: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of positive relevance inside the mask, [B] in [0, 1]."""
    mask = _check(attribution, mask)
    pos = attribution.clamp(min=0).flatten(1)
    total = pos.sum(1)
    inside = (pos * mask.flatten(1).float()).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-30), torch.zeros_like(total))


@metric(
    title="Pointing game",
    category="localization",
    higher_is_better=True,
    paper="Zhang et al. 2016 (ECCV); TorchRay protocol",
    conventions="hit if the map's maximum (by value, not |value|) lies within round(15*H/224) px of the object mask (15 px at 224 px); mean = hit rate",
    params=(Param("tolerance", -1, -1, 64, 1, help="pixels; -1 = 15 px scaled to the input size"),),
    needs_mask=True,
)
def pointing_game(ctx: MetricContext, maps: dict[str, torch.Tensor], *, tolerance: int = -1) -> dict[str, torch.Tensor]:
    """Pointing-game hit (0/1) per method, [B] each."""
    return {m: pointing_hits(a, ctx.mask, None if tolerance < 0 else tolerance).cpu() for m, a in maps.items()}


@metric(
    title="Relevance mass accuracy",
    category="localization",
    higher_is_better=True,
    paper="Arras et al. 2022, CLEVR-XAI (Information Fusion)",
    conventions="share of the positive relevance inside the mask (the object mask, or any region: a marker, a box); negative values, evidence against the target, are left out",
    needs_mask=True,
)
def relevance_mass(ctx: MetricContext, maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Relevance mass accuracy per method, [B] each."""
    return {m: positive_share(a, ctx.mask).cpu() for m, a in maps.items()}
