"""What the metrics share: input checks in one place (``prepare``), the pixel ranking, the model's pixel domain, and
maps of many inputs in bounded chunks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

import explainers
from core.checks import as_module, check_one_image, check_target, check_x  # noqa: F401  (re-exported for the metrics)
from core.errors import InputError, ParameterError

T = TypeVar("T")


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


@dataclass(frozen=True)
class Inputs:
    """A metric's checked inputs: the module, ``x`` [B,C,H,W] float32, ``target`` [B], ``maps`` {name: [B,H,W]}, and
    whether one map (not a dict) was given, so results come back in the shape they were asked in (``unwrap``)."""

    net: nn.Module
    x: torch.Tensor
    target: torch.Tensor
    maps: dict[str, torch.Tensor]
    single: bool

    def unwrap(self, per_map: dict[str, T]) -> T | dict[str, T]:
        """{name: result} -> the result alone when one map was given, else the dict."""
        return per_map["map"] if self.single else per_map


def prepare(model: Any, x: Any, attribution: torch.Tensor | dict[str, torch.Tensor], target: int | torch.Tensor) -> Inputs:
    """Every metric's input check (``ParameterError`` naming the problem): model, image batch, maps, target."""
    net = as_module(model)
    x = check_x(x)
    maps, single = check_maps(attribution, x)
    t = check_target(target, x.shape[0], x.device, n_classes(model))
    return Inputs(net, x, t, maps, single)


PIXEL_TOL = 1e-4  # a bare module's pixels may exceed [0,1] by rounding

RANKING = "pixels ranked by value, not |value| (signed maps: the strongest evidence for the target first, against it last)"


def pixel_ranks(attribution: torch.Tensor) -> torch.Tensor:
    """[B,H,W] -> long [B,H*W]: each pixel's position in ``argsort(map.flatten(), descending=True, stable=True)``
    (0 = most relevant; equal values keep raster order).

    By value, not |value|: every signed method here means "raises the target's score" by a positive value (LRP
    included, see ``explainers.propagation``), so a negative pixel is evidence against the target and comes last;
    unsigned maps are magnitudes already. ``RANKING`` says so in the metrics' conventions."""
    flat = attribution.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


Transform = Callable[[torch.Tensor], torch.Tensor]


def pixel_domain(model: Any, x: torch.Tensor | None = None) -> tuple[Transform, Transform]:
    """(input -> pixels in [0,1], pixels -> input) for a ``zoo.LoadedModel``; the identity for a bare module, whose
    input is taken as pixels: so a bare module's ``x`` [B,C,H,W] (when given) must lie in [0,1], else ``InputError``
    naming ``zoo.wrap`` (a normalized image would be clipped to [0,1] silently, and eps read in the wrong units)."""
    if hasattr(model, "normalize") and hasattr(model, "mean"):
        mean = torch.tensor(model.mean).view(1, -1, 1, 1)
        std = torch.tensor(model.std).view(1, -1, 1, 1)
        return (lambda x: x * std.to(x.device) + mean.to(x.device)), (lambda u: (u - mean.to(u.device)) / std.to(u.device))
    if x is not None and x.numel() and (float(x.min()) < -PIXEL_TOL or float(x.max()) > 1 + PIXEL_TOL):
        raise InputError(
            f"this function works in pixel space, and a plain nn.Module's input is taken as pixels in [0, 1], but x spans "
            f"[{float(x.min()):.3g}, {float(x.max()):.3g}]: a normalized image? Give the normalization with "
            "zoo.wrap(module, mean=..., std=...) and pass the wrapped model."
        )
    return (lambda x: x), (lambda u: u)


def chunk_for(method: str, params: dict[str, Any], h: int, w: int, budget: int = 64) -> int:
    """Images per explain call so that one call runs at most ``budget`` passes (IG at 32 steps: 2 images). A
    stochastic method runs one image per call, so every image sees the same noise (common random numbers: the
    difference between two inputs' maps measures the inputs, not the sampler)."""
    spec = explainers.get(method)
    if spec.stochastic:
        return 1
    f, fb = spec.cost({**spec.defaults(), **params}, h, w, 1)
    return max(1, budget // max(1, f + fb))


def maps_in_chunks(model: Any, method: str, x: torch.Tensor, target: torch.Tensor, params: dict[str, Any], chunk: int) -> torch.Tensor:
    """Maps [N,H,W] of ``method`` for a batch ``x`` [N,C,H,W], ``chunk`` images per call (bounded memory); seed 0
    unless ``params`` gives one."""
    kw = {"seed": 0, **params}
    return torch.cat([explainers.explain(method, model, x[i : i + chunk], target[i : i + chunk], **kw) for i in range(0, x.shape[0], chunk)])
