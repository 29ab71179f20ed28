"""The process-wide random generators: one lock for code that must seed them (captum samples from them)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from core.model_state import WaitingLock

RNG_LOCK = WaitingLock("the random generators")


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run with torch's and numpy's global generators seeded, restored afterwards; one thread at a time (captum draws
    from both: GradientShap its baselines and alphas with numpy, LIME and KernelSHAP their samples with torch)."""
    with RNG_LOCK:
        devices = [device] if device.type == "cuda" else []
        np_state = np.random.get_state()
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            try:
                yield
            finally:
                np.random.set_state(np_state)
