"""The CAM family, on one shared activation-and-gradient pass.

Written by hand (a few lines each, like pytorch-grad-cam's subclasses) rather than pulled
from pytorch-grad-cam: one hook helper serves every variant under the model lock, Score-CAM
batches its masked forwards, and the library would add opencv and scikit-learn for no gain.
Grad-CAM is cross-checked against captum's ``LayerGradCam``, the variants (FullGrad included) against
pytorch-grad-cam, in the tests.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import MethodNotApplicable
from core.model_state import Hooks
from core.registry import Param
from explainers.context import Context
from explainers.gradient import abs_max
from explainers.hooks import capture_layer, has_conv, rectified_activations, require_module_model
from explainers.registry import explainer


def activations_and_grads(ctx: Context, x: torch.Tensor, target: torch.Tensor, grads: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """A [B,K,h,w] at the CAM layer, dy_c/dA (or None) and the logits [B,classes]."""
    if not has_conv(ctx.model):
        raise MethodNotApplicable("CAM methods weight the feature maps of a convolutional layer, and this model has no nn.Conv2d")
    require_module_model(ctx.model, "CAM methods")
    module = ctx.layer_module(x)
    with capture_layer(module) as store, torch.set_grad_enabled(grads):
        logits = ctx.model(x.detach().requires_grad_(grads))
        act = store.get("act")
        if act is None or act.dim() != 4:
            raise MethodNotApplicable(f"the CAM layer {ctx.layer!r} does not output a [B,K,h,w] feature map")
        grad = None
        if grads:
            score = logits.gather(1, target.view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(score, act)
    return act.detach(), grad, logits.detach()


def upsample(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B,h,w] -> [B,H,W], bilinear (as in the papers)."""
    return F.interpolate(cam.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def final_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise MethodNotApplicable("CAM needs a final linear layer after global average pooling")
    return linears[-1]


@explainer(
    title="CAM",
    family="cam",
    paper="Zhou et al. 2016, Learning Deep Features for Discriminative Localization",
    library="by hand",
    signed=True,
    cost=lambda p, h, w, k: (1, 0),
)
def cam(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """sum_k w_k^c A_k; applies only to nets ending in global average pooling + one linear layer."""
    act, _, logits = activations_and_grads(ctx, x, target, grads=False)
    fc = final_linear(ctx.model)
    if fc.in_features != act.shape[1]:
        raise MethodNotApplicable(f"the final linear layer takes {fc.in_features} features but the CAM layer has {act.shape[1]} channels")
    pooled = fc(act.mean(dim=(2, 3)))
    if pooled.shape != logits.shape or not torch.allclose(pooled, logits, rtol=1e-3, atol=1e-3 * float(logits.abs().max())):
        raise MethodNotApplicable("the model's head is not global average pooling + one linear layer on the CAM layer")
    weights = fc.weight[target]  # [B,K]
    maps = torch.einsum("bk,bkhw->bhw", weights, act)
    return upsample(maps, x.shape[-2:])


@explainer(
    title="Grad-CAM",
    family="cam",
    paper="Selvaraju et al. 2017, Grad-CAM",
    library="by hand (cross-checked with captum LayerGradCam)",
    default=True,
    cost=lambda p, h, w, k: (0, 1),
)
def gradcam(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of dy_c/dA_k; upsampled bilinearly."""
    act, grad, _ = activations_and_grads(ctx, x, target)
    alpha = grad.mean(dim=(2, 3), keepdim=True)
    return upsample(F.relu((alpha * act).sum(1)), x.shape[-2:])


@explainer(
    title="Grad-CAM++",
    family="cam",
    paper="Chattopadhay et al. 2018, Grad-CAM++",
    library="by hand (closed form with exp(score), as the paper and pytorch-grad-cam)",
    cost=lambda p, h, w, k: (0, 1),
)
def gradcam_plus_plus(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Weights sum_ij alpha_ij ReLU(g_ij), alpha = g^2 / (2 g^2 + sum_ab A_ab g^3)."""
    act, grad, _ = activations_and_grads(ctx, x, target)
    g2, g3 = grad.pow(2), grad.pow(3)
    denom = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g3
    alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
    weights = (alpha * F.relu(grad)).sum(dim=(2, 3), keepdim=True)
    return upsample(F.relu((weights * act).sum(1)), x.shape[-2:])


@explainer(
    title="Score-CAM",
    family="cam",
    paper="Wang et al. 2020, Score-CAM",
    library="by hand, batched masked forwards",
    params=(
        Param("max_channels", 0, 0, 4096, 1, help="0 = every channel (the paper); N = the N most active channels"),
        Param(
            "weights",
            "probability",
            choices=("probability", "channel_softmax"),
            help="probability: the target's softmax probability on each masked input (the authors' code); "
            "channel_softmax: a softmax over the channels of the target's logit on them (pytorch-grad-cam, torchcam)",
        ),
        Param("batch_size", 8, 1, 512, 1),
    ),
    cost=lambda p, h, w, k: (1 + min(p["max_channels"] or k, k), 0),
)
def scorecam(ctx: Context, x: torch.Tensor, target: torch.Tensor, max_channels: int, weights: str, batch_size: int) -> torch.Tensor:
    """ReLU(sum_k s_k A_k), s_k = score of class c on x * normalize(upsample(A_k)): its softmax probability, or
    (``weights="channel_softmax"``) the softmax over k of its logit."""
    act, _, _ = activations_and_grads(ctx, x, target, grads=False)
    out = []
    for b in range(len(x)):
        a = act[b]
        if max_channels and max_channels < a.shape[0]:
            a = a[a.mean(dim=(1, 2)).topk(max_channels).indices]
        up = upsample(a, x.shape[-2:])  # [K,H,W]
        lo, hi = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
        masks = torch.where(hi > lo, (up - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(up))
        scores = []
        with torch.no_grad():
            for i in range(0, len(masks), batch_size):
                logits = ctx.forward(x[b : b + 1] * masks[i : i + batch_size].unsqueeze(1))
                scores.append((torch.softmax(logits, dim=1) if weights == "probability" else logits)[:, target[b]])
        s = torch.cat(scores)
        s = (s if weights == "probability" else torch.softmax(s, dim=0)).view(-1, 1, 1)
        out.append(upsample(F.relu((s * a).sum(0, keepdim=True)), x.shape[-2:])[0])
    return torch.stack(out)


@explainer(
    title="Guided Grad-CAM",
    family="cam",
    paper="Selvaraju et al. 2017, Grad-CAM",
    library="by hand: Guided Backprop x upsampled Grad-CAM",
    default=True,
    cost=lambda p, h, w, k: (0, 2),
)
def guided_gradcam(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|Guided Backprop| (max over channels) times the upsampled Grad-CAM."""
    cam_map = gradcam(ctx, x, target)
    xg = x.detach().clone().requires_grad_(True)
    with rectified_activations(ctx.model, "guided"):
        score = ctx.model(xg).gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, xg)
    return abs_max(grad) * cam_map


@explainer(
    title="HiResCAM",
    family="cam",
    paper="Draelos & Carin 2020, Use HiResCAM instead of Grad-CAM for faithful explanations",
    library="by hand (pytorch-grad-cam's HiResCAM, cross-checked)",
    cost=lambda p, h, w, k: (0, 1),
)
def hires_cam(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ReLU(sum_k dy_c/dA_k * A_k): the element-wise product, no spatial averaging of the gradient; upsampled."""
    act, grad, _ = activations_and_grads(ctx, x, target)
    return upsample(F.relu((grad * act).sum(1)), x.shape[-2:])


@explainer(
    title="XGrad-CAM",
    family="cam",
    paper="Fu et al. 2020, Axiom-based Grad-CAM",
    library="by hand (pytorch-grad-cam's XGradCAM, cross-checked)",
    cost=lambda p, h, w, k: (0, 1),
)
def xgrad_cam(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ReLU(sum_k w_k A_k), w_k = sum_ij g_kij A_kij / (sum_ij A_kij + 1e-7) (pytorch-grad-cam's eps); upsampled."""
    act, grad, _ = activations_and_grads(ctx, x, target)
    weights = (grad * act / (act.sum(dim=(2, 3), keepdim=True) + 1e-7)).sum(dim=(2, 3), keepdim=True)
    return upsample(F.relu((weights * act).sum(1)), x.shape[-2:])


@explainer(
    title="LayerCAM",
    family="cam",
    paper="Jiang et al. 2021, LayerCAM: Exploring Hierarchical Class Activation Maps for Localization",
    library="by hand (pytorch-grad-cam's LayerCAM, cross-checked)",
    cost=lambda p, h, w, k: (0, 1),
)
def layer_cam(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ReLU(sum_k ReLU(dy_c/dA_k) * A_k), element-wise at every position; upsampled."""
    act, grad, _ = activations_and_grads(ctx, x, target)
    return upsample(F.relu((F.relu(grad) * act).sum(1)), x.shape[-2:])


@explainer(
    title="Eigen-CAM",
    family="cam",
    paper="Muhammad & Yeasin 2020, Eigen-CAM: Class Activation Map using Principal Components",
    library="by hand; SVD by numpy.linalg.svd (pytorch-grad-cam's EigenCAM, cross-checked)",
    cost=lambda p, h, w, k: (1, 0),
)
def eigen_cam(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ReLU of the activations [hw,K] (centred over positions) projected on their first right singular vector.

    Class-agnostic (``target`` is unused). The singular vector's sign is arbitrary: it is numpy's (LAPACK) as in
    pytorch-grad-cam, so the map matches that library; torch's SVD (MKL) may pick the other sign."""
    act, _, _ = activations_and_grads(ctx, x, target, grads=False)
    b, k, h, w = act.shape
    flat = act.nan_to_num(0.0).flatten(2).transpose(1, 2).cpu().numpy()  # [B,hw,K]
    flat = flat - flat.mean(axis=1, keepdims=True)
    proj = [f @ np.linalg.svd(f, full_matrices=False)[2][0] for f in flat]
    maps = torch.from_numpy(np.stack(proj)).to(act).view(b, h, w)
    return upsample(F.relu(maps), x.shape[-2:])


@explainer(
    title="Ablation-CAM",
    family="cam",
    paper="Desai & Ramaswamy 2020, Ablation-CAM: Visual Explanations for Deep Convolutional Network via Gradient-free Localization",
    library="by hand, batched ablations (pytorch-grad-cam's AblationCAM, cross-checked)",
    params=(Param("batch_size", 32, 1, 1024, 1, help="ablated copies of the CAM layer's output per forward pass"),),
    cost=lambda p, h, w, k: (1 + k, 0),
)
def ablation_cam(ctx: Context, x: torch.Tensor, target: torch.Tensor, batch_size: int) -> torch.Tensor:
    """ReLU(sum_k w_k A_k), w_k = (y_c - y_c^(k)) / y_c, y_c^(k) the score with channel k of A set to zero.

    The ablated activations [B*K,K,h,w] replace the layer's output through a forward hook, ``batch_size`` at a
    time (the layers before it run on repeated inputs; the model has no cut point to start from in general)."""
    act, _, logits = activations_and_grads(ctx, x, target, grads=False)
    b, k = act.shape[:2]
    score = logits.gather(1, target.view(-1, 1)).squeeze(1)  # [B]
    pairs = torch.cartesian_prod(torch.arange(b), torch.arange(k))  # (image, channel) per ablation
    ablated, chunk = [], {}

    def replace(_m: nn.Module, _i: tuple, _out: torch.Tensor) -> torch.Tensor:
        return chunk["act"]

    with Hooks() as hooks, torch.no_grad():
        hooks.forward(ctx.layer_module(x), replace)
        for i in range(0, len(pairs), batch_size):
            img, ch = pairs[i : i + batch_size].unbind(1)
            a = act[img].clone()
            a[torch.arange(len(ch)), ch] = 0
            chunk["act"] = a
            out = ctx.model(x[img])
            ablated.append(out.gather(1, target[img].view(-1, 1)).squeeze(1))
    drop = score.view(b, 1) - torch.cat(ablated).view(b, k)
    denom = torch.where(score.abs() > 1e-12, score, torch.full_like(score, 1e-12)).view(b, 1)
    weights = (drop / denom).view(b, k, 1, 1)
    return upsample(F.relu((weights * act).sum(1)), x.shape[-2:])


def _bias_layers(model: nn.Module) -> list[tuple[nn.Module, torch.Tensor]]:
    """(module, bias [K]) of every Conv2d with a bias and every BatchNorm2d (its eval-mode bias b - mu * g / sigma)."""
    out = []
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None:
            weight = m.weight if m.weight is not None else torch.ones_like(m.running_mean)
            bias = m.bias if m.bias is not None else torch.zeros_like(m.running_mean)
            out.append((m, bias - m.running_mean * weight / torch.sqrt(m.running_var + m.eps)))
        elif isinstance(m, nn.Conv2d) and m.bias is not None:
            out.append((m, m.bias))
    return out


def _channel_scaled(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B,K,h,w] -> [B,H,W]: each channel min-max scaled (pytorch-grad-cam's 1e-7), upsampled, summed over channels.
    Summed before upsampling: bilinear interpolation is linear, and K maps at input size would cost K times more."""
    t = t - t.amin(dim=(2, 3), keepdim=True)
    t = (t / (t.amax(dim=(2, 3), keepdim=True) + 1e-7)).sum(1, keepdim=True)
    if t.shape[-2:] != size:
        t = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return t[:, 0]


@explainer(
    title="FullGrad",
    family="cam",
    paper="Srinivas & Fleuret 2019, Full-Gradient Representation for Neural Network Visualization",
    library="by hand (cross-checked with pytorch-grad-cam FullGrad)",
    cost=lambda p, h, w, k: (0, 1),
)
def fullgrad(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """psi(|x * dy/dx|) + sum_calls psi(|b * dy/dz|), psi = per-channel min-max, bilinear upsampling and sum over
    channels; z the output of each call of a biased Conv2d or a BatchNorm2d (its implicit bias), as pytorch-grad-cam.
    The decomposition is complete only for piecewise-linear nets (ReLU): the compatibility report says so."""
    require_module_model(ctx.model, "FullGrad")
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []  # (bias [K], output [B,K,h,w]) per call

    def keeper(bias: torch.Tensor):  # type: ignore[no-untyped-def]
        def keep(_m: nn.Module, _i: tuple, out: torch.Tensor) -> torch.Tensor:
            calls.append((bias, out))
            return out.clone()  # an in-place activation after it must not overwrite the tensor we differentiate by

        return keep

    xg = x.detach().clone().requires_grad_(True)
    with Hooks() as hooks:
        for m, bias in _bias_layers(ctx.model):
            hooks.forward(m, keeper(bias))
        score = ctx.model(xg).gather(1, target.view(-1, 1)).sum()
    grads = torch.autograd.grad(score, [xg, *(out for _, out in calls)], allow_unused=True)
    size = tuple(x.shape[-2:])
    total = _channel_scaled((grads[0] * xg).abs().detach(), size)
    for (bias, _), g in zip(calls, grads[1:], strict=True):
        if g is not None and g.dim() == 4:
            total = total + _channel_scaled((bias.view(1, -1, 1, 1) * g).abs().detach(), size)
    return total
