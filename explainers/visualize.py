"""Model anatomy: layers, first-layer filters, feature maps, and activation maximization.

- ``maximize``: gradient ascent on an image parametrization (Olah et al. 2017, "Feature Visualization", Distill):
  ``fourier`` = a decorrelated Fourier spectrum (frequencies scaled by 1/f) followed by lucid's colour
  decorrelation and a sigmoid, or ``pixel`` = raw pixels through a sigmoid with a frequency (total-variation)
  penalty; transformation robustness (``transforms=True``: random jitter up to 8 px, scale 0.9-1.1, rotation up to
  10 degrees each step, seeded). Objectives: a channel's mean activation, a single neuron (the centre of a
  channel), or a class logit minus ``l2`` x the mean squared pixel deviation from grey. Adam, lr 0.05.
- ``class_model``: Simonyan et al. 2014's class model visualization, the plain-pixel baseline: pixels, no
  transforms, class logit minus an L2 penalty.

Hooks are added under the model's lock and removed before it is released; the model is never modified.
Images come back as float tensors in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core import progress as ticks
from core.errors import ParameterError
from explainers.context import capture_layer, model_lock

# lucid's colour correlation (square root of the ImageNet colour covariance), columns normalized
_COLOR = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR = _COLOR / _COLOR.norm(dim=0).max()


def _net(model: Any) -> nn.Module:
    net = getattr(model, "model", model)
    if not isinstance(net, nn.Module):
        raise ParameterError("model must be a torch.nn.Module or a zoo.LoadedModel")
    return net


def _module(net: nn.Module, layer: str) -> nn.Module:
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
    net = _net(model)
    size = size or getattr(model, "input_size", 224)
    shapes: dict[str, tuple[int, ...]] = {}
    named = [(n, m) for n, m in net.named_modules() if n]
    hooks = []
    with model_lock(net):
        try:
            for n, m in named:

                def record(_m: nn.Module, _i: tuple, out: Any, n: str = n) -> None:  # returns None: the output is left alone
                    if isinstance(out, torch.Tensor):
                        shapes.setdefault(n, tuple(out.shape[1:]))

                hooks.append(m.register_forward_hook(record))
            with torch.no_grad():
                net(torch.zeros(1, 3, size, size, device=next(net.parameters()).device))
        finally:
            for h in hooks:
                h.remove()
    return [Layer(n, type(m).__name__, sum(p.numel() for p in m.parameters(recurse=False)), shapes.get(n)) for n, m in named]


def conv_layers(model: Any) -> list[str]:
    """Names of the convolution modules (whose outputs are feature maps)."""
    return [n for n, m in _net(model).named_modules() if isinstance(m, nn.Conv2d)]


def filters(model: Any, layer: str | None = None) -> torch.Tensor:
    """The weights of a convolution (default: the first) as images [C_out, 3, k, k] in [0, 1] (each filter min-max scaled);
    a layer whose input is not RGB shows each filter's mean over its input channels as grey."""
    net = _net(model)
    layer = layer or conv_layers(net)[0]
    conv = _module(net, layer)
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
    net = _net(model)
    module = _module(net, layer)
    with model_lock(net), torch.no_grad(), capture_layer(module) as store:
        net(x)
    act = store["act"].detach().float()[0]
    if act.dim() != 3:
        raise ParameterError(f"{layer!r} outputs shape {tuple(store['act'].shape)}, not a feature map [C, H, W]")
    means = act.mean(dim=(1, 2))
    order = torch.argsort(means, descending=True, stable=True)[:top]
    return FeatureMaps(act[order].cpu(), order.tolist(), means[order].tolist(), tuple(act.shape))


# ---------------------------------------------------------------------------------- activation maximization


@dataclass(frozen=True)
class Objective:
    """What to maximize: ``kind`` "channel" (mean of ``layer``'s channel ``index``), "neuron" (its centre value) or "class" (logit ``index``)."""

    kind: str
    index: int
    layer: str | None = None


class _Image(nn.Module):
    """An image [1,3,S,S] in [0,1] from a Fourier (colour-decorrelated) or pixel parametrization."""

    def __init__(self, size: int, param: str, gen: torch.Generator) -> None:
        super().__init__()
        self.size, self.param = size, param
        if param == "fourier":
            fy = torch.fft.fftfreq(size)[:, None]
            fx = torch.fft.rfftfreq(size)[None, :]
            freqs = (fy**2 + fx**2).sqrt()
            self.register_buffer("scale", 1.0 / freqs.clamp(min=1.0 / size))
            self.spectrum = nn.Parameter(0.01 * torch.randn((3, size, size // 2 + 1, 2), generator=gen))
        elif param == "pixel":
            self.pixels = nn.Parameter(0.01 * torch.randn((1, 3, size, size), generator=gen))
        else:
            raise ParameterError(f"parametrization must be fourier or pixel; got {param!r}")

    def forward(self) -> torch.Tensor:
        if self.param == "pixel":
            return torch.sigmoid(self.pixels)
        spec = torch.view_as_complex(self.spectrum) * self.scale
        img = torch.fft.irfft2(spec, s=(self.size, self.size), norm="ortho")[None] / 4.0  # [1,3,S,S]
        img = torch.einsum("bchw,dc->bdhw", img, _COLOR.to(img))
        return torch.sigmoid(img)


def _augment(img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Jitter (8 px), scale (0.9-1.1) and rotation (10 degrees) drawn from ``gen``: one differentiable affine warp
    (``affine_grid`` + bilinear ``grid_sample``, reflected at the borders)."""
    r = torch.rand(4, generator=gen).tolist()
    angle = math.radians((r[0] * 2 - 1) * 10)
    scale = 0.9 + 0.2 * r[1]
    size = img.shape[-1]
    tx, ty = (r[2] * 2 - 1) * 8 * 2 / size, (r[3] * 2 - 1) * 8 * 2 / size
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[[cos, -sin, tx], [sin, cos, ty]]], dtype=img.dtype, device=img.device)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def maximize(
    model: Any,
    objective: Objective,
    *,
    steps: int = 256,
    size: int | None = None,
    seed: int = 0,
    param: str = "fourier",
    transforms: bool = True,
    l2: float = 0.0,
    tv: float = 0.0,
    lr: float = 0.05,
    progress: Callable[[int, int, torch.Tensor], None] | None = None,
    preview_every: int = 16,
) -> torch.Tensor:
    """An image [1,3,S,S] in [0,1] that maximizes ``objective`` (seeded). ``progress(step, steps, image)`` is
    called every ``preview_every`` steps for a live preview."""
    net = _net(model)
    size = int(size or getattr(model, "input_size", 224))
    if steps < 1 or size < 8:
        raise ParameterError("steps must be >= 1 and size >= 8")
    if objective.kind not in ("channel", "neuron", "class"):
        raise ParameterError(f"objective must be channel, neuron or class; got {objective.kind!r}")
    normalize = getattr(model, "normalize", lambda u: u)
    device = next(net.parameters()).device
    gen = torch.Generator().manual_seed(int(seed))
    image = _Image(size, param, gen).to(device)
    opt = torch.optim.Adam(image.parameters(), lr=lr)
    module = _module(net, objective.layer) if objective.kind != "class" else None
    with model_lock(net), torch.enable_grad():
        flags = [(p, p.requires_grad) for p in net.parameters()]
        training = net.training
        net.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            for step in range(steps):
                ticks.tick(f"step {step + 1}/{steps}")
                img = image()
                seen = _augment(img, gen) if transforms else img
                if module is None:
                    logits = net(normalize(seen))
                    if objective.index >= logits.shape[1]:
                        raise ParameterError(f"class {objective.index} is out of range for {logits.shape[1]} classes")
                    value = logits[0, objective.index]
                else:
                    with capture_layer(module) as store:
                        net(normalize(seen))
                    act = store["act"]
                    if act.dim() != 4 or objective.index >= act.shape[1]:
                        raise ParameterError(f"layer {objective.layer!r} has no channel {objective.index} (output {tuple(act.shape)})")
                    ch = act[0, objective.index]
                    value = ch.mean() if objective.kind == "channel" else ch[ch.shape[0] // 2, ch.shape[1] // 2]
                loss = -value + l2 * ((img - 0.5) ** 2).mean()
                if tv:
                    loss = loss + tv * ((img[..., 1:, :] - img[..., :-1, :]).abs().mean() + (img[..., :, 1:] - img[..., :, :-1]).abs().mean())
                opt.zero_grad()
                loss.backward()
                opt.step()
                if progress and ((step + 1) % preview_every == 0 or step + 1 == steps):
                    progress(step + 1, steps, image().detach())
        finally:
            for p, f in flags:
                p.requires_grad_(f)
            if training:
                net.train()
    return image().detach()


def class_model(model: Any, index: int, *, steps: int = 256, seed: int = 0, l2: float = 1.0, **kw: Any) -> torch.Tensor:
    """Simonyan et al. 2014's class model: plain pixels, no transforms, logit minus ``l2`` x ||image - grey||^2."""
    return maximize(model, Objective("class", index), steps=steps, seed=seed, param="pixel", transforms=False, l2=l2, **kw)


__all__ = ["FeatureMaps", "Layer", "Objective", "class_model", "conv_layers", "feature_maps", "filters", "layers", "maximize"]
