"""What the perturbation and recomputation metrics share: the forward engine, the target's output for many
perturbed inputs in bounded chunks, seeded draws, row-wise correlations, and maps of many inputs.

Random draws use numpy's legacy generator ``np.random.RandomState(seed)``, in the order Quantus 0.6 draws from
the global one: a metric given seed s makes the same draws as Quantus after ``np.random.seed(s)``, so its numbers
can be reproduced there draw for draw (``benchmarks/metrics.py`` does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy import stats

from core.errors import ParameterError
from metrics import engine as engines
from metrics.common import chunk_for
from metrics.registry import MetricContext

OUTPUTS = ("logit", "probability")
CHUNK = 64  # perturbed inputs built at a time (bounded memory); the engine splits them further


def engine(ctx: MetricContext, forwards: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The forward-only engine of ``ctx.model`` (``metrics.engine``: logits [N,K] of inputs [N,C,H,W], in its measured
    chunks); ``forwards``: the job's size (the engine is built once per model and input size, whatever it is)."""
    return engines.engine(ctx.model, ctx.x)


def output(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """The target's logit or softmax probability: logits [N,K], target [N] -> [N]."""
    if target.numel() and int(target.max()) >= logits.shape[1]:
        raise ParameterError(f"target {int(target.max())} is out of range for {logits.shape[1]} classes")
    values = logits.softmax(-1) if kind == "probability" else logits
    return values.gather(1, target.view(-1, 1).to(logits.device)).squeeze(1)


def outputs(run: Callable[[torch.Tensor], torch.Tensor], n: int, build: Callable[[int, int], torch.Tensor], target: torch.Tensor, kind: str) -> torch.Tensor:
    """The target's output [n] for n perturbed inputs, ``build(lo, hi)`` making inputs lo..hi-1 [hi-lo,C,H,W]
    (``CHUNK`` at a time, so memory stays bounded); ``target`` [n]."""
    out = [output(run(build(lo, min(lo + CHUNK, n))), target[lo : lo + CHUNK], kind) for lo in range(0, n, CHUNK)]
    return torch.cat(out) if out else torch.empty(0)


def legacy_rng(seed: int) -> np.random.RandomState:
    """numpy's legacy generator seeded with ``seed`` (the draws Quantus makes after ``np.random.seed(seed)``)."""
    return np.random.RandomState(int(seed) % 2**32)


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row of ``a`` and ``b`` [B,N] -> [B] (float64; 0 where a row is constant)."""
    a = a.double() - a.double().mean(1, keepdim=True)
    b = b.double() - b.double().mean(1, keepdim=True)
    den = (a.square().sum(1) * b.square().sum(1)).sqrt()
    return torch.where(den > 0, (a * b).sum(1) / den.clamp(min=1e-300), torch.zeros_like(den))


def spearman_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman correlation of each row of ``a`` and ``b`` [B,N] -> [B]: Pearson of the ranks, ties averaged
    (``scipy.stats.rankdata``), 0 where a row is constant."""
    ra = torch.from_numpy(stats.rankdata(a.double().cpu().numpy(), axis=1))
    rb = torch.from_numpy(stats.rankdata(b.double().cpu().numpy(), axis=1))
    return pearson_rows(ra, rb)


def explain_many(ctx: MetricContext, method: str, xs: torch.Tensor, target: torch.Tensor, source: Any = None) -> torch.Tensor:
    """Maps [N,H,W] of ``method`` for inputs ``xs`` [N,C,H,W] and ``target`` [N], through ``ctx.explain`` (the
    method's parameters and the seed of the maps scored), in chunks that bound the passes per call; ``source``
    replaces the model (a randomized copy)."""
    if source is not None:
        ctx = dataclasses.replace(ctx, source=source)
    chunk = chunk_for(method, ctx.method_params.get(method, {}), *xs.shape[-2:])
    return torch.cat([ctx.explain(method, xs[i : i + chunk], target[i : i + chunk]) for i in range(0, xs.shape[0], chunk)])


def check_positive(**values: float) -> None:
    """``ParameterError`` naming the first value that is not > 0."""
    for name, v in values.items():
        if not v > 0:
            raise ParameterError(f"{name} must be > 0; got {v!r}")
