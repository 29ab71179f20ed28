"""PatternNet and PatternAttribution (Kindermans et al. 2018, ICLR): backward passes through the model's canonical copy
with learned patterns (``explainers.patterns``) in place of the weights.

The pass starts at the output with the target logit y_c (the other logits 0; iNNvestigate's convention) and runs
backwards through autograd, with these layers changed by forward hooks (the forward values are untouched, so every
gate is the forward pass's own):

- conv and linear layers (depthwise and grouped convs included: a pattern has its weight's shape, groups and all):
  PatternNet back-projects with the pattern a in place of w, PatternAttribution with w * a (elementwise). Also the
  classifier's linear layer (its pattern is S_a: no gate follows it).
- residual additions (``Sum``): each branch gets a_u r, a_v r with its learned per-channel pattern (a_u + a_v = 1)
  instead of the gradient's copy of r to both; w = 1, so both methods use a.
- BatchNorm that could not be folded into a conv (y = s x + t per channel): its pattern is exactly 1/s (one input per
  neuron, whatever the data), so PatternNet multiplies by 1/s and PatternAttribution by s * (1/s) = 1.

Every other module keeps its derivative: ReLU is the paper's gate (1 where y > 0); ReLU6 passes where 0 < y < 6, so
its upper clip stops the signal of saturated units like a ReLU's zero (the two-component patterns before it are
learned on 0 < y < 6 to match); max pooling routes to the maximum (the paper's switches); average pooling spreads
1/k to each of its k inputs: a uniform pattern, exact for PatternAttribution (w * a = 1/k) and, for PatternNet, the
uniform pattern 1 up to the constant factor k (no effect on the map unless pooled and unpooled copies of one tensor
meet, e.g. a squeeze-excitation product). Approximations outside the paper's analysis: activations that are not
gates (SiLU, Hardswish, GELU) keep their derivative, and products of two activations (squeeze-excitation) the
product rule; concatenation and reshapes are exact.

Map: PatternNet returns the signal estimate in input space [B,C,H,W]; its map is the Euclidean norm over channels
(unsigned). PatternAttribution's map is the sum over channels (signed).
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.func import functional_call

from core.errors import MethodNotApplicable, ParameterError
from core.model_state import Hooks, fingerprint
from core.registry import Param
from explainers.canonical import canonical_copy
from explainers.context import Context
from explainers.patterns import ESTIMATORS, Layer, Patterns, outer_calls_only, pattern_layers
from explainers.registry import explainer

PAPER = "Kindermans et al. 2018, Learning how to explain neural networks: PatternNet and PatternAttribution (ICLR)"
LIBRARY = "by hand (no maintained PyTorch implementation; iNNvestigate had it for Keras)"
HOW_TO_FIT = (
    "no patterns learned for these weights yet: PatternNet and PatternAttribution need patterns learned from images once "
    "(a few minutes on a CPU). Learn them in the dashboard, or run `python -m explainers.pattern_store --model <name> "
    "[--data FOLDER]`, or call `explainers.pattern_store.fit_and_store(loaded_model)`"
)


@dataclass(frozen=True)
class PatternsParam(Param):
    """The ``patterns`` parameter: a choice of stored patterns by estimator (the UI's), or from the API a
    ``Patterns`` object or the path of a saved ``.safetensors`` file."""

    def check(self, value: Any) -> Any:
        if isinstance(value, Patterns) or value in ESTIMATORS:
            return value
        if isinstance(value, (str, os.PathLike)) and str(value).endswith(".safetensors"):
            if not Path(value).is_file():
                raise ParameterError(f"patterns: no file {value}")
            return str(value)
        raise ParameterError(f"patterns must be one of {', '.join(ESTIMATORS)}, a Patterns object or a .safetensors file; got {value!r}")


PATTERNS = PatternsParam(
    "patterns",
    "two_component",
    choices=ESTIMATORS,
    help="the stored patterns of these weights: two_component (S_a+-, the paper's choice for ReLU nets) or linear (S_a)",
)


def resolve_patterns(model: nn.Module, value: Any) -> Patterns:
    """The ``patterns`` parameter -> ``Patterns`` of ``model``'s exact weights, or ``MethodNotApplicable`` saying how to
    learn them."""
    from explainers import pattern_store  # not at import: ``python -m explainers.pattern_store`` runs it as __main__

    fp = fingerprint(model)
    if isinstance(value, Patterns):
        patterns = value
    elif value in ESTIMATORS:
        patterns = pattern_store.stored(fp, value)
        if patterns is None:
            raise MethodNotApplicable(HOW_TO_FIT)
    else:
        patterns = pattern_store.load(Path(value))
    if patterns.fingerprint != fp:
        raise MethodNotApplicable(f"these patterns were learned for other weights (fingerprint {patterns.fingerprint}, the model's is {fp}): {HOW_TO_FIT}")
    return patterns


def _check_shapes(gm: fx.GraphModule, layers: dict[str, Layer], patterns: Patterns) -> None:
    missing = [n for n in layers if n not in patterns.tensors]
    if missing:
        raise MethodNotApplicable(f"the patterns lack layers of this model ({', '.join(missing[:3])}): learn them again")
    for name, layer in layers.items():
        expected = (patterns.tensors[name].shape[0], 2) if layer.kind == "sum" else tuple(gm.get_submodule(name).weight.shape)
        if tuple(patterns.tensors[name].shape) != expected:
            raise MethodNotApplicable(f"pattern of {name} has shape {tuple(patterns.tensors[name].shape)}, the layer needs {expected}")


def _swap_backward(out: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``out``'s values with ``z``'s backward: out + (z - z) is out exactly, and the gradient flows through z only."""
    return out.detach() + (z - z.detach())


def _kernel_hook(back: torch.Tensor) -> Any:
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
        return _swap_backward(out, functional_call(module, {"weight": back}, (inputs[0],)))

    return outer_calls_only(hook)


def _sum_hook(back: torch.Tensor) -> Any:
    def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
        s = inputs[0]
        a = back.view(1, back.shape[0], *([1] * (s.dim() - 3)), 2)
        return _swap_backward(out, (s * a).sum(-1))

    return hook


def _batchnorm_hook(attribution: bool) -> Any:
    def hook(bn: nn.BatchNorm2d, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(bn.running_var + bn.eps) * (bn.weight if bn.weight is not None else 1)
        nonzero = scale != 0
        factor = nonzero.to(scale.dtype) if attribution else torch.where(nonzero, 1 / torch.where(nonzero, scale, 1), 0)
        return _swap_backward(out, inputs[0] * factor.view(1, -1, *([1] * (inputs[0].dim() - 2))))

    return hook


def _attach(gm: fx.GraphModule, layers: dict[str, Layer], patterns: Patterns, attribution: bool, hooks: Hooks, device: torch.device) -> None:
    """The forward hooks of the module docstring on the canonical copy."""
    for name, layer in layers.items():
        module = gm.get_submodule(name)
        a = patterns.tensors[name].to(device)
        if layer.kind == "sum":
            hooks.forward(module, _sum_hook(a))
        else:
            hooks.forward(module, _kernel_hook(a * module.weight if attribution else a))
    for module in gm.modules():
        if isinstance(module, nn.BatchNorm2d) and not module.training and module.running_var is not None:
            hooks.forward(module, _batchnorm_hook(attribution))


class _Rescale(torch.autograd.Function):
    """Identity forward; the backward divides each image's gradient by its largest absolute value (when nonzero)."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        peak = g.abs().flatten(1).amax(1)
        return g / torch.where(peak > 0, peak, 1).view(-1, *([1] * (g.dim() - 1)))


_NON_TENSOR_METHODS = {"size", "dim", "numel"}
_NON_TENSOR_ATTRS = {"shape", "dtype", "device", "ndim"}


def _non_tensor(node: fx.Node, non_tensors: set[fx.Node]) -> bool:
    """Nodes that surely carry no gradient: shapes, sizes and their items, parameters and buffers."""
    if node.op == "get_attr" or (node.op == "call_method" and node.target in _NON_TENSOR_METHODS):
        return True
    if node.op == "call_function" and node.target is getattr and len(node.args) > 1 and node.args[1] in _NON_TENSOR_ATTRS:
        return True
    return node.op == "call_function" and node.target is operator.getitem and node.args[0] in non_tensors


def bottlenecks(gm: fx.GraphModule) -> list[str]:
    """Modules whose output every path from the input to the output passes through: no tensor edge of the graph
    jumps over them (in graph order). Rescaling the backward signal there changes it by a factor per image only."""
    nodes = list(gm.graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    non_tensors: set[fx.Node] = set()
    out, reach = [], -1
    for i, node in enumerate(nodes):
        if reach <= i and node.op == "call_module":
            out.append(str(node.target))
        if _non_tensor(node, non_tensors):
            non_tensors.add(node)
        else:
            reach = max([reach, *(pos[u] for u in node.users)])
    return out


def pattern_backward(ctx: Context, x: torch.Tensor, target: torch.Tensor, patterns: Any, *, attribution: bool, rescale: bool = True) -> torch.Tensor:
    """PatternNet's signal (``attribution`` False) or PatternAttribution's relevance in input space [B,C,H,W] for the
    target logits, ``patterns`` as the registered methods take it (see ``resolve_patterns``).

    ``rescale``: at every bottleneck module (``bottlenecks``) the backward signal is divided by its per-image maximum,
    so that it stays finite in float32 through deep nets (PatternNet's back-projection grows about tenfold per
    EfficientNet block: 1e21 after the 16 blocks on the photos); the result is then exact up to a positive factor per
    image. ``rescale=False``: the exact values (they may overflow in deep nets)."""
    resolved = resolve_patterns(ctx.model, patterns)
    gm = canonical_copy(ctx.model)
    layers = pattern_layers(gm)
    _check_shapes(gm, layers, resolved)
    xg = x.detach().clone().requires_grad_(True)
    with Hooks() as hooks:
        _attach(gm, layers, resolved, attribution, hooks, x.device)
        for name in bottlenecks(gm) if rescale else ():
            hooks.forward(gm.get_submodule(name), lambda _m, _i, out: _Rescale.apply(out))
        out = gm(xg)
        t = target.view(-1, 1)
        seed = torch.zeros_like(out).scatter(1, t, out.gather(1, t))
        (grad,) = torch.autograd.grad(out, xg, grad_outputs=seed)
    return grad


def unit_peak(m: torch.Tensor) -> torch.Tensor:
    """[B,H,W] divided by each map's largest absolute value (an all-zero map stays 0)."""
    peak = m.abs().flatten(1).amax(1)
    return m / torch.where(peak > 0, peak, 1).view(-1, 1, 1)


@explainer(title="PatternNet", family="propagation", paper=PAPER, library=LIBRARY, params=(PATTERNS,), cost=lambda p, h, w, k: (1, 1))
def pattern_net(ctx: Context, x: torch.Tensor, target: torch.Tensor, patterns: Any) -> torch.Tensor:
    """The estimated signal of the target logit in input space (patterns in place of weights), norm over channels,
    scaled to a maximum of 1 per image."""
    return unit_peak(pattern_backward(ctx, x, target, patterns, attribution=False).norm(dim=1))


@explainer(title="PatternAttribution", family="propagation", paper=PAPER, library=LIBRARY, signed=True, params=(PATTERNS,), cost=lambda p, h, w, k: (1, 1))
def pattern_attribution(ctx: Context, x: torch.Tensor, target: torch.Tensor, patterns: Any) -> torch.Tensor:
    """Relevance of the target logit with w * a in place of w, summed over channels, scaled to a maximum absolute
    value of 1 per image."""
    return unit_peak(pattern_backward(ctx, x, target, patterns, attribution=True).sum(1))
