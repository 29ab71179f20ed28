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


def _row(m: str, scores: dict, s: shortcut.ShortcutSet, seconds: float) -> dict:
    row = {"method": m, "seconds": round(seconds, 1)}
    for measure, by_region in scores.items():
        for region, v in by_region.items():
            per_area = {measure: v, f"{measure}_x_area": metrics.concentration(v, getattr(s, region))} if measure == "relevance_mass" else {measure: v}
            for name, values in per_area.items():
                r = metrics.over_set(values)
                row.update({f"{name}_{region}": r.mean, f"{name}_{region}_low": r.low, f"{name}_{region}_high": r.high})
    mk_low, sh_low = (row[f"relevance_mass_x_area_{r}_low"] for r in ("marker", "shape"))
    mk_high, sh_high = (row[f"relevance_mass_x_area_{r}_high"] for r in ("marker", "shape"))
    row["points_at"] = "marker" if mk_low > sh_high else ("shape" if sh_low > mk_high else "neither clearly")
    return row


def _cell(row: dict, k: str) -> str:
    return f"{row[k]:.3f} [{row[k + '_low']:.3f}, {row[k + '_high']:.3f}]"


def _shares(loaded: zoo.LoadedModel, s: shortcut.ShortcutSet, t, methods: list[str]) -> list[dict]:
    rows = []
    for m in methods:
        t0 = time.perf_counter()
        _, scores = shortcut.shares(loaded, s, t, m)
        row = _row(m, scores, s, time.perf_counter() - t0)
        rows.append(row)
        print(
            f"| {explainers.get(m).title} | {_cell(row, 'relevance_mass_marker')} | {_cell(row, 'relevance_mass_shape')} "
            f"| {row['relevance_mass_x_area_marker']:.1f} | {row['relevance_mass_x_area_shape']:.1f} | {row['points_at']} "
            f"| {row['relevance_rank_marker']:.3f} | {row['relevance_rank_shape']:.3f} | {row['seconds']:.0f} |",
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
    print(
        "\n| method | share on the marker [95% CI] | share on the shape [95% CI] | marker × area | shape × area | points at "
        "| rank acc. marker | rank acc. shape | s |\n|---|---|---|---|---|---|---|---|---|"
    )
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
