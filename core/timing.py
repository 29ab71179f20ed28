"""Measured cost of a model's passes on this machine, for the time estimates shown before long work."""

from __future__ import annotations

import time
from typing import Any

import torch

from core.checks import as_module
from core.model_state import using


def pass_seconds(model: Any, size: int, repeats: int = 3) -> tuple[float, float]:
    """Seconds of one forward and of one forward+backward (input gradient) for one image [1,3,size,size]: the best of
    ``repeats`` timed runs after a warm-up. Takes the model's lock (``core.model_state.using``)."""
    net = as_module(model)
    device = next(iter(net.parameters()), torch.empty(0)).device
    x = torch.zeros(1, 3, size, size, device=device)
    fwd, fb = float("inf"), float("inf")
    with using(net):
        with torch.no_grad():
            net(x)
            for _ in range(repeats):
                t0 = time.perf_counter()
                net(x)
                fwd = min(fwd, time.perf_counter() - t0)
        for _ in range(repeats):
            xg = x.clone().requires_grad_(True)
            t0 = time.perf_counter()
            net(xg).sum().backward()
            fb = min(fb, time.perf_counter() - t0)
    return fwd, fb


def estimate(passes: tuple[float, float], seconds: tuple[float, float]) -> float:
    """Estimated seconds of work costing ``passes`` = (forwards, forward+backwards) at ``seconds`` per pass each."""
    return passes[0] * seconds[0] + passes[1] * seconds[1]
