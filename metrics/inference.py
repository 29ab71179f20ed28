"""A fast forward-only path for metrics that need thousands of forwards (deletion, insertion, ROAD, infidelity).

What makes it faster than ``model(x)`` in a loop, each step checked against eager within 1e-4:

1. a private copy of the model (the shared cached model is never touched), traced by torch.fx
   with every eval-mode BatchNorm folded into the convolution before it;
2. channels_last memory format and ``torch.inference_mode``;
3. chunks of the batch size that is fastest per image on this device, found by measuring
   (on a 2-core CPU that is 4-8 for EfficientNet-Lite0; larger batches thrash the cache);
4. optionally ``torch.compile`` (inductor, weights frozen as constants) at that one fixed
   batch size; a remainder chunk of another size runs on the eager copy, so nothing recompiles.
   Compiling costs 20-50 s on a CPU (a few seconds once inductor's on-disk cache is warm), so
   ``compile=None`` compiles only for jobs of at least ``COMPILE_MIN_FORWARDS`` forwards.

One ``FastForward`` is kept per (model, input shape, device, compile) for the process (weakly
keyed by the model) and is used under the model's lock.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

import torch
from torch import nn

from core import memory, progress
from core.errors import ParameterError
from core.fx import FX_LOCK, fold_batchnorm, trace
from core.model_state import private_copy

log = logging.getLogger(__name__)

COMPILE_MIN_FORWARDS = 3000
CPU_BATCHES = (1, 2, 4, 8, 16, 32)
CUDA_BATCHES = (8, 16, 32, 64, 128, 256)
TOLERANCE = 1e-4
# The compiled batch on a CPU. Measured on the 2-core CPU for EfficientNet-Lite0 (static shapes,
# frozen weights): 11.7 / 10.4 / 7.3 / 15.1 ms per image at batch 1 / 2 / 4 / 8, while eager's best
# moves between 1 and 8 from run to run. Measuring at run time would cost one compile (20-50 s) per
# candidate, and dynamic shapes compile slower and run 9.0 ms at batch 4, so the CPU value is fixed
# here (override: XAI_COMPILED_BATCH); on CUDA the compiled batch is eager's measured best.
COMPILED_CPU_BATCH = int(os.environ.get("XAI_COMPILED_BATCH", "4"))

_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple, FastForward]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()
_BUILD_LOCK = threading.Lock()  # one build (copy, measurement, compile) at a time: two sessions never compile twice


class FastForward:
    """Logits of a model for any batch [B,C,H,W] of one fixed (C,H,W), computed in chunks of ``batch_size``."""

    def __init__(self, eager: nn.Module, batch_size: int, compiled: Callable | None = None, *, folded: int = 0, note: str = "") -> None:
        self.eager = eager
        self.batch_size = batch_size
        self.compiled = compiled
        self.folded = folded
        self.note = note
        self.lock = threading.Lock()  # one chunk at a time: the compiled module is shared by every session

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B,K] of ``x`` [B,C,H,W] (float32)."""
        outs = []
        for i in range(0, x.shape[0], self.batch_size):
            progress.tick("forward passes")  # a reporter may show progress or cancel between chunks
            outs.append(self._chunk(x[i : i + self.batch_size]))
        return torch.cat(outs) if outs else torch.empty(0)

    def _chunk(self, chunk: torch.Tensor) -> torch.Tensor:
        chunk = chunk.contiguous(memory_format=torch.channels_last)
        with self.lock:
            if self.compiled is not None and chunk.shape[0] == self.batch_size:
                return self.compiled(chunk).float()
            return self.eager(chunk).float()

    @torch.inference_mode()
    def probability(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Softmax probability of ``target`` [B] for ``x`` [B,C,H,W] -> [B]."""
        logits = self(x)
        if target.numel() and int(target.max()) >= logits.shape[1]:
            raise ParameterError(f"target {int(target.max())} is out of range for {logits.shape[1]} classes")
        return logits.softmax(-1).gather(1, target.view(-1, 1)).squeeze(1)

    def describe(self) -> str:
        """One line for reports: batch size, folding, compilation."""
        mode = "torch.compile" if self.compiled is not None else "eager"
        return f"{mode}, batch {self.batch_size}, {self.folded} BatchNorm folded, channels_last{'; ' + self.note if self.note else ''}"


def inference_copy(model: nn.Module) -> tuple[nn.Module, int]:
    """A private eval copy with BatchNorm folded and channels_last; returns (copy, number folded).

    Models that torch.fx cannot trace (e.g. TorchScript uploads) are copied as they are. Takes the model's
    lock while copying (``private_copy``): call it without holding ``_BUILD_LOCK``.
    """
    private = private_copy(model)
    folded = 0
    if not isinstance(private, torch.jit.ScriptModule):
        try:
            gm = trace(private)
            folded = fold_batchnorm(gm)
            private = gm.eval()
        except Exception as exc:  # tracing is an optimization only
            log.info("fx trace failed (%s); the inference copy keeps BatchNorm", exc)
    for p in private.parameters():
        p.requires_grad_(False)
    return private.to(memory_format=torch.channels_last), folded


def _measure_batch(fn: Callable[[torch.Tensor], torch.Tensor], sample: torch.Tensor, candidates: tuple[int, ...]) -> int:
    """The candidate batch size with the lowest seconds per image (best of 2 timed runs after a warm-up)."""
    best, best_t, worse = candidates[0], float("inf"), 0
    for bs in candidates:
        batch = sample[:1].expand(bs, *sample.shape[1:]).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            fn(batch)
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                fn(batch)
                if batch.is_cuda:
                    torch.cuda.synchronize()
                times.append((time.perf_counter() - t0) / bs)
        per = min(times)
        if per < best_t * 0.97:
            best, best_t, worse = bs, per, 0
        else:
            worse += 1
            if worse >= 2:
                break
    return best


def _want_compile(compile: bool | None, forwards: int) -> bool:
    env = os.environ.get("XAI_COMPILE")
    if env in ("0", "1"):
        return env == "1"
    if compile is not None:
        return compile
    return forwards >= COMPILE_MIN_FORWARDS


def should_compile(forwards: int) -> bool:
    """Whether a job of ``forwards`` forward passes compiles by default (``XAI_COMPILE`` overrides)."""
    return _want_compile(None, forwards)


def fast_forward(model: nn.Module, sample: torch.Tensor, *, batch_size: int | None = None, compile: bool | None = None, forwards: int = 0) -> FastForward:
    """The cached fast path of ``model`` for inputs shaped like ``sample`` [B,C,H,W].

    ``batch_size``: chunk size (None: measured once). ``compile``: True / False / None (compile when
    ``forwards`` >= ``COMPILE_MIN_FORWARDS``; the environment variable ``XAI_COMPILE=0|1`` overrides).
    A compiled model whose outputs differ from eager by more than 1e-4 is not used.
    """
    want = _want_compile(compile, forwards) and not isinstance(model, torch.jit.ScriptModule)
    key = (tuple(sample.shape[1:]), str(sample.device), batch_size)
    ff = _cached(model, key, want)
    if ff is not None:
        return ff
    with _CACHE_LOCK:
        built = _CACHE.get(model, {}).get(key)
    # the copy is taken before the build lock: it waits for the model's lock, which a metric may hold while it
    # waits here for the build lock (the order model lock -> build lock is the only one allowed)
    copied = inference_copy(model) if built is None else None
    with _BUILD_LOCK:
        ff = _cached(model, key, want)  # another session may have built it meanwhile
        if ff is not None:
            return ff
        with _CACHE_LOCK:
            ff = _CACHE.get(model, {}).get(key)
        if ff is None:
            assert copied is not None  # entries are never removed: none at the first look, so we copied
            eager, folded = copied
            eager = eager.to(sample.device)
            candidates = CUDA_BATCHES if sample.is_cuda else CPU_BATCHES
            acts = memory.activations(eager, sample)  # the private copy: no lock needed
            if acts is not None:  # adapt to memory: only batches that fit core.memory.BUDGET_GB
                fit = memory.fit_batch(max(candidates), acts.per_image(grad=False))
                candidates = tuple(c for c in candidates if c <= fit) or (fit,)
            bs = batch_size or _measure_batch(eager, sample, candidates)
            ff = FastForward(eager, bs, folded=folded)
        if want:
            ff = _compiled(ff, sample, batch_size or (ff.batch_size if sample.is_cuda else COMPILED_CPU_BATCH))
        with _CACHE_LOCK:
            _CACHE.setdefault(model, {})[key] = ff
        return ff


def _cached(model: nn.Module, key: tuple, want_compiled: bool) -> FastForward | None:
    """The cached path if it serves the request (a compiled one serves every request)."""
    with _CACHE_LOCK:
        ff = _CACHE.get(model, {}).get(key)
    if ff is not None and (ff.compiled is not None or not want_compiled or "compile failed" in ff.note):
        return ff
    return None


def is_ready(model: nn.Module, sample: torch.Tensor, *, compiled: bool) -> bool:
    """Whether ``fast_forward`` would return at once (nothing to build or compile) for this model and input shape."""
    return _cached(model, (tuple(sample.shape[1:]), str(sample.device), None), compiled) is not None


def _compiled(ff: FastForward, sample: torch.Tensor, batch_size: int) -> FastForward:
    """``ff`` plus a torch.compile'd copy at ``batch_size``, kept only if it matches eager within 1e-4."""
    batch = sample[:1].expand(batch_size, *sample.shape[1:]).clone()
    batch = batch + 0.1 * torch.randn(batch.shape, generator=torch.Generator().manual_seed(0)).to(batch.device)
    batch = batch.contiguous(memory_format=torch.channels_last)
    start = time.perf_counter()
    try:
        compiled = torch.compile(copy.deepcopy(ff.eager), dynamic=False, options={"freezing": True})
        with torch.inference_mode():
            with FX_LOCK:  # the first call compiles; no torch.fx trace may run meanwhile (see core.fx)
                got = compiled(batch).float()
            want = ff.eager(batch).float()
        diff = float((got - want).abs().max())
    except Exception as exc:  # no compiler, unsupported op...: eager is still correct
        log.warning("torch.compile failed, using eager: %s", exc)
        return FastForward(ff.eager, ff.batch_size, folded=ff.folded, note=f"compile failed: {type(exc).__name__}: {str(exc)[:80]}")
    seconds = time.perf_counter() - start
    if diff > TOLERANCE:
        log.warning("torch.compile output differs from eager by %.2e; using eager", diff)
        return FastForward(ff.eager, ff.batch_size, folded=ff.folded, note=f"compile failed: differs by {diff:.1e}")
    return FastForward(ff.eager, batch_size, compiled, folded=ff.folded, note=f"compiled in {seconds:.1f} s, max diff {diff:.1e}")
