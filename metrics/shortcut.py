"""The shortcut study: the shortcut model's test sets, its accuracy on them, and the interventions that show what it
relies on (its class marker, not the shape): removing the marker or the shape, pasting another class's marker.

The test sets are ``zoo.synthetic.make_shortcut_dataset(n, SHORTCUT_TEST_SEED, mode)``: the same n images in every
mode, differing only in the marker, so the accuracies and the interventions compare like with like.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from metrics.counterfactual import Counterfactual, forward_logits, paste_region, remove_region
from metrics.region import explain_set, region_scores
from zoo.synthetic import MARKER_MODES, SHORTCUT_TEST_SEED, make_shortcut_dataset, marker_class

TEST_MODES: tuple[str, ...] = MARKER_MODES[1:]  # agree, absent, other
MODEL = "synthetic_shapes_shortcut"


@dataclass(frozen=True)
class ShortcutSet:
    """A test set in the model's input space: ``x`` [N,3,64,64], ``labels`` [N], ``shape`` and ``marker`` masks
    bool [N,64,64], ``marker_class`` [N] (-1: no marker), the mode and the seed."""

    x: torch.Tensor
    labels: torch.Tensor
    shape: torch.Tensor
    marker: torch.Tensor
    marker_class: torch.Tensor
    mode: str
    seed: int


def shortcut_set(loaded: Any, n: int, mode: str = "agree", seed: int = SHORTCUT_TEST_SEED) -> ShortcutSet:
    """``n`` test images of ``mode`` (agree / absent / other / train), normalized for ``loaded`` (a ``zoo.LoadedModel``)."""
    x, y, shape, marker = make_shortcut_dataset(n, seed, mode)
    device = next(iter(loaded.model.parameters())).device
    return ShortcutSet(loaded.normalize(x.to(device)), y.to(device), shape.to(device), marker.to(device), marker_class(marker).to(device), mode, seed)


def predictions(loaded: Any, x: torch.Tensor) -> torch.Tensor:
    """Top-1 classes [N] of ``x`` [N,C,H,W] (one batched call of the metrics' forward path)."""
    return forward_logits(loaded.model, x).argmax(1).cpu()


def accuracies(loaded: Any, n: int, seed: int = SHORTCUT_TEST_SEED) -> dict[str, float]:
    """Accuracy on the ``n`` images of each test set: the marker agrees with the class, is absent, is another class's."""
    sets = [shortcut_set(loaded, n, mode, seed) for mode in TEST_MODES]
    pred = predictions(loaded, torch.cat([s.x for s in sets])).split(n)
    return {s.mode: float((p == s.labels.cpu()).float().mean()) for s, p in zip(sets, pred, strict=True)}


def targets(loaded: Any, s: ShortcutSet, target: str) -> torch.Tensor:
    """The class explained for each image: "label" (the shape's class) or "prediction" (the model's top-1)."""
    return s.labels if target == "label" else predictions(loaded, s.x).to(s.labels.device)


def shares(loaded: Any, s: ShortcutSet, t: torch.Tensor, method: str, params: dict | None = None, *, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """One method's maps [N,64,64] for targets ``t`` [N] and their scores {measure: {"marker"|"shape": [N]}}."""
    maps = explain_set(loaded, s.x, t, method, params, seed=seed)
    regions = {"marker": s.marker, "shape": s.shape}
    return maps, {m: {r: v[method] for r, v in region_scores({method: maps}, regions, m).items()} for m in ("relevance_mass", "relevance_rank")}


def removals(loaded: Any, s: ShortcutSet, t: torch.Tensor, *, substrate: str = "impute", seed: int = 0) -> dict[str, Counterfactual]:
    """p(target) before and after the marker is removed, and after the shape is removed (same substrate)."""
    return {region: remove_region(loaded, s.x, getattr(s, region), t, substrate=substrate, seed=seed) for region in ("marker", "shape")}


def pasted_markers(loaded: Any, n: int, seed: int = SHORTCUT_TEST_SEED) -> Counterfactual:
    """Another class's marker pasted onto the marker-free images: p(the marker's class) before and after."""
    plain, other = shortcut_set(loaded, n, "absent", seed), shortcut_set(loaded, n, "other", seed)
    return paste_region(loaded, plain.x, other.x, other.marker, other.marker_class)
