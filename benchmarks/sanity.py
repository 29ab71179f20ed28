"""Seconds for the sanity checks on EfficientNet-Lite0 (the cat photo), against their pass floor and Quantus.

1. A full cascade of the default methods (19 blocks + the original = 20 maps per method) with all four
   similarity measures. Floor = sum over methods of steps x (forwards x t_fwd + forward-backwards x t_fb),
   the methods' pass counts from the registry and t_* the measured per-image pass times at the best batch
   size each method can use (as in benchmarks/explainers.py). Goal: ratio <= 1.2.
2. The same work as Quantus 0.6 ``MPRT`` (top-down cascade over every module with ``reset_parameters``:
   99 layers; Saliency; Spearman similarity): ours and Quantus's seconds. Goal: ours faster.
Run: ``make bench`` (Quantus lives in .venv-bench only).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import best_up_to, pass_times, print_peak_memory  # noqa: E402

import explainers  # noqa: E402
import metrics  # noqa: E402
import zoo  # noqa: E402


def main() -> None:
    loaded = zoo.load_model("efficientnet_lite0")
    x = loaded.preprocess(zoo.sample_images()["chelsea"])
    target = int(loaded.predict(x)[0].argmax())
    methods = explainers.default_methods()
    blocks = metrics.model_blocks(loaded)
    steps = len(blocks) + 1
    print(f"EfficientNet-Lite0, chelsea -> {target}; {len(methods)} default methods x {steps} maps; {torch.get_num_threads()} threads")
    fwd, fb = pass_times(loaded.model, 224, [1, 2, 4, 8, 16, 32])
    floor = 0.0
    for m in methods:
        spec = explainers.get(m)
        n_f, n_fb = spec.cost(spec.defaults(), 224, 224, 1280)
        floor += steps * (n_f * best_up_to(fwd, n_f) + n_fb * best_up_to(fb, n_fb))
    for m in methods:  # warm-up: lazily built copies, first-call overheads
        explainers.explain(m, loaded, x, target)
    t0 = time.perf_counter()
    res = metrics.model_randomization(loaded, x, target, methods)
    full = time.perf_counter() - t0
    print(f"\nfull cascade: {full:.1f} s, pass floor {floor:.1f} s, ratio {full / floor:.2f}  (goal <= 1.2); errors: {res.errors or 'none'}")

    # the same work as Quantus MPRT: every module with reset_parameters, top down, Saliency, Spearman
    layers = [(n, (n,)) for n, mod in loaded.model.named_modules() if n and hasattr(mod, "reset_parameters")]
    t0 = time.perf_counter()
    ours = metrics.model_randomization(loaded, x, target, ["saliency"], blocks=layers, similarity=("spearman",))
    assert len(ours.steps) == len(layers) + 1
    ours_s = time.perf_counter() - t0
    rows = [("ours, model_randomization", ours_s)]
    try:
        import quantus

        def explain_func(model, inputs, targets, **kwargs):
            xt = torch.as_tensor(inputs, dtype=torch.float32)
            return explainers.explain("saliency", model, xt, torch.as_tensor(targets)).unsqueeze(1).numpy()

        mprt = quantus.MPRT(layer_order="top_down", disable_warnings=True, display_progressbar=False, return_average_correlation=False)
        a = explain_func(loaded.model, x.numpy(), np.array([target]))
        t0 = time.perf_counter()
        mprt(model=loaded.model, x_batch=x.numpy(), y_batch=np.array([target]), a_batch=a, explain_func=explain_func, device="cpu", channel_first=True)
        rows.append((f"Quantus {quantus.__version__} MPRT", time.perf_counter() - t0))
    except ImportError:
        print("(quantus not installed: `make bench` installs it into .venv-bench)")
    print(f"\nSaliency, cascading over {len(layers)} layers (Quantus MPRT's work):")
    for name, s in rows:
        print(f"  {name:<30}{s:8.2f} s  ({s / ours_s:.2f} x ours)")


if __name__ == "__main__":
    main()

    print_peak_memory()
