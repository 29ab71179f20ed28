"""Timing helpers shared by the benchmarks: best-of-N wall time and per-image pass times by batch size."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from core.memory import cuda_peak_gb, peak_rss_gb

BATCHES = [1, 2, 4, 8, 16, 32, 64]


def best_of(fn: Callable[[], object], reps: int = 3, warmup: int = 2) -> float:
    """Best of ``reps`` after ``warmup`` calls (this machine is noisy: the minimum is the signal)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def pass_times(model: torch.nn.Module, size: int, batches: list[int] = BATCHES) -> tuple[dict[int, float], dict[int, float]]:
    """Per-image seconds of one forward (no grad) and one forward+backward, by batch size (NCHW input, as preprocess gives)."""
    fwd, fb = {}, {}
    for bs in batches:
        x = torch.randn(bs, 3, size, size)

        def forward(x: torch.Tensor = x) -> None:
            with torch.no_grad():
                model(x)

        def forward_backward(x: torch.Tensor = x) -> None:
            xg = x.clone().requires_grad_(True)
            model(xg)[:, 0].sum().backward()

        fwd[bs] = best_of(forward, reps=5) / bs
        fb[bs] = best_of(forward_backward, reps=4) / bs
    return fwd, fb


def best_up_to(times: dict[int, float], n: int) -> float:
    """The best per-image time among batch sizes a job of ``n`` passes can use."""
    return min(t for bs, t in times.items() if bs <= max(1, n))


def print_peak_memory() -> None:
    """The process's peak resident memory (and CUDA's peak allocation on a GPU): the 4 GB goal is checked by eye."""
    cuda = cuda_peak_gb()
    print(f"peak memory (ru_maxrss): {peak_rss_gb():.2f} GB" + (f"; CUDA peak allocated {cuda:.2f} GB" if cuda is not None else "") + "  (goal < 4 GB)")
