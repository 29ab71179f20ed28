"""Model specs in one registry (the timm ``PretrainedCfg`` idea: builder, preprocessing, class names, CAM layer,
randomization blocks) and the ``LoadedModel`` every page and function takes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn

from core import DEVICE, Registry
from core.errors import ImageError
from core.model_state import using


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build and feed a model.

    ``cam_layer`` names the module whose *output* is the last convolutional feature map
    (the input of global average pooling). ``weights_file`` is the file that must exist for
    the model to be available (None: always available). ``default_image``: the sample image
    (``zoo.sample_images()`` key) that suits it.
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
    weights_file: Callable[[], Path | None] = lambda: None
    weights_url: str | None = None
    # Randomization blocks for the sanity checks, bottom (stem) to top (classifier): (title, module-name
    # prefixes). None: every module that owns parameters is a block (``default_blocks``).
    blocks: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    # The sample image a page opens on for this model (the kind of picture it was trained on).
    default_image: str = "coffee"


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
    default_image: str = "coffee"

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
        with using(self.model):
            return torch.softmax(self.model(x).float(), dim=-1)
