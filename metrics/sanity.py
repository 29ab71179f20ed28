"""Randomization sanity checks as one score per image: does the map change when the class or the weights do?
Category: randomization. Maps are recomputed with the same method, parameters and seed (``ctx.explain``); the
weights are randomized on a private copy by ``metrics.randomization`` (its blocks, rule and seeds: block i of the
cascade gets ``seed * 1009 + i``), so the caller's model is never touched.

- Random logit (Sixt et al. 2020, "When Explanations Lie"): SSIM between the map for the target and the map for
  a random other class (``RandomState(seed).randint(0, K - 1)`` indexing the K - 1 other classes, as Quantus
  draws); SSIM as in the sanity checks (``metrics.similarity``: |map| / max |map|, data range 1). Lower is better.
- Smooth MPRT (Hedström et al. 2023, "Sanity Checks Revisited"): model-parameter randomization where each map is
  the mean of the maps at ``n_samples`` inputs, n_samples - 1 of them x + N(0, (noise * (max x - min x))^2)
  (``RandomState(seed).randn``, the same noise at every step) and x itself; the blocks are randomized
  cumulatively, bottom-up by default (the authors' recommendation); the score is the mean over the steps of the
  Spearman rank correlation of |smoothed map| with the original's. Lower is better.
- Efficient MPRT (same paper): the relative rise in complexity from the trained to the fully randomized model
  (every block, the cascade's last step), (H_rand - H) / H, H = the discrete entropy (natural log) of a
  ``n_bins``-bin histogram of the map over its range. Higher is better; 0 when the original map is constant
  (H = 0: no complexity to rise from, counted as no rise).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from core import progress
from core.errors import ParameterError
from core.registry import Param
from metrics.common import n_classes
from metrics.perturb import check_positive, engine, explain_many, legacy_rng
from metrics.randomization import model_blocks, randomizable, randomize
from metrics.registry import MetricContext, metric
from metrics.similarity import map_similarity

ORDERS = ("bottom_up", "top_down")


def other_classes(seed: int, target: torch.Tensor, k: int) -> torch.Tensor:
    """A random class other than each target [B] -> long [B]: index ``RandomState(seed).randint(0, k - 1, B)`` into
    the k - 1 other classes."""
    if k < 2:
        raise ParameterError("the random logit test needs a model with at least 2 classes")
    idx = torch.from_numpy(legacy_rng(seed).randint(0, k - 1, size=target.numel())).to(target.device)
    return idx + (idx >= target).long()


@metric(
    title="Random logit",
    category="randomization",
    higher_is_better=False,
    paper="Sixt et al. 2020, When Explanations Lie: Why Many Modified BP Attributions Fail (ICML)",
    conventions="SSIM of |map|/max|map| (data range 1) between the target's map and a random other class's (seeded draw)",
    explains=True,
    cost=lambda p, h, w: 1,
)
def random_logit(ctx: MetricContext, maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SSIM [B] per method between the target's map and a random other class's."""
    k = n_classes(ctx.source) or engine(ctx, ctx.x.shape[0])(ctx.x[:1]).shape[1]
    off = other_classes(ctx.seed, ctx.target, k)
    out = {}
    for method, m in maps.items():
        other = explain_many(ctx, method, ctx.x, off)
        out[method] = torch.tensor([map_similarity(m[i], other[i], "ssim") for i in range(m.shape[0])])
    return out


def _blocks(ctx: MetricContext, order: str) -> list[tuple[str, tuple[str, ...]]]:
    """The randomization blocks in the order they are randomized (``model_blocks`` lists them bottom to top)."""
    if order not in ORDERS:
        raise ParameterError(f"order must be one of {', '.join(ORDERS)}; got {order!r}")
    blocks = model_blocks(ctx.source)
    if not blocks:
        raise ParameterError("the model has no parameters to randomize")
    return blocks if order == "bottom_up" else blocks[::-1]


def smoothing_inputs(x: torch.Tensor, n_samples: int, noise: float, seed: int) -> torch.Tensor:
    """[N,B,C,H,W]: n_samples - 1 noisy copies x + randn * noise * (max - min of each image), then x itself."""
    check_positive(n_samples=n_samples)
    if noise < 0:
        raise ParameterError(f"noise must be >= 0; got {noise!r}")
    rng = legacy_rng(seed)
    std = (noise * (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3)))).double().view(-1, 1, 1, 1).cpu()
    eps = [torch.from_numpy(rng.randn(*x.shape)) * std for _ in range(n_samples - 1)] + [torch.zeros(x.shape, dtype=torch.float64)]
    return (x.double().unsqueeze(0) + torch.stack(eps).to(x.device)).float()


@metric(
    title="Smooth MPRT",
    category="randomization",
    higher_is_better=False,
    paper="Hedström et al. 2023, Sanity Checks Revisited: An Exploration to Repair the Model Parameter Randomisation Test (XAI in Action, NeurIPS workshop)",
    conventions="mean over the cascade (blocks randomized cumulatively, bottom-up by default) of Spearman(|smoothed map|, |original smoothed map|); "
    "smoothed = mean over x and n_samples - 1 inputs x + N(0, (noise x range)^2)",
    params=(
        Param("n_samples", 10, 1, 500, 1, help="maps averaged per step (the clean input and n_samples - 1 noisy ones)"),
        Param("noise", 0.1, 0.0, 1.0, 0.01, help="noise std as a share of the image's value range"),
        Param("order", "bottom_up", choices=ORDERS, help="which end of the network is randomized first"),
    ),
    explains=True,
    cost=lambda p, h, w: p["n_samples"],  # per randomization step: (the model's blocks + 1) steps
)
def smooth_mprt(
    ctx: MetricContext, maps: dict[str, torch.Tensor], *, n_samples: int = 10, noise: float = 0.1, order: str = "bottom_up"
) -> dict[str, torch.Tensor]:
    """Mean Spearman [B] per method over the randomization steps (see the module docstring)."""
    steps = _blocks(ctx, order)
    xs = smoothing_inputs(ctx.x, n_samples, noise, ctx.seed)
    b, targets = ctx.x.shape[0], ctx.target.repeat(n_samples)

    def smoothed(method: str, source: object = None) -> torch.Tensor:
        return explain_many(ctx, method, xs.flatten(0, 1), targets, source).view(n_samples, b, *xs.shape[-2:]).mean(0)

    original = {m: smoothed(m) for m in maps}
    sims: dict[str, list[list[float]]] = {m: [] for m in maps}
    with randomizable(ctx.source) as (wrapped, private), progress.stage("randomization steps", len(steps)) as st:
        for i, (name, prefixes) in enumerate(steps, start=1):
            st.at(i - 1, f"randomizing {name}")
            randomize(private, prefixes, ctx.seed * 1009 + i)
            for m in maps:
                s = smoothed(m, wrapped)
                sims[m].append([map_similarity(original[m][j], s[j], "spearman_abs") for j in range(b)])
    return {m: torch.tensor(v, dtype=torch.float64).mean(0).float() for m, v in sims.items()}


def discrete_entropy(maps: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Entropy (nats) of the ``n_bins``-bin histogram of each map [B,H,W] over its own range -> [B] (``np.histogram``,
    ``scipy.stats.entropy``: Quantus's ``discrete_entropy``)."""
    return torch.tensor([float(stats.entropy(np.histogram(m, bins=int(n_bins))[0])) for m in maps.detach().cpu().numpy()])


@metric(
    title="Efficient MPRT",
    category="randomization",
    higher_is_better=True,
    paper="Hedström et al. 2023, Sanity Checks Revisited: An Exploration to Repair the Model Parameter Randomisation Test (XAI in Action, NeurIPS workshop)",
    conventions="(H_rand - H)/H, H = entropy of the map's n_bins-bin histogram, H_rand after randomizing every block (bottom-up cascade); 0 if the map is constant",
    params=(Param("n_bins", 100, 2, 1000, 1, help="histogram bins for the discrete entropy"),),
    explains=True,
    cost=lambda p, h, w: 1,
)
def efficient_mprt(ctx: MetricContext, maps: dict[str, torch.Tensor], *, n_bins: int = 100) -> dict[str, torch.Tensor]:
    """Relative rise of the discrete entropy [B] per method from the trained to the fully randomized model."""
    with randomizable(ctx.source) as (wrapped, private):
        for i, (_, prefixes) in enumerate(_blocks(ctx, "bottom_up"), start=1):
            randomize(private, prefixes, ctx.seed * 1009 + i)
        randomized = {m: explain_many(ctx, m, ctx.x, ctx.target, wrapped) for m in maps}
    out = {}
    for m, a in maps.items():
        h0, h1 = discrete_entropy(a, n_bins), discrete_entropy(randomized[m], n_bins)
        out[m] = torch.where(h0 > 0, (h1 - h0) / h0.clamp(min=1e-300), torch.zeros_like(h0)).float()
    return out
