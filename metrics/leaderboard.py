"""A leaderboard over many images: every method scored by every metric, then mean, 95% bootstrap interval,
rank per metric, and how far the metrics agree on the ranking (Kendall tau). Used by the CLI
(``python -m metrics``) and the Faithfulness page.

Rows are plain dicts ``{image, method, metric, value, target, label, error}`` so they stream to a CSV and
a run can resume from it. Target: the image's ground-truth label where the set has one (the
synthetic-shapes set), else the model's top-1 prediction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

import explainers
import metrics
from core import progress
from core.errors import InputError, ParameterError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
SYNTHETIC_SEED = 31_337  # held out: training used seeds 0 and 10 000
FIELDS = ["image", "method", "metric", "value", "target", "label", "error"]


@dataclass(frozen=True)
class Item:
    """One image of a set: ``x`` [1,C,H,W] preprocessed, ``label`` (or None), ``mask`` [1,H,W] bool (or None)."""

    name: str
    x: torch.Tensor
    label: int | None = None
    mask: torch.Tensor | None = None


def image_set(loaded: Any, spec: str | Sequence[str]) -> tuple[list[Item], list[str]]:
    """Images for ``spec``: sample names (list or comma-separated), a folder of images, or ``synthetic:N``.

    Returns (items, warnings) — unreadable files in a folder are skipped with a warning.
    """
    import zoo
    from zoo.synthetic import make_dataset

    warnings: list[str] = []
    if isinstance(spec, str) and spec.startswith("synthetic:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            raise ParameterError(f"synthetic:N needs a whole number; got {spec!r}") from None
        if not 1 <= n <= 10_000:
            raise ParameterError("synthetic:N takes 1 <= N <= 10000")
        x, y, masks = make_dataset(n, seed=SYNTHETIC_SEED)
        from PIL import Image

        items = []
        for i in range(n):
            pil = Image.fromarray((x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            items.append(Item(f"synthetic #{i}", loaded.preprocess(pil), int(y[i]), loaded.preprocess_mask(masks[i].numpy())))
        return items, warnings
    if isinstance(spec, str) and Path(spec).is_dir():
        files = sorted(p for p in Path(spec).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ParameterError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {spec}")
        items = []
        for p in files:
            try:
                items.append(Item(p.name, loaded.preprocess(zoo.load_image(p))))
            except InputError as exc:
                warnings.append(f"{p.name}: skipped ({exc})")
        return items, warnings
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    samples = zoo.sample_images()
    unknown = [n for n in names if n not in samples]
    if unknown or not names:
        raise ParameterError(f"unknown image(s) {', '.join(unknown) or '(none given)'}; samples: {', '.join(samples)}, a folder, or synthetic:N")
    return items_from_images(loaded, {n: samples[n] for n in names}, zoo.sample_masks()), warnings


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
            new = _score_item(loaded, item, methods, todo, metric_params or {}, method_params or {}, seed)
            rows.extend(new)
            if on_rows:
                on_rows(new)
    return rows


def _score_item(
    loaded: Any,
    item: Item,
    methods: Sequence[str],
    todo: dict[str, list[str]],
    metric_params: dict[str, dict[str, Any]],
    method_params: dict[str, dict[str, Any]],
    seed: int,
) -> list[dict[str, Any]]:
    """The rows of one image: each method's map once, then every metric in ``todo`` (metric -> methods) on it."""
    target = item.label if item.label is not None else int(loaded.predict(item.x)[0].argmax())
    base = {"image": item.name, "target": target, "label": item.label if item.label is not None else ""}
    maps: dict[str, torch.Tensor] = {}
    errors: dict[str, str] = {}
    for m in sorted({m for ms in todo.values() for m in ms}, key=list(methods).index):
        try:
            maps[m] = explainers.explain(m, loaded, item.x, target, **{"seed": seed, **method_params.get(m, {})})
        except InputError as exc:
            errors[m] = str(exc)
        except Exception as exc:  # one method failing on one image must not end a long run
            errors[m] = f"{type(exc).__name__}: {str(exc)[:200]}"
    rows: list[dict[str, Any]] = []
    for k, ms in todo.items():
        ok = {m: maps[m] for m in ms if m in maps}
        scores = metrics.score(k, loaded, item.x, target, ok, mask=item.mask, seed=seed, method_params=method_params, **metric_params.get(k, {})) if ok else {}
        for m in ms:
            value = float(scores[m][0]) if m in scores else math.nan
            rows.append({**base, "method": m, "metric": k, "value": value, "error": errors.get(m, "")})
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
