"""The metric registry: one decorated scoring function per metric, keyed by its name, with the metadata the UI, the
leaderboard and the CLI use.

A metric scores many methods' maps at once (shared forwards are then computed once)::

    @metric(title="My metric", category="faithfulness", higher_is_better=True, paper="...", conventions="...")
    def my_metric(ctx: MetricContext, maps: dict[str, Tensor], **params) -> dict[str, Tensor]:
        return {name: score[B] for name, m in maps.items()}     # maps: name -> [B,H,W]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from core.errors import ParameterError
from core.registry import Registry, Spec, registrar

CATEGORIES: dict[str, str] = {  # display order
    "faithfulness": "Faithfulness",
    "localization": "Localization",
    "complexity": "Complexity",
    "robustness": "Robustness",
    "randomization": "Randomization",
}


@dataclass(frozen=True)
class MetricContext:
    """What a metric gets besides the maps (all checked by ``metrics.common.prepare``): the model (``nn.Module``
    returning logits), ``x`` [B,C,H,W] in its input space, ``target`` [B], an optional ground-truth ``mask`` [B,H,W]
    (bool), a seed, and a chunk size for the forward passes (None: the engine's). For metrics that recompute maps
    (``explains=True``): ``source``, the model as the caller gave it (a ``zoo.LoadedModel`` keeps its CAM layer and
    pixel range), and ``method_params`` {method: params}; the maps' keys are then method names."""

    model: nn.Module
    x: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor | None = None
    seed: int = 0
    batch_size: int | None = None
    source: Any = None
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def explain(self, method: str, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``method``'s maps [N,H,W] for inputs ``x`` [N,C,H,W] (the same model, parameters and seed as the maps scored)."""
        import explainers

        if method not in explainers.names():
            raise ParameterError(f"this metric recomputes maps, so the maps must be keyed by method name; {method!r} is not a method")
        return explainers.explain(
            method, self.source if self.source is not None else self.model, x, target, **{"seed": self.seed, **self.method_params.get(method, {})}
        )


@dataclass(frozen=True, kw_only=True)
class MetricSpec(Spec):
    """A registered metric: ``fn(ctx, maps, **params) -> {method: Tensor[B]}``. ``conventions``: the settings a
    reader needs next to the number. ``explains``: it recomputes maps through ``ctx.explain`` (keys = method names). ``cost(params, h, w) -> forwards`` per image and method (0: no model call); for a metric that
    explains, the maps it recomputes per image and method (each costs the method's own passes; per randomization
    step for smooth MPRT)."""

    category: str
    higher_is_better: bool
    conventions: str
    needs_mask: bool = False
    explains: bool = False
    cost: Callable[[dict, int, int], int] = lambda p, h, w: 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown metric category {self.category!r}")

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


METRICS: Registry[MetricSpec] = Registry("metric")
_register = registrar(METRICS, MetricSpec)


def metric(**meta: object) -> Callable[[Callable], Callable]:
    """Register a scoring function ``fn(ctx, maps, **params) -> {method: Tensor[B]}`` under ``fn.__name__``."""
    return _register(**meta)
