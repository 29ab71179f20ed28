"""What a method reports next to its maps: per-image checks (``Diagnostic``) and the result that carries them.

A registered method keeps the contract ``fn(ctx, x, target, **params) -> [B,H,W]``; one that checks its own
output (Integrated Gradients' completeness, LRP's conservation) also calls ``ctx.report(key, Diagnostic(...))``.
``explainers.explain_with_info`` returns the maps with every report (``Explanation``); ``explainers.explain``
returns the maps alone, so callers that only want maps are unchanged::

    res = explainers.explain_with_info("integrated_gradients", model, x, target)
    res.maps                                             # [B,H,W]
    res.diagnostics["completeness"].values["error"]      # [B]: |sum(map) - (f(x) - f(x'))| / |f(x) - f(x')|
    res.captions(0)                                      # ["sum of attributions within 0.4% of f(x) - f(x') (128 steps)", ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Diagnostic:
    """A check a method ran on its own maps: named per-image ``values`` {name: [B]}, a caption ``template``
    (``str.format`` over one image's values, e.g. ``"within {error:.1%} ({steps} steps)"``) and, when the method
    has a pass criterion, ``ok`` [B] bool (e.g. completeness within the tolerance)."""

    template: str
    values: dict[str, torch.Tensor]
    ok: torch.Tensor | None = None

    def value(self, name: str, i: int = 0) -> float | int | bool:
        """One image's value ``name``, as a Python number."""
        return self.values[name][i].item()

    def caption(self, i: int = 0) -> str:
        """The caption of image ``i``: ``template`` filled with its values, "(check failed)" after it when ``ok`` is False."""
        text = self.template.format(**{k: v[i].item() for k, v in self.values.items()})
        return text if self.ok is None or bool(self.ok[i]) else f"{text} (check failed)"

    def select(self, index: torch.Tensor | slice) -> Diagnostic:
        """The same check restricted to some images (``index`` into the batch)."""
        return Diagnostic(self.template, {k: v[index] for k, v in self.values.items()}, None if self.ok is None else self.ok[index])


@dataclass(frozen=True)
class Explanation:
    """A method's maps [B,H,W] with its ``diagnostics`` {key: Diagnostic} and the spec's ``convention`` (what the
    map's values mean, e.g. LRP's sign convention; "" when the method states none)."""

    maps: torch.Tensor
    diagnostics: dict[str, Diagnostic] = field(default_factory=dict)
    convention: str = ""

    def captions(self, i: int = 0) -> list[str]:
        """Lines for image ``i``'s tile: each diagnostic's caption, in the order the method reported them."""
        return [d.caption(i) for d in self.diagnostics.values()]
