"""Layer-wise relevance propagation (zennit composites) on the model's canonical copy.

zennit attaches its rules per module and needs each module called once, BatchNorm merged
and residual sums as modules: ``canonical_copy`` provides exactly that (EfficientNet-Lite0
reuses its ReLU6 modules, so rules on the raw model would be wrong). Relevance at the output
starts as the target logit. Biases are left out of every rule's denominator
(``zero_params="bias"``): with BatchNorm folded, EfficientNet's biases are large and would
otherwise absorb almost all relevance over its 16 blocks; without them the input relevance
sums to the target logit (conservation, tested).
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
from explainers.hooks import tick_per_forward
from explainers.registry import explainer

NO_BIAS = "bias"


def relevance(ctx: Context, x: torch.Tensor, target: torch.Tensor, composite: Composite) -> torch.Tensor:
    """Input relevance [B,3,H,W] of the target logit under ``composite``."""
    gm = canonical_copy(ctx.model)
    tick_per_forward(gm, ctx.hooks, "relevance propagation")  # the copy is used under the model's lock; removed on exit
    xg = x.detach().clone().requires_grad_(True)
    with composite.context(gm) as modified:
        out = modified(xg)
        seed = torch.zeros_like(out).scatter(1, target.view(-1, 1), out.gather(1, target.view(-1, 1)))
        (rel,) = torch.autograd.grad(out, xg, grad_outputs=seed)
    return rel


_PAPER = "Bach et al. 2015, On Pixel-Wise Explanations...; Montavon et al. 2019, Layer-Wise Relevance Propagation: An Overview"


@explainer(
    title="LRP epsilon-z+-flat",
    family="propagation",
    paper=_PAPER,
    library="zennit EpsilonPlusFlat",
    signed=True,
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
    return relevance(ctx, x, target, composite).sum(1)
