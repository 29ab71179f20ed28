"""Sensitivity (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of Explanations", NeurIPS): how much a map
moves when the input moves a little.

Samples y uniform in the L-inf ball of radius r around x *in pixel space [0,1]* (clipped to valid pixels, then mapped
through the model's normalization); ||Phi(y) - Phi(x)||_F / ||Phi(x)||_F (a zero ||Phi(x)|| counts as 1, as in
captum), max and mean over the samples. Same numbers as ``captum.metrics.sensitivity_max`` on identical samples.
The radius is given in 1/255 units of pixel space.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from core.errors import ParameterError
from metrics.common import check_one_image, check_target, chunk_for, maps_in_chunks, n_classes, pixel_domain


@dataclass(frozen=True)
class Sensitivity:
    """``values`` [n_samples]: ||Phi(y)-Phi(x)|| / ||Phi(x)|| per sample; ``max``/``mean``; the worst sample ``worst`` [1,C,H,W]
    (model input space), and the maps ``clean`` and ``at_worst`` [H,W]."""

    values: torch.Tensor
    max: float
    mean: float
    worst: torch.Tensor
    clean: torch.Tensor
    at_worst: torch.Tensor
    samples: torch.Tensor
    seconds: float


def sensitivity_samples(model: Any, x: torch.Tensor, radius: float, n_samples: int, seed: int) -> torch.Tensor:
    """``n_samples`` inputs [n,C,H,W]: uniform noise in the L-inf ball of ``radius``/255 in pixel space, clipped to [0,1], normalized."""
    to_px, to_in = pixel_domain(model, x)
    u = to_px(x)
    gen = torch.Generator().manual_seed(int(seed))
    noise = (torch.rand((n_samples, *x.shape[1:]), generator=gen) * 2 - 1).to(x.device) * (radius / 255.0)
    return to_in((u + noise).clamp(0, 1))


def sensitivity(
    model: Any,
    x: torch.Tensor,
    target: int | torch.Tensor,
    method: str,
    *,
    radius: float = 2.0,
    n_samples: int = 10,
    seed: int = 0,
    method_params: dict[str, Any] | None = None,
    chunk: int | None = None,
) -> Sensitivity:
    """Max- and avg-sensitivity of ``method`` for one image ``x`` [1,C,H,W] (radius in 1/255 of pixel space)."""
    start = time.perf_counter()
    x = check_one_image(x, "sensitivity")
    if not radius > 0 or n_samples < 1:
        raise ParameterError("sensitivity needs radius > 0 and n_samples >= 1")
    t = check_target(target, 1, x.device, n_classes(model))
    params = method_params or {}
    chunk = chunk or chunk_for(method, params, *x.shape[-2:])
    ys = sensitivity_samples(model, x, radius, n_samples, seed)
    both = maps_in_chunks(model, method, torch.cat([x, ys]), t.expand(n_samples + 1), params, chunk)  # the clean map rides in the first chunk
    clean, maps = both[0], both[1:]
    norm = clean.norm()
    denom = norm if norm > 0 else torch.ones_like(norm)
    values = (maps - clean).flatten(1).norm(dim=1) / denom
    i = int(values.argmax())
    return Sensitivity(values.cpu(), float(values.max()), float(values.mean()), ys[i : i + 1], clean, maps[i], ys, time.perf_counter() - start)
