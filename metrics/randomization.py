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
- Similarity to the original map: ``metrics.similarity.map_similarity`` (Spearman of the maps and of |map|, SSIM,
  Pearson of HOG features, all on maps normalized the same way).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import explainers
from core import progress
from core.errors import InputError, ParameterError
from core.model_state import private_copy
from core.rng import RNG_LOCK
from explainers.canonical import forget
from metrics.common import as_module, check_one_image, check_target, n_classes
from metrics.similarity import SIMILARITIES, map_similarity

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


@contextlib.contextmanager
def randomizable(model: Any) -> Iterator[tuple[Any, nn.Module]]:
    """(the copy as the explainers take it, its module): a private copy of ``model`` (a ``zoo.LoadedModel`` keeps
    its CAM layer and pixel range) to randomize in place with ``randomize``; its cached canonical copies are dropped
    on exit. The caller's model is never touched."""
    private = private_copy(as_module(model))
    wrapped = dataclasses.replace(model, model=private) if dataclasses.is_dataclass(model) else private
    try:
        yield wrapped, private
    finally:
        forget(private)


def randomize(private: nn.Module, prefixes: Sequence[str], seed: int) -> None:
    """``randomize_block`` on a private copy, then drop its cached canonical copies (they hold the old weights)."""
    randomize_block(private, prefixes, seed)
    forget(private)


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
        try:
            out[m] = explainers.explain(m, model, x, target, **{"seed": seed, **params.get(m, {})})[0]
        except InputError as exc:
            out[m] = str(exc)
    return out


def _check_measures(similarity: Sequence[str]) -> list[str]:
    measures = list(similarity)
    for s in measures:
        if s not in SIMILARITIES:
            raise ParameterError(f"similarity must be among {', '.join(SIMILARITIES)}; got {s!r}")
    return measures


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
) -> Randomization:
    """Maps of ``methods`` for one image ``x`` [1,C,H,W] as the blocks of a private copy of ``model`` are
    re-initialized from the top down (``mode="cascading"``) or one at a time (``"independent"``), with
    their similarity to the original maps. ``blocks``: (title, module prefixes) bottom to top (default:
    the model's). Seeded; the caller's model is unchanged. One ``core.progress`` stage job per step."""
    start = time.perf_counter()
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    measures = _check_measures(similarity)
    methods = list(methods)
    if not methods:
        raise ParameterError("choose at least one method")
    for m in methods:
        explainers.get(m)
    x = check_one_image(x, "model randomization")
    t = check_target(target, 1, x.device, n_classes(model))
    order = list(reversed([(n, tuple(p)) for n, p in (blocks if blocks is not None else model_blocks(model))]))
    if not order:
        raise ParameterError("the model has no parameters to randomize")
    with randomizable(model) as (wrapped, private):
        for _, prefixes in order:
            _modules(private, prefixes)  # every block must exist before any work is done
        maps, errors = _cascade(wrapped, private, x, t, methods, order, mode=mode, seed=seed, params=method_params or {})
    stacked = {m: torch.stack(v) for m, v in maps.items()}
    sims = {s: {m: torch.tensor([map_similarity(v[0], v[j], s) for j in range(1, v.shape[0])]) for m, v in stacked.items()} for s in measures}
    return Randomization(mode, int(seed), ["original", *[n for n, _ in order]], stacked, sims, errors, time.perf_counter() - start)


def _cascade(
    wrapped: Any,
    private: nn.Module,
    x: torch.Tensor,
    t: torch.Tensor,
    methods: list[str],
    order: list[tuple[str, tuple[str, ...]]],
    *,
    mode: str,
    seed: int,
    params: dict[str, dict[str, Any]],
) -> tuple[dict[str, list[torch.Tensor]], dict[str, str]]:
    """The maps of every step (index 0: the original) and the reason for each method that has none."""
    with progress.stage("randomization steps", len(order) + 1) as st:
        st.at(0, "original")
        first = _maps_of(wrapped, x, t, methods, params, seed)
        errors = {m: v for m, v in first.items() if isinstance(v, str)}
        maps: dict[str, list[torch.Tensor]] = {m: [v] for m, v in first.items() if not isinstance(v, str)}
        saved: dict[str, torch.Tensor] | None = None
        for i, (name, prefixes) in enumerate(order, start=1):
            st.at(i, f"randomizing {name}")
            with torch.no_grad():
                if mode == "independent" and saved is not None:
                    private.load_state_dict(saved, strict=False)  # put the previous block back
                if mode == "independent":
                    keep = {k for k in private.state_dict() if any(k == p or k.startswith(p + ".") for p in prefixes)}
                    saved = {k: v.clone() for k, v in private.state_dict().items() if k in keep}
                randomize(private, prefixes, seed * 1009 + i)
            step = _maps_of(wrapped, x, t, list(maps), params, seed)
            for m in maps:
                if isinstance(step[m], str):  # e.g. all-zero gradients after randomization: keep the row, mark the step
                    errors.setdefault(m, f"step {name}: {step[m]}")
                    maps[m].append(torch.zeros_like(maps[m][0]))
                else:
                    maps[m].append(step[m])
    return maps, errors


def random_floor(shape: tuple[int, int], similarity: Sequence[str] = tuple(SIMILARITIES), seed: int = 0) -> dict[str, float]:
    """The similarity of two independent uniform random maps of ``shape`` [H,W] for each measure: the floor a map
    falls to when it no longer depends on anything it shared with the original (seeded)."""
    a = torch.rand(shape, generator=torch.Generator().manual_seed(int(seed) * 2 + 1))
    b = torch.rand(shape, generator=torch.Generator().manual_seed(int(seed) * 2 + 2))
    return {s: map_similarity(a, b, s) for s in _check_measures(similarity)}


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
    _check_measures(similarity)
    params = method_params or {}
    a = _maps_of(model, x, t, list(methods), params, seed)
    b = _maps_of(permuted, x, t, list(methods), params, seed)
    errors = {m: v for m, v in {**b, **a}.items() if isinstance(v, str)}
    ok = [m for m in methods if m not in errors]
    maps = {m: torch.stack([a[m], b[m]]) for m in ok}
    sims = {s: {m: map_similarity(v[0], v[1], s) for m, v in maps.items()} for s in similarity}
    return DataRandomization(maps, sims, errors)
