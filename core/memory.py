"""Process memory, for the benchmarks and the Server page (Linux: /proc; elsewhere only the peak)."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

from core.device import DEVICE


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
