"""Controls for sanity checks (Adebayo et al. 2018): a seeded random map and an edge detector."""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

from core.registry import SEED
from explainers.context import Context
from explainers.registry import explainer

_PAPER = "Adebayo et al. 2018, Sanity Checks for Saliency Maps"


@explainer(
    title="Random (control)",
    family="control",
    paper=_PAPER,
    library="torch.Generator",
    params=(SEED,),
    cost=lambda p, h, w, k: (0, 0),
)
def random(ctx: Context, x: torch.Tensor, target: torch.Tensor, seed: int) -> torch.Tensor:
    """Uniform noise in [0,1), [B,H,W]; independent of the model by construction, and of the batch: each image's map
    is drawn from a generator seeded by ``seed`` and a digest of that image's values. So one image gets the same map
    alone or in any batch, and different images get independent maps (one fixed map for a whole dataset would line
    up with whatever sits at fixed positions, e.g. a shortcut marker, and stop being a control)."""
    maps = [torch.rand(x.shape[-2:], generator=torch.Generator().manual_seed(_image_seed(seed, xb))) for xb in x]
    return torch.stack(maps).to(x.device)


def _image_seed(seed: int, image: torch.Tensor) -> int:
    """A 63-bit seed from ``seed`` and the bytes of ``image`` [C,H,W]."""
    digest = hashlib.sha256(image.detach().float().cpu().contiguous().numpy().tobytes() + int(seed).to_bytes(8, "little", signed=True))
    return int.from_bytes(digest.digest()[:8], "little") & (2**63 - 1)


@explainer(
    title="Sobel edges (control)",
    family="control",
    paper=_PAPER,
    library="torch conv2d with Sobel kernels",
    default=True,
    cost=lambda p, h, w, k: (0, 0),
)
def edge_sobel(ctx: Context, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the channel-mean image, [B,H,W]; ignores the model."""
    gray = x.detach().mean(dim=1, keepdim=True)
    kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], device=x.device, dtype=x.dtype)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)
    g = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kernels)
    return g.pow(2).sum(1).sqrt()
