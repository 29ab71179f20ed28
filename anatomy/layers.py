"""A model's anatomy: its layers with their output shapes, convolution filters as images, feature maps of an image.

Hooks are added through ``core.model_state.using`` (the model's lock held, removed before it is released); the
model is never modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from core.checks import as_module
from core.errors import ParameterError
from core.model_state import using
from explainers.hooks import capture_layer


def module_of(net: nn.Module, layer: str) -> nn.Module:
    modules = dict(net.named_modules())
    if layer not in modules:
        raise ParameterError(f"no layer named {layer!r} in the model")
    return modules[layer]


@dataclass(frozen=True)
class Layer:
    """One module of the model: its name, type, parameter count, and output shape [C,H,W] for the model's input (None if not reached)."""

    name: str
    kind: str
    params: int
    out_shape: tuple[int, ...] | None


def layers(model: Any, size: int | None = None) -> list[Layer]:
    """Every named module with its output shape for one input of ``size`` px (default: the model's input size)."""
    net = as_module(model)
    size = size or getattr(model, "input_size", 224)
    shapes: dict[str, tuple[int, ...]] = {}
    named = [(n, m) for n, m in net.named_modules() if n]
    with using(net) as hooks, torch.no_grad():
        for n, m in named:

            def record(_m: nn.Module, _i: tuple, out: Any, n: str = n) -> None:  # returns None: the output is left alone
                if isinstance(out, torch.Tensor):
                    shapes.setdefault(n, tuple(out.shape[1:]))

            hooks.forward(m, record)
        net(torch.zeros(1, 3, size, size, device=next(net.parameters()).device))
    return [Layer(n, type(m).__name__, sum(p.numel() for p in m.parameters(recurse=False)), shapes.get(n)) for n, m in named]


def conv_layers(model: Any) -> list[str]:
    """Names of the convolution modules (whose outputs are feature maps)."""
    return [n for n, m in as_module(model).named_modules() if isinstance(m, nn.Conv2d)]


def filters(model: Any, layer: str | None = None) -> torch.Tensor:
    """The weights of a convolution (default: the first) as images [C_out, 3, k, k] in [0, 1] (each filter min-max scaled);
    a layer whose input is not RGB shows each filter's mean over its input channels as grey."""
    net = as_module(model)
    layer = layer or conv_layers(net)[0]
    conv = module_of(net, layer)
    if not isinstance(conv, nn.Conv2d):
        raise ParameterError(f"{layer!r} is a {type(conv).__name__}, not a convolution")
    w = conv.weight.detach().float().cpu()
    if w.shape[1] != 3:
        w = w.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    return (w - lo) / (hi - lo).clamp(min=1e-12)


@dataclass(frozen=True)
class FeatureMaps:
    """The ``top`` channels of a layer by mean activation: ``maps`` [top,h,w], their ``channels`` and ``means``."""

    maps: torch.Tensor
    channels: list[int]
    means: list[float]
    shape: tuple[int, ...]


def feature_maps(model: Any, x: torch.Tensor, layer: str, top: int = 16) -> FeatureMaps:
    """Activations of ``layer`` for one image ``x`` [1,C,H,W] (model input space): the ``top`` channels with the largest mean."""
    net = as_module(model)
    module = module_of(net, layer)
    with using(net), torch.no_grad(), capture_layer(module) as store:
        net(x)
    act = store["act"].detach().float()[0]
    if act.dim() != 3:
        raise ParameterError(f"{layer!r} outputs shape {tuple(store['act'].shape)}, not a feature map [C, H, W]")
    means = act.mean(dim=(1, 2))
    order = torch.argsort(means, descending=True, stable=True)[:top]
    return FeatureMaps(act[order].cpu(), order.tolist(), means[order].tolist(), tuple(act.shape))
