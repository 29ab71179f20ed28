"""Quantitative metrics of attribution maps, in one registry.

Public API: ``score(name, model, x, target, maps)`` for any registered metric, ``names()`` / ``get(name)``; the
richer results behind some of them: ``deletion_insertion`` (curves and AUCs), ``road`` (curves), ``irof_curves``,
``sensitivity_n_curve`` (Ancona et al.'s curve over n); the sanity checks
(``model_randomization``, ``data_randomization``); robustness (``sensitivity``, ``adversarial``, ``fragility``);
map similarity (``map_similarity``, ``dissimilarity``); the primitives ``gini``, ``entropy``, ``pointing_hits``,
``positive_share``; region shares over a set (``region_scores``, ``over_set``) and the counterfactual check of a
region (``remove_region``, ``paste_region``); ``load_run(folder)`` reads a dataset run (``metrics.runs``). A metric is one decorated function in one module (see ``metrics.registry``). Nothing here
imports streamlit.
"""

from __future__ import annotations

from typing import Any

import torch

from core.errors import ParameterError
from metrics import complexity, confidence, correlation, infidelity, irof, localization, monotonicity, region, sanity, stability  # noqa: F401  (registration)
from metrics.attacks import Adversarial, adversarial, pgd
from metrics.common import Inputs, prepare
from metrics.complexity import entropy, gini
from metrics.correlation import sensitivity_n_curve
from metrics.counterfactual import Counterfactual, paste_region, remove_region
from metrics.deletion_insertion import DeletionInsertion, auc, deletion_insertion, perturbed
from metrics.fragility import Fragility, fragility
from metrics.irof import IrofCurves, irof_curves
from metrics.localization import pointing_hits, positive_share
from metrics.randomization import DataRandomization, Randomization, data_randomization, model_blocks, model_randomization, random_floor
from metrics.region import SetScore, area_share, concentration, explain_set, over_set, rank_accuracy, region_scores
from metrics.registry import CATEGORIES, METRICS, MetricContext, MetricSpec, metric
from metrics.road import Road, impute, road
from metrics.sensitivity import Sensitivity, sensitivity, sensitivity_samples
from metrics.similarity import SIMILARITIES, dissimilarity, map_similarity

MODULE_ORDER = (
    "deletion_insertion",
    "road",
    "infidelity",
    "correlation",
    "monotonicity",
    "irof",
    "confidence",
    "localization",
    "region",
    "complexity",
    "stability",
    "sanity",
)

__all__ = [
    "CATEGORIES",
    "METRICS",
    "SIMILARITIES",
    "Adversarial",
    "Counterfactual",
    "SetScore",
    "area_share",
    "concentration",
    "explain_set",
    "over_set",
    "paste_region",
    "rank_accuracy",
    "region_scores",
    "remove_region",
    "DataRandomization",
    "DeletionInsertion",
    "Fragility",
    "Inputs",
    "IrofCurves",
    "MetricContext",
    "MetricSpec",
    "Randomization",
    "Road",
    "Sensitivity",
    "adversarial",
    "auc",
    "data_randomization",
    "deletion_insertion",
    "dissimilarity",
    "entropy",
    "fragility",
    "get",
    "gini",
    "impute",
    "irof_curves",
    "map_similarity",
    "load_run",
    "metric",
    "model_blocks",
    "model_randomization",
    "names",
    "perturbed",
    "pgd",
    "pointing_hits",
    "positive_share",
    "prepare",
    "random_floor",
    "road",
    "score",
    "sensitivity",
    "sensitivity_n_curve",
    "sensitivity_samples",
]


def names() -> list[str]:
    """Every registered metric by category (``CATEGORIES``' order), then by the module that defines
    it in ``MODULE_ORDER`` (whatever the import order), then in registration order."""
    cats = list(CATEGORIES)
    modules = [f"metrics.{m}" for m in MODULE_ORDER]

    def key(n: str) -> tuple[int, int]:
        spec = METRICS.get(n)
        mod = spec.fn.__module__
        return cats.index(spec.category), modules.index(mod) if mod in modules else len(modules)

    return sorted(METRICS.names(), key=key)


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
    method_params: dict[str, dict[str, Any]] | None = None,
    **params: Any,
) -> dict[str, torch.Tensor]:
    """Scores [B] of metric ``name`` for each map: ``x`` [B,C,H,W], maps {method: [B,H,W]} (or one [B,H,W],
    returned under the key "map"). ``mask`` [B,H,W] for localization metrics. ``method_params``: the methods'
    parameters, for metrics that recompute maps. Raises ``ParameterError`` on bad input; unknown parameters are
    an error."""
    spec = get(name)
    resolved = spec.resolve(params)
    inp = prepare(model, x, maps, target)
    if spec.needs_mask and mask is None:
        raise ParameterError(f"{spec.title} needs a ground-truth mask; this image has none")
    ctx = MetricContext(
        inp.net, inp.x, inp.target, mask=mask, seed=seed, batch_size=batch_size, source=model, method_params=method_params or {}
    )
    return spec.fn(ctx, inp.maps, **resolved)


def load_run(path: Any) -> Any:
    """A dataset run read back (``metrics.runs.Run``: manifest, predictions, scores, maps on demand); imported on
    first use, so ``import metrics`` does not load pyarrow and pandas."""
    from metrics.runs import load_run as load

    return load(path)
