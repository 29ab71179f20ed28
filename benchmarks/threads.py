"""One or two torch threads on a CPU shared with another busy process: seconds of the same work (Saliency, 8 maps at
224 px on EfficientNet-Lite0) idle and while 1 or 2 other processes each keep a core busy. Prints the ratios that
the README's advice (``XAI_THREADS``, the Server page) rests on. Run: ``make bench``."""

from __future__ import annotations

import multiprocessing as mp
import time

import torch
from timing import best_of

import explainers
import zoo


def _burn(stop: mp.Event) -> None:  # type: ignore[valid-type]
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def _work(loaded: zoo.LoadedModel, x: torch.Tensor) -> None:
    explainers.explain("saliency", loaded, x, 0)


def _measure(loaded: zoo.LoadedModel, x: torch.Tensor, threads: int, busy: int) -> float:
    torch.set_num_threads(threads)
    stop = mp.Event()
    procs = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(busy)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    try:
        return best_of(lambda: _work(loaded, x), reps=3, warmup=1)
    finally:
        stop.set()
        for p in procs:
            p.join()


def main() -> None:
    loaded = zoo.load_model(zoo.DEFAULT_MODEL)
    x = torch.cat([loaded.preprocess(zoo.sample_images()["coffee"])] * 8)
    print(f"{'threads':>7} {'busy cores elsewhere':>21} {'seconds':>8} {'x idle, same threads':>21}")
    idle = {}
    for busy in (0, 1, 2):
        for threads in (1, 2):
            s = _measure(loaded, x, threads, busy)
            idle.setdefault(threads, s)
            print(f"{threads:>7} {busy:>21} {s:8.2f} {s / idle[threads]:21.2f}")


if __name__ == "__main__":
    main()
