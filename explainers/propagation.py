"""Layer-wise relevance propagation (zennit composites) on the model's canonical copy.

zennit attaches its rules per module and needs each module called once, BatchNorm merged
and residual sums as modules: ``canonical_copy`` provides exactly that (EfficientNet-Lite0
reuses its ReLU6 modules, so rules on the raw model would be wrong). Biases are left out of
every rule's denominator (``zero_params="bias"``): with BatchNorm folded, EfficientNet's biases
are large and would otherwise absorb almost all relevance over its 16 blocks.

Output relevance (the sign convention). zennit leaves it to the caller (its documentation
uses a one-hot vector); Montavon et al. 2019 (Sec. 10.2) start from the target's logit, the
bias being a neuron of its own, so the output layer hands each feature j exactly its
contribution a_j w_jc. Since the biases here take no relevance, the relevance starts as the
target's logit *without the output layer's bias*, z_c = f_c - b_c = sum_j a_j w_jc: the output
layer then gives each feature its contribution a_j w_jc, whatever the logit's sign, and
positive relevance means "raises the target's logit" for every target. (Starting from the
signed logit f_c, as before, scaled every contribution by f_c / z_c: a logit made negative by
the bias flipped the whole map.) A target whose features speak against it (z_c < 0) gets a
map that is negative where they do: ranked by value, its most negative pixels come last.
Deep Taylor applies z+ at every layer, which decomposes positive evidence (Montavon et al.
2017 define its relevance as positive): it starts from |z_c|, so its map is >= 0 for every
target. Each method reports "conservation": the share of the output relevance that reaches
the input (1 on ReLU networks, tested; about 4% on EfficientNet-Lite0, see the README).
"""

from __future__ import annotations

import torch
from torch import nn
from zennit.composites import EpsilonAlpha2Beta1Flat, EpsilonPlusFlat, SpecialFirstLayerMapComposite
from zennit.core import Composite
from zennit.layer import Sum
from zennit.rules import Norm, Pass, ZBox, ZPlus
from zennit.types import Activation, AvgPool, Convolution

from core.registry import Param
from explainers.canonical import canonical_copy
from explainers.context import Context
from explainers.diagnostics import Diagnostic
from explainers.hooks import tick_per_forward
from explainers.registry import explainer

NO_BIAS = "bias"


def output_bias(gm: torch.fx.GraphModule) -> torch.Tensor | None:
    """The bias [K] of the ``nn.Linear`` whose output is the model's output, or None when the last operation is
    something else (the relevance then starts from the logit itself)."""
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    if isinstance(out, torch.fx.Node) and out.op == "call_module":
        mod = gm.get_submodule(str(out.target))
        if isinstance(mod, nn.Linear) and mod.bias is not None:
            return mod.bias.detach()
    return None


def relevance(ctx: Context, x: torch.Tensor, target: torch.Tensor, composite: Composite, positive: bool = False) -> torch.Tensor:
    """Input relevance [B,3,H,W] under ``composite``, starting from the target's logit without the output layer's
    bias, z_c (its absolute value when ``positive``); see the module docstring. Reports "conservation"."""
    gm = canonical_copy(ctx.model)
    tick_per_forward(gm, ctx.hooks, "relevance propagation")  # the copy is used under the model's lock; removed on exit
    xg = x.detach().clone().requires_grad_(True)
    with composite.context(gm) as modified:
        out = modified(xg)
        logit = out.gather(1, target.view(-1, 1))
        bias = output_bias(gm)
        start = (logit - bias[target].view(-1, 1) if bias is not None else logit).detach()
        start = start.abs() if positive else start
        (rel,) = torch.autograd.grad(out, xg, grad_outputs=torch.zeros_like(out).scatter(1, target.view(-1, 1), start))
    total = start[:, 0]
    share = rel.detach().flatten(1).sum(1) / torch.where(total != 0, total, torch.ones_like(total))
    ctx.report("conservation", Diagnostic("relevance at the input: {share:.1%} of the output relevance", {"share": share.float().cpu()}))
    return rel


SIGNED = "positive raises the target's logit (relevance starts from logit - bias)"
_PAPER = "Bach et al. 2015, On Pixel-Wise Explanations...; Montavon et al. 2019, Layer-Wise Relevance Propagation: An Overview"


@explainer(
    title="LRP epsilon-z+-flat",
    family="propagation",
    paper=_PAPER,
    library="zennit EpsilonPlusFlat",
    signed=True,
    convention=SIGNED,
    default=True,
    params=(Param("epsilon", 1e-6, 0.0, 10.0, 1e-6, help="stabilizer of the epsilon rule on linear layers"),),
    cost=lambda p, h, w, k: (0, 1),
    units="logit",
)
def lrp_epsilon_plus(ctx: Context, x: torch.Tensor, target: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Flat rule at the first layer, z+ on convolutions, epsilon on linear layers."""
    return relevance(ctx, x, target, EpsilonPlusFlat(epsilon=epsilon, zero_params=NO_BIAS)).sum(1)


@explainer(
    title="LRP alpha2-beta1",
    family="propagation",
    paper=_PAPER,
    library="zennit EpsilonAlpha2Beta1Flat",
    signed=True,
    convention=SIGNED,
    params=(Param("epsilon", 1e-6, 0.0, 10.0, 1e-6),),
    cost=lambda p, h, w, k: (0, 1),
    units="logit",
)
def lrp_alpha_beta(ctx: Context, x: torch.Tensor, target: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Flat rule at the first layer, alpha=2 beta=1 on convolutions, epsilon on linear layers."""
    return relevance(ctx, x, target, EpsilonAlpha2Beta1Flat(epsilon=epsilon, zero_params=NO_BIAS)).sum(1)


@explainer(
    title="Deep Taylor (z+, z-box)",
    family="propagation",
    paper="Montavon et al. 2017, Explaining Nonlinear Classification Decisions with Deep Taylor Decomposition",
    library="zennit ZPlus + ZBox",
    convention="relevance >= 0, the positive evidence for the target (z+ rules), starting from |logit - bias|",
    cost=lambda p, h, w, k: (0, 1),
    units="logit",
)
def deep_taylor(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """z+ on every convolution and linear layer, z^B (box = valid pixel range) at the input."""
    low, high = ctx.pixel_bounds(x)
    composite = SpecialFirstLayerMapComposite(
        layer_map=[(Activation, Pass()), (Sum, Norm()), (AvgPool, Norm()), (Convolution, ZPlus(zero_params=NO_BIAS)), (nn.Linear, ZPlus(zero_params=NO_BIAS))],
        first_map=[(Convolution, ZBox(low=low.expand_as(x), high=high.expand_as(x), zero_params=NO_BIAS))],
    )
    return relevance(ctx, x, target, composite, positive=True).sum(1)
