"""Deletion and insertion curves (Petsiuk et al. 2018, "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC), computed with one forward per curve point and no more.

Definition (followed exactly):

- ranking: ``torch.argsort(map.flatten(), descending=True, stable=True)`` (ties keep raster order), by value, not
  |value|: a signed map's most positive pixels (the strongest evidence for the target) come first, its most
  negative last (``metrics.common.pixel_ranks``);
- deletion: from the preprocessed image, the top ``k*step`` pixels (all channels) are replaced by the
  substrate, k = 0..ceil(H*W/step); the curve is the softmax probability of the target class.
  Substrates: ``zero`` (0 in the model's normalized input space, as the RISE code does),
  ``blur`` (the blurred image below), ``mean`` (the image's per-channel mean);
- insertion: from the blurred image (``gaussian_blur``, kernel 11, sigma 5) the top pixels of the
  original are put back step by step;
- AUC = (sum of the N points - first/2 - last/2) / (N - 1), the trapezoid rule on [0, 1].

Speed: the points every curve shares (the image, the fully replaced image, the blurred image) are
computed once for all methods; every other point is one forward of the engine (``metrics.engine``: ONNX
Runtime, or the torch path with its reason), the perturbed inputs built for several of its chunks at once from the pixel ranks (no per-step Python or numpy).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.transforms.functional import gaussian_blur

from core import progress
from core.errors import ParameterError
from core.registry import Param
from metrics.common import RANKING, check_maps, check_x, pixel_ranks, prepare
from metrics.engine import engine
from metrics.registry import MetricContext, metric

SUBSTRATES = ("zero", "blur", "mean")
BLUR_KERNEL = 11
BLUR_SIGMA = 5.0
CURVES = ("deletion", "insertion")


def auc(curve: torch.Tensor) -> torch.Tensor:
    """Normalized trapezoid area of curves [..., N] (N >= 2) on [0, 1]: (sum - first/2 - last/2) / (N - 1)."""
    n = curve.shape[-1]
    if n < 2:
        raise ParameterError("a curve needs at least 2 points")
    return (curve.sum(-1) - curve[..., 0] / 2 - curve[..., -1] / 2) / (n - 1)


def blurred(x: torch.Tensor) -> torch.Tensor:
    """The insertion start: ``gaussian_blur(x, 11, 5)`` of [B,C,H,W] (reflect padding; needs H, W > 5)."""
    if min(x.shape[-2:]) <= BLUR_KERNEL // 2:
        raise ParameterError(f"the blur (kernel {BLUR_KERNEL}) needs an image larger than {BLUR_KERNEL // 2} px per side; got {tuple(x.shape[-2:])}")
    return gaussian_blur(x, [BLUR_KERNEL, BLUR_KERNEL], [BLUR_SIGMA, BLUR_SIGMA])


def substrate_image(x: torch.Tensor, substrate: str) -> torch.Tensor:
    """What deleted pixels become, [B,C,H,W] in x's space."""
    if substrate == "zero":
        return torch.zeros_like(x)
    if substrate == "blur":
        return blurred(x)
    if substrate == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    raise ParameterError(f"substrate must be one of {', '.join(SUBSTRATES)}; got {substrate!r}")


def pixel_counts(h: int, w: int, step: int) -> torch.Tensor:
    """Pixels replaced at each point: ``min(k*step, H*W)`` for k = 0..ceil(H*W/step) -> long [N]."""
    if int(step) != step or step < 1:
        raise ParameterError(f"step must be a whole number of pixels >= 1; got {step!r}")
    p = h * w
    return (torch.arange(math.ceil(p / step) + 1) * int(step)).clamp(max=p)


@dataclass(frozen=True)
class DeletionInsertion:
    """Curves [B,N] and AUCs [B] (dicts keyed by method when several maps were given; None for a curve not asked for).

    ``pixels`` [N]: pixels replaced at each point; ``forwards``: model calls made; ``engine``: the inference path used.
    """

    deletion: Any
    insertion: Any
    deletion_auc: Any
    insertion_auc: Any
    pixels: torch.Tensor
    step: int
    substrate: str
    forwards: int
    seconds: float
    engine: str

    @property
    def fraction(self) -> torch.Tensor:
        """The x axis: share of pixels replaced (deletion) or restored (insertion) at each point, [N]."""
        return self.pixels.float() / float(self.pixels[-1])

    def conventions(self) -> str:
        """The settings to print next to the scores."""
        return conventions(self.step, self.substrate, int(self.pixels[-1]))


def conventions(step: int, substrate: str, pixels: int) -> str:
    n = math.ceil(pixels / step) + 1
    sub = {"zero": "zero in the model's normalized input space", "blur": "the blurred image", "mean": "the image's per-channel mean"}[substrate]
    return (
        f"Petsiuk et al. 2018: {step} pixels per step ({n} points on {pixels} pixels), ranking by value (argsort descending, stable; not |value|); "
        f"deletion substrate: {sub}; insertion starts from gaussian_blur(kernel {BLUR_KERNEL}, sigma {BLUR_SIGMA:g}); "
        "score: softmax probability of the target; AUC = (sum - first/2 - last/2)/(N-1). Deletion: lower is better; insertion: higher is better."
    )


def compose(x: torch.Tensor, ranks: torch.Tensor, counts: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Images whose ``counts`` [n] top-ranked pixels come from ``fill`` and the rest from ``x``: all [n,C,H,W], ranks [n,H*W]."""
    keep_fill = (ranks < counts.view(-1, 1)).view(x.shape[0], 1, *x.shape[-2:])
    return torch.where(keep_fill, fill, x)


def deletion_insertion(
    model: Any,
    x: torch.Tensor,
    attribution: torch.Tensor | dict[str, torch.Tensor],
    target: int | torch.Tensor,
    *,
    step: int = 224,
    substrate: str = "zero",
    batch_size: int | None = None,
    curves: tuple[str, ...] = CURVES,
) -> DeletionInsertion:
    """Deletion and insertion curves of one or many maps.

    ``x`` [B,C,H,W] preprocessed; ``attribution`` [B,H,W] or {name: [B,H,W]}; ``target`` int or [B].
    Returns curves [B,N] and AUCs [B] (dicts by name when a dict was given), N = ceil(H*W/step) + 1.
    ``batch_size``: perturbed images built and passed to the engine at once (None: a few of its chunks).
    """
    start = time.perf_counter()
    inp = prepare(model, x, attribution, target)
    net, x, maps, t = inp.net, inp.x, inp.maps, inp.target
    curves = tuple(curves)
    if not curves or set(curves) - set(CURVES):
        raise ParameterError(f"curves must be a non-empty subset of {CURVES}; got {curves!r}")
    b, _, h, w = x.shape
    counts = pixel_counts(h, w, step).to(x.device)
    n_points = counts.numel()
    names = list(maps)
    ranks = torch.stack([pixel_ranks(maps[m]) for m in names])  # [M,B,P]

    sub = substrate_image(x, substrate)
    blur = blurred(x)  # also checks the image is large enough for the kernel
    # shared endpoints, each computed once for all methods: the image, and the fully replaced image
    # (deletion's last point) and/or the blurred image (insertion's first point)
    ends = {"x": x, **({"sub": sub} if "deletion" in curves else {}), **({"blur": blur} if "insertion" in curves else {})}
    inner = torch.arange(1, n_points - 1, device=x.device)
    total = len(curves) * len(names) * b * inner.numel() + len(ends) * b
    ff = engine(net, x)
    p = dict(zip(ends, ff.probability(torch.cat(list(ends.values())), t.repeat(len(ends))).split(b), strict=True))
    values = torch.empty(len(curves), len(names), b, n_points, device=x.device)
    for ci, c in enumerate(curves):
        values[ci, :, :, 0] = p["x"] if c == "deletion" else p["blur"]
        values[ci, :, :, -1] = p["sub"] if c == "deletion" else p["x"]
    # fill / base image per curve: deletion puts the substrate over x, insertion puts x over the blur
    fills = torch.stack([{"deletion": sub, "insertion": x}[c] for c in curves])  # [Cv,B,C,H,W]
    bases = torch.stack([{"deletion": x, "insertion": blur}[c] for c in curves])
    _inner_points(ff, t, ranks, counts, fills, bases, values, batch_size)
    out: dict[str, Any] = {"deletion": None, "insertion": None, "deletion_auc": None, "insertion_auc": None}
    for ci, c in enumerate(curves):
        per = {m: values[ci, mi].cpu() for mi, m in enumerate(names)}
        out[c] = inp.unwrap(per)
        out[f"{c}_auc"] = inp.unwrap({m: auc(v) for m, v in per.items()})
    return DeletionInsertion(
        **out, pixels=counts.cpu(), step=int(step), substrate=substrate, forwards=total, seconds=time.perf_counter() - start, engine=ff.describe()
    )


def _inner_points(
    ff: Any, t: torch.Tensor, ranks: torch.Tensor, counts: torch.Tensor, fills: torch.Tensor, bases: torch.Tensor, values: torch.Tensor, batch_size: int | None
) -> None:
    """Fill ``values`` [Cv,M,B,N] at the inner points 1..N-2 of every (curve, method, image): one forward per point, in
    chunks; ``ranks`` [M,B,H*W], ``counts`` [N], ``fills``/``bases`` [Cv,B,C,H,W] (the top pixels come from the fill)."""
    n_cv, n_m, b, n_points = values.shape
    h, w = fills.shape[-2:]
    inner = torch.arange(1, n_points - 1, device=values.device)
    if not inner.numel():
        return
    jobs = torch.cartesian_prod(torch.arange(n_cv), torch.arange(n_m), torch.arange(b), torch.arange(inner.numel())).to(values.device)
    chunk = batch_size or ff.batch_size * max(1, 32 // ff.batch_size)  # build several engine chunks at once
    with progress.stage("curve points", math.ceil(jobs.shape[0] / chunk)) as st:
        for i in range(0, jobs.shape[0], chunk):
            st.at(i // chunk)
            sl = jobs[i : i + chunk]
            batch = torch.empty((sl.shape[0], *fills.shape[2:]), device=values.device)
            # jobs run k-fastest, so a chunk holds one or two (curve, method, image) groups: build each
            # group's images straight into the batch from its rank row (no per-job gathers of images)
            _, sizes = torch.unique_consecutive((sl[:, 0] * n_m + sl[:, 1]) * b + sl[:, 2], return_counts=True)
            at = 0
            for n in sizes.tolist():
                cj, mj, bj = sl[at, :3].tolist()
                k = inner[sl[at : at + n, 3]]
                keep = (ranks[mj, bj].unsqueeze(0) < counts[k].unsqueeze(1)).view(n, 1, h, w)
                torch.where(keep, fills[cj, bj].unsqueeze(0), bases[cj, bj].unsqueeze(0), out=batch[at : at + n])
                at += n
            cj, mj, bj, kj = sl.unbind(1)
            values[cj, mj, bj, inner[kj]] = ff.probability(batch, t[bj])


def perturbed(x: torch.Tensor, attribution: torch.Tensor, point: int, *, curve: str = "deletion", step: int = 224, substrate: str = "zero") -> torch.Tensor:
    """What the model sees at ``point`` k of a curve: [B,C,H,W] from ``x`` [B,C,H,W] and ``attribution`` [B,H,W]."""
    x = check_x(x)
    maps, _ = check_maps(attribution, x)
    counts = pixel_counts(x.shape[2], x.shape[3], step)
    if not 0 <= point < counts.numel():
        raise ParameterError(f"point must lie in [0, {counts.numel() - 1}]; got {point}")
    ranks = pixel_ranks(maps["map"] if "map" in maps else next(iter(maps.values())))
    n = counts[point].to(x.device).expand(x.shape[0])
    if curve == "deletion":
        return compose(x, ranks, n, substrate_image(x, substrate))
    if curve == "insertion":
        return compose(blurred(x), ranks, n, x)
    raise ParameterError(f"curve must be one of {CURVES}; got {curve!r}")


# ---------------------------------------------------------------------------------- registry

_PARAMS = (
    Param("step", 224, 1, 50176, 1, help="pixels replaced per step (224 on 224x224 = the paper's 225 points)"),
    Param("substrate", "zero", choices=SUBSTRATES, help="what deleted pixels become"),
)


def _cost(p: dict, h: int, w: int) -> int:
    return math.ceil(h * w / p["step"]) - 1


def _score(ctx: MetricContext, maps: dict[str, torch.Tensor], curve: str, step: int, substrate: str) -> dict[str, torch.Tensor]:
    res = deletion_insertion(
        ctx.model,
        ctx.x,
        maps,
        ctx.target,
        step=step,
        substrate=substrate,
        batch_size=ctx.batch_size,
        curves=(curve,),
    )
    return getattr(res, f"{curve}_auc")


@metric(
    title="Deletion AUC",
    category="faithfulness",
    higher_is_better=False,
    paper="Petsiuk et al. 2018, RISE (BMVC)",
    conventions=f"AUC of the target's softmax probability as the top pixels are replaced by the substrate; trapezoid on [0,1]; {RANKING}",
    params=_PARAMS,
    cost=_cost,
)
def deletion(ctx: MetricContext, maps: dict[str, torch.Tensor], *, step: int = 224, substrate: str = "zero") -> dict[str, torch.Tensor]:
    """Deletion AUC per method, [B] each."""
    return _score(ctx, maps, "deletion", step, substrate)


@metric(
    title="Insertion AUC",
    category="faithfulness",
    higher_is_better=True,
    paper="Petsiuk et al. 2018, RISE (BMVC)",
    conventions=f"AUC of the target's softmax probability as the top pixels are restored onto the blurred image (kernel 11, sigma 5); {RANKING}",
    params=(_PARAMS[0],),
    cost=_cost,
)
def insertion(ctx: MetricContext, maps: dict[str, torch.Tensor], *, step: int = 224) -> dict[str, torch.Tensor]:
    """Insertion AUC per method, [B] each."""
    return _score(ctx, maps, "insertion", step, "zero")
