"""Attribution methods in one registry.

Public API: ``names()``, ``get(name)``, ``explain(name, model, x, target, **params)``,
``by_family()``. A method is one decorated function in one of the family modules
(``gradient``, ``cam``, ``perturbation``, ``propagation``, ``controls``)::

    @explainer("my_method", title="My method", family="gradient", paper="...", library="...")
    def my_method(ctx, x, target):       # x: [B,3,H,W] normalized, target: [B] long
        return ...                        # [B,H,W] float
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from core import memory, progress
from core.checks import check_target, check_x
from core.errors import InputError, ParameterError
from explainers import cam, controls, gradient, perturbation, propagation  # noqa: F401  (registration)
from explainers.context import Context, hook_count, model_lock
from explainers.registry import EXPLAINERS, FAMILIES, ExplainerSpec, Param, explainer

__all__ = [
    "EXPLAINERS",
    "FAMILIES",
    "Context",
    "ExplainerSpec",
    "Param",
    "by_family",
    "default_methods",
    "explain",
    "explainer",
    "get",
    "hook_count",
    "model_lock",
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


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration; the previous state is restored."""
    training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    if training:
        model.eval()
    try:
        yield
    finally:
        if training:
            model.train()
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def _ticking(model: nn.Module, title: str) -> Iterator[None]:
    """While a progress reporter listens: one ``progress.tick`` per forward pass of ``model`` (a pre-hook on its
    first layer, removed on exit; private copies such as LRP's never get it). Nothing for TorchScript models."""
    first = None
    if progress.active() and not isinstance(model, torch.jit.ScriptModule):
        first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    if first is None:
        yield
        return
    handle = first.register_forward_pre_hook(lambda *_: progress.tick(title))
    try:
        yield
    finally:
        handle.remove()


def explain(
    name: str,
    model: Any,
    x: torch.Tensor,
    target: int | torch.Tensor,
    *,
    layer: str | None = None,
    **params: Any,
) -> torch.Tensor:
    """Attribution map of method ``name``: ``x`` [B,C,H,W] (model input space), ``target`` [B]
    or int -> float32 [B,H,W] on x's device.

    ``model`` is a ``zoo.LoadedModel`` (its CAM layer and pixel range are used) or a plain
    ``nn.Module`` (``layer`` names the CAM layer). Runs under the model's lock; hooks are
    removed and the model's mode, parameters and ``requires_grad`` flags are left as found.
    Raises ``ParameterError`` / ``MethodNotApplicable`` (``ValueError`` subclasses) with a
    readable reason. Ticks ``core.progress`` once per forward pass (a reporter may cancel the work).
    """
    spec = get(name)
    resolved = spec.resolve(params)
    net: nn.Module = getattr(model, "model", model)
    if not isinstance(net, nn.Module):
        raise ParameterError("model must be a torch.nn.Module or a zoo.LoadedModel")
    x = check_x(x)
    classes = getattr(model, "classes", None)
    t = check_target(target, x.shape[0], x.device, None if classes is None else len(classes))
    bounds = None
    if hasattr(model, "normalize"):
        bounds = (model.normalize(torch.zeros(1, 3, 1, 1, device=x.device)), model.normalize(torch.ones(1, 3, 1, 1, device=x.device)))
    ctx = Context(model=net, layer=layer or getattr(model, "cam_layer", None), bounds=bounds)
    with model_lock(net), _frozen(net), torch.enable_grad(), _ticking(net, spec.title):
        if "batch_size" in resolved:  # adapt to memory: a batch never exceeds core.memory.BUDGET_GB (estimated)
            acts = memory.activations(net, x)
            if acts is not None:
                resolved["batch_size"] = memory.fit_batch(resolved["batch_size"], acts.per_image(grad=spec.family in GRADIENT_FAMILIES))
        out = spec.fn(ctx, x, t, **resolved)
    out = out.detach().float()
    if out.shape != (x.shape[0], *x.shape[-2:]):
        raise RuntimeError(f"{name} returned shape {tuple(out.shape)}, expected {(x.shape[0], *x.shape[-2:])}")
    if not torch.isfinite(out).all():
        raise InputError(f"{spec.title} produced NaN or Inf values: the model's outputs or gradients are not finite here")
    return out
