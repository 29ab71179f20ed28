"""Models users bring (issue 19): plain nn.Module in a notebook (CAM layer, pixel domain), torch.export programs,
safetensors weights."""

from __future__ import annotations

import pytest
import torch
import torchvision

import explainers
import zoo
from core.errors import MethodNotApplicable


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


def test_cam_layer_of_a_plain_resnet_is_layer4(resnet: torch.nn.Module) -> None:
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for method in ("cam", "gradcam"):
        auto = explainers.explain(method, resnet, x, 3)
        named = explainers.explain(method, resnet, x, 3, layer="layer4")
        assert torch.allclose(auto, named)
        assert auto.abs().sum() > 0
    # the override is used: layer3 gives another map for Grad-CAM, and CAM refuses it (256 channels, fc takes 512)
    assert not torch.allclose(explainers.explain("gradcam", resnet, x, 3, layer="layer3"), explainers.explain("gradcam", resnet, x, 3))
    with pytest.raises(MethodNotApplicable):
        explainers.explain("cam", resnet, x, 3, layer="layer3")
    assert explainers.hooks.locate_cam_layer(resnet, x) == "layer4"


def test_cam_on_efficientnet_plain_module_matches_zoo_model() -> None:
    loaded = zoo.load_model("efficientnet_lite0")
    x = loaded.preprocess(zoo.sample_images()["chelsea"])
    plain = explainers.explain("cam", loaded.model, x, 281)  # failed before issue 19: the last Conv2d was taken
    assert torch.allclose(plain, explainers.explain("cam", loaded, x, 281), atol=1e-5)
    assert explainers.hooks.locate_cam_layer(loaded.model, x) == loaded.cam_layer
