"""Process memory, for the benchmarks and the Server page (Linux: /proc; elsewhere only the peak)."""

from __future__ import annotations

import os
import resource
import sys
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from core.device import DEVICE
from core.model_state import Hooks

BUDGET_GB = float(os.environ.get("XAI_MEMORY_BUDGET_GB", "2"))  # per computation; a few run at once in a room


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (ru_maxrss), in GB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**3 if sys.platform == "darwin" else peak / 1024**2  # bytes on macOS, KiB on Linux


def rss_gb() -> float | None:
    """Resident memory now, in GB (None where /proc is missing)."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        return None
    pages = int(statm.read_text().split()[1])
    return pages * resource.getpagesize() / 1024**3


def cuda_peak_gb() -> float | None:
    """Peak CUDA memory allocated by torch, in GB (None on CPU)."""
    return torch.cuda.max_memory_allocated() / 1024**3 if DEVICE.type == "cuda" else None


@dataclass(frozen=True)
class Activations:
    """Bytes of the outputs of a model's leaf modules for one image: ``total`` (about what a backward pass keeps)
    and ``largest`` (the working set of a no-grad forward is a few of these)."""

    total: int
    largest: int

    def per_image(self, grad: bool) -> int:
        """Estimated bytes per image of a batch: 2 x total with gradients (activations and their grads), else 3 x largest."""
        return 2 * self.total if grad else 3 * self.largest


_MEASURED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, Activations]] = weakref.WeakKeyDictionary()
_MEASURED_LOCK = threading.Lock()


def activations(model: nn.Module, sample: torch.Tensor) -> Activations | None:
    """Measure (once per model and input shape) the leaf modules' output sizes for ``sample[:1]`` [1,C,H,W], with
    forward hooks removed right after. The caller holds the model's lock (``core.model_state``). None for
    TorchScript models (no hooks) or when the forward fails."""
    if isinstance(model, torch.jit.ScriptModule):
        return None
    key = (tuple(sample.shape[1:]), sample.dtype)
    with _MEASURED_LOCK:
        known = _MEASURED.get(model, {}).get(key)
    if known is not None:
        return known
    sizes: list[int] = []

    def hook(_m: nn.Module, _i: tuple, out: object) -> None:
        if isinstance(out, torch.Tensor):
            sizes.append(out.numel() * out.element_size())

    leaves = [m for m in model.modules() if not list(m.children())]
    try:
        with Hooks() as hooks, torch.no_grad():
            for m in leaves:
                hooks.forward(m, hook)
            model(sample[:1])
    except Exception:  # measuring is advice only: the computation itself reports real errors
        return None
    found = Activations(sum(sizes), max(sizes, default=0))
    with _MEASURED_LOCK:
        _MEASURED.setdefault(model, {})[key] = found
    return found


def fit_batch(requested: int, per_image: int, budget_gb: float | None = None) -> int:
    """The largest batch <= ``requested`` whose estimated memory (``per_image`` bytes each) fits the budget (>= 1)."""
    budget = (BUDGET_GB if budget_gb is None else budget_gb) * 1024**3
    return max(1, min(int(requested), int(budget // max(per_image, 1))))
