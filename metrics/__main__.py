"""Dataset runs from the command line: ``python -m metrics --images DIR --out RUN_DIR --methods saliency,gradcam``.

``--images`` takes a folder (``DIR/<class>/<file>``, ``DIR/labels.csv`` with ``path,label``, or unlabelled images),
``synthetic:N`` or sample names. Every image's prediction, maps and scores go into the run folder (Parquet parts
and ``manifest.json``, see ``metrics.runs.store``); at the end ``leaderboard.json`` holds the summary (means, 95%
bootstrap intervals, ranks, Kendall tau between metrics). ``--engine ray --workers N`` shards the run on a local
Ray cluster of N workers (``--ray-address`` joins an existing one). Run the same command again after an
interruption and it resumes: finished shards and checkpoints are kept, only the missing images are computed;
other settings on the same folder are refused. ``--restart`` starts over.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import explainers
import metrics
from core import progress
from core.errors import InputError
from metrics.leaderboard import agreement, summarize
from metrics.runs import RunSettings, load_run, run_dataset
from metrics.runs.store import write_atomic

ROOT = Path(__file__).resolve().parents[1]

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
    ap.add_argument("--images", default="chelsea,coffee", help="a folder (labelled or not), synthetic:N, or sample names (comma-separated)")
    ap.add_argument("--methods", default=",".join(explainers.default_methods()), help=f"comma-separated; known: {', '.join(explainers.names())}")
    ap.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help=f"comma-separated; known: {', '.join(metrics.names())}")
    ap.add_argument("--out", default=None, help="the run folder (default: runs/<model>)")
    ap.add_argument("--step", type=int, default=224, help="deletion/insertion pixels per step (224: the paper's setting at 224 px)")
    ap.add_argument("--substrate", default="zero", choices=["zero", "blur", "mean"], help="deletion substrate")
    ap.add_argument("--set", action="append", default=[], metavar="METRIC.PARAM=VALUE", help="any other metric parameter, e.g. infidelity.n_samples=20")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=None, help="the metrics' forward chunk size (default: measured)")
    ap.add_argument("--engine", default="local", choices=["local", "ray"], help="local: in this process; ray: sharded on Ray actors")
    ap.add_argument("--workers", type=int, default=2, help="Ray workers (one CPU each)")
    ap.add_argument("--ray-address", default=None, help="join the Ray cluster at this address instead of starting a local one")
    ap.add_argument("--shard-size", type=int, default=64, help="images per Parquet part")
    ap.add_argument("--checkpoint", type=int, default=8, help="images per checkpoint inside a shard (what a crash can lose)")
    ap.add_argument("--restart", action="store_true", help="delete the run in --out and start over")
    return ap.parse_args(argv)


def settings(args: argparse.Namespace) -> RunSettings:
    """The run's settings from the arguments (every ``--set`` parameter checked against its metric)."""
    params: dict[str, dict[str, Any]] = {"deletion": {"step": args.step, "substrate": args.substrate}, "insertion": {"step": args.step}}
    for item in args.set:
        key, sep, value = item.partition("=")
        name, dot, param = key.partition(".")
        if not sep or not dot:
            raise InputError(f"--set takes METRIC.PARAM=VALUE; got {item!r}")
        params.setdefault(name, {})[param] = _parse_value(value)
    for k, p in params.items():
        metrics.get(k).resolve(p)  # unknown metric or parameter: an error now, not after an hour
    names = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    return RunSettings(
        model=args.model,
        images=args.images,
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        metrics=names,
        metric_params={k: v for k, v in params.items() if k in names},
        seed=args.seed,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        checkpoint=min(args.checkpoint, args.shard_size),
    ).check()


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")  # captum's notice, not ours
    args = parse_args(argv)
    try:
        return run(args)
    except (InputError, KeyError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2


def report(out: Path, seed: int) -> list[dict[str, Any]]:
    """Write ``leaderboard.json`` (summary, Kendall tau, skipped files) from the store; returns the summary."""
    run = load_run(out)
    summary = summarize(run.scores[["image", "method", "metric", "value"]].to_dict("records"), seed=seed)
    ks, tau = agreement(summary)
    doc = {
        "images": len(run.predictions),
        "accuracy": float(run.predictions["correct"].mean()) if run.predictions["correct"].notna().any() else None,
        "metrics": {k: {"title": metrics.get(k).title, "higher_is_better": metrics.get(k).higher_is_better, "conventions": metrics.get(k).conventions} for k in run.settings.metrics},
        "summary": summary,
        "kendall_tau": {"metrics": ks, "tau": [[None if math.isnan(v) else round(float(v), 4) for v in row] for row in tau]},
        "skipped": run.skipped.to_dict("records"),
    }
    write_atomic(out / "leaderboard.json", lambda f: f.write(json.dumps(doc, indent=2).encode()))
    return summary


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    conf = settings(args)
    out = Path(args.out or ROOT / "runs" / args.model)
    bar = tqdm(desc="images", unit="img", file=sys.stderr)

    def show(r: progress.Report) -> None:
        if not r.stages:
            return
        _what, done, total, note = r.stages[0]  # the run's stage counts images
        if note.startswith("resuming"):
            print(f"{note} in {out}", file=sys.stderr)
        if (bar.total, bar.n) != (total, done):
            bar.total, bar.n = total, done
            bar.set_postfix_str(note[-40:])
            bar.refresh()

    try:
        with progress.reporting(show):
            manifest = run_dataset(conf, out, engine=args.engine, workers=args.workers, address=args.ray_address, restart=args.restart)
    except KeyboardInterrupt:
        bar.close()
        print(f"\ninterrupted: finished images are in {out}; run the same command to resume", file=sys.stderr)
        return 130
    bar.close()
    for w in manifest.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    for s in manifest.get("skipped", []):
        print(f"skipped: {s['image']}: {s['error']}", file=sys.stderr)
    for r in report(out, args.seed):
        ci = f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]" if not math.isnan(r["mean"]) else ""
        print(f"{r['metric']:>15} {r['rank'] or '-':>3} {r['method']:<22} {r['mean']:.4f} {ci} n={r['n']}" + (f" failed={r['failed']}" if r["failed"] else ""))
    print(f"wrote {out} ({manifest['images_done']} images, {manifest['status']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
