"""The shortcut study's figures (README, Bias page): the shortcut model's accuracy on its three test sets, each
method's share of positive attribution on the marker and on the shape over N test images (mean, 95% bootstrap
interval), relevance rank accuracy on both, and the counterfactual check.

Run: ``python benchmarks/shortcut.py [N] [method,method,...]`` (default 200 images and every method but the
perturbation methods RISE, LIME and KernelSHAP, which take minutes per hundred images on a 2-core CPU).
Writes ``artifacts/shortcut_shares.csv``.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import explainers  # noqa: E402
import metrics  # noqa: E402
import zoo  # noqa: E402
from metrics import shortcut  # noqa: E402

SLOW = {"rise", "lime", "kernel_shap"}


def _shares(loaded: zoo.LoadedModel, s: shortcut.ShortcutSet, t, methods: list[str]) -> list[dict]:
    rows = []
    for m in methods:
        t0 = time.perf_counter()
        _, scores = shortcut.shares(loaded, s, t, m)
        seconds = time.perf_counter() - t0
        row = {"method": m, "seconds": round(seconds, 1)}
        for measure, by_region in scores.items():
            for region, v in by_region.items():
                r = metrics.over_set(v)
                row.update({f"{measure}_{region}": r.mean, f"{measure}_{region}_low": r.low, f"{measure}_{region}_high": r.high})
        rows.append(row)
        mk, sh = (metrics.SetScore(row[f"relevance_mass_{r}"], row[f"relevance_mass_{r}_low"], row[f"relevance_mass_{r}_high"], 0) for r in ("marker", "shape"))
        print(
            f"| {explainers.get(m).title} | {mk.mean:.3f} [{mk.low:.3f}, {mk.high:.3f}] | {sh.mean:.3f} [{sh.low:.3f}, {sh.high:.3f}] "
            f"| {row['relevance_rank_marker']:.3f} | {row['relevance_rank_shape']:.3f} | {seconds:.0f} |",
            flush=True,
        )
    return rows


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    methods = sys.argv[2].split(",") if len(sys.argv) > 2 else [m for m in explainers.names() if m not in SLOW]
    loaded = zoo.load_model(shortcut.MODEL)
    acc = shortcut.accuracies(loaded, n)
    print(
        f"accuracy on {n} test images: "
        + ", ".join(f"{k} {v:.3f}" for k, v in acc.items())
        + f"; drop agree -> other {100 * (acc['agree'] - acc['other']):.1f} points"
    )
    s = shortcut.shortcut_set(loaded, n, "agree")
    t = s.labels
    print(f"area share: marker {float(metrics.area_share(s.marker).mean()):.4f}, shape {float(metrics.area_share(s.shape).mean()):.4f}")
    print("\n| method | share on the marker [95% CI] | share on the shape [95% CI] | rank acc. marker | rank acc. shape | s |\n|---|---|---|---|---|---|")
    rows = _shares(loaded, s, t, methods)
    out = ROOT / "artifacts" / "shortcut_shares.csv"
    out.parent.mkdir(exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwritten {out}")
    for region, cf in shortcut.removals(loaded, s, t).items():
        d = metrics.over_set(cf.delta)
        flipped = float((cf.pred_before != cf.pred_after).float().mean())
        print(
            f"{region} removed (impute): p(label) {float(cf.before.mean()):.3f} -> {float(cf.after.mean()):.3f}, change {d.mean:.3f} [{d.low:.3f}, {d.high:.3f}], prediction changed {flipped:.3f}"
        )
    p = shortcut.pasted_markers(loaded, n)
    d = metrics.over_set(p.delta)
    print(
        f"another class's marker pasted onto marker-free images: p(marker's class) {float(p.before.mean()):.3f} -> {float(p.after.mean()):.3f}, "
        f"change {d.mean:.3f} [{d.low:.3f}, {d.high:.3f}], predicted as the marker's class {float((p.pred_after == p.target).float().mean()):.3f}"
    )


if __name__ == "__main__":
    main()
