"""The user's own models in the formats people use now: a plain ``nn.Module`` with its normalization (``wrap``), a
``torch.export`` program (``load_exported``), a safetensors state dict for a named architecture (``load_safetensors``)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import torch
from torch import nn

from core.errors import ModelFileError, ParameterError
from core.model_state import using
from explainers.hooks import locate_cam_layer
from zoo.catalog import IMAGENET_MEAN, IMAGENET_STD
from zoo.loading import freeze
from zoo.spec import LoadedModel
from zoo.uploads import PROBE_SIZES, _runs_at, check_logits, class_list

Source = bytes | str | Path | IO[bytes]


def read_bytes(source: Source, what: str) -> bytes:
    """Bytes of an upload, a path or an open binary file; ``ModelFileError`` when empty or unreadable."""
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes() if isinstance(source, (str, Path)) else source.read()
    except OSError as exc:
        raise ModelFileError(f"Cannot read the {what}: {exc}") from exc
    if not data:
        raise ModelFileError(f"The {what} is empty.")
    return bytes(data)


def _triple(values: Sequence[float], what: str) -> tuple[float, float, float]:
    v = [float(a) for a in values]
    if len(v) == 1:
        v = v * 3
    if len(v) != 3:
        raise ParameterError(f"{what} must have 1 or 3 values (one per RGB channel); got {len(v)}")
    return (v[0], v[1], v[2])


def _cam_layer(model: nn.Module, size: int) -> str | None:
    """The located CAM layer (``explainers.hooks.locate_cam_layer``) on a zero image, or None when there is none."""
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    with using(model):
        try:
            return locate_cam_layer(model, torch.zeros(1, 3, size, size, device=dev))
        except ValueError:
            return None


def user_model(model: nn.Module, *, classes: Sequence[str] | str | bytes | None, input_size: int, mean: Sequence[float], std: Sequence[float], name: str, title: str) -> LoadedModel:
    """A ``LoadedModel`` for the user's module: logits checked on a zero image [1,3,S,S] (``check_logits``), class
    names counted, the CAM layer located, mean/std per channel (std > 0)."""
    m, s = _triple(mean, "mean"), _triple(std, "std")
    if min(s) <= 0:
        raise ParameterError(f"std must be > 0; got {s}")
    with using(model):
        k = check_logits(model, input_size)
    names = class_list(classes, k)
    return LoadedModel(name=name, model=model, classes=names, cam_layer=_cam_layer(model, input_size), input_size=input_size,
                       resize=input_size, mean=m, std=s, title=f"{title} ({k} classes)")


def wrap(module: nn.Module, *, mean: Sequence[float], std: Sequence[float], classes: Sequence[str] | None = None, input_size: int | None = None) -> LoadedModel:
    """A plain ``nn.Module`` (a notebook's model, taking normalized images ``(pixels - mean) / std``) as a
    ``zoo.LoadedModel``, so that pixel-space functions (attacks, sensitivity, fragility, ...) know its input domain.

    The module is not changed (no mode, device or flag is flipped; every function freezes it for its own call).
    ``input_size`` None: 224, else the first size it runs at. The CAM layer is located from a forward pass.
    """
    if not isinstance(module, nn.Module):
        raise ParameterError(f"zoo.wrap takes a torch.nn.Module; got {type(module).__name__}")
    if input_size is None:
        with using(module):
            input_size = next((s for s in (224, *PROBE_SIZES) if _runs_at(module, s)), 224)
    return user_model(module, classes=list(classes) if classes is not None else None, input_size=input_size, mean=mean, std=std,
                      name=type(module).__name__, title=f"{type(module).__name__} (wrapped)")
