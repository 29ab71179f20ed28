"""Model zoo and sample images.

Public API: ``load_model(name)``, ``model_names()``, ``unavailable_reason(name)``,
``load_torchscript(bytes, class_names)``, ``sample_images()``, ``sample_masks()``,
``load_image(file_or_bytes)``.
"""

from zoo.images import load_image, sample_images, sample_masks
from zoo.models import (
    MODELS,
    LoadedModel,
    ModelSpec,
    download_weights,
    load_model,
    load_torchscript,
    model_names,
    register_model,
    unavailable_reason,
)

DEFAULT_MODEL = "efficientnet_lite0"
DEFAULT_IMAGE = "chelsea"

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_MODEL",
    "MODELS",
    "LoadedModel",
    "ModelSpec",
    "download_weights",
    "load_image",
    "load_model",
    "load_torchscript",
    "model_names",
    "register_model",
    "sample_images",
    "sample_masks",
    "unavailable_reason",
]
