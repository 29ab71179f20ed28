"""The only module that uses ``st.cache_*``: thin wrappers over the core, keyed by names and ids, returning the core's
own result objects in one envelope, ``Outcome`` (the value, or the reason there is none, and the seconds it took).

Model objects and tensors are passed as ``_``-prefixed arguments (not hashed); the keys that identify them (model
key, image key) are hashed instead. Cached models are shared by every session and treated as read-only: every
computation touches them through ``core.model_state.using``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
import streamlit as st
import torch

import explainers
import metrics
import zoo
from core.errors import InputError
from metrics import runs, shortcut
from metrics.runs import analysis

log = logging.getLogger(__name__)
T = TypeVar("T")
Params = tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A cached computation's result: ``value``, or ``error`` (a message for the page) when it could not be computed;
    ``notes``: what the computation says about its value (a method's convention and checks, e.g. IG's completeness)."""

    value: T | None
    error: str | None
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Noted(Generic[T]):
    """A value with notes, returned by a function under ``@outcome`` (the notes go to ``Outcome.notes``)."""

    value: T
    notes: tuple[str, ...]


def outcome(fn: Callable[..., T]) -> Callable[..., Outcome[T]]:
    """Wrap a computation so bad input (``InputError``) becomes ``Outcome.error``; any other failure is logged and
    reported the same way, so one method failing on one model never breaks a page."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Outcome[T]:
        start = time.perf_counter()
        try:
            value = fn(*args, **kwargs)
            if isinstance(value, Noted):
                return Outcome(value.value, None, time.perf_counter() - start, value.notes)
            return Outcome(value, None, time.perf_counter() - start)
        except InputError as exc:
            return Outcome(None, str(exc), time.perf_counter() - start)
        except Exception as exc:
            log.exception("%s failed", fn.__name__)
            return Outcome(None, f"{type(exc).__name__}: {str(exc)[:300]}", time.perf_counter() - start)

    return run


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


LOADED: weakref.WeakValueDictionary[str, zoo.LoadedModel] = weakref.WeakValueDictionary()  # what the Server page lists


@st.cache_resource(show_spinner=False)
def model(name: str) -> zoo.LoadedModel:
    """A registry model, loaded once per server process."""
    loaded = LOADED[name] = zoo.load_model(name)
    return loaded


@st.cache_resource(show_spinner=False, max_entries=4)
def uploaded_model(key: str, _data: bytes, _classes: bytes | None, input_size: int, kind: str = "torchscript", arch: str = "", num_classes: int = 0) -> zoo.LoadedModel:
    """A user's uploaded model, keyed by the files' digest: ``kind`` "torchscript", "pt2" (torch.export) or
    "safetensors" (weights for ``arch`` with ``num_classes`` outputs; the architecture's own input size)."""
    if kind == "pt2":
        loaded = zoo.load_exported(_data, classes=_classes, input_size=input_size)
    elif kind == "safetensors":
        loaded = zoo.load_safetensors(_data, arch.strip(), num_classes, _classes)
    else:
        loaded = zoo.load_torchscript(_data, _classes, input_size=input_size)
    loaded.name = f"upload:{key}"
    LOADED[loaded.name] = loaded
    return loaded


@st.cache_resource(show_spinner=False, max_entries=8)
def compatibility(model_key: str, _model: zoo.LoadedModel) -> explainers.Report:
    """The model's compatibility report (``explainers.compatibility``: one torch.fx trace, no forward pass)."""
    return explainers.compatibility(_model)


@st.cache_data(show_spinner=False, max_entries=64)
def predictions(model_key: str, image_key: str, _model: zoo.LoadedModel, _x: torch.Tensor) -> np.ndarray:
    """Class probabilities [K] for one preprocessed image."""
    return _model.predict(_x)[0].cpu().numpy()


@st.cache_data(show_spinner=False, max_entries=2048)
@outcome
def attribution(model_key: str, image_key: str, method: str, params: Params, target: int, _model: zoo.LoadedModel, _x: torch.Tensor) -> Noted[np.ndarray]:
    """One method's map float32 [H,W] for one image and target, noted with the method's convention and checks."""
    res = explainers.explain_with_info(method, _model, _x, target, **dict(params))
    return Noted(res.maps[0].cpu().numpy().astype(np.float32), tuple(n for n in (res.convention, *res.captions(0)) if n))


def _as_batch(amap: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(amap).unsqueeze(0).to(x.device)


@st.cache_data(show_spinner=False, max_entries=512)
@outcome
def curves(
    model_key: str, image_key: str, method: str, params: Params, target: int, step: int, substrate: str, _model: zoo.LoadedModel, _x: torch.Tensor, _map: np.ndarray
) -> metrics.DeletionInsertion:
    """Deletion and insertion of one method's map (keyed like ``attribution`` plus the curve settings)."""
    return metrics.deletion_insertion(_model, _x, _as_batch(_map, _x), target, step=step, substrate=substrate)


@st.cache_data(show_spinner=False, max_entries=2048)
@outcome
def metric_score(
    model_key: str,
    image_key: str,
    method: str,
    params: Params,
    target: int,
    metric: str,
    metric_params: Params,
    _model: zoo.LoadedModel,
    _x: torch.Tensor,
    _map: np.ndarray,
    _mask: torch.Tensor | None,
) -> float:
    """One registered metric's score of one method's map."""
    maps = {method: _as_batch(_map, _x)}
    return float(metrics.score(metric, _model, _x, target, maps, mask=_mask, method_params={method: dict(params)}, **dict(metric_params))[method][0])


@st.cache_data(show_spinner=False, max_entries=256)
@outcome
def randomization(
    model_key: str, image_key: str, method: str, params: Params, target: int, mode: str, seed: int, measures: tuple[str, ...], _model: zoo.LoadedModel, _x: torch.Tensor
) -> metrics.Randomization:
    """Cascading or independent randomization of one method (cached per method and seed: adding a method or a seed
    computes only that). A method that fails on the original model is an error; at a later step, ``errors``."""
    r = metrics.model_randomization(_model, _x, target, [method], mode=mode, similarity=measures, seed=seed, method_params={method: dict(params)})
    if method not in r.maps:
        raise InputError(r.errors.get(method, "no map"))
    return r


@st.cache_data(show_spinner=False, max_entries=64)
@outcome
def data_randomization(
    model_key: str,
    image_key: str,
    methods: tuple[str, ...],
    params: tuple[tuple[str, Params], ...],
    target: int,
    measures: tuple[str, ...],
    _model: zoo.LoadedModel,
    _permuted: zoo.LoadedModel,
    _x: torch.Tensor,
) -> metrics.DataRandomization:
    """Each method's map from the trained and the permuted-label model, with their similarity."""
    return metrics.data_randomization(_model, _permuted, _x, target, list(methods), similarity=measures, method_params={m: dict(p) for m, p in params})


@st.cache_data(show_spinner=False, max_entries=256)
@outcome
def adversarial(
    model_key: str, image_key: str, attack: str, eps: float, steps: int, target: int, seed: int, _model: zoo.LoadedModel, _x: torch.Tensor
) -> metrics.Adversarial:
    """The FGSM / PGD input for one image (the maps are then ordinary cached attributions of ``x_adv``)."""
    return metrics.adversarial(_model, _x, target, attack=attack, eps=eps, steps=steps, seed=seed)


@st.cache_data(show_spinner=False, max_entries=512)
@outcome
def sensitivity(
    model_key: str,
    image_key: str,
    method: str,
    params: Params,
    target: int,
    radius: float,
    n_samples: int,
    seed: int,
    _model: zoo.LoadedModel,
    _x: torch.Tensor,
) -> metrics.Sensitivity:
    """Max/avg sensitivity of one method."""
    return metrics.sensitivity(_model, _x, target, method, radius=radius, n_samples=n_samples, seed=seed, method_params=dict(params))


@st.cache_data(show_spinner=False, max_entries=256)
@outcome
def fragility(
    model_key: str,
    image_key: str,
    method: str,
    params: Params,
    target: int,
    attack: str,
    eps: float,
    steps: int,
    seed: int,
    _model: zoo.LoadedModel,
    _x: torch.Tensor,
) -> metrics.Fragility:
    """Ghorbani et al.'s attack on one method's map."""
    return metrics.fragility(_model, _x, target, method, attack=attack, eps=eps, steps=steps, seed=seed, method_params=dict(params))


@st.cache_resource(show_spinner=False)
def pass_seconds(model_key: str, _model: zoo.LoadedModel, input_size: int) -> tuple[float, float]:
    """Measured seconds of one forward and of one forward+backward of this model on one image, on this machine
    (for the time estimates shown before long runs)."""
    from core.timing import pass_seconds as measure

    return measure(_model, input_size)


@st.cache_resource(show_spinner=False)
def cam_channels(model_key: str, _model: zoo.LoadedModel) -> int:
    """Channels of the model's CAM layer (Score-CAM's and Ablation-CAM's cost), from one forward; 512 when unknown."""
    import anatomy

    try:
        shapes = {layer.name: layer.out_shape for layer in anatomy.layers(_model)}
    except Exception:  # a model without named layers (TorchScript): the estimate only
        return 512
    convs = anatomy.conv_layers(_model)
    name = _model.cam_layer or (convs[-1] if convs else None)
    shape = shapes.get(name) if name else None
    return int(shape[0]) if shape else 512


@st.cache_data(show_spinner=False, max_entries=128)
@outcome
def set_maps(model_key: str, set_key: str, method: str, params: Params, targets: tuple[int, ...], _model: zoo.LoadedModel, _x: torch.Tensor) -> np.ndarray:
    """One method's maps float32 [N,H,W] for a set of images (``set_key`` names the images, ``targets`` the classes)."""
    t = torch.tensor(targets, device=_x.device)
    return metrics.explain_set(_model, _x, t, method, dict(params)).cpu().numpy().astype(np.float32)


@st.cache_data(show_spinner=False, max_entries=16)
def shortcut_set(n: int, mode: str, _model: zoo.LoadedModel) -> shortcut.ShortcutSet:
    """The shortcut model's ``n`` test images of one mode (agree / absent / other)."""
    return shortcut.shortcut_set(_model, n, mode)


@st.cache_data(show_spinner=False, max_entries=16)
def shortcut_accuracies(n: int, _model: zoo.LoadedModel) -> dict[str, float]:
    """The shortcut model's accuracy on ``n`` images of each test set."""
    return shortcut.accuracies(_model, n)


@st.cache_data(show_spinner=False, max_entries=16)
def shortcut_pasted(n: int, _model: zoo.LoadedModel) -> metrics.Counterfactual:
    """Another class's marker pasted onto ``n`` marker-free images."""
    return shortcut.pasted_markers(_model, n)


@st.cache_data(show_spinner=False, max_entries=64)
@outcome
def removed_region(
    model_key: str, set_key: str, region_key: str, targets: tuple[int, ...], substrate: str, _model: zoo.LoadedModel, _x: torch.Tensor, _region: torch.Tensor
) -> metrics.Counterfactual:
    """p(target) before and after the region (``region_key`` names it) is removed from each image."""
    return metrics.remove_region(_model, _x, _region, torch.tensor(targets, device=_x.device), substrate=substrate)


@st.cache_data(show_spinner=False, max_entries=64)
@outcome
def pasted_region(
    model_key: str, set_key: str, region_key: str, source: int, target: int, _model: zoo.LoadedModel, _x: torch.Tensor, _region: torch.Tensor
) -> metrics.Counterfactual:
    """p(target) of every image before and after the region of image ``source`` is pasted onto it."""
    return metrics.paste_region(_model, _x, _x[source : source + 1], _region, target)


# ------------------------------------------------------------------------------------------ dataset runs
# Keyed by the run folder and ``metrics.runs.version`` (changes with its files): a growing run is read again.


@st.cache_resource(show_spinner=False, max_entries=4)
def run(path: str, version: str) -> runs.Run:
    """A run's tables, read once per version of its files and shared read-only by the sessions (no copy per rerun:
    a 50 000-image run's probabilities are 200 MB)."""
    return runs.load_run(path)


@st.cache_data(show_spinner=False, max_entries=128)
def run_maps(path: str, version: str, images: tuple[str, ...], methods: tuple[str, ...], kind: str) -> dict[str, dict[str, np.ndarray | None]]:
    """{image: {method: map [s,s]}} for the label's (the target's) or the prediction's maps."""
    return run(path, version).maps(images, methods, kind)


@st.cache_data(show_spinner=False, max_entries=128)
def run_pictures(path: str, version: str, images: tuple[str, ...]) -> dict[str, np.ndarray]:
    """{image: uint8 [h,w,3]} as stored in the run."""
    return run(path, version).pictures(images)


@st.cache_data(show_spinner=False, max_entries=64)
def run_class_means(path: str, version: str, method: str, images: tuple[str, ...]) -> dict[int, tuple[np.ndarray, int]]:
    """Per target class: the mean map of ``method`` over ``images`` and how many."""
    return run(path, version).class_means(method, images)


@st.cache_data(show_spinner=False, max_entries=16)
@outcome
def run_label_issues(path: str, version: str) -> pd.DataFrame:
    """cleanlab's suspected label errors over the whole run (or why there are none to find)."""
    r = run(path, version)
    return analysis.label_issues(r.predictions, r.probs)


@st.cache_data(show_spinner=False, max_entries=32)
def run_leaderboard(path: str, version: str, images: tuple[str, ...]) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """(summary, metrics, Kendall tau) over ``images`` of the run."""
    scores = run(path, version).scores
    summary = analysis.leaderboard(scores[scores["image"].isin(set(images))])
    ks, tau = analysis.kendall(summary)
    return summary, ks, tau


@st.cache_data(show_spinner=False, max_entries=32)
def run_leaderboard_by_class(path: str, version: str, images: tuple[str, ...], metric: str) -> pd.DataFrame:
    """The summary of one metric within each class, over ``images`` (one metric at a time: a 1000-class run is
    1000 x methods bootstraps per metric)."""
    r = run(path, version)
    keep = set(images)
    scores = r.scores[r.scores["image"].isin(keep) & (r.scores["metric"] == metric)]
    return analysis.leaderboard_by_class(scores, r.predictions[r.predictions["image"].isin(keep)])
