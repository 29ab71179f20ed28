"""Headless leaderboard: ``python -m metrics --images synthetic:50 --methods saliency,gradcam --out artifacts/lb``.

Writes ``<out>.csv`` (one row per image, method and metric, appended image by image) and ``<out>.json``
(settings, summary with 95% bootstrap intervals and ranks, Kendall tau between metrics). Run the same
command again after an interruption and it resumes from ``<out>.csv``: finished (image, method, metric)
rows are kept, only the missing ones are computed. ``--restart`` starts over.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import explainers
import metrics
from core import progress
from core.errors import InputError
from metrics.leaderboard import FIELDS, agreement, evaluate, image_set, summarize

DEFAULT_METRICS = ["deletion", "insertion", "sparseness", "complexity", "pointing_game", "relevance_mass"]


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    import zoo

    ap = argparse.ArgumentParser(prog="python -m metrics", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=zoo.DEFAULT_MODEL, help=f"one of {', '.join(zoo.model_names())}")
    ap.add_argument("--images", default="chelsea,coffee", help="sample names (comma-separated), a folder of images, or synthetic:N")
    ap.add_argument("--methods", default=",".join(explainers.default_methods()), help=f"comma-separated; known: {', '.join(explainers.names())}")
    ap.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help=f"comma-separated; known: {', '.join(metrics.names())}")
    ap.add_argument("--out", default="artifacts/leaderboard", help="output stem: writes <out>.csv and <out>.json")
    ap.add_argument("--step", type=int, default=224, help="deletion/insertion pixels per step (224: the paper's setting at 224 px)")
    ap.add_argument("--substrate", default="zero", choices=["zero", "blur", "mean"], help="deletion substrate")
    ap.add_argument("--set", action="append", default=[], metavar="METRIC.PARAM=VALUE", help="any other metric parameter, e.g. infidelity.n_samples=20")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=None, help="forward chunk size (default: measured)")
    ap.add_argument("--restart", action="store_true", help="ignore an existing <out>.csv and start over")
    return ap.parse_args(argv)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What the numbers depend on (methods and metrics may change between resumed runs; these may not)."""
    params: dict[str, dict[str, Any]] = {"deletion": {"step": args.step, "substrate": args.substrate}, "insertion": {"step": args.step}}
    for item in args.set:
        key, sep, value = item.partition("=")
        name, dot, param = key.partition(".")
        if not sep or not dot:
            raise InputError(f"--set takes METRIC.PARAM=VALUE; got {item!r}")
        params.setdefault(name, {})[param] = _parse_value(value)
    return {"model": args.model, "images": args.images, "seed": args.seed, "metric_params": params}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of an earlier run; a line cut short by an interruption is dropped."""
    rows = []
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            if None in r or any(r.get(k) is None for k in FIELDS):
                continue
            try:
                r["value"] = float(r["value"])
            except ValueError:
                continue
            rows.append(r)
    return rows


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")  # captum's notice, not ours
    args = parse_args(argv)
    try:
        return run(args)
    except (InputError, KeyError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import zoo

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    for m in methods:
        explainers.get(m)
    for k in names:
        metrics.get(k)
    conf = settings(args)
    metric_params = {k: v for k, v in conf["metric_params"].items() if k in names}
    for k, p in conf["metric_params"].items():
        metrics.get(k).resolve(p)  # unknown metric or parameter: an error now, not after an hour
    stem = Path(args.out)
    if stem.suffix in (".csv", ".json"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")

    old: list[dict[str, Any]] = []
    if csv_path.exists() and not args.restart:
        previous = json.loads(json_path.read_text()).get("settings") if json_path.exists() else None
        if previous != json.loads(json.dumps(conf)):
            raise InputError(f"{csv_path} was written with other settings ({previous}); use --restart or another --out")
        old = read_rows(csv_path)
        # rewrite without any cut-off line so appended rows start on a fresh line
        with csv_path.open("w", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            w.writeheader()
            w.writerows({k: r[k] for k in FIELDS} for r in old)
    else:
        with csv_path.open("w", newline="") as f:
            csv.DictWriter(f, FIELDS).writeheader()
    json_path.write_text(json.dumps({"settings": conf, "status": "running"}, indent=2))

    loaded = zoo.load_model(args.model)
    items, warnings = image_set(loaded, args.images)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    done = {(r["image"], r["method"], r["metric"]) for r in old}
    if old:
        print(f"resuming: {len(old)} rows from {csv_path} kept", file=sys.stderr)

    bar = tqdm(total=len(items), desc="images", unit="img", file=sys.stderr)

    def on_rows(rows: list[dict[str, Any]]) -> None:
        with csv_path.open("a", newline="") as f:
            csv.DictWriter(f, FIELDS).writerows(rows)
            f.flush()
            os.fsync(f.fileno())

    def report(r: progress.Report) -> None:
        if r.stages and r.stages[0][1] != bar.n:  # the outer stage counts images
            bar.n = r.stages[0][1]
            bar.set_postfix_str(r.stages[0][3])
            bar.refresh()

    try:
        with progress.reporting(report):
            new = evaluate(loaded, items, methods, names, metric_params=metric_params, seed=args.seed, done=done, on_rows=on_rows)
    except KeyboardInterrupt:
        bar.close()
        print(f"\ninterrupted: finished images are in {csv_path}; run the same command to resume", file=sys.stderr)
        return 130
    bar.n = len(items)
    bar.close()
    wanted = {it.name for it in items}
    rows = [r for r in old + new if r["image"] in wanted and r["method"] in methods and r["metric"] in names]
    summary = summarize(rows, seed=args.seed)
    ks, tau = agreement(summary)
    report = {
        "settings": conf,
        "status": "complete",
        "methods": methods,
        "metrics": {
            k: {"title": metrics.get(k).title, "higher_is_better": metrics.get(k).higher_is_better, "conventions": metrics.get(k).conventions} for k in names
        },
        "images": len(items),
        "new_rows": len(new),
        "summary": summary,
        "kendall_tau": {"metrics": ks, "tau": [[None if math.isnan(v) else round(float(v), 4) for v in row] for row in tau]},
        "warnings": warnings,
    }
    json_path.write_text(json.dumps(report, indent=2))
    for r in summary:
        ci = f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]" if not math.isnan(r["mean"]) else ""
        print(f"{r['metric']:>15} {r['rank'] or '-':>3} {r['method']:<22} {r['mean']:.4f} {ci} n={r['n']}" + (f" failed={r['failed']}" if r["failed"] else ""))
    print(f"wrote {csv_path} and {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
