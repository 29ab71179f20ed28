"""Counterfactual check of a region: remove it (fill it with a substrate) or paste it onto other images, and measure
how the target's probability changes: a map's claim that a region matters, tested by intervention.

Removal reuses the project's substrates: ROAD's noisy linear imputation (``metrics.road.impute``, Rong et al. 2022:
the region is filled from its border, so no new edge or colour appears) or the deletion curve's ``zero`` / ``blur``
/ ``mean`` (``metrics.deletion_insertion.substrate_image``). Pasting copies the source's pixels inside the region
onto each image. Every input (the originals and the changed images) goes through one batched call of the metrics'
forward path (``forward_logits``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from core.errors import ParameterError
from metrics.common import as_module, check_target, check_x, n_classes
from metrics.deletion_insertion import SUBSTRATES as DELETION_SUBSTRATES
from metrics.deletion_insertion import substrate_image
from metrics.engine import engine
from metrics.road import impute

SUBSTRATES: tuple[str, ...] = ("impute", *DELETION_SUBSTRATES)


def forward_logits(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits [B,K] of ``x`` [B,C,H,W] on the metrics' forward path (the one place to swap the engine)."""
    return engine(net, x)(x)


@dataclass(frozen=True)
class Counterfactual:
    """p(target) [B] before and after the intervention, the top-1 classes [B] before and after, and how it was done."""

    before: torch.Tensor
    after: torch.Tensor
    pred_before: torch.Tensor
    pred_after: torch.Tensor
    target: torch.Tensor
    how: str

    @property
    def delta(self) -> torch.Tensor:
        """after - before, [B] (negative: the region supported the target)."""
        return self.after - self.before


def _regions(region: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    region = torch.as_tensor(region).to(x.device).bool()
    if region.dim() == 2:
        region = region.unsqueeze(0).expand(x.shape[0], -1, -1)
    if tuple(region.shape) != (x.shape[0], *x.shape[-2:]):
        raise ParameterError(f"region shape {tuple(region.shape)} does not match the images' {(x.shape[0], *x.shape[-2:])}")
    return region


def intervene(model: Any, x: torch.Tensor, changed: torch.Tensor, target: int | torch.Tensor, how: str) -> Counterfactual:
    """Compare p(target) on ``x`` [B,C,H,W] and on ``changed`` [B,C,H,W], in one batched forward of both."""
    net = as_module(model)
    x = check_x(x)
    t = check_target(target, x.shape[0], x.device, n_classes(model))
    if changed.shape != x.shape:
        raise ParameterError(f"the changed images {tuple(changed.shape)} must match the originals {tuple(x.shape)}")
    probs = forward_logits(net, torch.cat([x, changed.to(x.device)])).softmax(-1)
    b = x.shape[0]
    p = probs.gather(1, t.repeat(2).view(-1, 1)).squeeze(1).cpu()
    top = probs.argmax(1).cpu()
    return Counterfactual(p[:b], p[b:], top[:b], top[b:], t.cpu(), how)


def filled(x: torch.Tensor, region: torch.Tensor, substrate: str = "impute", *, noise: float = 0.01, seed: int = 0) -> torch.Tensor:
    """``x`` [B,C,H,W] with the pixels of ``region`` (bool [B,H,W] or [H,W]) replaced by ``substrate``."""
    region = _regions(region, x)
    if substrate == "impute":
        gen = torch.Generator().manual_seed(int(seed))
        return torch.stack([impute(x[i], region[i], noise=noise, generator=gen) for i in range(x.shape[0])])
    if substrate not in SUBSTRATES:
        raise ParameterError(f"substrate must be one of {', '.join(SUBSTRATES)}; got {substrate!r}")
    return torch.where(region.unsqueeze(1), substrate_image(x, substrate), x)


def remove_region(
    model: Any, x: torch.Tensor, region: torch.Tensor, target: int | torch.Tensor, *, substrate: str = "impute", noise: float = 0.01, seed: int = 0
) -> Counterfactual:
    """p(target) before and after the region is removed: ``x`` [B,C,H,W] in the model's input space, ``region``
    bool [B,H,W] or [H,W]. Substrates: "impute" (ROAD's noisy linear imputation, noise std ``noise``, seeded),
    "zero" (0 in input space), "blur", "mean" (the deletion curve's)."""
    changed = filled(check_x(x), region, substrate, noise=noise, seed=seed)
    how = f"region removed: {substrate}" + (f" (ROAD noisy linear imputation, noise std {noise:g}, seed {seed})" if substrate == "impute" else "")
    return intervene(model, x, changed, target, how)


def paste_region(model: Any, x: torch.Tensor, source: torch.Tensor, region: torch.Tensor, target: int | torch.Tensor) -> Counterfactual:
    """p(target) of each image ``x`` [B,C,H,W] before and after the pixels of ``source`` ([1,C,H,W] or [B,C,H,W])
    inside ``region`` (bool [H,W] or [B,H,W]) are pasted onto it at the same place."""
    x = check_x(x)
    source = check_x(source).to(x.device)
    if source.shape[1:] != x.shape[1:] or source.shape[0] not in (1, x.shape[0]):
        raise ParameterError(f"source {tuple(source.shape)} must be one image or one per image, shaped like {tuple(x.shape[1:])}")
    region = _regions(region, x)
    changed = torch.where(region.unsqueeze(1), source.expand_as(x), x)
    return intervene(model, x, changed, target, "region pasted from the source image at the same place")
