"""The one place where the compute device is chosen (CUDA when present, else CPU)."""

from __future__ import annotations

import os

import torch


def _pick() -> torch.device:
    forced = os.environ.get("XAI_DEVICE")
    if forced:
        return torch.device(forced)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


DEVICE: torch.device = _pick()
