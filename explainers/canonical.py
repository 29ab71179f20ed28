"""The canonical copy of a model for LRP and DeepLIFT: an fx-traced private copy (built once per model) in which
every activation call has its own module, BatchNorm is folded into the preceding convolution and residual additions
are ``zennit.layer.Sum`` modules. Rules are well defined there; the shared model is never modified. The copy is
cached per model and shared by sessions, so it is used under the original model's lock (``core.model_state``)."""

from __future__ import annotations

import copy
import operator
import weakref

import torch
import torch.fx as fx
from torch import nn
from zennit.layer import Sum

from core import progress
from core.errors import MethodNotApplicable
from core.fx import Tracer, fold_batchnorm
from core.model_state import model_lock, private_copy
from explainers.hooks import is_exported, require_module_model

_CANONICAL: weakref.WeakKeyDictionary[nn.Module, fx.GraphModule] = weakref.WeakKeyDictionary()


def canonical_copy(model: nn.Module) -> fx.GraphModule:
    """The cached LRP-ready copy of ``model`` (see the module docstring); same outputs in eval mode."""
    with model_lock(model):
        gm = _CANONICAL.get(model)
        if gm is None:
            progress.tick("building the model's canonical copy (once per model)")
            gm = _CANONICAL[model] = _build(model)
        return gm


def forget(model: nn.Module) -> None:
    """Drop the canonical copy cached for ``model`` (call after changing its weights in place)."""
    with model_lock(model):
        _CANONICAL.pop(model, None)


def _build(model: nn.Module) -> fx.GraphModule:
    require_module_model(model, "LRP / DeepLIFT")
    if is_exported(model):
        raise MethodNotApplicable("LRP / DeepLIFT assign rules by layer type (nn.Conv2d, nn.ReLU, ...), and a torch.export program's layers are graphs of aten operators")
    private = private_copy(model)
    try:
        graph = Tracer().trace(private)
    except Exception as exc:
        raise MethodNotApplicable(f"the model cannot be traced by torch.fx ({type(exc).__name__}: {str(exc)[:120]})") from exc
    gm = fx.GraphModule(private, graph)
    _one_module_per_call_and_sums(gm)
    fold_batchnorm(gm)
    gm.graph.lint()
    gm.recompile()
    for p in gm.parameters():
        p.requires_grad_(False)
    return gm.eval()


def _one_module_per_call_and_sums(gm: fx.GraphModule) -> None:
    """In graph order: a module called a second time gets its own copy (``unshared_<n>``; in-place flags off), and a
    residual addition of two tensors becomes a ``Sum`` module over a stacked input (``residual_sum_<n>``), so LRP
    can split relevance between the branches. One counter numbers both (layer names are keys of saved patterns)."""
    modules = dict(gm.named_modules())
    seen: set[str] = set()
    counter = 0
    for node in list(gm.graph.nodes):
        if node.op == "call_module":
            if node.target in seen:
                counter += 1
                new_name = f"unshared_{counter}"
                gm.add_submodule(new_name, copy.deepcopy(modules[node.target]))
                node.target = new_name
            seen.add(node.target)
            mod = gm.get_submodule(node.target)
            if hasattr(mod, "inplace"):
                mod.inplace = False
        elif node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add):
            a, b = node.args[:2]
            if isinstance(a, fx.Node) and isinstance(b, fx.Node) and not node.kwargs:
                counter += 1
                name = f"residual_sum_{counter}"
                gm.add_submodule(name, Sum())
                with gm.graph.inserting_before(node):
                    stacked = gm.graph.call_function(torch.stack, ((a, b),), {"dim": -1})
                    summed = gm.graph.call_module(name, (stacked,))
                node.replace_all_uses_with(summed)
                gm.graph.erase_node(node)
