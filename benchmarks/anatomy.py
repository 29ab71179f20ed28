"""Seconds per 100 activation-maximization steps at 224 px on EfficientNet-Lite0 (and the 64 px synthetic CNN),
against the pass floor (100 forward+backward passes at batch 1), for each parametrization. Run: ``make bench``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from timing import print_peak_memory  # noqa: E402

import anatomy as V  # noqa: E402
import zoo  # noqa: E402


def fb_time(model: torch.nn.Module, size: int) -> float:
    x = torch.rand(1, 3, size, size)
    best = float("inf")
    for _ in range(5):
        xg = x.clone().requires_grad_(True)
        t0 = time.perf_counter()
        model(xg)[0, 0].backward()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    print(f"{'model':<22}{'objective':<22}{'parametrization':<16}{'s / 100 steps':>14}{'floor':>8}{'ratio':>7}  result")
    for name, objective in (
        ("efficientnet_lite0", V.Objective("class", 954)),
        ("efficientnet_lite0", V.Objective("channel", 10, "_blocks.15._project_conv")),
        ("synthetic_shapes", V.Objective("class", 2)),
    ):
        loaded = zoo.load_model(name)
        floor = 100 * fb_time(loaded.model, loaded.input_size)
        for param in ("fourier", "pixel"):
            V.maximize(loaded, objective, steps=2, param=param)  # warm-up
            t0 = time.perf_counter()
            img = V.maximize(loaded, objective, steps=100, param=param, transforms=param == "fourier")
            sec = time.perf_counter() - t0
            p = loaded.predict(loaded.normalize(img))[0]
            what = f"p(class)={float(p[objective.index]):.3f}" if objective.kind == "class" else f"top-1 {int(p.argmax())}"
            label = f"{objective.kind} {objective.index}" + (f" @{objective.layer}" if objective.layer else "")
            print(f"{name:<22}{label[:21]:<22}{param:<16}{sec:>14.2f}{floor:>8.2f}{sec / floor:>7.2f}  {what}")


if __name__ == "__main__":
    main()

    print_peak_memory()
