"""Quantitative metrics of attribution maps, in one registry.

Public API: ``deletion_insertion`` (curves and AUCs), ``road``, ``infidelity``, ``pointing_game``,
``relevance_mass``, ``gini``, ``entropy``; ``score(name, model, x, target, maps)`` for any registered
metric; ``names()`` / ``get(name)``; ``load_run(folder)`` reads a dataset run (``metrics.runs``). A metric is one decorated function in one module (see
``metrics.registry``). Nothing here imports streamlit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from core.errors import ParameterError
from explainers.context import model_lock
from metrics import complexity as _complexity  # noqa: F401  (registration)
from metrics import deletion_insertion as _di  # noqa: F401
from metrics import infidelity as _infidelity  # noqa: F401
from metrics import localization as _localization  # noqa: F401
from metrics import road as _road  # noqa: F401
from metrics.common import as_module, check_maps, check_target, check_x
from metrics.complexity import entropy, gini
from metrics.deletion_insertion import DeletionInsertion, auc, deletion_insertion, perturbed
from metrics.infidelity import infidelity
from metrics.localization import pointing_game, relevance_mass
from metrics.randomization import SIMILARITIES, DataRandomization, Randomization, data_randomization, map_similarity, model_blocks, model_randomization
from metrics.registry import CATEGORIES, METRICS, MetricContext, MetricSpec, metric
from metrics.road import Road, impute, road
from metrics.robustness import Adversarial, Fragility, Sensitivity, adversarial, dissimilarity, fragility, sensitivity, sensitivity_samples

__all__ = [
    "CATEGORIES",
    "METRICS",
    "SIMILARITIES",
    "Adversarial",
    "Fragility",
    "Sensitivity",
    "adversarial",
    "dissimilarity",
    "fragility",
    "sensitivity",
    "sensitivity_samples",
    "DataRandomization",
    "Randomization",
    "data_randomization",
    "map_similarity",
    "model_blocks",
    "model_randomization",
    "DeletionInsertion",
    "MetricContext",
    "MetricSpec",
    "Road",
    "auc",
    "deletion_insertion",
    "entropy",
    "get",
    "gini",
    "impute",
    "infidelity",
    "load_run",
    "metric",
    "names",
    "perturbed",
    "pointing_game",
    "relevance_mass",
    "road",
    "score",
]


def names() -> list[str]:
    """Every registered metric: faithfulness, then localization, then complexity (registration order within)."""
    order = list(CATEGORIES)
    return sorted(METRICS.names(), key=lambda n: order.index(METRICS.get(n).category))


def get(name: str) -> MetricSpec:
    """The spec (direction, category, paper, conventions, parameters) of one metric."""
    return METRICS.get(name)


def score(
    name: str,
    model: Any,
    x: torch.Tensor,
    target: int | torch.Tensor,
    maps: torch.Tensor | dict[str, torch.Tensor],
    *,
    mask: torch.Tensor | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    compile: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    **params: Any,
) -> dict[str, torch.Tensor]:
    """Scores [B] of metric ``name`` for each map: ``x`` [B,C,H,W], maps {method: [B,H,W]} (or one [B,H,W],
    returned under the key "map"). ``mask`` [B,H,W] for localization metrics. Raises ``ParameterError``
    on bad input; unknown parameters are an error."""
    spec = get(name)
    resolved = spec.resolve(params)
    net = as_module(model)
    x = check_x(x)
    checked, _ = check_maps(maps, x)
    classes = getattr(model, "classes", None)
    t = check_target(target, x.shape[0], x.device, None if classes is None else len(classes))
    if spec.needs_mask and mask is None:
        raise ParameterError(f"{spec.title} needs a ground-truth mask; this image has none")
    ctx = MetricContext(net, x, t, mask=mask, seed=seed, batch_size=batch_size, compile=compile, progress=progress)
    with model_lock(net):
        return spec.fn(ctx, checked, **resolved)


def load_run(path: Any) -> Any:
    """A dataset run read back (``metrics.runs.Run``: manifest, predictions, scores, maps on demand); imported on
    first use, so ``import metrics`` does not load pyarrow and pandas."""
    from metrics.runs import load_run as load

    return load(path)
