"""The pytorch-grad-cam variants (HiResCAM, XGrad-CAM, LayerCAM, EigenCAM, Ablation-CAM, FullGrad) against the library
that defined them, on the synthetic model and a ResNet-18, and an oracle for Ablation-CAM's batching."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

import explainers
from explainers.cam import eigen_projection

gradcam_lib = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection  # noqa: E402

LIBRARY = {
    "hires_cam": "HiResCAM",
    "xgrad_cam": "XGradCAM",
    "layer_cam": "LayerCAM",
    "eigen_cam": "EigenCAM",
    "ablation_cam": "AblationCAM",
    "fullgrad": "FullGrad",
}


def _affine_residual(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """Largest residual of the best fit theirs ~ a * ours + b per image (a > 0 asserted): pytorch-grad-cam min-max
    scales the low-resolution map before its bilinear resize, an affine map that commutes with bilinear upsampling."""
    worst = 0.0
    for a, b in zip(ours.flatten(1).double(), torch.as_tensor(theirs).flatten(1).double(), strict=True):
        design = torch.stack([a, torch.ones_like(a)], 1)
        sol = torch.linalg.lstsq(design, b.unsqueeze(1)).solution
        assert sol[0] > 0, "the maps are anti-correlated"
        worst = max(worst, float((design @ sol).squeeze(1).sub(b).abs().max()))
    return worst


def _library_map(name: str, model: nn.Module, layer: str, x: torch.Tensor, target: torch.Tensor):
    net = copy.deepcopy(model).requires_grad_(True)  # the library calls .backward on its own copy
    cls = getattr(gradcam_lib, LIBRARY[name])
    with cls(model=net, target_layers=[dict(net.named_modules())[layer]]) as method:
        if hasattr(method, "batch_size"):
            method.batch_size = 64
        return method(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


@pytest.mark.parametrize("name", list(LIBRARY))
def test_matches_pytorch_grad_cam_on_the_synthetic_model(name, shapes):
    import zoo

    imgs = zoo.sample_images()
    x = torch.cat([shapes.preprocess(imgs["shapes: circle"]), shapes.preprocess(imgs["shapes: cross"])])
    target = shapes.predict(x).argmax(1)
    ours = explainers.explain(name, shapes.model, x, target, layer="features.9")
    assert _affine_residual(ours, _library_map(name, shapes.model, "features.9", x, target)) < 1e-4


@pytest.mark.parametrize("name", [n for n in LIBRARY if n != "ablation_cam"])
def test_matches_pytorch_grad_cam_on_resnet18(name, resnet):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    target = torch.tensor([1, 7])
    ours = explainers.explain(name, resnet, x, target, layer="layer4")
    assert _affine_residual(ours, _library_map(name, resnet, "layer4", x, target)) < 1e-4


def test_ablation_cam_matches_pytorch_grad_cam_on_resnet18_layer3(resnet):
    x = torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(4))
    target = torch.tensor([5])
    ours = explainers.explain("ablation_cam", resnet, x, target, layer="layer3", batch_size=128)
    assert _affine_residual(ours, _library_map("ablation_cam", resnet, "layer3", x, target)) < 1e-4


def test_eigen_projection_is_the_library_projection_up_to_sign():
    act = torch.randn(3, 16, 5, 6, generator=torch.Generator().manual_seed(0))
    ours, theirs = eigen_projection(act), torch.as_tensor(get_2d_projection(act.numpy()))
    for o, t in zip(ours, theirs, strict=True):
        sign = 1.0 if float((o * t).sum()) > 0 else -1.0
        torch.testing.assert_close(o, sign * t, rtol=1e-4, atol=1e-5)
        assert o.max() >= -o.min(), "our sign convention: the largest magnitude is positive"


def test_ablation_cam_weights_do_not_depend_on_the_batch_size(shapes):
    import zoo

    x = shapes.preprocess(zoo.sample_images()["shapes: circle"])
    maps = [explainers.explain("ablation_cam", shapes, x, 0, batch_size=b) for b in (5, 64)]
    torch.testing.assert_close(maps[0], maps[1], rtol=1e-4, atol=1e-4 * float(maps[1].abs().max()))


def test_fullgrad_of_a_bias_free_linear_conv_net_is_its_input_gradient_term():
    """No biases: FullGrad is psi(|x * grad|) summed over channels, written out here from the paper."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2, bias=False)).eval()
    x = torch.randn(1, 3, 8, 8)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(xg)[0, 1], xg)
    t = (g * x).abs()
    t = t - t.amin(dim=(2, 3), keepdim=True)
    expected = (t / (t.amax(dim=(2, 3), keepdim=True) + 1e-7)).sum(1)
    torch.testing.assert_close(explainers.explain("fullgrad", net, x, 1), expected)
