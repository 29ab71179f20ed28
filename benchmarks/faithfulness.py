"""Seconds per deletion curve on EfficientNet-Lite0, the cat photo, 224 pixels per step (225 points), one map:

- the plain loop a notebook would write: batch 1, eager, ``torch.no_grad``, one forward per step;
- the torch fast path (``metrics.engine.torch_path``: BatchNorm folded, channels_last, measured chunk size), the
  engine's fallback;
- the engine (``metrics.engine``: ONNX Runtime on an in-memory export), cold (export, check against eager and
  batch measurement included: the first curve a server computes) and warm;
- Quantus 0.6 ``PixelFlipping`` with ``features_in_step=224`` on the same map (install with ``make bench``).

Prints the ratios and the largest difference of each curve from the plain loop (goals: warm <= 0.30 x plain,
cold <= 0.50 x plain, difference <= 1e-4). Run: ``make bench`` (uses .venv-bench). Definitions differ in Quantus:
it counts every channel value as a feature (the map is broadcast to [3,H,W], so 224 "features" per step is 74.7
pixels and the curve has 672 steps), orders them with an unstable sort, replaces them with its "black" baseline
(the input's minimum), and its AUC is np.trapz over step indices, not normalized.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import importlib  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import print_peak_memory  # noqa: E402

import explainers  # noqa: E402
import metrics  # noqa: E402

di = importlib.import_module("metrics.deletion_insertion")  # the module (the package exports a function of the same name)
import zoo  # noqa: E402
from metrics import engine as engine_mod  # noqa: E402

STEP = 224


def plain_loop(model: torch.nn.Module, x: torch.Tensor, amap: torch.Tensor, target: int) -> torch.Tensor:
    """The reference a user writes: one forward per step, batch 1, eager."""
    _, c, h, w = x.shape
    p = h * w
    order = torch.argsort(amap.flatten(), descending=True, stable=True)
    out = []
    with torch.no_grad():
        for k in range(math.ceil(p / STEP) + 1):
            xk = x.clone().reshape(1, c, p)
            xk[:, :, order[: min(k * STEP, p)]] = 0.0
            out.append(model(xk.reshape_as(x)).softmax(-1)[0, target])
    return torch.stack(out)


def best_of(fn, reps: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _quantus(plain_model: torch.nn.Module, x: torch.Tensor, amap: torch.Tensor, target: int, rows: list) -> float | None:
    """Seconds of Quantus's PixelFlipping on the same map (a row added to ``rows``), or None when it is not installed."""
    try:
        import quantus
    except ImportError:
        print("(quantus not installed: `make bench` installs it into .venv-bench)")
        return None
    pf = quantus.PixelFlipping(features_in_step=STEP, normalise=False, abs=False, disable_warnings=True, display_progressbar=False)
    x_np, a_np = x.cpu().numpy(), amap.cpu().numpy()[:, None]

    def run_quantus():
        return pf(model=plain_model, x_batch=x_np, y_batch=np.array([target]), a_batch=a_np, device=str(x.device), softmax=True, channel_first=True)

    quantus_s, q = best_of(run_quantus, 1)
    rows.append((f"Quantus {quantus.__version__} PixelFlipping", quantus_s, len(q[0])))
    return quantus_s


def main() -> None:
    torch.set_num_threads(torch.get_num_threads())
    loaded = zoo.load_model("efficientnet_lite0")
    x = loaded.preprocess(zoo.sample_images()["chelsea"])
    target = int(loaded.predict(x)[0].argmax())
    amap = explainers.explain("gradcam", loaded, x, target)
    # the peers get the model as the PyPI package builds it (default memory format), as a user would pass it
    plain_model = copy.deepcopy(loaded.model).to(memory_format=torch.contiguous_format).eval()
    print(f"EfficientNet-Lite0, chelsea -> {target} ({loaded.classes[target]}), Grad-CAM map, {STEP} px per step, threads={torch.get_num_threads()}")

    plain_s, plain_curve = best_of(lambda: plain_loop(plain_model, x, amap[0], target), 3)

    def ours(model: zoo.LoadedModel = loaded):
        return metrics.deletion_insertion(model, x, amap, target, step=STEP, curves=("deletion",))

    cold_s, cold_res = float("inf"), None
    for _ in range(2):  # the first curve of a fresh server (a model the engine has not seen): export, check, measure, curve
        fresh = dataclasses.replace(loaded, model=copy.deepcopy(loaded.model))
        s, cold_res = best_of(lambda fresh=fresh: ours(fresh), 1)
        cold_s = min(cold_s, s)
    warm_s, warm_res = best_of(ours, 3)

    torch_engine = engine_mod.torch_path(loaded.model, x)
    di.engine = lambda model, sample: torch_engine  # the same curve code on the torch path
    try:
        ours()
        torch_s, torch_res = best_of(ours, 3)
    finally:
        di.engine = engine_mod.engine

    rows = [
        ("plain eager loop (batch 1)", plain_s, plain_curve.numel()),
        ("torch fast path", torch_s, torch_res.forwards),
        ("engine, cold (set-up included)", cold_s, cold_res.forwards),
        ("engine, warm", warm_s, warm_res.forwards),
    ]
    quantus_s = _quantus(plain_model, x, amap, target, rows)
    print(f"\n{'engine':<34}{'s / curve':>10}{'forwards':>10}{'x plain':>9}")
    for name, s, n in rows:
        print(f"{name:<34}{s:>10.2f}{n:>10}{s / plain_s:>9.2f}")
    print(f"\nengine: {warm_res.engine}; torch path: {torch_res.engine}")
    diffs = {name: float((res.deletion[0] - plain_curve.cpu()).abs().max()) for name, res in (("torch path", torch_res), ("engine", warm_res))}
    print("max |curve - plain loop|: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()) + "  (goal <= 1e-4)")
    print(f"engine / plain: warm {warm_s / plain_s:.2f} (goal <= 0.30), cold {cold_s / plain_s:.2f} (goal <= 0.50); torch path {torch_s / plain_s:.2f}")
    if quantus_s:
        print(f"Quantus / engine (warm): {quantus_s / warm_s:.1f}x")
    print(f"deletion AUC: plain {float(metrics.auc(plain_curve.cpu())):.5f}, engine {float(warm_res.deletion_auc[0]):.5f}")


if __name__ == "__main__":
    main()

    print_peak_memory()
