"""Hooks that methods attach for a moment: the Guided Backprop / DeconvNet backward rules on every activation call,
the capture of a layer's output, and progress at every forward pass; each through a ``core.model_state.Hooks`` list.

The rules are attached by a forward hook on *each call* of every activation module: EfficientNet-Lite0 reuses one
``nn.ReLU6`` twice per block, and captum's rules only cover ``nn.ReLU`` (they would silently return the plain
gradient there).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from core import progress
from core.errors import MethodNotApplicable
from core.fx import ACTIVATIONS
from core.model_state import Hooks


def require_module_model(model: nn.Module, what: str) -> None:
    """Refuse TorchScript models for methods that hook the model's layers (hooks cannot be added after scripting)."""
    if isinstance(model, torch.jit.ScriptModule):
        raise MethodNotApplicable(f"{what}: this method hooks the model's layers, which a TorchScript model does not allow")


def has_conv(model: nn.Module) -> bool:
    """Whether the model has a 2-D convolution (for TorchScript models: by the scripted module's original class; for
    a ``torch.export`` program: by an ``aten.conv2d`` call in one of its graphs)."""
    return any(isinstance(m, nn.Conv2d) or getattr(m, "original_name", None) == "Conv2d" or _calls_conv(m) for m in model.modules())


def _calls_conv(module: nn.Module) -> bool:
    graph = getattr(module, "graph", None)  # a TorchScript module's graph is a torch._C.Graph: not looked into
    nodes = graph.nodes if isinstance(graph, torch.fx.Graph) else ()
    return any(n.target in (torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default) for n in nodes)


def is_exported(model: nn.Module) -> bool:
    """Whether ``model`` is a loaded ``torch.export`` program (its layers are graphs of aten operators, not nn layers)."""
    from torch.export.unflatten import InterpreterModule, UnflattenedModule

    return isinstance(model, (InterpreterModule, UnflattenedModule)) or type(model).__name__ == "GraphModule" and hasattr(model, "_in_spec")


class _GuidedGrad(torch.autograd.Function):
    """Identity forward; backward keeps only positive gradients (the activation's own derivative is then applied by
    its backward): Guided Backprop (Springenberg et al. 2015)."""

    @staticmethod
    def forward(ctx, out):  # type: ignore[override]
        return out.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad.clamp(min=0)


class _DeconvGrad(torch.autograd.Function):
    """Forward returns the activation's output; backward sends ReLU(grad) straight to the activation's input,
    skipping its derivative: DeconvNet (Zeiler & Fergus 2014)."""

    @staticmethod
    def forward(ctx, inp, out):  # type: ignore[override]
        return out.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad.clamp(min=0), None


@contextlib.contextmanager
def rectified_activations(model: nn.Module, mode: str) -> Iterator[int]:
    """Apply the guided (``mode="guided"``) or deconvnet rule at every activation call; yields how many modules."""
    require_module_model(model, "Guided Backprop / DeconvNet")
    acts = [m for m in model.modules() if isinstance(m, ACTIVATIONS)]
    if not acts:
        raise MethodNotApplicable("the model has no activation modules (nn.ReLU, nn.ReLU6, ...) to attach the rule to")
    inplace = {m: m.inplace for m in acts if getattr(m, "inplace", False)}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        if mode == "guided":
            return _GuidedGrad.apply(output)
        return _DeconvGrad.apply(inputs[0], output)

    for m in inplace:
        m.inplace = False
    try:
        with Hooks() as hooks:
            for m in acts:
                hooks.forward(m, hook)
            yield len(acts)
    finally:
        for m, flag in inplace.items():
            m.inplace = flag


@contextlib.contextmanager
def capture_layer(module: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Store the module's output (with grad kept) under ``store["act"]`` during a forward."""
    store: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _i: tuple, out: torch.Tensor) -> None:
        if "act" in store:
            raise MethodNotApplicable("the CAM layer is called more than once per forward pass")
        if out.requires_grad:
            out.retain_grad()
        store["act"] = out

    with Hooks() as hooks:
        hooks.forward(module, hook)
        yield store


def locate_cam_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The CAM layer of a plain module, as torchcam's ``locate_candidate_layer`` finds it: from one forward pass of
    ``x`` [B,C,H,W] (no gradients; hooks removed after), the last module to finish whose output is [B,K,h,w] with
    h*w > 1, i.e. the feature map before global pooling (an outer block wins over its own last child: ``layer4`` of a
    ResNet). Modules called more than once per pass (a shared activation) are skipped: their output is ambiguous."""
    calls: dict[str, int] = {}
    order: list[tuple[str, bool]] = []

    def record(name: str):  # noqa: ANN202
        def hook(_m: nn.Module, _i: tuple, out: object) -> None:
            calls[name] = calls.get(name, 0) + 1
            order.append((name, isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-2:].numel() > 1))

        return hook

    with Hooks() as hooks, torch.no_grad():
        for name, module in model.named_modules():
            if name:
                hooks.forward(module, record(name))
        model(x)
    found = next((n for n, spatial in reversed(order) if spatial and calls[n] == 1), None)
    if found is None:
        raise MethodNotApplicable("no layer of this model outputs a [B,K,h,w] feature map with h*w > 1: name the CAM layer with layer=...")
    return found


def tick_per_forward(model: nn.Module, hooks: Hooks, title: str) -> None:
    """While a progress reporter listens: ``progress.passes`` at every forward pass of ``model`` (a pre-hook on its
    first layer, in the computation's hook list, counting the batch's images). Nothing for TorchScript."""
    if not progress.active() or isinstance(model, torch.jit.ScriptModule):
        return
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    if first is not None:
        hooks.forward_pre(first, lambda _m, args: progress.passes(args[0].shape[0] if args and hasattr(args[0], "shape") else 1, title))
