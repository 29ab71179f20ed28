"""Activation maximization: images that excite a unit of the model.

- ``maximize``: gradient ascent on an image parametrization (Olah et al. 2017, "Feature Visualization", Distill):
  ``fourier`` = a decorrelated Fourier spectrum (frequencies scaled by 1/f) followed by lucid's colour
  decorrelation and a sigmoid, or ``pixel`` = raw pixels through a sigmoid with a frequency (total-variation)
  penalty; transformation robustness (``transforms=True``: random jitter up to 8 px, scale 0.9-1.1, rotation up to
  10 degrees each step, seeded). Objectives: a channel's mean activation, a single neuron (the centre of a
  channel), or a class logit minus ``l2`` x the mean squared pixel deviation from grey. Adam, lr 0.05.
- ``class_model``: Simonyan et al. 2014's class model visualization, the plain-pixel baseline: pixels, no
  transforms, class logit minus an L2 penalty.

Runs inside ``core.model_state.using`` (the model's lock held, hooks removed, mode and flags restored); the model is
never modified.
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

from anatomy.layers import module_of
from core import progress
from core.checks import as_module
from core.errors import ParameterError
from core.model_state import using
from explainers.hooks import capture_layer

# lucid's colour correlation (square root of the ImageNet colour covariance), columns normalized
_COLOR = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR = _COLOR / _COLOR.norm(dim=0).max()



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
    preview: Callable[[int, int, torch.Tensor], None] | None = None,
    preview_every: int = 16,
) -> torch.Tensor:
    """An image [1,3,S,S] in [0,1] that maximizes ``objective`` (seeded). ``preview(step, steps, image)`` is called
    every ``preview_every`` steps (a live preview); each step is a ``core.progress`` stage job (Stop acts there)."""
    net = as_module(model)
    size = int(size or getattr(model, "input_size", 224))
    if steps < 1 or size < 8:
        raise ParameterError("steps must be >= 1 and size >= 8")
    if objective.kind not in ("channel", "neuron", "class"):
        raise ParameterError(f"objective must be channel, neuron or class; got {objective.kind!r}")
    normalize = getattr(model, "normalize", lambda u: u)
    gen = torch.Generator().manual_seed(int(seed))
    image = _Image(size, param, gen).to(next(net.parameters()).device)
    opt = torch.optim.Adam(image.parameters(), lr=lr)
    module = module_of(net, objective.layer) if objective.kind != "class" else None
    with using(net), torch.enable_grad(), progress.stage("optimization steps", steps) as st:
        for step in range(steps):
            st.at(step, f"step {step + 1}/{steps}")
            img = image()
            value = _objective_value(net, module, objective, normalize(_augment(img, gen) if transforms else img))
            loss = -value + l2 * ((img - 0.5) ** 2).mean()
            if tv:
                loss = loss + tv * ((img[..., 1:, :] - img[..., :-1, :]).abs().mean() + (img[..., :, 1:] - img[..., :, :-1]).abs().mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if preview and ((step + 1) % preview_every == 0 or step + 1 == steps):
                preview(step + 1, steps, image().detach())
    return image().detach()


def _objective_value(net: nn.Module, module: nn.Module | None, objective: Objective, x: torch.Tensor) -> torch.Tensor:
    """The scalar to maximize for one input [1,C,H,W] (caller holds the model's lock)."""
    if module is None:
        logits = net(x)
        if objective.index >= logits.shape[1]:
            raise ParameterError(f"class {objective.index} is out of range for {logits.shape[1]} classes")
        return logits[0, objective.index]
    with capture_layer(module) as store:
        net(x)
    act = store["act"]
    if act.dim() != 4 or objective.index >= act.shape[1]:
        raise ParameterError(f"layer {objective.layer!r} has no channel {objective.index} (output {tuple(act.shape)})")
    ch = act[0, objective.index]
    return ch.mean() if objective.kind == "channel" else ch[ch.shape[0] // 2, ch.shape[1] // 2]


def class_model(model: Any, index: int, *, steps: int = 256, seed: int = 0, l2: float = 1.0, **kw: Any) -> torch.Tensor:
    """Simonyan et al. 2014's class model: plain pixels, no transforms, logit minus ``l2`` x ||image - grey||^2."""
    return maximize(model, Objective("class", index), steps=steps, seed=seed, param="pixel", transforms=False, l2=l2, **kw)
