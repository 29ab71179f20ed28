"""The metric registry: one decorated scoring function per metric, with the metadata the UI and the leaderboard use.

A metric scores many methods' maps at once (shared forwards are then computed once)::

    @metric("my_metric", title="My metric", category="faithfulness", higher_is_better=True, paper="...")
    def my_metric(ctx: MetricContext, maps: dict[str, Tensor], **params) -> dict[str, Tensor]:
        return {name: score[B] for name, m in maps.items()}     # maps: name -> [B,H,W]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from core import Registry
from core.errors import ParameterError
from explainers.registry import Param

CATEGORIES: dict[str, str] = {
    "faithfulness": "Faithfulness",
    "localization": "Localization",
    "complexity": "Complexity",
}


@dataclass(frozen=True)
class MetricContext:
    """What a metric gets besides the maps: the model (nn.Module returning logits), ``x`` [B,C,H,W]
    in its input space, ``target`` [B], an optional ground-truth ``mask`` [B,H,W] (bool), a seed,
    a chunk size (None: measured), whether to compile (None: when it pays off), and a progress
    callback ``progress(done, total)``."""

    model: nn.Module
    x: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor | None = None
    seed: int = 0
    batch_size: int | None = None
    compile: bool | None = None
    progress: Callable[[int, int], None] | None = None


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric. ``conventions``: the settings a reader needs next to the number.
    ``cost(params, h, w) -> forwards`` per image and method (0: no model call)."""

    name: str
    fn: Callable[..., dict[str, torch.Tensor]]
    title: str
    category: str
    higher_is_better: bool
    paper: str
    conventions: str
    params: tuple[Param, ...] = ()
    needs_mask: bool = False
    stochastic: bool = False
    cost: Callable[[dict, int, int], int] = lambda p, h, w: 0
    param_map: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown metric category {self.category!r}")
        object.__setattr__(self, "param_map", {p.name: p for p in self.params})

    def resolve(self, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in and every value checked; unknown names are an error, not ignored."""
        unknown = set(params) - set(self.param_map)
        if unknown:
            raise ParameterError(f"{self.title} has no parameter(s) {', '.join(sorted(unknown))}; it takes {', '.join(self.param_map) or 'none'}")
        return {p.name: p.check(params.get(p.name, p.default)) for p in self.params}

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


METRICS: Registry[MetricSpec] = Registry("metric")


def metric(name: str, **meta: Any) -> Callable[[Callable], Callable]:
    """Register a scoring function ``fn(ctx, maps, **params) -> {method: Tensor[B]}``."""
    return METRICS.decorator(lambda fn: MetricSpec(name=name, fn=fn, **meta), name)
