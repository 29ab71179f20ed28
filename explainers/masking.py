"""Mask-based black-box methods: Sobol attribution (variance of the output under quasi-random masks) and Extremal
Perturbations (a smooth mask of fixed area optimised to preserve the class).

Written by hand: Xplique (Sobol) is TensorFlow-only and TorchRay (Extremal Perturbations) is unmaintained and pins
old torch; both are short here, with their forwards batched through the model under its lock.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import qmc

from core.registry import SEED, Param
from explainers.context import Context
from explainers.registry import explainer


def sobol_design(grid: int, n_design: int, seed: int) -> torch.Tensor:
    """Xplique's replicated design: masks [N*(d+2), grid, grid] in [0,1] (d = grid^2): A [N,d] and B [N,d] from one
    Owen-scrambled Sobol sequence of dimension 2d (scipy.stats.qmc), then C_i = A with column i taken from B."""
    d = grid * grid
    ab = qmc.Sobol(2 * d, scramble=True, seed=seed).random(n_design).astype(np.float32)
    a, b = torch.from_numpy(ab[:, :d]), torch.from_numpy(ab[:, d:])
    eye = torch.eye(d).unsqueeze(1)  # [d,1,d]
    c = a.unsqueeze(0) * (1 - eye) + b.unsqueeze(0) * eye  # [d,N,d]
    return torch.cat([a, b, c.reshape(-1, d)]).view(-1, grid, grid)


def jansen_total_order(outputs: torch.Tensor, n_design: int, d: int) -> torch.Tensor:
    """Total-order Sobol indices [d] from the outputs [N*(d+2)] of (A, B, C): Jansen's estimator as Xplique,
    ST_i = sum_n (f(A)_n - f(C_i)_n)^2 / (2 N Var f(A)) with the unbiased variance of f(A)."""
    f_a = outputs[:n_design].double()
    f_c = outputs[2 * n_design :].double().view(d, n_design)
    var = f_a.var(unbiased=True).clamp_min(1e-30)
    return ((f_a.unsqueeze(0) - f_c) ** 2).sum(1) / (2 * n_design * var)


@explainer(
    title="Sobol attribution",
    family="perturbation",
    paper="Fel et al. 2021, Look at the Variance! Efficient Black-box Explanations with Sobol-based Sensitivity Analysis",
    library="by hand after Xplique's SobolAttributionMethod (inpainting, Jansen estimator)",
    params=(
        Param("grid_size", 8, 2, 16, 1, help="the image is cut into grid_size x grid_size cells, one index per cell"),
        Param("n_design", 32, 2, 256, 1, help="quasi-Monte Carlo designs (a power of two); forwards = n_design * (grid_size^2 + 2)"),
        SEED,
        Param("batch_size", 64, 1, 2048, 1, help="masked images per forward"),
    ),
    cost=lambda p, h, w, k: (p["n_design"] * (p["grid_size"] ** 2 + 2), 0),
)
def sobol(ctx: Context, x: torch.Tensor, target: torch.Tensor, grid_size: int, n_design: int, seed: int, batch_size: int) -> torch.Tensor:
    """Total-order Sobol index of each grid cell for the target logit, inputs x * upsample_nearest(M) (Xplique's
    inpainting with a zero baseline); the [grid,grid] indices upsampled bicubically (Xplique: cv2 INTER_CUBIC).
    Masks are Owen-scrambled Sobol points seeded by ``seed`` (Xplique: the unscrambled sequence)."""
    h, w = x.shape[-2:]
    masks = sobol_design(grid_size, n_design, seed).to(x.device)
    out = []
    for b in range(len(x)):
        scores = []
        for start in range(0, len(masks), batch_size):
            up = F.interpolate(masks[start : start + batch_size].unsqueeze(1), size=(h, w), mode="nearest")
            scores.append(ctx.forward(x[b : b + 1] * up)[:, target[b]])  # the forward-only engine
        sti = jansen_total_order(torch.cat(scores), n_design, grid_size * grid_size).float().view(1, 1, grid_size, grid_size)
        out.append(F.interpolate(sti, size=(h, w), mode="bicubic", align_corners=False)[0, 0])
    return torch.stack(out)


def _gaussian_blur(t: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B,C,H,W] (reflect padding), kernel radius ceil(2 sigma) capped by the image."""
    radius = max(1, min(math.ceil(2 * sigma), min(t.shape[-2:]) - 1))
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=t.dtype, device=t.device) / sigma) ** 2)
    k = k / k.sum()
    c = t.shape[1]
    t = F.conv2d(F.pad(t, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(t, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def smooth_mask(param: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """[B,1,h,w] parameters (any real) -> [B,1,H,W] smooth mask in [0,1]: sigmoid, bilinear upsampling, Gaussian blur."""
    up = F.interpolate(torch.sigmoid(param), size=size, mode="bilinear", align_corners=False)
    return _gaussian_blur(up, sigma).clamp(0, 1)


def area_penalty(mask: torch.Tensor, area: float) -> torch.Tensor:
    """[B] TorchRay's area constraint: mean squared distance between the sorted mask values and the sorted reference
    vector with a share ``area`` of ones and the rest zeros."""
    flat = mask.flatten(1).sort(dim=1).values
    n = flat.shape[1]
    ref = torch.zeros(n, device=mask.device, dtype=mask.dtype)
    ref[n - round(area * n) :] = 1
    return ((flat - ref) ** 2).mean(1)


@explainer(
    title="Extremal Perturbations",
    family="perturbation",
    paper="Fong et al. 2019, Understanding Deep Networks via Extremal Perturbations and Smooth Masks",
    library="by hand after TorchRay's extremal_perturbation (preservation game, area constraint)",
    params=(
        Param("area", 0.1, 0.01, 0.9, 0.01, help="share of the image the mask keeps"),
        Param("steps", 80, 5, 1000, 1, help="optimisation steps (TorchRay: 800)"),
        Param("cell", 7, 2, 64, 1, help="pixels per mask parameter (TorchRay's step)"),
        Param("sigma", 4.0, 0.5, 32.0, 0.5, help="smoothing of the mask, pixels"),
        Param("blur", 10.0, 1.0, 64.0, 1.0, help="blur of the perturbed (deleted) region, pixels"),
        Param("regul_weight", 300.0, 1.0, 10000.0, 1.0, help="weight of the area constraint (TorchRay: 300)"),
        SEED,
        Param("batch_size", 8, 1, 256, 1, help="images optimised together"),
    ),
    cost=lambda p, h, w, k: (0, p["steps"]),
)
def extremal_perturbation(
    ctx: Context,
    x: torch.Tensor,
    target: torch.Tensor,
    area: float,
    steps: int,
    cell: int,
    sigma: float,
    blur: float,
    regul_weight: float,
    seed: int,
    batch_size: int,
) -> torch.Tensor:
    """argmax_m y_c(m * x + (1 - m) * blur(x)) - lambda * ||sort(m) - r_area||^2, m a smooth mask in [0,1] [B,H,W].

    TorchRay starts every mask at exactly 0.5, so the sort in the area constraint meets ties that float noise breaks
    (differently with other batch neighbours); here the start is 0.5 plus a seeded jitter (sd 0.025 in mask units),
    the same for every image. Differences from TorchRay, for speed: one blur level instead of its pyramid, sigmoid +
    bilinear + Gaussian smoothing instead of its smooth-max mask generator, Adam (lr 0.1) for fewer steps instead
    of SGD with momentum for 800."""
    h, w = x.shape[-2:]
    jitter = 0.1 * torch.randn(1, 1, math.ceil(h / cell), math.ceil(w / cell), generator=torch.Generator().manual_seed(seed))
    out = []
    for start in range(0, len(x), batch_size):
        xb, tb = x[start : start + batch_size].detach(), target[start : start + batch_size]
        blurred = _gaussian_blur(xb, blur)
        param = jitter.to(x.device).repeat(len(xb), 1, 1, 1).requires_grad_(True)
        opt = torch.optim.Adam([param], lr=0.1)
        for _ in range(steps):
            mask = smooth_mask(param, (h, w), sigma)
            logits = ctx.model(mask * xb + (1 - mask) * blurred)
            energy = -logits.gather(1, tb.view(-1, 1)).squeeze(1) + regul_weight * area_penalty(mask, area)
            (grad,) = torch.autograd.grad(energy.sum(), param)
            opt.zero_grad(set_to_none=True)
            param.grad = grad
            opt.step()
        with torch.no_grad():
            out.append(smooth_mask(param, (h, w), sigma)[:, 0])
    return torch.cat(out)
