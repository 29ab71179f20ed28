"""Perturbation methods: Occlusion, LIME and KernelSHAP (captum, batched) and RISE (by hand).

RISE is written here because no maintained library implements it; its forwards are batched.
LIME and KernelSHAP work on SLIC superpixels (scikit-image) of the image.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import KernelShap, Lime, Occlusion
from skimage.segmentation import slic

from core.errors import MethodNotApplicable
from core.registry import SEED, Param
from core.rng import seeded
from explainers.context import Context
from explainers.registry import explainer


def _window(h: int, w: int, frac: float) -> int:
    return max(1, round(min(h, w) * frac))


def _occlusion_windows(p: dict, h: int, w: int) -> int:
    win, stride = _window(h, w, p["window"]), _window(h, w, p["stride"])
    return (math.ceil(max(h - win, 0) / stride) + 1) * (math.ceil(max(w - win, 0) / stride) + 1)


@explainer(
    title="Occlusion",
    family="perturbation",
    paper="Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks",
    library="captum Occlusion (perturbations_per_eval)",
    signed=True,
    default=True,
    params=(
        Param("window", 0.125, 0.02, 1.0, 0.005, help="patch side as a share of the image side"),
        Param("stride", 0.0625, 0.01, 1.0, 0.005, help="step as a share of the image side"),
        Param("batch_size", 16, 1, 1024, 1, help="occluded images per forward"),
    ),
    cost=lambda p, h, w, k: (1 + _occlusion_windows(p, h, w), 0),
)
def occlusion(ctx: Context, x: torch.Tensor, target: torch.Tensor, window: float, stride: float, batch_size: int) -> torch.Tensor:
    """Drop of the target logit when a sliding patch is replaced by zero (the mean image)."""
    h, w = x.shape[-2:]
    win, step = _window(h, w, window), _window(h, w, stride)
    attr = Occlusion(ctx.forward).attribute(
        x,
        sliding_window_shapes=(x.shape[1], win, win),
        strides=(x.shape[1], step, step),
        baselines=0.0,
        target=target,
        perturbations_per_eval=batch_size,
    )
    return attr.mean(dim=1)


def rise_draws(n: int, size: tuple[int, int], cells: int, p: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random part of N RISE masks, drawn at once (so the masks do not depend on the batch size): binary
    grids [N,1,cells,cells] (keep probability p) and shifts dy, dx [N] within one cell."""
    h, w = size
    ch, cw = math.ceil(h / cells), math.ceil(w / cells)
    grid = (torch.rand(n, 1, cells, cells, generator=generator) < p).float()
    return grid, torch.randint(0, ch, (n,), generator=generator), torch.randint(0, cw, (n,), generator=generator)


def rise_masks(grid: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Masks [N,H,W] as in Petsiuk et al.: each grid upsampled bilinearly to (cells+1) * cell size and cropped
    at its shift."""
    h, w = size
    cells = grid.shape[-1]
    ch, cw = math.ceil(h / cells), math.ceil(w / cells)
    up = F.interpolate(grid, size=((cells + 1) * ch, (cells + 1) * cw), mode="bilinear", align_corners=False)
    masks = torch.stack([up[i, 0, int(dy[i]) : int(dy[i]) + h, int(dx[i]) : int(dx[i]) + w] for i in range(len(grid))])
    return masks.to(device)


@explainer(
    title="RISE",
    family="perturbation",
    paper="Petsiuk et al. 2018, RISE: Randomized Input Sampling for Explanation",
    library="by hand, batched (no maintained library)",
    params=(
        Param("n_masks", 1000, 1, 20000, 1, help="random masks (the paper uses 4000-8000)"),
        Param("cells", 7, 2, 32, 1, help="grid size s of the low-resolution masks"),
        Param("p", 0.5, 0.05, 0.95, 0.05, help="probability that a cell is kept"),
        SEED,
        Param("batch_size", 8, 1, 1024, 1, help="masked images per forward"),
    ),
    cost=lambda p, h, w, k: (p["n_masks"], 0),
)
def rise(ctx: Context, x: torch.Tensor, target: torch.Tensor, n_masks: int, cells: int, p: float, seed: int, batch_size: int) -> torch.Tensor:
    """sum_i P(c | x * M_i) M_i / (N p), masked with zero (the mean image in input space). Every image draws its
    masks from a generator seeded by ``seed`` alone (its map does not depend on the rest of the batch)."""
    h, w = x.shape[-2:]
    out = []
    for b in range(len(x)):
        grid, dy, dx = rise_draws(n_masks, (h, w), cells, p, torch.Generator().manual_seed(seed))
        acc = torch.zeros(h, w, device=x.device)
        done = 0
        while done < n_masks:
            k = min(batch_size, n_masks - done)
            masks = rise_masks(grid[done : done + k], dy[done : done + k], dx[done : done + k], (h, w), x.device)
            with torch.no_grad():
                probs = torch.softmax(ctx.forward(x[b : b + 1] * masks.unsqueeze(1)), dim=1)[:, target[b]]
            acc += torch.einsum("n,nhw->hw", probs, masks)
            done += k
        out.append(acc / (n_masks * p))
    return torch.stack(out)


def superpixels(x: torch.Tensor, n_segments: int, compactness: float) -> torch.Tensor:
    """SLIC superpixel labels [B,1,H,W] (long, 0-based) of each image of a normalized batch."""
    out = []
    for img in x.detach().float().cpu():
        lo, hi = img.amin(dim=(1, 2), keepdim=True), img.amax(dim=(1, 2), keepdim=True)
        rgb = ((img - lo) / (hi - lo).clamp_min(1e-12)).permute(1, 2, 0).numpy()
        seg = slic(rgb.astype(np.float64), n_segments=n_segments, compactness=compactness, start_label=0, channel_axis=-1)
        out.append(torch.from_numpy(seg.astype(np.int64)))
    return torch.stack(out).unsqueeze(1).to(x.device)


_SURROGATE_PARAMS = (
    Param("n_segments", 50, 4, 500, 1, help="SLIC superpixels (approximate count)"),
    Param("compactness", 10.0, 0.1, 100.0, 0.1, help="SLIC compactness"),
    Param("n_samples", 200, 10, 5000, 1, help="perturbed samples for the surrogate"),
    SEED,
    Param("batch_size", 8, 1, 1024, 1, help="perturbed images per forward"),
)


def _surrogate(
    cls: type, ctx: Context, x: torch.Tensor, target: torch.Tensor, n_segments: int, compactness: float, n_samples: int, seed: int, batch_size: int
) -> torch.Tensor:
    seg = superpixels(x, n_segments, compactness)
    found = int(seg.flatten(1).amax(1).min()) + 1
    if found < 2:
        raise MethodNotApplicable(f"SLIC found only {found} superpixel here; raise n_segments or lower compactness")
    out = []
    for b in range(len(x)):
        mask = seg[b : b + 1].expand(1, x.shape[1], -1, -1)
        with seeded(seed, x.device):
            attr = cls(ctx.forward).attribute(
                x[b : b + 1],
                baselines=0.0,
                target=target[b : b + 1],
                feature_mask=mask,
                n_samples=n_samples,
                perturbations_per_eval=batch_size,
            )
        out.append(attr[0, 0])
    return torch.stack(out)


@explainer(
    title="LIME",
    family="perturbation",
    paper="Ribeiro et al. 2016, Why Should I Trust You?",
    library="captum Lime on SLIC superpixels",
    signed=True,
    params=_SURROGATE_PARAMS,
    cost=lambda p, h, w, k: (p["n_samples"], 0),
)
def lime(ctx: Context, x: torch.Tensor, target: torch.Tensor, **params: float) -> torch.Tensor:
    """Lasso surrogate over superpixels switched off (set to the mean image), weights per superpixel."""
    return _surrogate(Lime, ctx, x, target, **params)  # type: ignore[arg-type]


@explainer(
    title="KernelSHAP",
    family="perturbation",
    paper="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions",
    library="captum KernelShap on SLIC superpixels",
    signed=True,
    params=_SURROGATE_PARAMS,
    cost=lambda p, h, w, k: (p["n_samples"], 0),
    units="logit",
)
def kernel_shap(ctx: Context, x: torch.Tensor, target: torch.Tensor, **params: float) -> torch.Tensor:
    """Shapley-kernel weighted linear surrogate over superpixels."""
    return _surrogate(KernelShap, ctx, x, target, **params)  # type: ignore[arg-type]
