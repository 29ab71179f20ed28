"""The issue-20 metrics against Quantus 0.6 on the same work: for every metric Quantus has, our value and Quantus's
after aligning conventions (``benchmarks/quantus_aligned.py``), the largest difference, and both wall times with
their ratio, measured in this one run (this machine is shared: only the ratios mean something).

The case: the synthetic-shapes CNN (64 x 64), two images (circle, cross), their predicted classes, two maps each
(Saliency and Gradient x Input). The metrics that count pixels run on the image in grey (``quantus_aligned.Grey``:
one value per pixel for both libraries); those that recompute maps run on the colour image with our explainers
(Quantus calls them through ``explain_func``, so the maps cost both sides the same). Ours scores the maps of one
batch in one call where the forwards do not depend on the map (as the pages and the leaderboard do). Ours runs warm (its forward
engine built once per model, as in the dashboard's server; the build is timed apart); ``--images N`` uses N synthetic
images instead. Run: ``make bench`` (uses .venv-bench) or ``.venv-bench/bin/python benchmarks/metrics.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import print_peak_memory  # noqa: E402

import explainers  # noqa: E402
import metrics  # noqa: E402
import zoo  # noqa: E402
from metrics.irof import _substrate, irof_curves  # noqa: E402

METHODS = ("saliency", "input_x_gradient")
SEED = 0
# Quantus's defaults where they are the definition's; fewer samples where Quantus's are 200 maps per image
PIXEL = {
    "faithfulness_correlation": {"subset_size": 224, "n_runs": 100},
    "sensitivity_n": {"fraction": 0.1, "n_runs": 100},
    "monotonicity_arya": {"step": 1024},  # 4 points: both outcomes occur on these maps (at 256 every map fails)
    "monotonicity_nguyen": {"step": 256, "n_samples": 10},
}
RECOMPUTING = {
    "local_lipschitz_estimate": ({"sigma": 0.1, "n_samples": 10}, True),  # True: one image per call (Quantus normalises by the batch's max)
    "relative_input_stability": ({"radius": 0.02, "n_samples": 10}, False),
    "relative_output_stability": ({"radius": 0.02, "n_samples": 10}, False),
    "random_logit": ({}, True),
    "smooth_mprt": ({"n_samples": 10, "noise": 0.1}, False),
    "efficient_mprt": ({"n_bins": 100}, False),
}
RELATIVE = {"relative_input_stability", "relative_output_stability"}  # unbounded ratios: the difference is relative


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def row(name: str, ours: np.ndarray, theirs: np.ndarray, t_ours: float, t_q: float, note: str = "") -> None:
    ours, theirs = np.asarray(ours, dtype=np.float64).ravel(), np.asarray(theirs, dtype=np.float64).ravel()
    diff = np.abs(ours - theirs)
    d = f"{np.max(diff / np.maximum(np.abs(theirs), 1e-12)):.1e} rel" if name in RELATIVE else f"{np.max(diff):.1e}"
    vals = lambda v: " ".join(f"{x:.4g}" for x in v)  # noqa: E731
    print(f"| {name}{note} | {vals(ours)} | {vals(theirs)} | {d} | {t_ours:.2f} | {t_q:.2f} | {t_q / t_ours:.1f}x |")


def recomputing(qa, name: str, method: str, net, x: torch.Tensor, t: torch.Tensor, a: torch.Tensor, kw: dict, extra: dict, one_by_one: bool) -> None:
    """One row for a metric that recomputes maps: the whole batch at once, or one image per call on both sides."""
    batches = [slice(i, i + 1) for i in range(x.shape[0])] if one_by_one else [slice(0, x.shape[0])]

    def ours() -> np.ndarray:
        return np.concatenate([metrics.score(name, net, x[s], t[s], {method: a[s]}, seed=SEED, **kw)[method].numpy() for s in batches])

    def theirs() -> np.ndarray:
        return np.concatenate([getattr(qa, name)(net, x[s], a[s], t[s], SEED, method=method, **extra) for s in batches])

    t_ours, got = timed(ours)
    t_q, want = timed(theirs)
    row(name, got, want, t_ours, t_q, f" ({method})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=0, help="N synthetic images instead of the two samples")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    try:
        import quantus_aligned as qa
    except ImportError:
        print("(quantus not installed: `make bench` installs it into .venv-bench)")
        return
    import quantus

    loaded = zoo.load_model("synthetic_shapes")
    net = loaded.model
    if args.images:
        from metrics.leaderboard import image_set

        items, _ = image_set(loaded, f"synthetic:{args.images}")
        x = torch.cat([it.x for it in items])
    else:
        imgs = zoo.sample_images()
        x = torch.cat([loaded.preprocess(imgs[n]) for n in ("shapes: circle", "shapes: cross")])
    t = loaded.predict(x).argmax(1)
    b = x.shape[0]
    grey_net, xg = qa.Grey(net).eval(), x.mean(1, keepdim=True)
    grey_maps = {m: explainers.explain(m, grey_net, xg, t) for m in METHODS}
    maps = {m: explainers.explain(m, net, x, t) for m in METHODS}
    print(f"Quantus {quantus.__version__}; synthetic shapes CNN, {b} images x {len(METHODS)} maps ({', '.join(METHODS)}); threads={torch.get_num_threads()}")
    build_s, _ = timed(lambda: metrics.score("average_drop", grey_net, xg, t, grey_maps) and metrics.score("average_drop", net, x, t, maps))
    print(f"our forward engine, built once per model: {build_s:.1f} s for both models (not in the times below)\n")
    print("| metric | ours | Quantus 0.6 | max diff | ours s | Quantus s | Quantus / ours |")
    print("|---|---|---|---|---|---|---|")

    for name, kw in PIXEL.items():
        # ours scores both maps in one call (as the pages and the leaderboard do): forwards that do not depend on the map are shared
        t_ours, ours = timed(lambda name=name, kw=kw: metrics.score(name, grey_net, xg, t, grey_maps, seed=SEED, **kw))
        t_q, theirs = timed(lambda name=name, kw=kw: [getattr(qa, name)(grey_net, xg, a, t, SEED, **kw) for a in grey_maps.values()])
        row(name, torch.cat([ours[m] for m in METHODS]).numpy(), np.concatenate(theirs), t_ours, t_q)
    shipped = np.concatenate([qa.monotonicity_arya(grey_net, xg, a, t, SEED, step=1024, quantus_perturbation=True) for a in grey_maps.values()])
    print(f"| (Quantus Monotonicity as shipped: {' '.join(f'{v:.0f}' for v in shipped)}: the image never changes, every map scores 1) | | | | | | |")
    t_ours, curves = timed(lambda: irof_curves(grey_net, xg, grey_maps, t))
    t_q, theirs = timed(lambda: [qa.irof(grey_net, xg, a, t, SEED, fill=_substrate(xg, "mean")) for a in grey_maps.values()])
    row("irof", torch.cat([curves.quantus_aoc()[m] for m in METHODS]).numpy(), np.concatenate(theirs), t_ours, t_q, " (Quantus's scale: n - trapz)")
    print(f"| (IROF, ours on [0,1]: {' '.join(f'{float(v):.4g}' for m in METHODS for v in curves.aoc()[m])}) | | | | | | |")

    for name, (kw, one_by_one) in RECOMPUTING.items():
        extra = {"n_classes": len(loaded.classes)} if name == "random_logit" else kw
        for m in METHODS:
            recomputing(qa, name, m, net, x, t, maps[m], kw, extra, one_by_one)
    print()
    print_peak_memory()


if __name__ == "__main__":
    main()
