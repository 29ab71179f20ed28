"""How much of a map falls inside a region (any mask: an object, a marker, a box), per image and over a set of images.

The per-image share is relevance mass (Arras et al. 2022, "CLEVR-XAI", Information Fusion): the share of the map's
positive values inside the mask. It does not care what the mask is, so the registered ``relevance_mass`` metric *is*
the region share when it is given the region as its mask; this module adds the other region measure of the same
paper, relevance rank accuracy, and the set-level view: several regions and methods at once, each region's area
share (what a map spread evenly over the image would score), and means with 95% bootstrap intervals over images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from core import memory
from core.errors import ParameterError
from core.model_state import using
from metrics.common import as_module, maps_in_chunks
from metrics.localization import _check, positive_share
from metrics.registry import MetricContext, metric

MEASURES: dict[str, str] = {"relevance_mass": "share of positive attribution", "relevance_rank": "share of the top-|R| pixels"}


def rank_accuracy(attribution: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Relevance rank accuracy (Arras et al. 2022): with K = the region's pixel count, the share of the map's K
    highest pixels (``argsort(descending, stable)``: ties keep raster order) that lie inside it. [B,H,W] -> [B];
    0 for an empty region."""
    mask = _check(attribution, mask)
    flat, inside = attribution.flatten(1), mask.flatten(1)
    k = inside.sum(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    top = torch.arange(flat.shape[1], device=flat.device).unsqueeze(0) < k.unsqueeze(1)  # the first K of the order
    hits = (inside.gather(1, order) & top).sum(1)
    return torch.where(k > 0, hits / k.clamp(min=1), torch.zeros_like(hits, dtype=torch.float)).float()


@metric(
    title="Relevance rank accuracy",
    category="localization",
    higher_is_better=True,
    paper="Arras et al. 2022, CLEVR-XAI (Information Fusion)",
    conventions="K = the mask's pixel count; share of the map's K highest pixels inside the mask (stable descending order)",
    needs_mask=True,
)
def relevance_rank(ctx: MetricContext, maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Relevance rank accuracy per method, [B] each."""
    return {m: rank_accuracy(a, ctx.mask).cpu() for m, a in maps.items()}


def area_share(mask: torch.Tensor) -> torch.Tensor:
    """The region's share of the image, [B,H,W] -> [B]: what both measures give a map that is the same everywhere."""
    return mask.flatten(1).float().mean(1)


def concentration(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scores [B] divided by the regions' area shares (mask [B,H,W]): 1 where relevance mass is what an even map
    gives, k where the region holds k times its area's share (NaN for an empty region). Compares regions of
    different sizes, such as a 25 px marker and a 250 px shape."""
    area = area_share(mask.to(scores.device)).to(scores.dtype)
    return torch.where(area > 0, scores / area.clamp(min=1e-12), torch.full_like(scores, float("nan")))


def region_scores(maps: dict[str, torch.Tensor], regions: dict[str, torch.Tensor], measure: str = "relevance_mass") -> dict[str, dict[str, torch.Tensor]]:
    """Every method's ``measure`` in every region: maps {method: [B,H,W]}, regions {name: bool [B,H,W] or [H,W]}
    -> {region: {method: [B]}} (on the CPU)."""
    fn = {"relevance_mass": positive_share, "relevance_rank": rank_accuracy}.get(measure)
    if fn is None:
        raise ParameterError(f"measure must be one of {', '.join(MEASURES)}; got {measure!r}")
    return {r: {m: fn(a, mask).cpu() for m, a in maps.items()} for r, mask in regions.items()}


@dataclass(frozen=True)
class SetScore:
    """A score over a set of images: mean, 95% percentile-bootstrap interval (``metrics.leaderboard``'s), n."""

    mean: float
    low: float
    high: float
    n: int


def over_set(values: torch.Tensor | Sequence[float], *, seed: int = 0, n_boot: int = 2000) -> SetScore:
    """Mean of per-image values [N] with its 95% bootstrap interval (NaN values left out)."""
    import numpy as np

    from metrics.leaderboard import bootstrap_ci  # late: the leaderboard imports the metrics package

    arr = np.asarray(torch.as_tensor(values, dtype=torch.float64).cpu(), dtype=float)
    arr = arr[~np.isnan(arr)]
    if not arr.size:
        return SetScore(float("nan"), float("nan"), float("nan"), 0)
    low, high = bootstrap_ci(arr, seed, n_boot)
    return SetScore(float(arr.mean()), low, high, int(arr.size))


def explain_set(model: Any, x: torch.Tensor, target: torch.Tensor, method: str, params: dict[str, Any] | None = None, *, seed: int = 0) -> torch.Tensor:
    """One method's maps for a set of images: ``x`` [N,C,H,W], ``target`` [N] -> [N,H,W], in chunks of images whose
    gradients fit ``core.memory``'s budget. A stochastic method gets ``seed`` (unless ``params`` sets one)."""
    with using(as_module(model)):  # measuring hooks the shared model
        acts = memory.activations(as_module(model), x[:1])
    chunk = memory.fit_batch(32, acts.per_image(grad=True)) if acts is not None else 8
    return maps_in_chunks(model, method, x, target, {"seed": seed, **(params or {})}, chunk)
