"""What a method sees of the model: the ``Context`` handed to every registered explainer."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from core.errors import MethodNotApplicable
from core.model_state import Hooks
from explainers.diagnostics import Diagnostic
from explainers.hooks import locate_cam_layer


@dataclass
class Context:
    """A method's view of the model, valid inside ``explainers.explain`` (which holds the model's lock).

    ``model``: eval mode, parameters frozen. ``hooks``: the computation's hook list, removed when ``explain``
    returns (register hooks through it, or through a nested ``Hooks`` block). ``layer``: name of the module whose
    output is the CAM feature map (None: located from a forward pass, ``explainers.hooks.locate_cam_layer``).
    ``bounds``: the input domain's lowest and highest values per channel, [1,C,1,1] each (the normalized images of black and white pixels).
    ``diagnostics``: what the method reported about its maps (``report``), returned by ``explain_with_info``.
    """

    model: nn.Module
    hooks: Hooks
    layer: str | None = None
    bounds: tuple[torch.Tensor, torch.Tensor] | None = None
    diagnostics: dict[str, Diagnostic] = field(default_factory=dict)

    def report(self, key: str, diagnostic: Diagnostic) -> None:
        """Attach a per-image check to this computation's result (one per key; a later report replaces it)."""
        self.diagnostics[key] = diagnostic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits float32 [B,K] of ``x`` [B,C,H,W] from the forward-only engine (``metrics.engine``: ONNX Runtime on
        a private copy, within 1e-4 of eager, in its measured chunks; no gradients). For every forward-only pass of a
        method (masked or perturbed inputs); methods that need gradients call ``model`` itself."""
        from metrics.engine import engine  # here, not at the top: metrics imports explainers

        return engine(self.model, x)(x)

    def layer_module(self, x: torch.Tensor) -> nn.Module:
        """The CAM layer: ``layer`` by name, else located from one forward pass of ``x[:1]`` (``locate_cam_layer``:
        the last module with a spatial 4-D output before global pooling)."""
        modules = dict(self.model.named_modules())
        if not self.layer:
            self.layer = locate_cam_layer(self.model, x[:1])
        if self.layer not in modules:
            raise MethodNotApplicable(f"the CAM layer {self.layer!r} is not a module of this model")
        return modules[self.layer]

    def pixel_bounds(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The input domain [1,C,1,1] twice (low, high): the model's, else the batch's per-channel range."""
        if self.bounds is not None:
            return self.bounds[0].to(x), self.bounds[1].to(x)
        return x.amin(dim=(0, 2, 3), keepdim=True), x.amax(dim=(0, 2, 3), keepdim=True)
