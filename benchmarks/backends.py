"""Milliseconds per image of one forward by batch size, for each way the engine could run a model: the evidence
behind ``metrics.engine``'s choice of ONNX Runtime (over OpenVINO and torch.compile) on this machine.

Rows: the plain eager model at batch 1; the torch fast path (BatchNorm folded, channels_last, the engine's
fallback); ONNX Runtime (CPU provider, the engine's session); OpenVINO (the same ONNX bytes, latency hint, f32:
its default on CPUs with bf16 support is bf16, 1e-2 off); with ``--compile``, torch.compile (inductor, weights
frozen, one fixed batch per compile: minutes). Every backend is timed in the same rounds, interleaved, so each
sees the same load; the minimum over the rounds is printed. Also the set-up time of each and its largest
difference from eager. Run: ``.venv-bench/bin/python benchmarks/backends.py [model] [--compile]``.
"""

from __future__ import annotations

import argparse
import copy
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import zoo  # noqa: E402
from core.fx import fold_batchnorm, trace  # noqa: E402
from core.model_state import private_copy  # noqa: E402
from metrics import engine as engine_mod  # noqa: E402

BATCHES = (1, 2, 4, 8, 16)
Run = Callable[[torch.Tensor], object]


def openvino_runner(data: bytes) -> Run:
    """OpenVINO on the engine's ONNX bytes (one infer request: this script runs in one thread)."""
    import openvino as ov

    compiled = ov.Core().compile_model(
        ov.convert_model(io.BytesIO(data)),
        "CPU",
        {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": torch.get_num_threads(), "INFERENCE_PRECISION_HINT": "f32"},
    )
    request = compiled.create_infer_request()
    return lambda b: torch.from_numpy(request.infer({0: b.contiguous().numpy()})[0].copy())


def onnx_bytes(model: torch.nn.Module, x: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(
        model, (x,), buf, dynamo=False, input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "b"}, "logits": {0: "b"}}, opset_version=17
    )
    return buf.getvalue()


def timed(build: Callable[[], Run]) -> tuple[Run, float]:
    t0 = time.perf_counter()
    run = build()
    return run, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="efficientnet_lite0")
    parser.add_argument("--compile", action="store_true", help="also torch.compile at batch 1, 2, 4, 8 (a compile each)")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    loaded = zoo.load_model(args.model)
    x = loaded.preprocess(zoo.sample_images()["chelsea"])
    plain = copy.deepcopy(loaded.model).to(memory_format=torch.contiguous_format).eval()
    print(f"{args.model}, {tuple(x.shape[1:])}, torch {torch.__version__}, {torch.get_num_threads()} threads")

    def eager(b: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return plain(b)

    data, export_s = timed(lambda: onnx_bytes(copy.deepcopy(plain), x))  # type: ignore[arg-type, return-value]
    runs: dict[str, Run] = {"plain eager": eager}
    setup: dict[str, float] = {"ONNX export": export_s}
    runs["torch fast path"], setup["torch fast path"] = timed(lambda: engine_mod.torch_path(loaded.model, x))
    runs["onnxruntime"], setup["onnxruntime session"] = timed(lambda: engine_mod._ort_runner(engine_mod._session(data, False)))
    runs["openvino"], setup["openvino convert+compile"] = timed(lambda: openvino_runner(data))
    batches = {bs: x.expand(bs, -1, -1, -1).contiguous() + 0.01 * torch.randn(bs, *x.shape[1:]) for bs in BATCHES}
    want = eager(batches[4])
    print("set-up s: " + ", ".join(f"{k} {v:.2f}" for k, v in setup.items()))
    print("max |logits - eager| at batch 4: " + ", ".join(f"{k} {float((torch.as_tensor(r(batches[4])) - want).abs().max()):.1e}" for k, r in runs.items()))
    compiled = {}
    if args.compile:
        folded = trace(private_copy(loaded.model))
        fold_batchnorm(folded)
        folded = folded.eval().to(memory_format=torch.channels_last)
        for bs in (1, 2, 4, 8):
            module = torch.compile(copy.deepcopy(folded), dynamic=False, options={"freezing": True})

            def run(b: torch.Tensor, module: Callable = module) -> torch.Tensor:
                with torch.no_grad():
                    return module(b.contiguous(memory_format=torch.channels_last))

            _, s = timed(lambda run=run, bs=bs: run(batches[bs]))  # the first call compiles
            compiled[bs] = run
            print(f"torch.compile at batch {bs}: {s:.1f} s")
    best: dict[str, dict[int, float]] = {k: {} for k in [*runs, *(["torch.compile"] if compiled else [])]}
    for _ in range(args.rounds):
        for bs, b in batches.items():
            todo = [(k, r) for k, r in runs.items() if k != "plain eager" or bs == 1]
            todo += [("torch.compile", compiled[bs])] if bs in compiled else []
            for k, r in todo:
                r(b)
                t0 = time.perf_counter()
                r(b)
                ms = (time.perf_counter() - t0) / bs * 1e3
                best[k][bs] = min(best[k].get(bs, float("inf")), ms)
    print(f"\n{'ms per image':<18}" + "".join(f"{'batch ' + str(bs):>10}" for bs in BATCHES))
    for k, row in best.items():
        print(f"{k:<18}" + "".join(f"{row[bs]:>10.2f}" if bs in row else f"{'-':>10}" for bs in BATCHES))


if __name__ == "__main__":
    main()
