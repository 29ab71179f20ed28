"""ROAD: RemOve And Debias (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy for Attribution
Methods", ICML), with noisy linear imputation.

For each percentage p, the top p% pixels (MoRF, most relevant first) or the bottom p% (LeRF, least
relevant first) of the ranking ``argsort(map, descending, stable)`` (by value, not |value|: a signed map's
evidence against the target is the least relevant, ``metrics.common.pixel_ranks``) are removed and imputed: each
removed pixel becomes the weighted mean of its 8 neighbours (weights 1/6 for the 4 direct, 1/12 for
the diagonal neighbours; out-of-image neighbours dropped), removed neighbours being unknowns of the
same sparse linear system, solved per image and mask for all channels at once (scipy.sparse, as the
authors' code does); Gaussian noise (std ``noise``, 0.01 in the reference code) is added to the imputed
values. Imputation happens in the model's input space. The score at each p is the softmax probability
of the target (the paper averages accuracy over a data set; the leaderboard's mean over images is its
probability-weighted counterpart). The per-image scores: mean over p of the MoRF curve (lower is
better) and of the LeRF curve (higher is better).

Hand-written because no installed library offers it (the authors' code and Quantus build the system
with a Python loop per neighbour on lil matrices; here it is built in one vectorized COO pass).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from core import progress
from core.errors import ParameterError
from core.registry import Param
from metrics.common import RANKING, Inputs, pixel_ranks, prepare
from metrics.engine import engine
from metrics.registry import MetricContext, metric

NEIGHBOURS = ((-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12), (0, -1, 1 / 6), (0, 1, 1 / 6), (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12))
PERCENTAGES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
ORDERS = ("morf", "lerf")


def impute(image: torch.Tensor, removed: torch.Tensor, *, noise: float = 0.01, generator: torch.Generator | None = None) -> torch.Tensor:
    """Noisy linear imputation of one image [C,H,W]: pixels where ``removed`` [H,W] (bool) is True are replaced.

    Solves, for every removed pixel i, ``sum_j w_j (x_j - x_i) = 0`` over its in-image neighbours j.
    """
    c, h, w = image.shape
    rem = removed.detach().cpu().numpy().reshape(-1)
    idx = np.flatnonzero(rem)
    if idx.size == 0:
        return image.clone()
    img = image.detach().cpu().double().numpy().reshape(c, -1)
    var = -np.ones(h * w, dtype=np.int64)
    var[idx] = np.arange(idx.size)
    r, col = np.divmod(idx, w)
    diag = np.zeros(idx.size)
    rhs = np.zeros((idx.size, c))
    rows, cols, vals = [], [], []
    for dr, dc, wt in NEIGHBOURS:
        rr, cc = r + dr, col + dc
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        eq = np.flatnonzero(inside)
        nb = rr[inside] * w + cc[inside]
        diag[eq] += wt
        unknown = rem[nb]
        rows.append(eq[unknown])
        cols.append(var[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), -wt))
        known = ~unknown
        np.add.at(rhs, eq[known], wt * img[:, nb[known]].T)
    a = sp.coo_matrix(
        (np.concatenate([diag, *vals]), (np.concatenate([np.arange(idx.size), *rows]), np.concatenate([np.arange(idx.size), *cols]))),
        shape=(idx.size, idx.size),
    ).tocsc()
    sol = spla.spsolve(a, rhs)
    sol = np.asarray(sol).reshape(idx.size, c)
    out = image.detach().clone().reshape(c, -1)
    filled = torch.from_numpy(sol.T).to(out)
    if noise:
        filled = filled + noise * torch.randn(filled.shape, generator=generator, dtype=out.dtype).to(out.device)
    out[:, torch.from_numpy(idx).to(out.device)] = filled
    return out.reshape(c, h, w)


@dataclass(frozen=True)
class Road:
    """Curves [B,P] per order (dicts by method when several maps were given) at ``percentages``."""

    morf: Any
    lerf: Any
    percentages: tuple[int, ...]
    noise: float
    forwards: int
    seconds: float


def road(
    model: Any,
    x: torch.Tensor,
    attribution: torch.Tensor | dict[str, torch.Tensor],
    target: int | torch.Tensor,
    *,
    percentages: tuple[int, ...] = PERCENTAGES,
    orders: tuple[str, ...] = ORDERS,
    noise: float = 0.01,
    seed: int = 0,
    batch_size: int | None = None,
) -> Road:
    """ROAD curves: target probability after removing and imputing p% of the pixels, MoRF and/or LeRF.

    ``x`` [B,C,H,W], ``attribution`` [B,H,W] or {name: [B,H,W]} -> curves [B,len(percentages)].
    Seeded: the same seed gives the same imputation noise. ``batch_size``: imputed images per engine call (None: all).
    """
    start = time.perf_counter()
    inp = prepare(model, x, attribution, target)
    pcts = tuple(int(p) for p in percentages)
    if not pcts or any(not 0 < p < 100 for p in pcts):
        raise ParameterError("ROAD percentages must lie strictly between 0 and 100")
    if not orders or set(orders) - set(ORDERS):
        raise ParameterError(f"orders must be a non-empty subset of {ORDERS}")
    b = inp.x.shape[0]
    keys = [(o, m, bi, pi) for o in orders for m in inp.maps for bi in range(b) for pi in range(len(pcts))]
    ff = engine(inp.net, inp.x)
    images = _imputed(inp, keys, pcts, noise, torch.Generator().manual_seed(int(seed)))
    targets, per = inp.target[[k[2] for k in keys]], batch_size or len(keys)
    probs = torch.cat([ff.probability(images[i : i + per], targets[i : i + per]) for i in range(0, len(keys), per)])
    curves = {o: {m: torch.empty(b, len(pcts)) for m in inp.maps} for o in ORDERS}
    for (o, m, bi, pi), v in zip(keys, probs.cpu(), strict=True):
        curves[o][m][bi, pi] = v
    pick = {o: inp.unwrap(curves[o]) if o in orders else None for o in ORDERS}
    return Road(pick["morf"], pick["lerf"], pcts, float(noise), len(keys), time.perf_counter() - start)


def _imputed(inp: Inputs, keys: list[tuple[str, str, int, int]], pcts: tuple[int, ...], noise: float, gen: torch.Generator) -> torch.Tensor:
    """The imputed image [len(keys),C,H,W] of every (order, method, image, percentage) key, one stage job each."""
    h, w = inp.x.shape[-2:]
    n_pix = h * w
    ranks = {m: pixel_ranks(a) for m, a in inp.maps.items()}
    images = []
    with progress.stage("imputations", len(keys)) as st:
        for i, (o, m, bi, pi) in enumerate(keys):
            st.at(i, "imputation")
            k = round(n_pix * pcts[pi] / 100)
            removed = ranks[m][bi] < k if o == "morf" else ranks[m][bi] >= n_pix - k
            images.append(impute(inp.x[bi], removed.view(h, w), noise=noise, generator=gen))
    return torch.stack(images)


_PARAMS = (Param("noise", 0.01, 0.0, 1.0, 0.01, help="std of the noise added to imputed values (input space)"),)


def _cost(p: dict, h: int, w: int) -> int:
    return len(PERCENTAGES)


def _score(ctx: MetricContext, maps: dict[str, torch.Tensor], order: str, noise: float) -> dict[str, torch.Tensor]:
    res = road(
        ctx.model, ctx.x, maps, ctx.target, orders=(order,), noise=noise, seed=ctx.seed, batch_size=ctx.batch_size
    )
    return {m: c.mean(1) for m, c in getattr(res, order).items()}


_CONV = f"noisy linear imputation (8 neighbours, 1/6 and 1/12), noise std 0.01 by default, in input space, at 10%..90%; score = mean target probability; {RANKING}"


@metric(
    title="ROAD MoRF",
    category="faithfulness",
    higher_is_better=False,
    paper="Rong et al. 2022, ROAD (ICML)",
    conventions="most relevant pixels removed first; " + _CONV,
    params=_PARAMS,
    cost=_cost,
)
def road_morf(ctx: MetricContext, maps: dict[str, torch.Tensor], *, noise: float = 0.01) -> dict[str, torch.Tensor]:
    """Mean target probability over the MoRF percentages, [B] per method."""
    return _score(ctx, maps, "morf", noise)


@metric(
    title="ROAD LeRF",
    category="faithfulness",
    higher_is_better=True,
    paper="Rong et al. 2022, ROAD (ICML)",
    conventions="least relevant pixels removed first; " + _CONV,
    params=_PARAMS,
    cost=_cost,
)
def road_lerf(ctx: MetricContext, maps: dict[str, torch.Tensor], *, noise: float = 0.01) -> dict[str, torch.Tensor]:
    """Mean target probability over the LeRF percentages, [B] per method."""
    return _score(ctx, maps, "lerf", noise)
