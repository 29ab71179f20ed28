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


def located_cam_layer(model: nn.Module, size: int) -> str | None:
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
    return LoadedModel(name=name, model=model, classes=names, cam_layer=located_cam_layer(model, input_size), input_size=input_size,
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


def _pt2_refusal(z: zipfile.ZipFile) -> str | None:
    """Why this zip is not a plain ``torch.export.save`` archive whose loading unpickles nothing (None: it is)."""
    names = z.namelist()
    root = names[0].split("/")[0] if names else ""
    files = {n[len(root) + 1 :] for n in names if n.startswith(root + "/")}
    if f"{root}/archive_format" not in names or z.read(f"{root}/archive_format") != b"pt2" or "models/model.json" not in files:
        return "it is a zip but not the archive torch.export.save writes (no archive_format 'pt2' and models/model.json)"
    if any(f.startswith(("data/aotinductor/", "data/executorch/", "data/mtia")) for f in files):
        return "it holds compiled code (AOTInductor / ExecuTorch / MTIA), which loading would run"
    if "data/weights/model.pt" in files or "data/constants/model.pt" in files:
        return "it uses the legacy layout whose weights are pickles"
    for cfg in ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
        entries = json.loads(z.read(f"{root}/{cfg}")).get("config", {}) if cfg in files else {}
        for fqn, meta in entries.items():
            if meta.get("use_pickle") or not str(meta.get("path_name", "")).startswith(("weight_", "tensor_")):
                return f"its tensor or object {fqn!r} is stored as a pickle (a tensor subclass or a custom object)"
    if "data/sample_inputs/model.pt" in files:
        try:
            torch.load(io.BytesIO(z.read(f"{root}/data/sample_inputs/model.pt")), weights_only=True)
        except Exception:  # torch.export.load would retry this file with weights_only=False
            return "its sample inputs are not plain tensors (torch.export.load would unpickle them with weights_only=False)"
    return None


def check_pt2(data: bytes) -> None:
    """``ModelFileError`` unless ``data`` is a complete ``torch.export.save`` archive that loads without unpickling."""
    if data[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        raise ModelFileError("This is a Python pickle, not a torch.export program (.pt2); pickles can run any code, so it is refused.")
    if data[:4] != b"PK\x03\x04":
        raise ModelFileError("This is not a torch.export program (.pt2): expected the zip archive written by torch.export.save.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            bad = z.testzip()
            reason = f"its entry {bad!r} is corrupt" if bad else _pt2_refusal(z)
    except (zipfile.BadZipFile, EOFError, KeyError, ValueError) as exc:
        raise ModelFileError(f"This .pt2 file is truncated or damaged ({exc}): save it again with torch.export.save.") from exc
    if reason:
        raise ModelFileError(f"This .pt2 file is refused: {reason}.")


def load_exported(
    file_or_bytes: Source,
    *,
    classes: Sequence[str] | str | bytes | None = None,
    input_size: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> LoadedModel:
    """A ``torch.export.save`` program (.pt2) as a ``LoadedModel``, run as a module with its submodule names kept
    (``torch.export.unflatten``: Grad-CAM and the other hooking methods can hook its layers by name).

    What loading executes (torch 2.14, ``torch/export/pt2_archive/_package.py``): the graph (models/model.json) is
    deserialized into calls of registered torch operators only; weights and constants are raw tensor bytes unless
    marked ``use_pickle`` (then ``torch.load(weights_only=False)``), custom objects are unpickled (``pickle.loads``),
    sample inputs are ``torch.load``-ed with a fallback to ``weights_only=False``, and AOTInductor entries are
    compiled shared libraries. ``check_pt2`` refuses every one of those cases before ``torch.export.load`` runs, so an
    accepted file runs no code but torch's operators. The program must take a batch of any size (export with
    ``dynamic_shapes={"x": {0: torch.export.Dim("batch")}}``); ``input_size`` None: its sample input's size.
    """
    data = read_bytes(file_or_bytes, "model file")
    check_pt2(data)
    try:
        ep = torch.export.load(io.BytesIO(data))
    except Exception as exc:
        raise ModelFileError(f"This .pt2 program cannot be loaded: {str(exc).splitlines()[0][:200]}") from exc
    if input_size is None:
        sample = ep.example_inputs[0] if ep.example_inputs else ()
        input_size = int(sample[0].shape[-1]) if sample and isinstance(sample[0], torch.Tensor) else 224
    try:
        module = torch.export.unflatten(ep)
    except Exception:  # a program unflatten cannot split: one flat graph module (no layer names)
        module = ep.module()
    for sub in module.modules():  # the export's symbolic shapes in node.meta forbid deepcopy (private copies); unused at run time
        graph = getattr(sub, "graph", None)
        for node in graph.nodes if isinstance(graph, torch.fx.Graph) else ():
            node.meta = {}
    module = freeze(module)
    with using(module):
        if not _runs_on_batch(module, input_size):
            raise ModelFileError(
                "This program was exported for one batch size; export it with "
                'dynamic_shapes={"x": {0: torch.export.Dim("batch")}} so it takes batches of any size.'
            )
    return user_model(module, classes=classes, input_size=input_size, mean=mean, std=std, name="exported", title="torch.export program")


def _runs_on_batch(module: nn.Module, size: int, batch: int = 3) -> bool:
    dev = next((p.device for p in module.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            return tuple(module(torch.zeros(batch, 3, size, size, device=dev)).shape[:1]) == (batch,)
    except Exception:  # the program's shape guards reject another batch size
        return False


def build_architecture(arch: str, num_classes: int) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...], int]:
    """(randomly initialized model, mean, std, input size) of a torchvision classification architecture, else a timm
    one (its own preprocessing from its pretrained config); ``ModelFileError`` for an unknown name."""
    import torchvision

    if not isinstance(num_classes, int) or num_classes < 1:
        raise ParameterError(f"num_classes must be a positive integer; got {num_classes!r}")
    if arch in torchvision.models.list_models(module=torchvision.models):
        return torchvision.models.get_model(arch, weights=None, num_classes=num_classes), IMAGENET_MEAN, IMAGENET_STD, 224
    import timm

    if timm.is_model(arch):
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
        cfg = model.pretrained_cfg
        return model, tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)), int(cfg.get("input_size", (3, 224, 224))[-1])
    raise ModelFileError(f"Unknown architecture {arch!r}: give a torchvision classification model name (e.g. 'resnet18') or a timm one.")


def first_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str | None:
    """The first tensor (in the architecture's order) that is missing, unexpected or of another shape, said in words."""
    for key, ref in expected.items():
        if key not in given:
            return f"the file has no tensor {key!r} (shape {list(ref.shape)})"
        if given[key].shape != ref.shape:
            return f"tensor {key!r} has shape {list(given[key].shape)} in the file, {list(ref.shape)} in the architecture"
    extra = next((k for k in given if k not in expected), None)
    return None if extra is None else f"the file has a tensor {extra!r} that the architecture does not have"


def load_safetensors(file_or_bytes: Source, arch: str, num_classes: int, classes: Sequence[str] | str | bytes | None = None) -> LoadedModel:
    """A safetensors state dict (``safetensors.torch.save``) for architecture ``arch`` with ``num_classes`` outputs.

    Nothing is unpickled: safetensors holds a JSON header and raw tensor bytes. ``ModelFileError`` names the first
    mismatching tensor when the weights are for another architecture or class count.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    data = read_bytes(file_or_bytes, "weights file")
    try:
        given = load(data)
    except (SafetensorError, ValueError) as exc:
        raise ModelFileError(f"This is not a complete safetensors file ({str(exc)[:200]}).") from exc
    model, mean, std, size = build_architecture(arch, num_classes)
    why = first_mismatch(model.state_dict(), given)
    if why:
        raise ModelFileError(f"These weights do not fit {arch} with {num_classes} classes: {why}.")
    model.load_state_dict(given, strict=True)
    return user_model(freeze(model), classes=classes, input_size=size, mean=mean, std=std, name=arch, title=f"{arch} (safetensors)")
