"""A leaderboard over many images: every method scored by every metric, then mean, 95% bootstrap interval,
rank per metric, and how far the metrics agree on the ranking (Kendall tau). Used by the CLI
(``python -m metrics``) and the Faithfulness page.

``explain_image`` and ``score_image`` are the per-image work, shared with the dataset runs (``metrics.runs``).
Rows are plain dicts ``{image, method, metric, value, target, label, error}`` so they stream to a CSV and
a run can resume from it. Target: the image's ground-truth label where the set has one (the
synthetic-shapes set), else the model's top-1 prediction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

import explainers
import metrics
from core import progress
from core.errors import InputError

FIELDS = ["image", "method", "metric", "value", "target", "label", "error"]


@dataclass(frozen=True)
class Item:
    """One image of a set: ``x`` [1,C,H,W] preprocessed, ``label`` (or None), ``mask`` [1,H,W] bool (or None)."""

    name: str
    x: torch.Tensor
    label: int | None = None
    mask: torch.Tensor | None = None


def image_set(loaded: Any, spec: str | Sequence[str]) -> tuple[list[Item], list[str]]:
    """Images for ``spec`` (``metrics.runs.list_images``): sample names (list or comma-separated), a folder
    (labelled or not), or ``synthetic:N``. Returns (items, warnings): unreadable files are skipped with a warning."""
    from metrics.runs.images import list_images, load_ref

    listing = list_images(spec, loaded.classes)
    items, warnings = [], list(listing.warnings)
    for ref in listing.refs:
        try:
            x, mask = load_ref(ref, loaded)
        except InputError as exc:
            warnings.append(f"{ref.name}: skipped ({exc})")
            continue
        items.append(Item(ref.name, x, ref.label, mask))
    return items, warnings


def items_from_images(loaded: Any, images: dict[str, Any], masks: dict[str, np.ndarray] | None = None) -> list[Item]:
    """Items from PIL images by name; a synthetic sample ("shapes: <class>") gets its label, and its mask when ``masks`` has it."""
    masks = masks or {}
    classes = getattr(loaded, "classes", None) or []
    items = []
    for n, img in images.items():
        label = classes.index(n[8:]) if n.startswith("shapes: ") and n[8:] in classes else None
        mask = loaded.preprocess_mask(masks[n]) if n in masks else None
        items.append(Item(n, loaded.preprocess(img), label, mask))
    return items


def explain_image(
    loaded: Any, x: torch.Tensor, target: int, methods: Sequence[str], *, method_params: dict[str, dict[str, Any]] | None = None, seed: int = 0
) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, float]]:
    """Each method's map [1,H,W] of one image ``x`` [1,C,H,W] for ``target`` (stochastic methods get ``seed``).
    Returns (maps, errors, seconds): a method that fails gives its reason instead of a map, never a raise."""
    maps: dict[str, torch.Tensor] = {}
    errors: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for m in methods:
        params = {"seed": seed, **(method_params or {}).get(m, {})}
        start = time.perf_counter()
        try:
            maps[m] = explainers.explain(m, loaded, x, target, **params)
        except InputError as exc:
            errors[m] = str(exc)
        except Exception as exc:  # one method failing on one image must not end a long run
            errors[m] = f"{type(exc).__name__}: {str(exc)[:200]}"
        seconds[m] = time.perf_counter() - start
    return maps, errors, seconds


def score_image(
    loaded: Any,
    x: torch.Tensor,
    target: int,
    maps: dict[str, torch.Tensor],
    todo: dict[str, list[str]],
    *,
    mask: torch.Tensor | None = None,
    metric_params: dict[str, dict[str, Any]] | None = None,
    method_params: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> dict[tuple[str, str], float]:
    """Value of each (metric, method) in ``todo`` {metric: [methods]} for one image; NaN for a method without a map.
    Localization metrics on an image without a mask are left out (no value)."""
    out: dict[tuple[str, str], float] = {}
    for k, ms in todo.items():
        if metrics.get(k).needs_mask and mask is None:
            continue
        ok = {m: maps[m] for m in ms if m in maps}
        params = (metric_params or {}).get(k, {})
        scores = metrics.score(k, loaded, x, target, ok, mask=mask, seed=seed, batch_size=batch_size, method_params=method_params, **params) if ok else {}
        out.update({(k, m): float(scores[m][0]) if m in scores else math.nan for m in ms})
    return out


def evaluate(
    loaded: Any,
    items: Iterable[Item],
    methods: Sequence[str],
    metric_names: Sequence[str],
    *,
    metric_params: dict[str, dict[str, Any]] | None = None,
    method_params: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
    done: set[tuple[str, str, str]] | None = None,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Score every (image, method, metric) not in ``done``; rows are passed to ``on_rows`` image by image.

    Localization metrics are skipped on images without a mask. A method that fails on an image gives rows with
    ``value`` NaN and the reason in ``error``. One ``core.progress`` stage job per image (a reporter may stop it
    between and within images; the rows passed to ``on_rows`` so far are complete).
    """
    for m in methods:
        explainers.get(m)
    specs = {k: metrics.get(k) for k in metric_names}
    done = done or set()
    items = list(items)
    rows: list[dict[str, Any]] = []
    with progress.stage("images", len(items)) as st:
        for i, item in enumerate(items):
            st.at(i, item.name)
            todo = {k: [m for m in methods if (item.name, m, k) not in done] for k, s in specs.items() if not (s.needs_mask and item.mask is None)}
            todo = {k: ms for k, ms in todo.items() if ms}
            if not todo:
                continue
            target = item.label if item.label is not None else int(loaded.predict(item.x)[0].argmax())
            base = {"image": item.name, "target": target, "label": item.label if item.label is not None else ""}
            needed = sorted({m for ms in todo.values() for m in ms}, key=list(methods).index)
            maps, errors, _ = explain_image(loaded, item.x, target, needed, method_params=method_params, seed=seed)
            values = score_image(loaded, item.x, target, maps, todo, mask=item.mask, metric_params=metric_params, method_params=method_params, seed=seed)
            new = [{**base, "method": m, "metric": k, "value": values[(k, m)], "error": errors.get(m, "")} for k, ms in todo.items() for m in ms]
            rows.extend(new)
            if on_rows:
                on_rows(new)
    return rows


def bootstrap_ci(values: np.ndarray, seed: int = 0, n_boot: int = 2000) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of ``values`` [N] (scipy; seeded); a point for fewer than 2 or equal values."""
    if values.size < 2 or np.all(values == values[0]):
        return float(values.mean()), float(values.mean())
    res = stats.bootstrap((values,), np.mean, n_resamples=n_boot, method="percentile", confidence_level=0.95, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def summarize(rows: Iterable[dict[str, Any]], *, seed: int = 0, n_boot: int = 2000) -> list[dict[str, Any]]:
    """Per (metric, method): mean, 95% percentile-bootstrap interval over images, n, and the rank within the
    metric (1 = best, by the metric's direction). NaN values (failed methods) are left out and counted."""
    groups: dict[tuple[str, str], list[float]] = {}
    failed: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r["metric"], r["method"])
        v = float(r["value"])
        if math.isnan(v):
            failed[key] = failed.get(key, 0) + 1
            groups.setdefault(key, [])
        else:
            groups.setdefault(key, []).append(v)
    out = []
    for (k, m), vals in groups.items():
        arr = np.asarray(vals, dtype=float)
        low, high = bootstrap_ci(arr, seed, n_boot) if arr.size else (math.nan, math.nan)
        out.append(
            {
                "metric": k,
                "method": m,
                "mean": float(arr.mean()) if arr.size else math.nan,
                "ci_low": low,
                "ci_high": high,
                "n": int(arr.size),
                "failed": failed.get((k, m), 0),
            }
        )
    for k in {r["metric"] for r in out}:
        better = 1.0 if metrics.get(k).higher_is_better else -1.0
        ranked = sorted((r for r in out if r["metric"] == k and not math.isnan(r["mean"])), key=lambda r: -better * r["mean"])
        for i, r in enumerate(ranked, 1):
            r["rank"] = i
    for r in out:
        r.setdefault("rank", None)
    order = {k: i for i, k in enumerate(metrics.names())}
    return sorted(out, key=lambda r: (order.get(r["metric"], 99), r["rank"] or 1e9))


def agreement(summary: Sequence[dict[str, Any]]) -> tuple[list[str], np.ndarray]:
    """Kendall tau between every pair of metrics' rankings of the methods (oriented so +1 = same order of
    merit), over the methods both score; NaN where fewer than 3 methods are shared or a ranking is constant."""
    ks = [k for k in metrics.names() if any(r["metric"] == k for r in summary)]
    merit = {
        k: {r["method"]: (r["mean"] if metrics.get(k).higher_is_better else -r["mean"]) for r in summary if r["metric"] == k and not math.isnan(r["mean"])}
        for k in ks
    }
    tau = np.full((len(ks), len(ks)), math.nan)
    for i, a in enumerate(ks):
        for j, b in enumerate(ks):
            shared = sorted(set(merit[a]) & set(merit[b]))
            if len(shared) < 3:
                continue
            va, vb = [merit[a][m] for m in shared], [merit[b][m] for m in shared]
            if len(set(va)) < 2 or len(set(vb)) < 2:
                continue
            tau[i, j] = stats.kendalltau(va, vb).statistic
    return ks, tau
