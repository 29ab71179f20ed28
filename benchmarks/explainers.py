"""Seconds per method on EfficientNet-Lite0 at 224 px, and the ratio to its pass floor.

Floor = forwards x t_fwd + forward-backwards x t_fb, where t_fwd and t_fb are the measured
per-image times of one forward (no grad) and one forward+backward at the best batch size
available to that method (a 1-pass method can only use batch 1; an n-pass method any batch up
to n, capped at 64). Ratios near 1 mean the method adds little beyond its unavoidable passes.
Also prints the default grid's total, a cached redraw of the tiles, and the perturbation methods before and
after the forward-only engine (their forwards on the shared model, eager, as they ran before; then through
``metrics.engine``), each as a ratio to its forwards done one by one at batch 1 eager (goal: RISE, Score-CAM,
Occlusion <= 0.45). Run: make bench.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import best_of, best_up_to, pass_times, print_peak_memory  # noqa: E402

import explainers  # noqa: E402
import zoo  # noqa: E402
from core.errors import MethodNotApplicable  # noqa: E402
from dashboard import render  # noqa: E402
from explainers.context import Context  # noqa: E402


def _once(name: str, loaded: zoo.LoadedModel, x: torch.Tensor, target: int) -> float:
    t0 = time.perf_counter()
    explainers.explain(name, loaded, x, target)
    return time.perf_counter() - t0


PERTURBATION = ("rise", "scorecam", "occlusion", "lime", "kernel_shap")


def _eager_forward(self: Context, x: torch.Tensor) -> torch.Tensor:
    """The perturbation methods' forwards before the engine: the shared model itself, eager, no grad."""
    with torch.no_grad():
        return self.model(x).float()


def before_after(loaded: zoo.LoadedModel, x: torch.Tensor, target: int, fwd1: float, channels: int) -> None:
    """Each perturbation method with its forwards on the shared eager model, then through the engine (warm)."""
    print(f"\n{'perturbation method':22s} {'forwards':>8s} {'1-by-1 s':>9s} {'before s':>9s} {'ratio':>6s} {'after s':>8s} {'ratio':>6s}")
    for name in PERTURBATION:
        spec = explainers.get(name)
        n_f, _ = spec.cost(spec.defaults(), 224, 224, channels)
        floor = n_f * fwd1
        engine_forward = Context.forward
        Context.forward = _eager_forward  # type: ignore[method-assign]
        try:
            before = _once(name, loaded, x, target)
        finally:
            Context.forward = engine_forward  # type: ignore[method-assign]
        after = _once(name, loaded, x, target)
        print(f"{name:22s} {n_f:8d} {floor:9.2f} {before:9.2f} {before / floor:6.2f} {after:8.2f} {after / floor:6.2f}")


def main() -> None:
    torch.manual_seed(0)
    loaded = zoo.load_model("efficientnet_lite0")
    x = loaded.preprocess(zoo.sample_images()["chelsea"])
    target = int(loaded.predict(x).argmax())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {x.device}")
    fwd, fb = pass_times(loaded.model, 224)
    print("per-image pass time (ms) by batch:", {b: f"fwd {fwd[b] * 1e3:.1f} / fb {fb[b] * 1e3:.1f}" for b in fwd})
    channels = 1280
    print(f"\n{'method':22s} {'seconds':>8s} {'passes (f, fb)':>15s} {'floor s':>8s} {'ratio':>6s}")
    grid_total = 0.0
    maps = {}
    for name in explainers.names():
        spec = explainers.get(name)
        n_f, n_fb = spec.cost(spec.defaults(), 224, 224, channels)
        floor = n_f * best_up_to(fwd, n_f) + n_fb * best_up_to(fb, n_fb)
        try:
            maps[name] = explainers.explain(name, loaded, x, target)[0].numpy()  # warm-up (builds the LRP copy etc.)
        except MethodNotApplicable as exc:  # e.g. PatternNet before its patterns are learned
            print(f"{name:22s} not applicable here: {str(exc)[:90]}")
            continue
        reps = 3 if floor < 3 else 1
        sec = best_of(lambda name=name: explainers.explain(name, loaded, x, target), reps=reps) if reps > 1 else _once(name, loaded, x, target)
        if spec.default:
            grid_total += sec
        ratio = f"{sec / floor:6.2f}" if floor > 0 else "     -"
        print(f"{name:22s} {sec:8.2f} {f'({n_f}, {n_fb})':>15s} {floor:8.2f} {ratio}")
    print(f"\ndefault grid ({len(explainers.default_methods())} methods): {grid_total:.1f} s")
    image = loaded.denormalize(x)[0].permute(1, 2, 0).numpy().astype(np.float64)
    t0 = time.perf_counter()
    for name in explainers.default_methods():
        render.render_tile(maps[name], image, signed=explainers.get(name).signed, cmap="inferno", overlay=True, opacity=0.7, clip_percentile=99)
    print(f"cached redraw of the default grid's tiles: {time.perf_counter() - t0:.3f} s")
    before_after(loaded, x, target, fwd[1], channels)


if __name__ == "__main__":
    main()

    print_peak_memory()
