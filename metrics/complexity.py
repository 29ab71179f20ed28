"""Complexity of a map, no model call: a good explanation is concise.

- Sparseness (Chalasani et al. 2020, "Concise Explanations of Neural Networks using Adversarial Training",
  ICML): the Gini index of |map| (1 = all relevance on one pixel, 0 = uniform). Higher is better.
- Complexity (Bhatt et al. 2020, "Evaluating and Aggregating Feature-based Model Explanations", IJCAI):
  the entropy (natural log) of |map| / sum |map|; ln(H*W) for a uniform map. Lower is better.
"""

from __future__ import annotations

import math

import torch

from metrics.registry import MetricContext, metric


def gini(attribution: torch.Tensor) -> torch.Tensor:
    """Gini index of |map| [B,H,W] -> [B]: sum_i (2i - n - 1) a_(i) / (n sum a), a sorted ascending (0 for an all-zero map)."""
    a = attribution.abs().flatten(1).double()
    a, _ = torch.sort(a, dim=1)
    n = a.shape[1]
    i = torch.arange(1, n + 1, device=a.device, dtype=a.dtype)
    total = a.sum(1)
    g = ((2 * i - n - 1) * a).sum(1) / (n * total.clamp(min=1e-300))
    return torch.where(total > 0, g, torch.zeros_like(g)).float()


def entropy(attribution: torch.Tensor) -> torch.Tensor:
    """Entropy of |map| / sum |map| [B,H,W] -> [B] (natural log; ln(H*W) for an all-zero map, as if uniform)."""
    a = attribution.abs().flatten(1).double()
    total = a.sum(1, keepdim=True)
    p = a / total.clamp(min=1e-300)
    h = -(p * torch.log(p.clamp(min=1e-300))).sum(1)
    return torch.where(total.squeeze(1) > 0, h, torch.full_like(h, math.log(a.shape[1]))).float()


@metric(
    title="Sparseness (Gini)",
    category="complexity",
    higher_is_better=True,
    paper="Chalasani et al. 2020 (ICML)",
    conventions="Gini index of the absolute map",
)
def sparseness(ctx: MetricContext, maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Gini index per method, [B] each."""
    return {m: gini(a).cpu() for m, a in maps.items()}


@metric(
    title="Complexity (entropy)",
    category="complexity",
    higher_is_better=False,
    paper="Bhatt et al. 2020 (IJCAI)",
    conventions="entropy (nats) of the normalized absolute map",
)
def complexity(ctx: MetricContext, maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Entropy per method, [B] each."""
    return {m: entropy(a).cpu() for m, a in maps.items()}
