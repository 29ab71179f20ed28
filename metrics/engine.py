"""The forward-only engine: a model's logits for any batch of one input shape, as fast as this machine allows.

Every computation that needs only logits (deletion/insertion, ROAD, infidelity, the perturbation methods'
forwards, label checks) goes through ``engine(model, sample)``:

1. a private copy of the model (the shared cached model is never touched) is exported by ``torch.onnx.export``
   (the TorchScript-based exporter, ``dynamo=False``: it also exports TorchScript uploads, and it takes 1-3 s
   on EfficientNet-Lite0 where the torch.export-based one takes 12 s and fails on TorchScript) with a dynamic
   batch axis, to bytes in memory (never a file);
2. an ONNX Runtime session runs it with the process's torch thread count; its logits are checked against the
   eager copy's on the real input (the image, half of it zeroed, and zeros: three images, so the dynamic batch
   is exercised) and it is used only within 1e-4;
3. otherwise (an op ONNX cannot express, a model torch cannot trace, a larger difference) the engine runs the
   torch path, a BatchNorm-folded channels_last eager copy under ``torch.no_grad``, and says why
   (``Engine.reason``, logged, and in ``describe()``);
4. the chunk size is the one measured fastest per image among the batch sizes that fit the memory budget
   (``core.memory``). On CUDA, when ONNX Runtime has its CUDA provider, both backends are measured and the faster
   is kept.

One engine per (model, input shape, device) for the process, weakly keyed by the model and rebuilt when the
model's weights change in place (each parameter's and buffer's version counter is part of the key); built by
one session at a time, while the others wait (and can be stopped). Thread-safe without a lock: ONNX Runtime
guarantees concurrent ``InferenceSession.run`` calls on one session (microsoft/onnxruntime#114), and the torch
copy has no hooks and no state.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator

import onnxruntime as ort
import torch
from torch import nn

from core import memory
from core import progress as ticks
from core.errors import ParameterError
from core.fx import fold_batchnorm, trace
from core.model_state import WaitingLock, private_copy

log = logging.getLogger(__name__)

TOLERANCE = 1e-4
CPU_BATCHES = (1, 2, 4, 8, 16)  # larger batches only thrash the cache of a small CPU
CUDA_BATCHES = (8, 16, 32, 64, 128, 256)
OPSET = 17
PREPARING = "preparing the inference engine (once per model and input size)"

# The exporter's chatter, silenced for good (filters, not ``catch_warnings``: that swaps the process-wide filter
# list, and two threads doing it at once can leave every warning off)
for _message in (
    "You are using the legacy TorchScript-based ONNX export",
    "Constant folding - Only steps=1",
    "no signature found for <torch.ScriptMethod",
    "The shape inference of",
):
    warnings.filterwarnings("ignore", message=_message)
warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
ort.set_default_logger_severity(3)  # errors only: ORT warns about unused initializers of exported models


@contextlib.contextmanager
def _onnx_log_off(verbose: bool) -> Iterator[None]:
    yield


# torch's TorchScript-based exporter turns its C++ log on for every export (its ``setup_onnx_logging`` tests the
# function ``_jit_is_onnx_log_enabled`` instead of calling it), so a failed export prints the whole TorchScript
# graph on stderr: keep that log off
try:
    from torch.onnx._internal.torchscript_exporter import utils as _exporter_utils

    _exporter_utils.setup_onnx_logging = _onnx_log_off
except ImportError:  # another torch: nothing to patch
    pass

Runner = Callable[[torch.Tensor], torch.Tensor]  # a chunk [n,C,H,W] -> float32 logits [n,K] (on any device)


class Engine:
    """Logits of one model for inputs [B,C,H,W] of one (C,H,W), computed in chunks of ``batch_size``.

    ``backend``: "onnxruntime" or "torch"; ``reason``: why the torch path serves (empty for ONNX Runtime).
    """

    def __init__(self, run: Runner, backend: str, batch_size: int, reason: str = "") -> None:
        self._run = run
        self.backend = backend
        self.batch_size = batch_size
        self.reason = reason

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits float32 [B,K] of ``x`` [B,C,H,W], on x's device; ``core.progress.passes`` after every chunk."""
        outs = []
        for i in range(0, x.shape[0], self.batch_size):
            chunk = x[i : i + self.batch_size].detach()
            outs.append(self._run(chunk).to(x.device))
            ticks.passes(chunk.shape[0], "forward passes")  # a reporter may show progress or cancel between chunks
        if not outs:
            raise ParameterError("the engine needs at least one image")
        return torch.cat(outs)

    def probability(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Softmax probability of ``target`` [B] for ``x`` [B,C,H,W] -> [B]."""
        logits = self(x)
        if target.numel() and int(target.max()) >= logits.shape[1]:
            raise ParameterError(f"target {int(target.max())} is out of range for {logits.shape[1]} classes")
        return logits.softmax(-1).gather(1, target.view(-1, 1).to(logits.device)).squeeze(1)

    def describe(self) -> str:
        """One line for reports: "onnxruntime 1.31.1, batch 4" or "torch eager, batch 8: <reason>"."""
        if self.backend == "onnxruntime":
            return f"onnxruntime {ort.__version__}, batch {self.batch_size}"
        return f"torch eager (BatchNorm folded, channels_last), batch {self.batch_size}: {self.reason}"


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[tuple, Engine]]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()
_BUILD_LOCK = WaitingLock("the inference engine")  # one build at a time: two sessions never build the same engine


def engine(model: nn.Module, sample: torch.Tensor) -> Engine:
    """The engine of ``model`` for inputs shaped like ``sample`` [B,C,H,W] on its device (built on first use).

    ``sample`` should be a real input: the first image is what ONNX Runtime is checked on against eager.
    """
    if sample.dim() != 4 or sample.shape[0] < 1:
        raise ParameterError(f"the engine needs a sample [B, C, H, W]; got shape {tuple(sample.shape)}")
    key = (tuple(sample.shape[1:]), str(sample.device))
    found = _cached(model, key)
    if found is not None:
        return found
    # the copy is taken before the build lock: it waits for the model's lock, which a metric may hold while it
    # waits here for the build lock (the order model lock -> build lock is the only one allowed)
    stamp = _stamp(model)
    private = private_copy(model)
    with _BUILD_LOCK:
        found = _cached(model, key)  # another session may have built it meanwhile
        if found is None:
            found = _build(private, sample[:1].detach())
            with _CACHE_LOCK:
                _CACHE.setdefault(model, {})[key] = (stamp, found)
    return found


def built(model: nn.Module) -> dict[tuple, Engine]:
    """The engines built for ``model`` and still current: ((C,H,W), device) -> Engine (for the Server page)."""
    with _CACHE_LOCK:
        entries = dict(_CACHE.get(model, {}))
    stamp = _stamp(model)
    return {key: eng for key, (s, eng) in entries.items() if s == stamp}


def _stamp(model: nn.Module) -> tuple:
    """Identity and in-place version of every parameter and buffer: changes whenever a weight does."""
    return tuple((id(t), t._version) for t in itertools.chain(model.parameters(), model.buffers()))


def _cached(model: nn.Module, key: tuple) -> Engine | None:
    with _CACHE_LOCK:
        stamp, found = _CACHE.get(model, {}).get(key, (None, None))
    return found if found is not None and stamp == _stamp(model) else None


def torch_path(model: nn.Module, sample: torch.Tensor, reason: str = "asked for") -> Engine:
    """The torch path alone, not cached: what serves when ONNX Runtime cannot (and what the benchmarks compare with)."""
    private = private_copy(model).to(sample.device)
    return _torch_engine(private, sample[:1].detach(), _candidates(private, sample), reason)[0]


def _build(private: nn.Module, sample: torch.Tensor) -> Engine:
    """ONNX Runtime when it exports and matches eager, else the torch path with the reason; measured chunk size."""
    start = time.perf_counter()
    private = private.to(sample.device)
    candidates = _candidates(private, sample)
    half = sample.clone()
    half[..., : sample.shape[-1] // 2] = 0
    check = torch.cat([sample, half, torch.zeros_like(sample)])  # three images: the dynamic batch is exercised
    with torch.no_grad():
        want = private(check).float()
    onnx, reason = _onnx(private, sample, check, want)
    if onnx is None:
        log.warning("engine: the torch path serves: %s", reason)
        return _torch_engine(private, sample, candidates, reason)[0]
    bs, onnx_s = _measure_batch(onnx, sample, candidates)
    fast = Engine(onnx, "onnxruntime", bs)
    if sample.is_cuda:  # keep the faster
        slow, torch_s = _torch_engine(private, sample, candidates, "")
        if torch_s < onnx_s:
            slow.reason = f"faster than ONNX Runtime on CUDA here ({torch_s * 1e3:.2f} vs {onnx_s * 1e3:.2f} ms per image)"
            fast = slow
    log.info("engine: %s (built in %.1f s)", fast.describe(), time.perf_counter() - start)
    return fast


def _torch_engine(private: nn.Module, sample: torch.Tensor, candidates: tuple[int, ...], reason: str) -> tuple[Engine, float]:
    """The torch path on ``private`` (modified: BatchNorm folded) and its measured seconds per image."""
    run = _torch_runner(private)
    bs, seconds = _measure_batch(run, sample, candidates)
    return Engine(run, "torch", bs, reason), seconds


def _candidates(private: nn.Module, sample: torch.Tensor) -> tuple[int, ...]:
    """The batch sizes to try: those whose no-grad activations fit ``core.memory``'s budget."""
    candidates = CUDA_BATCHES if sample.is_cuda else CPU_BATCHES
    acts = memory.activations(private, sample)  # the private copy: no lock needed
    if acts is None:
        return candidates
    fit = memory.fit_batch(max(candidates), acts.per_image(grad=False))
    return tuple(c for c in candidates if c <= fit) or (fit,)


def _onnx(private: nn.Module, sample: torch.Tensor, check: torch.Tensor, want: torch.Tensor) -> tuple[Runner | None, str]:
    """An ONNX Runtime runner of ``private`` checked on ``check`` against ``want``, or None and the reason."""
    if sample.is_cuda and "CUDAExecutionProvider" not in ort.get_available_providers():
        return None, "this onnxruntime has no CUDA provider"
    buf = io.BytesIO()
    ticks.tick(PREPARING)  # the build ticks between its steps: Stop acts within one of them
    try:
        torch.onnx.export(
            private,
            (sample,),
            buf,
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=False,  # ONNX Runtime folds constants itself when it opens the session
        )
    except Exception as exc:  # an op ONNX cannot express, a model the tracer cannot follow...: torch still works
        return None, f"ONNX export failed ({_first_line(exc)})"
    ticks.tick(PREPARING)
    try:
        run = _ort_runner(_session(buf.getvalue(), sample.is_cuda))
        got = run(check).to(want.device)
    except Exception as exc:  # an exported op ONNX Runtime has no kernel for, ...
        return None, f"ONNX Runtime cannot run the export ({_first_line(exc)})"
    if got.shape != want.shape:
        return None, f"ONNX Runtime returned shape {tuple(got.shape)}, eager {tuple(want.shape)}"
    diff = float((got - want).abs().max())
    if not diff <= TOLERANCE:  # also catches NaN
        return None, f"ONNX Runtime differs from eager by {diff:.1e} (more than {TOLERANCE:.0e})"
    return run, ""


def _first_line(exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:160]}"


def _session(data: bytes, cuda: bool) -> ort.InferenceSession:
    """An ONNX Runtime session of the model bytes: the CPU provider with torch's thread count (CUDA's when asked and present)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    return ort.InferenceSession(data, options, providers=providers)


def _ort_runner(session: ort.InferenceSession) -> Runner:
    name = session.get_inputs()[0].name

    def run(chunk: torch.Tensor) -> torch.Tensor:
        inputs = chunk.to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(session.run(None, {name: inputs})[0]).float()

    return run


def _torch_runner(private: nn.Module) -> Runner:
    """The BatchNorm-folded channels_last copy (``private`` itself when torch.fx cannot trace it)."""
    module = private
    if not isinstance(private, torch.jit.ScriptModule):
        try:
            gm = trace(private)
            fold_batchnorm(gm)
            module = gm.eval()
        except Exception as exc:  # folding is an optimization only
            log.info("fx trace failed (%s); the torch path keeps BatchNorm", exc)
    module = module.to(memory_format=torch.channels_last)

    def run(chunk: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(chunk.contiguous(memory_format=torch.channels_last)).float()

    return run


def _measure_batch(run: Runner, sample: torch.Tensor, candidates: tuple[int, ...]) -> tuple[int, float]:
    """The candidate batch size with the lowest seconds per image, and that time (best of 2 after a warm-up;
    stops after two candidates that do not improve by 3%)."""
    best, best_t, worse = candidates[0], float("inf"), 0
    for bs in candidates:
        ticks.tick(PREPARING)
        batch = sample[:1].expand(bs, *sample.shape[1:]).contiguous()
        run(batch)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            run(batch)
            if batch.is_cuda:
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) / bs)
        if min(times) < best_t * 0.97:
            best, best_t, worse = bs, min(times), 0
        else:
            worse += 1
            if worse >= 2:
                break
    return best, best_t
