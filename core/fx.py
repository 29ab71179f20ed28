"""torch.fx tracing made safe for a server with many sessions, and BatchNorm folding on a traced graph."""

from __future__ import annotations

import threading

import torch
import torch.fx as fx
from torch import nn

ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Softplus,
)
_LEAVES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Dropout) + ACTIVATIONS

FX_LOCK = threading.Lock()  # held while torch.fx traces (see Tracer); taken after a model's lock, never before


class Tracer(fx.Tracer):
    """Treat subclasses of standard layers (e.g. EfficientNet's same-padding conv) as leaves.

    Thread-safe: while it traces, torch.fx patches ``nn.Module.__call__`` and ``__getattr__`` for the whole
    process, so another session's forward pass (of any model) would run through this tracer and fail with
    "module is not installed as a submodule": calls from other threads go straight to the original methods.
    And torch.fx keeps its patches in one global "current patcher": two traces that overlap and end in the
    order they began revert each other's patches, leave a tracer's ``__call__`` installed for good and fail
    the second trace. So traces run one at a time (``FX_LOCK``: nothing else is locked while it is held).
    """

    def trace(self, root: nn.Module, concrete_args: dict | None = None) -> fx.Graph:  # type: ignore[override]
        with FX_LOCK:
            self._thread = threading.get_ident()
            return super().trace(root, concrete_args)

    def call_module(self, m: nn.Module, forward, args, kwargs):  # type: ignore[no-untyped-def]
        if threading.get_ident() != self._thread:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val, parameter_proxy_cache: dict):  # type: ignore[no-untyped-def]
        if threading.get_ident() != self._thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.GraphModule:
    """A torch.fx GraphModule of ``model`` (standard layers and their subclasses kept as leaves); shares its modules."""
    return fx.GraphModule(model, Tracer().trace(model))


def fold_batchnorm(gm: fx.GraphModule) -> int:
    """Fold every eval-mode BatchNorm2d fed only by a Conv2d into that conv, in place; returns how many."""
    modules = dict(gm.named_modules())
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0]
        if not (isinstance(src, fx.Node) and src.op == "call_module" and isinstance(modules.get(src.target), nn.Conv2d)):
            continue
        if len(src.users) != 1:
            continue
        _fold_bn(modules[src.target], modules[node.target])
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        folded += 1
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return folded


@torch.no_grad()
def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * scale + bn.bias
    conv.bias = nn.Parameter(new_bias, requires_grad=False)
