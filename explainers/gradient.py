"""Gradient and path methods (captum), plus Guided Backprop / DeconvNet with our activation rules."""

from __future__ import annotations

import torch
import torchvision.transforms.functional as TF
from captum.attr import DeepLift, GradientShap, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
from captum.attr._core import deep_lift as _captum_deep_lift
from torch import nn

from core.registry import SEED, Param
from core.rng import seeded
from explainers.canonical import canonical_copy
from explainers.context import Context
from explainers.diagnostics import Diagnostic
from explainers.hooks import rectified_activations
from explainers.registry import explainer

RESCALE_ACTIVATIONS = (nn.ReLU6, nn.Hardtanh, nn.LeakyReLU)


def extend_captum_deeplift() -> None:
    """Let captum's DeepLIFT apply its rescale rule to ``RESCALE_ACTIVATIONS`` too (it lists only a few modules and
    would treat the others as linear, silently). The rule (multiplier = finite-difference slope) holds for any
    elementwise monotone activation; ReLU6 is the default model's. Changes captum's module-level table, idempotent."""
    for act in RESCALE_ACTIVATIONS:
        _captum_deep_lift.SUPPORTED_NON_LINEAR.setdefault(act, _captum_deep_lift.nonlinear)

PAPERS = {
    "saliency": "Simonyan et al. 2014, Deep Inside Convolutional Networks",
    "ixg": "Shrikumar et al. 2016, Not Just a Black Box",
    "ig": "Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks",
    "smoothgrad": "Smilkov et al. 2017, SmoothGrad",
    "vargrad": "Adebayo et al. 2018, Local Explanation Methods for Deep Neural Networks Lack Sensitivity to Parameter Values",
    "gshap": "Lundberg & Lee 2017; Erion et al. 2021 (Expected Gradients)",
    "guided": "Springenberg et al. 2015, Striving for Simplicity",
    "deconv": "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks",
    "deeplift": "Shrikumar et al. 2017, Learning Important Features Through Propagating Activation Differences",
}


def abs_max(attr: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> [B,H,W]: max over channels of the absolute value (Simonyan et al.)."""
    return attr.abs().amax(dim=1)


def channel_sum(attr: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> [B,H,W]: signed sum over channels (attributions add up)."""
    return attr.sum(dim=1)


def baseline_for(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Reference input: ``zero`` (the dataset mean in normalized space) or ``blur`` (Gaussian, sigma 5)."""
    if kind == "blur":
        return TF.gaussian_blur(x, kernel_size=[11, 11], sigma=[5.0, 5.0])
    return torch.zeros_like(x)


def noise_sigma(x: torch.Tensor, level: float) -> float:
    """SmoothGrad's sigma = level * (max - min) of the input (call it on one image: its own range)."""
    return float(level * (x.max() - x.min()))


COMPLETENESS_TOLERANCE = 0.05  # Sundararajan et al. 2017, Sec. 5: attributions within 5% of f(x) - f(x')


def target_logits(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The target logit of each input, [N] (``target`` [N]), without gradients."""
    with torch.no_grad():
        return model(inputs).gather(1, target.view(-1, 1))[:, 0].float()


def completeness_error(attr: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """|sum of attributions - gap| / |gap| per image, [B] (``attr`` [B,C,H,W], ``gap`` [B] = f(x) - f(x')); the
    denominator is floored at 1e-6, so a gap near zero reads as a large error."""
    return ((attr.detach().flatten(1).sum(1).float() - gap).abs() / gap.abs().clamp_min(1e-6)).cpu()


def completeness_report(error: torch.Tensor, reference: str, detail: str = "", ok: torch.Tensor | None = None, **values: torch.Tensor) -> Diagnostic:
    """A completeness check [B] as a diagnostic: "sum of attributions within 0.4% of <reference> (<detail>)"; ``detail``
    may name ``values`` ([B] each), e.g. "{steps} steps"."""
    template = "sum of attributions within {error:.1%} of " + reference + (f" ({detail})" if detail else "")
    return Diagnostic(template, {"error": error, **{k: v.cpu() for k, v in values.items()}}, ok)


@explainer(
    title="Saliency",
    family="gradient",
    paper=PAPERS["saliency"],
    library="captum Saliency",
    cost=lambda p, h, w, k: (0, 1),
    default=True,
    units="gradient",
)
def saliency(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|d y_c / d x|, max over channels."""
    return abs_max(Saliency(ctx.model).attribute(x, target=target, abs=True))


@explainer(
    title="Gradient x Input",
    family="gradient",
    paper=PAPERS["ixg"],
    library="captum InputXGradient",
    signed=True,
    cost=lambda p, h, w, k: (0, 1),
    units="logit",
)
def input_x_gradient(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """x * d y_c / d x, summed over channels."""
    return channel_sum(InputXGradient(ctx.model).attribute(x, target=target))


@explainer(
    title="Integrated Gradients",
    family="path",
    paper=PAPERS["ig"],
    library="captum IntegratedGradients, steps doubled until complete",
    signed=True,
    default=True,
    convention="positive raises the target's logit",
    params=(
        Param("n_steps", 32, 2, 1024, 1, help="points on the path (Gauss-Legendre) to start with"),
        Param("tolerance", COMPLETENESS_TOLERANCE, 0.0, 1.0, 0.005, help="completeness error allowed; the steps double until it is met (0: never)"),
        Param("max_steps", 256, 2, 1024, 1, help="the doubling stops here (Sundararajan et al.: 20 to 300 steps are enough)"),
        Param("baseline", "zero", choices=("zero", "blur"), help="zero = mean image in the model's input space"),
        Param("batch_size", 8, 1, 512, 1, help="path points per forward/backward pass"),
    ),
    cost=lambda p, h, w, k: (2, p["n_steps"]),
    units="logit",
)
def integrated_gradients(
    ctx: Context, x: torch.Tensor, target: torch.Tensor, n_steps: int, tolerance: float, max_steps: int, baseline: str, batch_size: int
) -> torch.Tensor:
    """(x - x') * mean grad along the straight path, summed over channels. Completeness (sum = f(x) - f(x')) is
    checked per image, and an image that misses ``tolerance`` is recomputed with twice the steps until it is met or
    the next doubling would pass ``max_steps`` (Sundararajan et al. 2017, Sec. 5). Reports "completeness"."""
    base = baseline_for(x, baseline)
    gap = target_logits(ctx.model, x, target) - target_logits(ctx.model, base, target)
    ig = IntegratedGradients(ctx.model)
    attr, steps = torch.zeros_like(x), torch.full((len(x),), n_steps)
    todo, n = torch.arange(len(x)), n_steps
    while len(todo):
        attr[todo] = ig.attribute(x[todo], baselines=base[todo], target=target[todo], n_steps=n, internal_batch_size=batch_size * len(todo)).detach()
        steps[todo] = n
        error = completeness_error(attr, gap)
        todo, n = (todo[error[todo] > tolerance], 2 * n) if tolerance > 0 and 2 * n <= max_steps else (todo[:0], n)
    ok = error <= tolerance if tolerance > 0 else None
    ctx.report("completeness", completeness_report(error, "f(x) - f(x')", "{steps} steps", ok, steps=steps))
    return channel_sum(attr)


def _noise_tunnel(
    ctx: Context, x: torch.Tensor, target: torch.Tensor, kind: str, n_samples: int, noise_level: float, seed: int, batch_size: int
) -> torch.Tensor:
    """captum's NoiseTunnel one image at a time: each image gets its own sigma and the noise stream seeded by
    ``seed`` alone, so its map does not depend on the other images of the batch (n_samples per pass are batched)."""
    nt = NoiseTunnel(Saliency(ctx.model))
    out = []
    for b in range(len(x)):
        xb = x[b : b + 1]
        with seeded(seed, x.device):
            out.append(
                nt.attribute(
                    xb,
                    nt_type=kind,
                    nt_samples=n_samples,
                    nt_samples_batch_size=batch_size,
                    stdevs=noise_sigma(xb, noise_level),
                    target=target[b : b + 1],
                    abs=False,
                )
            )
    return torch.cat(out)


_NOISE_PARAMS = (
    Param("n_samples", 25, 1, 500, 1, help="noisy copies"),
    Param("noise_level", 0.15, 0.0, 1.0, 0.01, help="sigma as a share of (max - min) of each image"),
    SEED,
    Param("batch_size", 8, 1, 512, 1, help="noisy copies per pass"),
)


@explainer(
    title="SmoothGrad",
    family="gradient",
    paper=PAPERS["smoothgrad"],
    library="captum NoiseTunnel(smoothgrad), one image at a time",
    params=_NOISE_PARAMS,
    default=True,
    cost=lambda p, h, w, k: (0, p["n_samples"]),
    units="gradient",
)
def smoothgrad(ctx: Context, x: torch.Tensor, target: torch.Tensor, n_samples: int, noise_level: float, seed: int, batch_size: int) -> torch.Tensor:
    """|mean of gradients at x + N(0, sigma^2)|, max over channels."""
    return abs_max(_noise_tunnel(ctx, x, target, "smoothgrad", n_samples, noise_level, seed, batch_size))


@explainer(
    title="VarGrad",
    family="gradient",
    paper=PAPERS["vargrad"],
    library="captum NoiseTunnel(vargrad), one image at a time",
    params=_NOISE_PARAMS,
    cost=lambda p, h, w, k: (0, p["n_samples"]),
)
def vargrad(ctx: Context, x: torch.Tensor, target: torch.Tensor, n_samples: int, noise_level: float, seed: int, batch_size: int) -> torch.Tensor:
    """Variance of the noisy gradients, max over channels."""
    return abs_max(_noise_tunnel(ctx, x, target, "vargrad", n_samples, noise_level, seed, batch_size))


@explainer(
    title="GradientSHAP",
    family="path",
    paper=PAPERS["gshap"],
    library="captum GradientShap, one image at a time",
    signed=True,
    convention="positive raises the target's logit",
    params=(
        Param("n_samples", 32, 1, 512, 1, help="random (baseline, alpha) draws"),
        Param("n_baselines", 8, 1, 64, 1, help="baselines: the zero image, the blurred image and uniform noise images"),
        Param("stdev", 0.0, 0.0, 1.0, 0.01, help="Gaussian noise added to the input at each draw"),
        SEED,
    ),
    cost=lambda p, h, w, k: (1 + p["n_baselines"], p["n_samples"]),
    units="logit",
)
def gradient_shap(ctx: Context, x: torch.Tensor, target: torch.Tensor, n_samples: int, n_baselines: int, stdev: float, seed: int) -> torch.Tensor:
    """Expected gradients: (x - x') * grad at x' + alpha (x - x') over random baselines and alphas, one image at a
    time (its own baselines, draws seeded by ``seed`` alone). Reports "completeness" against f(x) - mean f(x')."""
    attrs, errors = [], []
    for b in range(len(x)):
        xb, tb = x[b : b + 1], target[b : b + 1]
        baselines = _shap_baselines(ctx, xb, n_baselines, seed)
        with seeded(seed, x.device):
            attr = GradientShap(ctx.model).attribute(xb, baselines=baselines, n_samples=n_samples, stdevs=stdev, target=tb)
        gap = target_logits(ctx.model, xb, tb) - target_logits(ctx.model, baselines, tb.expand(len(baselines))).mean()
        attrs.append(attr)
        errors.append(completeness_error(attr, gap))
    draws = torch.full((len(x),), n_samples)
    ctx.report("completeness", completeness_report(torch.cat(errors), "f(x) - mean f(x')", "Monte-Carlo, {draws} draws", draws=draws))
    return channel_sum(torch.cat(attrs))


def _shap_baselines(ctx: Context, xb: torch.Tensor, n_baselines: int, seed: int) -> torch.Tensor:
    """GradientSHAP's references for one image [1,C,H,W] -> [n,C,H,W]: the zero image, its blur, uniform noise images."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    lo, hi = ctx.pixel_bounds(xb)
    refs = [torch.zeros_like(xb), baseline_for(xb, "blur")]
    while len(refs) < n_baselines:
        refs.append(lo + (hi - lo) * torch.rand(xb.shape, generator=gen).to(xb))
    return torch.cat(refs[:n_baselines])


def _rectified(ctx: Context, x: torch.Tensor, target: torch.Tensor, mode: str) -> torch.Tensor:
    with rectified_activations(ctx.model, mode):
        grad = Saliency(ctx.model).attribute(x, target=target, abs=False)
    return abs_max(grad)


@explainer(
    title="Guided Backprop",
    family="gradient",
    paper=PAPERS["guided"],
    library="own backward rule on every activation call (captum's misses nn.ReLU6)",
    default=True,
    cost=lambda p, h, w, k: (0, 1),
    units="gradient",
)
def guided_backprop(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient with negative gradients zeroed at every activation, max |.| over channels."""
    return _rectified(ctx, x, target, "guided")


@explainer(
    title="Deconvolution",
    family="gradient",
    paper=PAPERS["deconv"],
    library="own backward rule on every activation call (captum's misses nn.ReLU6)",
    cost=lambda p, h, w, k: (0, 1),
    units="gradient",
)
def deconvolution(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DeconvNet: ReLU applied to the backward signal only, max |.| over channels."""
    return _rectified(ctx, x, target, "deconv")


@explainer(
    title="DeepLIFT",
    family="path",
    paper=PAPERS["deeplift"],
    library="captum DeepLift (rescale rule) on a canonical copy",
    signed=True,
    convention="positive raises the target's logit",
    params=(Param("baseline", "zero", choices=("zero", "blur")),),
    cost=lambda p, h, w, k: (2, 2),
    units="logit",
)
def deeplift(ctx: Context, x: torch.Tensor, target: torch.Tensor, baseline: str) -> torch.Tensor:
    """Difference-from-reference multipliers with the rescale rule, summed over channels. Reports "completeness"
    (summation-to-delta holds exactly when every nonlinearity has a rule).

    Run on ``canonical_copy``: captum's DeepLIFT needs each activation module called once.
    """
    extend_captum_deeplift()
    gm = canonical_copy(ctx.model)
    base = baseline_for(x, baseline)
    attr = DeepLift(gm).attribute(x, baselines=base, target=target)
    error = completeness_error(attr, target_logits(ctx.model, x, target) - target_logits(ctx.model, base, target))
    ctx.report("completeness", completeness_report(error, "f(x) - f(x')", "rescale rule", error <= COMPLETENESS_TOLERANCE))
    return channel_sum(attr)
