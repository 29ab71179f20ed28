"""Model zoo and sample images.

Public API: ``load_model(name)``, ``model_names()``, ``unavailable_reason(name)``, ``download_weights(name)``,
``load_torchscript(bytes, class_names)``, ``sample_images()``, ``sample_masks()``, ``load_image(file_or_bytes)``,
``register_model(ModelSpec(...))``, ``wrap(module, mean=, std=)`` (a notebook's plain module),
``load_exported(.pt2)``, ``load_safetensors(weights, arch, num_classes)``.
"""

from zoo import catalog  # noqa: F401  (registration of the built-in models)
from zoo.formats import load_exported, load_safetensors, wrap
from zoo.images import load_image, sample_images, sample_masks
from zoo.loading import download_weights, load_model, model_names, unavailable_reason
from zoo.spec import MODELS, LoadedModel, ModelSpec, register_model
from zoo.uploads import load_torchscript

DEFAULT_MODEL = "efficientnet_lite0"
DEFAULT_IMAGE = "coffee"  # espresso at 0.96 on EfficientNet-Lite0: a clear target (the cat photo is a near tie)

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_MODEL",
    "MODELS",
    "LoadedModel",
    "ModelSpec",
    "download_weights",
    "load_image",
    "load_exported",
    "load_model",
    "load_safetensors",
    "load_torchscript",
    "model_names",
    "register_model",
    "sample_images",
    "sample_masks",
    "unavailable_reason",
    "wrap",
]
