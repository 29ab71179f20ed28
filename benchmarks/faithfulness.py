"""Seconds per deletion curve on EfficientNet-Lite0, the cat photo, 224 pixels per step (225 points), one map:

- the plain loop a notebook would write: batch 1, eager, ``torch.no_grad``, one forward per step;
- ours, eager fast path (BatchNorm folded, channels_last, inference_mode, measured chunk size);
- ours, compiled fast path (the same plus torch.compile; its one-off compile time printed apart);
- Quantus 0.6 ``PixelFlipping`` with ``features_in_step=224`` on the same map (install with ``make bench``).

Prints the ratios and the largest difference of our curve from the plain loop (goals: ours <= 0.5 x
plain, >= 8 x faster than Quantus, difference <= 1e-4). Run: ``make bench`` (uses .venv-bench).
Definitions differ in Quantus: it counts every channel value as a feature (the map is broadcast to
[3,H,W], so 224 "features" per step is 74.7 pixels and the curve has 672 steps), orders them with an
unstable sort, replaces them with its "black" baseline (the input's minimum), and its AUC is np.trapz
over step indices, not normalized.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import print_peak_memory  # noqa: E402

import explainers  # noqa: E402
import metrics  # noqa: E402
import zoo  # noqa: E402

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

    def ours(compile_: bool):
        return metrics.deletion_insertion(loaded, x, amap, target, step=STEP, curves=("deletion",), compile=compile_)

    ours(False)  # measure the batch size, warm up
    eager_s, eager_res = best_of(lambda: ours(False), 3)
    t0 = time.perf_counter()
    ours(True)  # compile once (cached for the process, like the dashboard's server)
    compile_s = time.perf_counter() - t0
    comp_s, comp_res = best_of(lambda: ours(True), 3)

    rows = [
        ("plain eager loop (batch 1)", plain_s, plain_curve.numel()),
        ("ours, eager fast path", eager_s, eager_res.forwards),
        ("ours, compiled", comp_s, comp_res.forwards),
    ]
    quantus_s = None
    try:
        import quantus

        pf = quantus.PixelFlipping(features_in_step=STEP, normalise=False, abs=False, disable_warnings=True, display_progressbar=False)
        x_np = x.cpu().numpy()
        a_np = amap.cpu().numpy()[:, None]

        def run_quantus():
            return pf(model=plain_model, x_batch=x_np, y_batch=np.array([target]), a_batch=a_np, device=str(x.device), softmax=True, channel_first=True)

        quantus_s, q = best_of(run_quantus, 1)
        rows.append((f"Quantus {quantus.__version__} PixelFlipping", quantus_s, len(q[0])))
    except ImportError:
        print("(quantus not installed: `make bench` installs it into .venv-bench)")

    print(f"\n{'engine':<34}{'s / curve':>10}{'forwards':>10}{'x plain':>9}")
    for name, s, n in rows:
        print(f"{name:<34}{s:>10.2f}{n:>10}{s / plain_s:>9.2f}")
    print(f"\ncompile time (once per model and input size): {compile_s:.1f} s; engine: {comp_res.engine}")
    diff_e = float((eager_res.deletion[0] - plain_curve.cpu()).abs().max())
    diff_c = float((comp_res.deletion[0] - plain_curve.cpu()).abs().max())
    print(f"max |ours - plain| over the curve: eager {diff_e:.1e}, compiled {diff_c:.1e}  (goal <= 1e-4)")
    print(f"ours / plain: eager {eager_s / plain_s:.2f}, compiled {comp_s / plain_s:.2f}  (goal <= 0.5)")
    if quantus_s:
        print(f"Quantus / ours: eager {quantus_s / eager_s:.1f}x, compiled {quantus_s / comp_s:.1f}x  (goal >= 8)")
    print(f"deletion AUC: plain {float(metrics.auc(plain_curve.cpu())):.5f}, ours {float(comp_res.deletion_auc[0]):.5f}")


if __name__ == "__main__":
    main()

    print_peak_memory()
