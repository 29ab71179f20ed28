"""Models users bring (issue 19): plain nn.Module in a notebook (CAM layer, pixel domain), torch.export programs,
safetensors weights."""

from __future__ import annotations

import pytest
import torch
import torchvision

import explainers
import metrics
import zoo
from core.errors import InputError, MethodNotApplicable, ModelFileError, ParameterError


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


def test_adversarial_refuses_a_normalized_input_on_a_plain_module_and_wrap_fixes_it() -> None:
    loaded = zoo.load_model("synthetic_shapes")
    x = loaded.preprocess(zoo.sample_images()["shapes: circle"])  # normalized: spans about [-2, 2]
    assert x.min() < 0
    with pytest.raises(InputError, match="zoo.wrap"):  # before issue 19: clipped to [0,1] silently
        metrics.adversarial(loaded.model, x, 0, attack="pgd", eps=2, steps=3)
    wrapped = zoo.wrap(loaded.model, mean=loaded.mean, std=loaded.std, classes=loaded.classes, input_size=64)
    # located: "features", the block whose output is features.9's (the zoo's name): the same map
    assert wrapped.cam_layer == "features"
    assert torch.allclose(explainers.explain("gradcam", wrapped, x, 0), explainers.explain("gradcam", loaded, x, 0))
    got = metrics.adversarial(wrapped, x, 0, attack="pgd", eps=2, steps=3)
    assert float(got.delta.abs().max()) <= 2 / 255 + 1e-6
    assert float((loaded.denormalize(got.x_adv) - loaded.denormalize(x)).abs().max()) <= 2 / 255 + 1e-6
    ref = metrics.adversarial(loaded, x, 0, attack="pgd", eps=2, steps=3)
    assert torch.equal(got.x_adv, ref.x_adv) and got.pred_adv == ref.pred_adv
    # pixels in [0,1] still go straight to a plain module
    assert metrics.adversarial(loaded.model, loaded.denormalize(x), 0, attack="fgsm", eps=2).delta.abs().max() <= 2 / 255 + 1e-6


def test_wrap_checks_its_arguments() -> None:
    net = zoo.load_model("synthetic_shapes").model
    with pytest.raises(ParameterError, match="std"):
        zoo.wrap(net, mean=(0.5,), std=(0.0,))
    with pytest.raises(ModelFileError, match="names"):
        zoo.wrap(net, mean=(0.5,), std=(0.25,), classes=["a", "b"])
    with pytest.raises(ParameterError, match="nn.Module"):
        zoo.wrap("model", mean=(0.5,), std=(0.25,))  # type: ignore[arg-type]
