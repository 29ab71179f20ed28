"""The explainer registry: one decorated function per method, with the metadata the UI renders."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core import Registry
from core.errors import ParameterError

FAMILIES: dict[str, str] = {
    "gradient": "Gradients",
    "path": "Path methods",
    "cam": "CAM family",
    "perturbation": "Perturbation",
    "propagation": "Propagation / LRP",
    "control": "Controls",
}


@dataclass(frozen=True)
class Param:
    """A method parameter: default, range (numbers) or choices (strings), and help text."""

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    help: str = ""

    def check(self, value: Any) -> Any:
        """Return ``value`` coerced to the default's type, or raise ``ParameterError``."""
        if self.choices is not None:
            if value not in self.choices:
                raise ParameterError(f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}")
            return value
        if isinstance(self.default, bool):
            return bool(value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{self.name} must be a number; got {value!r}") from None
        if not math.isfinite(number):
            raise ParameterError(f"{self.name} must be finite; got {value!r}")
        if isinstance(self.default, int) and number != int(number):
            raise ParameterError(f"{self.name} must be a whole number; got {value!r}")
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise ParameterError(f"{self.name} must lie in [{self.low}, {self.high}]; got {value!r}")
        return int(number) if isinstance(self.default, int) else number


@dataclass(frozen=True)
class ExplainerSpec:
    """A registered method.

    ``cost(params, h, w, k) -> (forwards, forward_backwards)`` per image (k: CAM-layer channels): the pass count
    the benchmark compares the runtime against. ``signed``: the map has meaningful sign.
    ``needs_layer``: uses the model's CAM layer. ``stochastic``: takes a ``seed``.
    """

    name: str
    fn: Callable
    title: str
    family: str
    paper: str
    library: str
    params: tuple[Param, ...] = ()
    cost: Callable[[dict, int, int, int], tuple[int, int]] = lambda p, h, w, k: (0, 1)
    signed: bool = False
    needs_layer: bool = False
    stochastic: bool = False
    default: bool = False
    notes: str = ""
    param_map: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_map", {p.name: p for p in self.params})

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve(self, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``params``; unknown names or bad values raise ``ParameterError``."""
        unknown = set(params) - set(self.param_map)
        if unknown:
            raise ParameterError(f"{self.name} has no parameter {', '.join(sorted(unknown))}; it takes {', '.join(self.param_map) or 'none'}")
        out = self.defaults()
        out.update({k: self.param_map[k].check(v) for k, v in params.items()})
        return out


EXPLAINERS: Registry[ExplainerSpec] = Registry("explainer")


def explainer(name: str, **meta: Any) -> Callable[[Callable], Callable]:
    """Register ``fn(ctx, x[B,3,H,W], target[B], **params) -> Tensor[B,H,W]`` under ``name``."""

    def wrap(fn: Callable) -> Callable:
        EXPLAINERS.add(name, ExplainerSpec(name=name, fn=fn, **meta))
        return fn

    return wrap
