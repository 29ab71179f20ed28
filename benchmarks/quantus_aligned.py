"""Quantus 0.6 run on our conventions, for ``benchmarks/metrics.py`` and ``tests/test_metrics_quantus.py``: each
function scores a batch the way one of our metrics does and returns Quantus's values [B] (numpy).

How the conventions are aligned (the differences are listed in docs/drafts/issue-20-metrics.md):

- random draws: our metrics draw with ``np.random.RandomState(seed)`` in Quantus's order, so Quantus gets
  ``np.random.seed(seed)`` first; smooth MPRT's noise (ours: the same at every step) is fed to Quantus by
  replacing ``np.random.randn`` during the call;
- baselines: ``perturb_baseline=0.0`` (ours: 0 in input space) instead of Quantus's "black" (the image minimum);
  IROF gets our substrate image as an array;
- maps: ``abs``/``normalise`` set to ours; recomputed maps come from our ``explainers.explain`` (``explain_func``,
  and ``quantus.explain`` replaced for smooth MPRT, which calls it directly);
- randomized weights: Quantus's layer generator is replaced by our cascade (``metrics.randomization``'s blocks,
  rule and seeds), since its own re-initializes every module with ``reset_parameters`` under one seed;
- features: Quantus counts channel values, we count pixels; on a 1-channel input they are the same, so the
  pixel-subset metrics are compared there (``Grey``);
- random logit: SSIM on the 2-D maps with data range 1 (Quantus's ``ssim`` runs on the flattened map).

numpy 2 removed ``np.trapz``, which Quantus's IROF calls; ``np.trapezoid`` is the same function renamed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import nn

import explainers
from metrics.correlation import set_size
from metrics.perturb import legacy_rng
from metrics.randomization import model_blocks, randomizable, randomize

if not hasattr(np, "trapz"):
    np.trapz = np.trapezoid  # type: ignore[attr-defined]

import quantus  # noqa: E402
from quantus.helpers.model.pytorch_model import PyTorchModel  # noqa: E402

COMMON = {"disable_warnings": True, "display_progressbar": False}


class Grey(nn.Module):
    """A 3-channel model fed a 1-channel image (copied to the 3 channels): one value per pixel for both libraries."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        return self.net(g.expand(-1, 3, -1, -1))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _call(metric: object, model: nn.Module, x: torch.Tensor, target: torch.Tensor, a: torch.Tensor | None, seed: int | None, **kw: object) -> np.ndarray:
    if seed is not None:
        np.random.seed(seed)
    a_batch = None if a is None else _np(a).reshape(a.shape[0], 1, *a.shape[-2:])
    out = metric(model=model, x_batch=_np(x), y_batch=_np(target), a_batch=a_batch, device="cpu", **kw)
    return np.asarray(out, dtype=np.float64).reshape(-1)


def explain_func(method: str, seed: int = 0):
    """Quantus's ``explain_func``: our ``explainers.explain`` as numpy [B,1,H,W]."""

    def fn(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object) -> np.ndarray:
        x = torch.from_numpy(np.asarray(inputs)).float()
        return _np(explainers.explain(method, model, x, torch.as_tensor(np.asarray(targets)).long(), seed=seed)).reshape(x.shape[0], 1, *x.shape[-2:])

    return fn


def faithfulness_correlation(model, x, a, target, seed, *, subset_size, n_runs):
    m = quantus.FaithfulnessCorrelation(
        nr_runs=n_runs, subset_size=subset_size, perturb_baseline=0.0, abs=False, normalise=False, return_aggregate=False, **COMMON
    )
    return _call(m, model, x, target, a, seed, softmax=False)


def sensitivity_n(model, x, a, target, seed, *, fraction, n_runs):
    """Ancona's per-image sensitivity-n = Quantus's FaithfulnessCorrelation at |S| = n (its SensitivityN differs)."""
    return faithfulness_correlation(model, x, a, target, seed, subset_size=set_size(fraction, x.shape[-2] * x.shape[-1]), n_runs=n_runs)


def monotonicity_arya(model, x, a, target, seed, *, step, quantus_perturbation=False):
    """Quantus's ``Monotonicity`` starts from the baseline image and "adds" features with its perturb_func, which
    replaces them by the baseline again: the image never changes and every map scores True. Given a perturb_func
    that puts the image's values back (AIX360's ``x_copy[ind] = x[ind]``), it computes Arya et al.'s definition.
    ``quantus_perturbation=True`` runs it as shipped."""
    flat = _np(x).reshape(x.shape[0], -1)

    def put_back(arr: np.ndarray, indices: np.ndarray, **_: object) -> np.ndarray:
        out = arr.copy()
        rows = np.arange(arr.shape[0])[:, None]
        out[rows, indices] = flat[rows, indices]
        return out

    kw = {} if quantus_perturbation else {"perturb_func": put_back}
    m = quantus.Monotonicity(features_in_step=step, perturb_baseline=0.0, abs=False, normalise=False, **kw, **COMMON)
    return _call(m, model, x, target, a, None, softmax=True)


def monotonicity_nguyen(model, x, a, target, seed, *, step, n_samples):
    m = quantus.MonotonicityCorrelation(nr_samples=n_samples, features_in_step=step, perturb_baseline="uniform", abs=True, normalise=False, **COMMON)
    return _call(m, model, x, target, a, seed, softmax=True)


def irof(model, x, a, target, seed, *, fill):
    """Quantus's number (n - trapz(curve[1:])); ``fill`` [B,C,H,W]: our substrate image."""
    m = quantus.IROF(segmentation_method="slic", perturb_baseline=_np(fill).astype(np.float32), abs=False, normalise=False, return_aggregate=False, **COMMON)
    return _call(m, model, x, target, a, None, softmax=True)


def local_lipschitz_estimate(model, x, a, target, seed, *, method, sigma, n_samples, normalise=True):
    m = quantus.LocalLipschitzEstimate(
        nr_samples=n_samples, perturb_std=sigma, perturb_mean=0.0, normalise=normalise, abs=False, return_nan_when_prediction_changes=False, **COMMON
    )
    return _call(m, model, x, target, a, seed, explain_func=explain_func(method, seed), softmax=True)


def _relative(cls, model, x, a, target, seed, method, radius, n_samples):
    m = cls(nr_samples=n_samples, perturb_func_kwargs={"lower_bound": radius, "upper_bound": None}, normalise=False, abs=False, **COMMON)
    return _call(m, model, x, target, a, seed, explain_func=explain_func(method, seed), softmax=False)


def relative_input_stability(model, x, a, target, seed, *, method, radius, n_samples):
    return _relative(quantus.RelativeInputStability, model, x, a, target, seed, method, radius, n_samples)


def relative_output_stability(model, x, a, target, seed, *, method, radius, n_samples):
    return _relative(quantus.RelativeOutputStability, model, x, a, target, seed, method, radius, n_samples)


def random_logit(model, x, a, target, seed, *, method, n_classes):
    h, w = x.shape[-2:]

    def ssim_2d(a: np.ndarray, b: np.ndarray, batched: bool = False, **_: object) -> list[float]:
        return [
            float(structural_similarity(p.reshape(h, w).astype(np.float64), q.reshape(h, w).astype(np.float64), data_range=1.0))
            for p, q in zip(a, b, strict=True)
        ]

    m = quantus.RandomLogit(num_classes=n_classes, seed=seed, similarity_func=ssim_2d, abs=True, normalise=True, **COMMON)
    return _call(m, model, x, target, a, None, explain_func=explain_func(method, seed), softmax=False)


@contextlib.contextmanager
def our_cascade(model: nn.Module, seed: int) -> Iterator[None]:
    """Quantus's layer generator replaced by our bottom-up cascade (``metrics.randomization`` blocks and seeds)."""
    blocks = model_blocks(model)

    def generator(self: object, order: str = "bottom_up", **_: object) -> Iterator[tuple[str, nn.Module]]:
        with randomizable(model) as (_, private):
            for i, (name, prefixes) in enumerate(blocks, start=1):
                randomize(private, prefixes, seed * 1009 + i)
                yield name, private

    with (
        mock.patch.object(PyTorchModel, "get_random_layer_generator", generator),
        mock.patch.object(PyTorchModel, "random_layer_generator_length", new_callable=mock.PropertyMock, return_value=len(blocks)),
    ):
        yield


def smooth_mprt(model, x, a, target, seed, *, method, n_samples, noise):
    """The mean over the randomized layers of Quantus's per-layer Spearman (its own average also counts the unrandomized model)."""
    rng = legacy_rng(seed)
    draws = [rng.randn(*x.shape) for _ in range(n_samples - 1)]  # ours (metrics.sanity.smoothing_inputs): the same at every step
    calls = iter(range(10**9))

    def randn(*shape: int) -> np.ndarray:
        return draws[next(calls) % len(draws)]

    m = quantus.SmoothMPRT(
        nr_samples=n_samples, noise_magnitude=noise, layer_order="bottom_up", abs=True, normalise=True, return_average_correlation=False, **COMMON
    )
    explain = explain_func(method, seed)
    with our_cascade(model, seed), mock.patch.object(np.random, "randn", randn), mock.patch.object(quantus, "explain", explain):
        scores = m(model=model, x_batch=_np(x), y_batch=_np(target), a_batch=None, device="cpu", explain_func=explain, explain_func_kwargs={}, softmax=False)
    layers = [np.asarray(v, dtype=np.float64) for k, v in scores.items() if k != "original"]
    return np.mean(layers, axis=0)


def efficient_mprt(model, x, a, target, seed, *, method, n_bins):
    m = quantus.EfficientMPRT(layer_order="bottom_up", skip_layers=True, abs=False, normalise=False, complexity_func_kwargs={"n_bins": n_bins}, **COMMON)
    with our_cascade(model, seed):
        return _call(m, model, x, target, None, None, explain_func=explain_func(method, seed), softmax=True)
