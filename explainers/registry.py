"""The explainer registry: one decorated function per method, keyed by its name, with the metadata the UI renders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.registry import Registry, Spec, registrar

FAMILIES: dict[str, str] = {
    "gradient": "Gradients",
    "path": "Path methods",
    "cam": "CAM family",
    "perturbation": "Perturbation",
    "propagation": "Propagation / LRP",
    "control": "Controls",
}


@dataclass(frozen=True, kw_only=True)
class ExplainerSpec(Spec):
    """A registered method (``fn(ctx, x[B,C,H,W], target[B], **params) -> [B,H,W]``).

    ``cost(params, h, w, k) -> (forwards, forward_backwards)`` per image (k: CAM-layer channels): the pass count
    the benchmark compares the runtime against and the time estimates use. ``signed``: the map has a meaningful
    sign. ``default``: in the Compare page's first grid. ``units``: maps with the same units can share one colour
    scale: "logit" (signed shares of the target's logit that add up to it, or to its difference from a baseline),
    "gradient" (magnitudes of d logit / d input); "" (each map on its own scale). ``convention``: what the map's
    values mean (e.g. LRP's sign convention), one short sentence for the tile caption; "" when there is nothing
    beyond the title.
    """

    family: str
    library: str
    cost: Callable[[dict, int, int, int], tuple[int, int]] = lambda p, h, w, k: (0, 1)
    signed: bool = False
    default: bool = False
    units: str = ""
    convention: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r} for {self.name}")


EXPLAINERS: Registry[ExplainerSpec] = Registry("explainer")

_register = registrar(EXPLAINERS, ExplainerSpec)


def explainer(**meta: object) -> Callable[[Callable], Callable]:
    """Register ``fn(ctx, x, target, **params) -> [B,H,W]`` under ``fn.__name__``: ``@explainer(title=..., family=..., ...)``."""
    return _register(**meta)
