"""Seconds, ratio to the pass floor and peak memory of the robustness metrics on EfficientNet-Lite0 (the cat photo).

Floors, from the per-image pass times measured here (t_f forward, t_fb forward+backward, at the batch size used):
- max-sensitivity: (n_samples + 1) x the method's passes (registry cost) x t_fb;
- PGD: steps x t_fb (plus 2 forwards for the probabilities);
- fragility: steps x (t_2 + t_f) + 3 t_fb: t_2 is one second-order pass on the softplus copy (forward, gradient
  with create_graph, backward through it), measured here; t_f the label check; 3 maps (clean, attacked, random).
captum's ``sensitivity_max`` does the same sensitivity work on identical samples (with IG it is bounded by
``max_examples_per_batch=2``: at its defaults it evaluates all samples x 32 path points in one batch, about
27 GB here, so it is not run that way). Peak memory: ru_maxrss of this process. Run: ``make bench``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from captum.metrics import sensitivity_max  # noqa: E402
from timing import print_peak_memory  # noqa: E402

import explainers  # noqa: E402
import metrics  # noqa: E402
import zoo  # noqa: E402
from metrics.fragility import smooth_copy  # noqa: E402


def per_pass(model: torch.nn.Module, bs: int) -> tuple[float, float]:
    x = torch.randn(bs, 3, 224, 224)

    def f() -> None:
        with torch.no_grad():
            model(x)

    def fb() -> None:
        xg = x.clone().requires_grad_(True)
        model(xg)[:, 0].sum().backward()

    out = []
    for fn in (f, fb):
        fn()
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        out.append(best / bs)
    return out[0], out[1]


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    loaded = zoo.load_model("efficientnet_lite0")
    x = loaded.preprocess(zoo.sample_images()["chelsea"])
    target = int(loaded.predict(x)[0].argmax())
    t_f1, t_fb1 = per_pass(loaded.model, 1)
    _, t_fb8 = per_pass(loaded.model, 8)
    print(
        f"EfficientNet-Lite0, chelsea -> {target}; per image: forward {t_f1 * 1e3:.0f} ms, fwd+bwd {t_fb1 * 1e3:.0f} ms (batch 1), {t_fb8 * 1e3:.0f} ms (batch 8)"
    )
    rows = []
    n = 10
    for m in ("saliency", "integrated_gradients"):
        spec = explainers.get(m)
        passes = sum(spec.cost(spec.defaults(), 224, 224, 1280))
        explainers.explain(m, loaded, x, target)
        t0 = time.perf_counter()
        ours = metrics.sensitivity(loaded, x, target, m, radius=2, n_samples=n)
        sec = time.perf_counter() - t0
        floor = (n + 1) * passes * (t_fb1 if passes == 1 else t_fb8)
        samples = metrics.sensitivity_samples(loaded, x, 2, n, 0)

        def explanation(inputs, target, m=m):
            inputs = inputs[0] if isinstance(inputs, tuple) else inputs
            return (explainers.explain(m, loaded, inputs, target),)

        served = [0]

        def same(inputs, radius, samples=samples, served=served):
            """captum asks for as many samples as its batch holds: hand out ours in order."""
            inputs = inputs[0] if isinstance(inputs, tuple) else inputs
            out = samples[served[0] : served[0] + inputs.shape[0]]
            served[0] += inputs.shape[0]
            return out

        t0 = time.perf_counter()
        theirs = sensitivity_max(
            explanation, x, perturb_func=same, n_perturb_samples=n, target=torch.tensor([target]), max_examples_per_batch=None if m == "saliency" else 2
        )
        cap = time.perf_counter() - t0
        rows.append(
            (
                f"max-sensitivity, {spec.title} (n={n}, r=2/255)",
                sec,
                floor,
                f"captum {cap:.2f} s, same value: {abs(float(theirs[0]) - ours.max) < 1e-4 * max(1, ours.max)}",
            )
        )
    t0 = time.perf_counter()
    adv = metrics.adversarial(loaded, x, target, attack="pgd", eps=2, steps=10)
    rows.append((f"PGD, eps 2/255, 10 steps (changed: {adv.changed})", time.perf_counter() - t0, 10 * t_fb1 + 2 * t_f1, ""))
    smooth = smooth_copy(loaded.model)

    def double_backward() -> None:
        xi = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(smooth(xi)[0, target], xi, create_graph=True)
        g.abs().amax(1).sum().backward()

    double_backward()
    t_dd = min(_timed(double_backward) for _ in range(3))
    t0 = time.perf_counter()
    fr = metrics.fragility(loaded, x, target, "saliency", attack="topk", eps=8, steps=10)
    rows.append(
        (
            f"fragility top-k, Saliency, eps 8/255, 10 steps (label kept: {fr.label_kept})",
            time.perf_counter() - t0,
            10 * (t_dd + t_f1) + 3 * t_fb1,
            f"one second-order pass: {t_dd:.2f} s",
        )
    )
    print(f"\n{'work':<66}{'s':>7}{'floor s':>9}{'ratio':>7}")
    for name, s, floor, note in rows:
        print(f"{name:<66}{s:>7.2f}{floor:>9.2f}{s / floor:>7.2f}  {note}")
    print(f"\nfragility: attacked top-k intersection {fr.attacked['topk_intersection']:.3f} vs random signs {fr.random['topk_intersection']:.3f} (k={fr.k})")
    print_peak_memory()


if __name__ == "__main__":
    main()
