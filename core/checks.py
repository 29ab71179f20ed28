"""Input checks shared by the explainers, the metrics and the anatomy functions (clear ``ParameterError``s, never a
deep traceback)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.errors import ParameterError


def check_x(x: Any) -> torch.Tensor:
    """A finite tensor [B,C,H,W] with B >= 1 -> detached float32."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] == 0:
        raise ParameterError("x must be a tensor of shape [B, C, H, W] with B >= 1")
    if not torch.isfinite(x).all():
        raise ParameterError("x contains NaN or Inf")
    return x.detach().float()


def check_one_image(x: Any, what: str) -> torch.Tensor:
    """``check_x`` for computations that take one image: [1,C,H,W] -> detached float32 (``what`` names the computation)."""
    x = check_x(x)
    if x.shape[0] != 1:
        raise ParameterError(f"{what} takes one image at a time: x must be [1, C, H, W]")
    return x


def check_target(target: int | torch.Tensor, batch: int, device: torch.device, classes: int | None = None) -> torch.Tensor:
    """int or [B] -> long [B] on ``device``; indices must be >= 0 (and < ``classes`` when given)."""
    t = torch.as_tensor(target, device=device).long().flatten()
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ParameterError(f"target has {t.numel()} entries for a batch of {batch}")
    if (t < 0).any():
        raise ParameterError("target class indices must be >= 0")
    if classes is not None and int(t.max()) >= classes:
        raise ParameterError(f"target {int(t.max())} is out of range for {classes} classes")
    return t.contiguous()


def as_module(model: Any) -> nn.Module:
    """``zoo.LoadedModel`` or ``nn.Module`` -> the ``nn.Module`` returning logits."""
    net = getattr(model, "model", model)
    if not isinstance(net, nn.Module):
        raise ParameterError("model must be a torch.nn.Module or a zoo.LoadedModel")
    return net
