"""How alike two attribution maps are: the measures of the sanity checks (Spearman of the maps and of |map|, SSIM,
Pearson of HOG features; Adebayo et al. 2018) and of the robustness views (top-k intersection and centre-of-mass
shift; Ghorbani et al. 2019).

For SSIM and HOG both maps are normalized the same way: |map| / max |map| (in [0, 1]); rank correlations do not
depend on scale. An undefined correlation (a constant map) counts as 0.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from skimage.feature import hog
from skimage.metrics import structural_similarity

from core.errors import ParameterError

SIMILARITIES: dict[str, str] = {
    "spearman": "Spearman rank correlation",
    "spearman_abs": "Spearman rank correlation of |map|",
    "ssim": "SSIM",
    "hog": "Pearson correlation of HOG features",
}


def _norm01(a: np.ndarray) -> np.ndarray:
    a = np.abs(a).astype(np.float64)
    top = a.max()
    return a / top if top > 0 else a


def _corr(value: float) -> float:
    return 0.0 if not np.isfinite(value) else float(value)


def map_similarity(a: torch.Tensor, b: torch.Tensor, measure: str) -> float:
    """One similarity between two maps [H,W] (see the module docstring for the conventions)."""
    x, y = a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()
    if measure in ("spearman", "spearman_abs"):
        if measure == "spearman_abs":
            x, y = np.abs(x), np.abs(y)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            return 1.0 if np.array_equal(x, y) else 0.0
        return _corr(stats.spearmanr(x.ravel(), y.ravel()).statistic)
    nx, ny = _norm01(x), _norm01(y)
    if measure == "ssim":
        return float(structural_similarity(nx, ny, data_range=1.0))
    if measure == "hog":
        cell = max(4, x.shape[0] // 14)
        hx = hog(nx, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), feature_vector=True)
        hy = hog(ny, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), feature_vector=True)
        if np.ptp(hx) == 0 or np.ptp(hy) == 0:
            return 1.0 if np.array_equal(hx, hy) else 0.0
        return _corr(stats.pearsonr(hx, hy).statistic)
    raise ParameterError(f"similarity must be one of {', '.join(SIMILARITIES)}; got {measure!r}")


def default_k(h: int, w: int) -> int:
    """Ghorbani et al.'s k = 1000 at 224 x 224, scaled to the map's area."""
    return max(1, round(1000 * h * w / (224 * 224)))


def centre_of_mass(m: torch.Tensor) -> torch.Tensor:
    """Centre of mass (row, col) of |map| [..., H, W] -> [..., 2] (differentiable; the centre for an all-zero map)."""
    a = m.abs()
    h, w = a.shape[-2:]
    total = a.sum((-2, -1)).clamp(min=1e-12)
    rows = torch.arange(h, device=a.device, dtype=a.dtype)
    cols = torch.arange(w, device=a.device, dtype=a.dtype)
    r = (a.sum(-1) * rows).sum(-1) / total
    c = (a.sum(-2) * cols).sum(-1) / total
    return torch.stack([r, c], dim=-1)


def topk_intersection(a: torch.Tensor, b: torch.Tensor, k: int) -> float:
    """Share of the k largest |a| pixels that are also among the k largest |b| pixels (maps [H,W])."""
    ia = torch.topk(a.abs().flatten(), k).indices
    ib = torch.topk(b.abs().flatten(), k).indices
    return float(torch.isin(ia, ib).float().mean())


def dissimilarity(a: torch.Tensor, b: torch.Tensor, k: int | None = None) -> dict[str, float]:
    """Clean map a vs perturbed map b ([H,W]): top-k intersection, Spearman, SSIM (|map|/max), centre-of-mass shift (px)."""
    k = k or default_k(*a.shape)
    return {
        "topk_intersection": topk_intersection(a, b, k),
        "spearman": map_similarity(a, b, "spearman"),
        "ssim": map_similarity(a, b, "ssim"),
        "com_shift_px": float((centre_of_mass(a) - centre_of_mass(b)).norm()),
    }
