"""Model-parameter randomization (Adebayo et al. 2018, "Sanity Checks for Saliency Maps", NeurIPS).

- Cascading: the model's blocks are re-initialized one after another from the top (logits) down to the
  stem, every selected method's map recomputed after each block. Independent: one block at a time,
  all the others trained.
- Blocks: the model spec's (``zoo.ModelSpec.blocks``: e.g. EfficientNet-Lite0's classifier, head conv,
  16 MBConv blocks and stem); for a model without them, every module that owns parameters.
- Re-initialization rule: each module's own ``reset_parameters()`` (BatchNorm: weight 1, bias 0, running
  statistics reset) under ``torch.manual_seed(seed * 1009 + step)``; a module without one gets
  ``trunc_normal_(std=0.02)`` on each parameter. The same seed gives the same randomized weights.
- All of it on a private deep copy made once per run: the caller's model is never touched.
- Similarity to the original map (``map_similarity``): Spearman rank correlation of the maps and of their
  absolute values (scipy), SSIM of the 2-D maps (scikit-image) and Pearson correlation of their HOG
  features (scikit-image). For SSIM and HOG both maps are normalized the same way: |map| / max |map|
  (in [0, 1]); rank correlations do not depend on scale. An undefined correlation (a constant map) counts as 0.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from skimage.feature import hog
from skimage.metrics import structural_similarity
from torch import nn

import explainers
from core import progress as ticks
from core.errors import InputError, ParameterError
from explainers.context import RNG_LOCK, forget, private_copy
from metrics.common import as_module, check_one_image, check_target, n_classes

SIMILARITIES: dict[str, str] = {
    "spearman": "Spearman rank correlation",
    "spearman_abs": "Spearman rank correlation of |map|",
    "ssim": "SSIM",
    "hog": "Pearson correlation of HOG features",
}
MODES = ("cascading", "independent")
Blocks = Sequence[tuple[str, Sequence[str]]]


def default_blocks(model: nn.Module) -> list[tuple[str, tuple[str, ...]]]:
    """Every module that owns parameters, in definition order (bottom to top)."""
    return [(name, (name,)) for name, m in model.named_modules() if name and any(True for _ in m.parameters(recurse=False))]


def model_blocks(model: Any) -> list[tuple[str, tuple[str, ...]]]:
    """The randomization blocks of a ``zoo.LoadedModel`` (its spec's) or of a bare module (``default_blocks``), bottom to top."""
    blocks = getattr(model, "blocks", None)
    return [(n, tuple(p)) for n, p in blocks] if blocks else default_blocks(as_module(model))


def _modules(model: nn.Module, prefixes: Sequence[str]) -> list[nn.Module]:
    mods = [m for name, m in model.named_modules() if any(name == p or name.startswith(p + ".") for p in prefixes)]
    if not mods:
        raise ParameterError(f"no module named {', '.join(prefixes)} in the model")
    return mods


@torch.no_grad()
def randomize_block(model: nn.Module, prefixes: Sequence[str], seed: int) -> None:
    """Re-initialize (in place) every module under ``prefixes`` with the seeded rule of the module docstring."""
    with RNG_LOCK, torch.random.fork_rng(devices=[]):  # the global generator, seeded, shared with no other thread meanwhile
        torch.manual_seed(seed)
        for m in _modules(model, prefixes):
            if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
                m.reset_parameters()
            else:
                for p in m.parameters(recurse=False):
                    nn.init.trunc_normal_(p, std=0.02)


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


@dataclass(frozen=True)
class Randomization:
    """``steps``: "original" then the block randomized at each step (top first). ``maps``: method -> [S+1,H,W]
    (index 0: the original). ``similarity``: measure -> method -> [S] (each step's map against the original).
    ``errors``: method -> why it has no maps."""

    mode: str
    seed: int
    steps: list[str]
    maps: dict[str, torch.Tensor]
    similarity: dict[str, dict[str, torch.Tensor]]
    errors: dict[str, str]
    seconds: float

    def table(self) -> list[dict[str, Any]]:
        """Long-format rows (method, step, block, measure, value, mode, seed) for a CSV."""
        rows = []
        for measure, per in self.similarity.items():
            for method, values in per.items():
                for i, v in enumerate(values.tolist(), start=1):
                    rows.append({"method": method, "step": i, "block": self.steps[i], "measure": measure, "value": v, "mode": self.mode, "seed": self.seed})
        return rows


def _maps_of(
    model: Any, x: torch.Tensor, target: torch.Tensor, methods: Sequence[str], params: dict[str, dict[str, Any]], seed: int
) -> dict[str, torch.Tensor | str]:
    out: dict[str, torch.Tensor | str] = {}
    for m in methods:
        kw = {**({"seed": seed} if explainers.get(m).stochastic else {}), **params.get(m, {})}
        try:
            out[m] = explainers.explain(m, model, x, target, **kw)[0]
        except InputError as exc:
            out[m] = str(exc)
    return out


def model_randomization(
    model: Any,
    x: torch.Tensor,
    target: int | torch.Tensor,
    methods: Sequence[str],
    *,
    mode: str = "cascading",
    blocks: Blocks | None = None,
    similarity: Sequence[str] = tuple(SIMILARITIES),
    seed: int = 0,
    method_params: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Randomization:
    """Maps of ``methods`` for one image ``x`` [1,C,H,W] as the blocks of a private copy of ``model`` are
    re-initialized from the top down (``mode="cascading"``) or one at a time (``"independent"``), with
    their similarity to the original maps. ``blocks``: (title, module prefixes) bottom to top (default:
    the model's). Seeded; the caller's model is unchanged."""
    start = time.perf_counter()
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    measures = list(similarity)
    for s in measures:
        if s not in SIMILARITIES:
            raise ParameterError(f"similarity must be among {', '.join(SIMILARITIES)}; got {s!r}")
    methods = list(methods)
    if not methods:
        raise ParameterError("choose at least one method")
    for m in methods:
        explainers.get(m)
    net = as_module(model)
    x = check_one_image(x, "model randomization")
    t = check_target(target, 1, x.device, n_classes(model))
    order = list(reversed([(n, tuple(p)) for n, p in (blocks if blocks is not None else model_blocks(model))]))
    if not order:
        raise ParameterError("the model has no parameters to randomize")
    private = private_copy(net)
    for _, prefixes in order:
        _modules(private, prefixes)  # every block must exist before any work is done
    wrapped = dataclasses.replace(model, model=private) if dataclasses.is_dataclass(model) else private
    params = method_params or {}
    total = len(order) + 1
    if progress:
        progress(0, total, "original")
    first = _maps_of(wrapped, x, t, methods, params, seed)
    errors = {m: v for m, v in first.items() if isinstance(v, str)}
    ok = [m for m in methods if m not in errors]
    maps: dict[str, list[torch.Tensor]] = {m: [first[m]] for m in ok}
    saved: dict[str, torch.Tensor] | None = None
    try:
        for i, (name, prefixes) in enumerate(order, start=1):
            if progress:
                progress(i, total, name)
            ticks.tick(f"randomizing {name}")
            with torch.no_grad():
                if mode == "independent" and saved is not None:
                    private.load_state_dict(saved, strict=False)  # put the previous block back
                if mode == "independent":
                    keep = {k for k in private.state_dict() if any(k == p or k.startswith(p + ".") for p in prefixes)}
                    saved = {k: v.clone() for k, v in private.state_dict().items() if k in keep}
                randomize_block(private, prefixes, seed * 1009 + i)
            forget(private)
            step = _maps_of(wrapped, x, t, ok, params, seed)
            for m in ok:
                if isinstance(step[m], str):  # e.g. all-zero gradients after randomization: keep the row, mark the step
                    errors.setdefault(m, f"step {name}: {step[m]}")
                    maps[m].append(torch.zeros_like(maps[m][0]))
                else:
                    maps[m].append(step[m])
    finally:
        forget(private)
    stacked = {m: torch.stack(v) for m, v in maps.items()}
    sims = {s: {m: torch.tensor([map_similarity(v[0], v[j], s) for j in range(1, v.shape[0])]) for m, v in stacked.items()} for s in measures}
    if progress:
        progress(total, total, "")
    return Randomization(mode, int(seed), ["original", *[n for n, _ in order]], stacked, sims, errors, time.perf_counter() - start)


@dataclass(frozen=True)
class DataRandomization:
    """Maps of the same methods from the trained model and the model trained on permuted labels, and their similarity."""

    maps: dict[str, torch.Tensor]  # method -> [2,H,W]: trained, permuted-label model
    similarity: dict[str, dict[str, float]]  # measure -> method -> value
    errors: dict[str, str]


def data_randomization(
    model: Any,
    permuted: Any,
    x: torch.Tensor,
    target: int | torch.Tensor,
    methods: Sequence[str],
    *,
    similarity: Sequence[str] = tuple(SIMILARITIES),
    seed: int = 0,
    method_params: dict[str, dict[str, Any]] | None = None,
) -> DataRandomization:
    """Adebayo et al.'s data randomization test: each method's map [H,W] for ``x`` [1,C,H,W] from ``model``
    and from ``permuted`` (the same architecture trained on permuted labels), compared by ``similarity``."""
    x = check_one_image(x, "data randomization")
    t = check_target(target, 1, x.device, n_classes(model))
    params = method_params or {}
    a = _maps_of(model, x, t, list(methods), params, seed)
    b = _maps_of(permuted, x, t, list(methods), params, seed)
    errors = {m: v for m, v in {**b, **a}.items() if isinstance(v, str)}
    ok = [m for m in methods if m not in errors]
    maps = {m: torch.stack([a[m], b[m]]) for m in ok}
    for s in similarity:
        if s not in SIMILARITIES:
            raise ParameterError(f"similarity must be among {', '.join(SIMILARITIES)}; got {s!r}")
    sims = {s: {m: map_similarity(v[0], v[1], s) for m, v in maps.items()} for s in similarity}
    return DataRandomization(maps, sims, errors)
