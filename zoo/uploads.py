"""The user's own models from uploaded bytes, checked on a dummy input before anything else sees them."""

from __future__ import annotations

import io
from collections.abc import Sequence

import torch
from torch import nn

from core import DEVICE
from core.errors import ModelFileError
from zoo.catalog import IMAGENET_MEAN, IMAGENET_STD
from zoo.loading import freeze
from zoo.spec import LoadedModel

PROBE_SIZES = (224, 32, 28, 64, 96, 128, 160, 192, 256, 299, 320, 384, 448, 512)  # tried when the given size fails


def _try_size(model: nn.Module, size: int) -> object:
    dev = next((p.device for p in model.parameters()), DEVICE)  # a wrapped notebook module stays where it is
    with torch.no_grad():
        return model(torch.zeros(1, 3, size, size, device=dev))


def _runs_at(model: nn.Module, size: int) -> bool:
    try:
        out = _try_size(model, size)
    except Exception:  # any failure means "not this size"
        return False
    return isinstance(out, torch.Tensor) and out.dim() == 2


def check_logits(model: nn.Module, input_size: int) -> int:
    """How many classes ``model`` outputs on a zero input [1,3,S,S]; ``ModelFileError`` when it fails there (naming a
    size it runs at), or returns anything but finite logits [1,K]."""
    try:
        out = _try_size(model, input_size)
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        works = next((s for s in PROBE_SIZES if s != input_size and _runs_at(model, s)), None)
        hint = f" It runs on {works}x{works} inputs: set the input size to {works}." if works else ""
        raise ModelFileError(f"The model fails on a 1x3x{input_size}x{input_size} input: {(msg[-1] if msg else type(exc).__name__)[:300]}.{hint}") from exc
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelFileError(f"The model must return logits of shape [batch, classes]; it returned {shape}.")
    if not torch.isfinite(out).all():
        raise ModelFileError("The model returns NaN or Inf on a plain input.")
    return int(out.shape[1])


def class_list(class_names: str | bytes | Sequence[str] | None, k: int) -> list[str]:
    """One name per line (text or bytes) or a list of names -> K class names ("class i" when none are given);
    ``ModelFileError`` when their number is not K."""
    if not class_names:
        return [f"class {i}" for i in range(k)]
    if isinstance(class_names, (str, bytes)):
        text = class_names.decode("utf-8", errors="replace") if isinstance(class_names, bytes) else class_names
        class_names = text.splitlines()
    names = [str(line).strip() for line in class_names if str(line).strip()]
    if len(names) != k:
        raise ModelFileError(f"The class-names file has {len(names)} names but the model has {k} outputs.")
    return names


def load_torchscript(
    data: bytes,
    class_names: str | bytes | None = None,
    *,
    input_size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    name: str = "uploaded",
) -> LoadedModel:
    """Load a ``torch.jit.save`` archive from bytes and check it on a dummy input.

    TorchScript archives hold TorchScript code and tensors, not Python pickles, so nothing
    from the user is unpickled as arbitrary objects. Raises ``ModelFileError`` when the file
    is not TorchScript, its forward fails, or its output is not ``[B, K]`` finite logits;
    ``class_names`` is one name per line and must have exactly ``K`` lines.
    """
    if not data:
        raise ModelFileError("The model file is empty.")
    if not data[:4] == b"PK\x03\x04":
        raise ModelFileError("This is not a TorchScript file (expected the zip archive written by torch.jit.save).")
    try:
        model = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as exc:
        raise ModelFileError(f"This is not a loadable TorchScript model: {str(exc).splitlines()[0][:200]}") from exc
    model = freeze(model)
    k = check_logits(model, input_size)
    classes = class_list(class_names, k)
    return LoadedModel(
        name=name,
        model=model,
        classes=classes,
        cam_layer=None,
        input_size=input_size,
        resize=input_size,
        mean=tuple(mean),  # type: ignore[arg-type]
        std=tuple(std),  # type: ignore[arg-type]
        title=f"Uploaded TorchScript model ({k} classes)",
    )
