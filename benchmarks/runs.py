"""Throughput of dataset runs (``metrics.runs``): images per second for the default methods and the CLI's default
metrics, engine ``local`` (this process, torch's threads) against ``ray`` with 1 and 2 workers (one CPU and one
thread each), on the synthetic-shapes model (a labelled folder with masks) and on EfficientNet-Lite0 (sample photos).

Each configuration runs into a fresh store with one image per checkpoint, so every finished image is timed:
"steady" is images/s after each worker's first image (model load, memory probe, the fast path's batch-size
measurement and Ray's start are "startup"). Prints the table and what a 50 000-image run costs on N such machines
from the best steady rate (the work is independent per image; the driver only writes the store). The machine may be
shared: compare configurations measured in the same run. ``python benchmarks/runs.py [--synthetic 24] [--lite0 4] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import os  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402
from timing import print_peak_memory  # noqa: E402

import explainers  # noqa: E402
from metrics.__main__ import DEFAULT_METRICS  # noqa: E402
from metrics.runs import RunSettings, load_run, run_dataset  # noqa: E402
from zoo.synthetic import write_folder  # noqa: E402

IMAGENET_VAL = 50_000
CONFIGS = "local:1,ray:1,ray:2"


def measure(model: str, images: str, engine: str, workers: int, out: Path) -> dict[str, float]:
    """One run into a fresh store: wall seconds, startup seconds, steady images/s."""
    settings = RunSettings(model, images, tuple(explainers.default_methods()), tuple(DEFAULT_METRICS), shard_size=64, checkpoint=1)
    stamps: list[float] = []
    start = time.perf_counter()

    def progress(done: int, total: int, note: str) -> None:
        if done > len(stamps):
            stamps.extend([time.perf_counter()] * (done - len(stamps)))

    manifest = run_dataset(settings, out, engine=engine, workers=workers, progress=progress)
    wall = time.perf_counter() - start
    n = manifest["images_done"]
    warm = min(workers, n - 1)  # each worker's first image carries its start-up
    steady = (n - warm) / (stamps[-1] - stamps[warm - 1]) if n > warm >= 1 else n / wall
    return {"n": n, "wall": wall, "startup": stamps[warm - 1] - start if warm >= 1 else 0.0, "steady": steady}


def bench(model: str, images: str, root: Path, configs: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, float]]:
    out = {}
    for engine, workers in configs:
        folder = root / f"{model}-{engine}-{workers}"
        r = measure(model, images, engine, workers, folder)
        out[(engine, workers)] = r
        print(f"{model:>20} {engine:>5} x{workers}: {r['n']} images, {r['wall']:.1f} s wall, {r['startup']:.1f} s startup, {r['steady']:.3f} images/s steady", flush=True)
        run = load_run(folder)
        per_method = run.timings.groupby("method")["seconds"].median().sort_values(ascending=False)
        maps = run.timings.groupby("image")["seconds"].sum().median()
        print(f"{'':>20} median s/image: {run.predictions['seconds'].median():.2f} total, {maps:.2f} maps (" + ", ".join(f"{m} {v:.2f}" for m, v in per_method.items()) + "), the rest metrics and prediction maps")
    return out


def report(name: str, results: dict[tuple[str, int], dict[str, float]]) -> None:
    base = next(iter(results.values()))["steady"]
    print(f"\n{name}: engine | workers | steady images/s | x the first | s/image")
    for (engine, workers), r in results.items():
        print(f"  {engine:>5} | {workers} | {r['steady']:.3f} | {r['steady'] / base:.2f} | {1 / r['steady']:.2f}")
    best = max(r["steady"] for r in results.values())
    hours = IMAGENET_VAL / best / 3600
    print(f"  50 000 images at {best:.3f} images/s per machine: {hours:.1f} h on 1 machine, " + ", ".join(f"{hours / n:.1f} h on {n}" for n in (4, 16, 64)))


def main() -> None:
    warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic", type=int, default=24, help="synthetic-shapes images per configuration; 0 skips")
    ap.add_argument("--lite0", type=int, default=4, help="EfficientNet-Lite0 images (sample photos) per configuration; 0 skips")
    ap.add_argument("--configs", default=CONFIGS, help="engine:workers, comma-separated")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of this process (the local engine); default: torch's (the CPU count)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"methods: {', '.join(explainers.default_methods())}; metrics: {', '.join(DEFAULT_METRICS)}; {os.cpu_count()} CPUs, local engine on {torch.get_num_threads()} torch threads; load average {os.getloadavg()}")
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_folder(root / "shapes", max(args.synthetic, 1), seed=1)
        if args.synthetic:
            report("synthetic_shapes (64 px)", bench("synthetic_shapes", str(root / "shapes"), root, configs))
        if args.lite0:
            photos = ",".join(["chelsea", "coffee", "rocket", "astronaut", "camera", "stereo_motorcycle"][: args.lite0])
            report("efficientnet_lite0 (224 px)", bench("efficientnet_lite0", photos, root, configs))
    print(f"load average at the end {os.getloadavg()}")
    print_peak_memory()


if __name__ == "__main__":
    main()
