"""Attribution methods in one registry.

Public API: ``names()``, ``get(name)``, ``explain(name, model, x, target, **params)``,
``explain_with_info(...)`` (the maps with the method's diagnostics, see ``explainers.diagnostics``), ``by_family()``,
``default_methods()``. A method is one decorated function in one of the family modules (``gradient``, ``cam``,
``perturbation``, ``propagation``, ``patternnet``, ``controls``), registered under its function's name::

    @explainer(title="My method", family="gradient", paper="...", library="...")
    def my_method(ctx, x, target):       # x: [B,3,H,W] normalized, target: [B] long
        return ...                        # [B,H,W] float
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core import memory, progress
from core.checks import as_module, check_target, check_x
from core.errors import InputError
from core.model_state import using
from explainers import cam, controls, gradient, masking, patternnet, perturbation, propagation  # noqa: F401  (registration)
from explainers.compatibility import Report, Verdict, compatibility
from explainers.context import Context
from explainers.diagnostics import Diagnostic, Explanation
from explainers.hooks import tick_per_forward
from explainers.registry import EXPLAINERS, FAMILIES, ExplainerSpec, explainer

__all__ = [
    "EXPLAINERS",
    "FAMILIES",
    "Context",
    "Diagnostic",
    "ExplainerSpec",
    "Explanation",
    "Report",
    "Verdict",
    "by_family",
    "compatibility",
    "default_methods",
    "explain",
    "explain_with_info",
    "explainer",
    "get",
    "names",
]

GRADIENT_FAMILIES = ("gradient", "path")  # their batches run forward and backward


def names() -> list[str]:
    """Every registered method, in registration order."""
    return EXPLAINERS.names()


def get(name: str) -> ExplainerSpec:
    """The spec (metadata, parameters, cost) of one method."""
    return EXPLAINERS.get(name)


def by_family() -> dict[str, list[str]]:
    """Family key -> method names, families in display order."""
    out: dict[str, list[str]] = {f: [] for f in FAMILIES}
    for name, spec in EXPLAINERS.items():
        out[spec.family].append(name)
    return {f: ms for f, ms in out.items() if ms}


def default_methods() -> list[str]:
    """The methods the Compare page shows first (about 10 s on a 2-core CPU at 224 px)."""
    return [n for n, s in EXPLAINERS.items() if s.default]


def _bounds(model: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The normalized images of black and white pixels [1,C,1,1] for a ``zoo.LoadedModel``; None for a bare module."""
    if not hasattr(model, "normalize"):
        return None
    ones = torch.ones(1, x.shape[1], 1, 1, device=x.device)
    return model.normalize(0 * ones), model.normalize(ones)


def _fit_batch(spec: ExplainerSpec, net: nn.Module, x: torch.Tensor, resolved: dict[str, Any]) -> None:
    """Lower ``batch_size`` so one batch stays within ``core.memory.BUDGET_GB`` (estimated; caller holds the lock)."""
    if "batch_size" in resolved:
        acts = memory.activations(net, x)
        if acts is not None:
            resolved["batch_size"] = memory.fit_batch(resolved["batch_size"], acts.per_image(grad=spec.family in GRADIENT_FAMILIES))


def explain(
    name: str,
    model: Any,
    x: torch.Tensor,
    target: int | torch.Tensor,
    *,
    layer: str | None = None,
    seed: int | None = None,
    **params: Any,
) -> torch.Tensor:
    """Attribution map of method ``name``: ``x`` [B,C,H,W] (model input space), ``target`` [B] or int -> float32
    [B,H,W] on x's device. The maps of ``explain_with_info`` (see there), without the diagnostics."""
    return explain_with_info(name, model, x, target, layer=layer, seed=seed, **params).maps


def explain_with_info(
    name: str,
    model: Any,
    x: torch.Tensor,
    target: int | torch.Tensor,
    *,
    layer: str | None = None,
    seed: int | None = None,
    **params: Any,
) -> Explanation:
    """Maps of method ``name`` [B,H,W] (float32, on x's device) with what the method checked about them
    (``Explanation.diagnostics``, e.g. Integrated Gradients' completeness error per image) and its sign convention.

    ``model`` is a ``zoo.LoadedModel`` (its CAM layer and pixel range are used) or a plain ``nn.Module`` (``layer``
    names the CAM layer, for either; default: the spec's, else ``explainers.hooks.locate_cam_layer``). ``seed`` seeds a stochastic method and is ignored by the others; a map depends only on
    its own image, the model, the parameters and the seed (not on the other images of the batch).
    Runs inside ``core.model_state.using``: the model's lock held, hooks removed, mode and flags restored. Raises
    ``ParameterError`` / ``MethodNotApplicable`` (``ValueError`` subclasses) with a readable reason. A
    ``core.progress`` stage counted in forward passes (the method's cost), moved at every pass (a reporter may
    cancel the work there).
    """
    spec = get(name)
    resolved = spec.resolve(params, seed)
    net = as_module(model)
    x = check_x(x)
    classes = getattr(model, "classes", None)
    t = check_target(target, x.shape[0], x.device, None if classes is None else len(classes))
    fwd, fb = spec.cost(resolved, *x.shape[-2:], 256)
    with using(net) as hooks, torch.enable_grad(), progress.stage(spec.title, max(1, (fwd + fb) * x.shape[0]), unit="passes"):
        ctx = Context(model=net, hooks=hooks, layer=layer or getattr(model, "cam_layer", None), bounds=_bounds(model, x))
        tick_per_forward(net, hooks, spec.title)
        _fit_batch(spec, net, x, resolved)
        out = spec.fn(ctx, x, t, **resolved)
    out = out.detach().float()
    if out.shape != (x.shape[0], *x.shape[-2:]):
        raise RuntimeError(f"{name} returned shape {tuple(out.shape)}, expected {(x.shape[0], *x.shape[-2:])}")
    if not torch.isfinite(out).all():
        raise InputError(f"{spec.title} produced NaN or Inf values: the model's outputs or gradients are not finite here")
    return Explanation(out, dict(ctx.diagnostics), spec.convention)
