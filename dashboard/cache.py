"""The only module that uses ``st.cache_*``: thin wrappers over the core, keyed by names and ids.

Model objects and tensors are passed as ``_``-prefixed arguments (not hashed); the keys that
identify them (model key, image key) are hashed instead. Cached models are shared by every
session and treated as read-only: explainers run under the model's lock and leave no hooks.
"""

from __future__ import annotations

import hashlib
import logging
import time
import weakref
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

import explainers
import metrics
import zoo
from core.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MapResult:
    """A computed map (float32 [H,W]) with its runtime, or the reason it could not be computed; ``notes``: the
    method's sign convention and its diagnostics' captions (e.g. IG's completeness error), for the tile."""

    method: str
    map: np.ndarray | None
    seconds: float
    error: str | None = None
    notes: tuple[str, ...] = ()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


LOADED: weakref.WeakValueDictionary[str, zoo.LoadedModel] = weakref.WeakValueDictionary()  # what the Server page lists


@st.cache_resource(show_spinner=False)
def model(name: str) -> zoo.LoadedModel:
    """A registry model, loaded once per server process."""
    loaded = LOADED[name] = zoo.load_model(name)
    return loaded


@st.cache_resource(show_spinner=False, max_entries=4)
def uploaded_model(key: str, _data: bytes, _classes: bytes | None, input_size: int) -> zoo.LoadedModel:
    """A user's TorchScript model, keyed by the file's digest."""
    loaded = LOADED[f"upload:{key}"] = zoo.load_torchscript(_data, _classes, input_size=input_size, name=f"upload:{key}")
    return loaded


@st.cache_data(show_spinner=False, max_entries=64)
def predictions(model_key: str, image_key: str, _model: zoo.LoadedModel, _x: torch.Tensor) -> np.ndarray:
    """Class probabilities [K] for one preprocessed image."""
    return _model.predict(_x)[0].cpu().numpy()


@st.cache_data(show_spinner=False, max_entries=1024)
def attribution(
    model_key: str,
    image_key: str,
    method: str,
    params: tuple[tuple[str, object], ...],
    target: int,
    _model: zoo.LoadedModel,
    _x: torch.Tensor,
) -> MapResult:
    """One method's map for one image and target; errors come back as a message, not a raise."""
    start = time.perf_counter()
    try:
        res = explainers.explain_with_info(method, _model, _x, target, **dict(params))
        notes = tuple(n for n in (res.convention, *res.captions(0)) if n)
        return MapResult(method, res.maps[0].cpu().numpy().astype(np.float32), time.perf_counter() - start, notes=notes)
    except InputError as exc:
        return MapResult(method, None, time.perf_counter() - start, str(exc))
    except Exception as exc:  # a method failing on one model must not break the grid
        log.exception("%s failed on %s", method, model_key)
        return MapResult(method, None, time.perf_counter() - start, f"{type(exc).__name__}: {str(exc)[:300]}")


@dataclass(frozen=True)
class Curves:
    """One method's deletion and insertion curves (float [N]) and AUCs, or the reason they are missing."""

    method: str
    deletion: np.ndarray | None
    insertion: np.ndarray | None
    deletion_auc: float
    insertion_auc: float
    pixels: np.ndarray | None
    seconds: float
    engine: str = ""
    error: str | None = None


@st.cache_data(show_spinner=False, max_entries=512)
def curves(
    model_key: str,
    image_key: str,
    method: str,
    params: tuple[tuple[str, object], ...],
    target: int,
    step: int,
    substrate: str,
    compile: bool,
    _model: zoo.LoadedModel,
    _x: torch.Tensor,
    _map: np.ndarray,
) -> Curves:
    """Deletion and insertion of one method's map (keyed like ``attribution`` plus the curve settings)."""
    start = time.perf_counter()
    try:
        amap = torch.from_numpy(_map).unsqueeze(0).to(_x.device)
        res = metrics.deletion_insertion(_model, _x, {method: amap}, target, step=step, substrate=substrate, compile=compile)
        return Curves(
            method,
            res.deletion[method][0].numpy(),
            res.insertion[method][0].numpy(),
            float(res.deletion_auc[method][0]),
            float(res.insertion_auc[method][0]),
            res.pixels.numpy(),
            time.perf_counter() - start,
            res.engine,
        )
    except InputError as exc:
        return Curves(method, None, None, float("nan"), float("nan"), None, time.perf_counter() - start, error=str(exc))


@st.cache_data(show_spinner=False, max_entries=1024)
def metric_score(
    model_key: str,
    image_key: str,
    method: str,
    params: tuple[tuple[str, object], ...],
    target: int,
    metric: str,
    metric_params: tuple[tuple[str, object], ...],
    _model: zoo.LoadedModel,
    _x: torch.Tensor,
    _map: np.ndarray,
    _mask: torch.Tensor | None,
) -> float | str:
    """One registered metric's score of one method's map, or the reason it could not be computed (a string)."""
    try:
        amap = torch.from_numpy(_map).unsqueeze(0).to(_x.device)
        return float(metrics.score(metric, _model, _x, target, {method: amap}, mask=_mask, **dict(metric_params))[method][0])
    except InputError as exc:
        return str(exc)


@dataclass(frozen=True)
class RandomizationRow:
    """One method's sanity-check run: maps float [S+1,H,W] (0: original), block names, similarity per measure [S]."""

    method: str
    seed: int
    steps: list[str]
    maps: np.ndarray | None
    similarity: dict[str, np.ndarray]
    seconds: float
    error: str | None = None


@st.cache_data(show_spinner=False, max_entries=256)
def randomization(
    model_key: str,
    image_key: str,
    method: str,
    params: tuple[tuple[str, object], ...],
    target: int,
    mode: str,
    seed: int,
    measures: tuple[str, ...],
    _model: zoo.LoadedModel,
    _x: torch.Tensor,
) -> RandomizationRow:
    """Cascading or independent randomization of one method (cached per method and seed, so adding a method or a seed computes only that)."""
    start = time.perf_counter()
    try:
        r = metrics.model_randomization(_model, _x, target, [method], mode=mode, similarity=measures, seed=seed, method_params={method: dict(params)})
    except InputError as exc:
        return RandomizationRow(method, seed, [], None, {}, time.perf_counter() - start, str(exc))
    if method not in r.maps:
        return RandomizationRow(method, seed, r.steps, None, {}, r.seconds, r.errors.get(method, "no map"))
    sims = {s: r.similarity[s][method].numpy() for s in measures}
    return RandomizationRow(method, seed, r.steps, r.maps[method].cpu().numpy(), sims, r.seconds, r.errors.get(method))


@st.cache_data(show_spinner=False, max_entries=64)
def data_randomization(
    model_key: str,
    image_key: str,
    methods: tuple[str, ...],
    params: tuple[tuple[str, tuple[tuple[str, object], ...]], ...],
    target: int,
    measures: tuple[str, ...],
    _model: zoo.LoadedModel,
    _permuted: zoo.LoadedModel,
    _x: torch.Tensor,
) -> metrics.DataRandomization:
    """Each method's map from the trained and the permuted-label model, with their similarity."""
    return metrics.data_randomization(_model, _permuted, _x, target, list(methods), similarity=measures, method_params={m: dict(p) for m, p in params})


@dataclass(frozen=True)
class Perturbed:
    """A perturbed input for a robustness view: the input tensor, its class probabilities, and a label for the cache key."""

    key: str
    x: torch.Tensor
    probs: np.ndarray
    note: str = ""


@st.cache_data(show_spinner=False, max_entries=256)
def adversarial_input(
    model_key: str, image_key: str, attack: str, eps: float, steps: int, target: int, seed: int, _model: zoo.LoadedModel, _x: torch.Tensor
) -> Perturbed:
    """The FGSM / PGD input for one image (the maps are then ordinary cached attributions of that input)."""
    res = metrics.adversarial(_model, _x, target, attack=attack, eps=eps, steps=steps, seed=seed)
    note = f"prediction {res.pred_clean} → {res.pred_adv}" + (" (changed)" if res.changed else " (unchanged)")
    return Perturbed(f"{image_key} | {attack} eps={eps:g}/255 steps={steps} seed={seed}", res.x_adv, res.probs_adv.numpy(), note)


@st.cache_data(show_spinner=False, max_entries=256)
def noise_input(model_key: str, image_key: str, radius: float, seed: int, _model: zoo.LoadedModel, _x: torch.Tensor) -> Perturbed:
    """One seeded sample of uniform noise in the L-inf ball (what the sensitivity samples look like)."""
    y = metrics.sensitivity_samples(_model, _x, radius, 1, seed)
    return Perturbed(f"{image_key} | noise r={radius:g}/255 seed={seed}", y, _model.predict(y)[0].cpu().numpy())


@st.cache_data(show_spinner=False, max_entries=512)
def sensitivity(
    model_key: str,
    image_key: str,
    method: str,
    params: tuple[tuple[str, object], ...],
    target: int,
    radius: float,
    n_samples: int,
    seed: int,
    _model: zoo.LoadedModel,
    _x: torch.Tensor,
) -> dict | str:
    """Max/avg sensitivity of one method, or the reason it could not be computed."""
    try:
        r = metrics.sensitivity(_model, _x, target, method, radius=radius, n_samples=n_samples, seed=seed, method_params=dict(params))
    except InputError as exc:
        return str(exc)
    return {"max": r.max, "mean": r.mean, "clean": r.clean.cpu().numpy(), "worst_map": r.at_worst.cpu().numpy(), "worst": r.worst, "seconds": r.seconds}


@st.cache_data(show_spinner=False, max_entries=256)
def fragility(
    model_key: str,
    image_key: str,
    method: str,
    params: tuple[tuple[str, object], ...],
    target: int,
    attack: str,
    eps: float,
    steps: int,
    seed: int,
    _model: zoo.LoadedModel,
    _x: torch.Tensor,
) -> metrics.Fragility | str:
    """Ghorbani et al.'s attack on one method's map, or the reason it does not apply."""
    try:
        return metrics.fragility(_model, _x, target, method, attack=attack, eps=eps, steps=steps, seed=seed, method_params=dict(params))
    except InputError as exc:
        return str(exc)
