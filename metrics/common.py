"""Input checks and the pixel ranking shared by the metrics."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.checks import check_one_image, check_target, check_x  # noqa: F401  (re-exported for the metrics)
from core.errors import ParameterError


def as_module(model: Any) -> nn.Module:
    """``zoo.LoadedModel`` or ``nn.Module`` -> the ``nn.Module`` returning logits."""
    net = getattr(model, "model", model)
    if not isinstance(net, nn.Module):
        raise ParameterError("model must be a torch.nn.Module or a zoo.LoadedModel")
    return net


def n_classes(model: Any) -> int | None:
    """How many classes a ``zoo.LoadedModel`` has (None for a bare module: checked at the first forward)."""
    classes = getattr(model, "classes", None)
    return None if classes is None else len(classes)


def check_maps(attribution: torch.Tensor | dict[str, torch.Tensor], x: torch.Tensor) -> tuple[dict[str, torch.Tensor], bool]:
    """Tensor [B,H,W] or {name: [B,H,W]} -> ({name: float32 on x's device}, whether one tensor was given)."""
    single = isinstance(attribution, torch.Tensor)
    maps = {"map": attribution} if single else dict(attribution)
    if not maps:
        raise ParameterError("no attribution maps given")
    out = {}
    for name, m in maps.items():
        if not isinstance(m, torch.Tensor):
            raise ParameterError(f"attribution {name!r} must be a tensor [B, H, W]")
        if m.dim() == 2 and x.shape[0] == 1:
            m = m.unsqueeze(0)
        if tuple(m.shape) != (x.shape[0], *x.shape[-2:]):
            raise ParameterError(f"attribution {name!r} has shape {tuple(m.shape)}; expected {(x.shape[0], *x.shape[-2:])} to match x")
        if not torch.isfinite(m).all():
            raise ParameterError(f"attribution {name!r} contains NaN or Inf")
        out[name] = m.detach().float().to(x.device)
    return out, single


def pixel_ranks(attribution: torch.Tensor) -> torch.Tensor:
    """[B,H,W] -> long [B,H*W]: each pixel's position in ``argsort(map.flatten(), descending=True, stable=True)``
    (0 = most relevant; equal values keep raster order)."""
    flat = attribution.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks
