"""The CAM variants (HiResCAM, XGrad-CAM, LayerCAM, Eigen-CAM, Ablation-CAM) against pytorch-grad-cam 1.5.7, which
defined them: same maps within 1e-4 at the CAM layer's resolution after min-max scaling (the library's convention)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import explainers
from core.model_state import using
from explainers import cam as cam_module
from explainers.context import Context

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

PEERS = {
    "hires_cam": pgc.HiResCAM,
    "xgrad_cam": pgc.XGradCAM,
    "layer_cam": pgc.LayerCAM,
    "eigen_cam": pgc.EigenCAM,
    "ablation_cam": pgc.AblationCAM,
    "gradcam": pgc.GradCAM,
}


def unit(m: torch.Tensor) -> torch.Tensor:
    """Min-max scaling per map, as pytorch-grad-cam's ``scale_cam_image`` (all-zero maps stay zero)."""
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / (1e-7 + m.amax(dim=(1, 2), keepdim=True))


def ours_at_layer(name: str, net: nn.Module, layer: str, x: torch.Tensor, t: torch.Tensor, monkeypatch) -> torch.Tensor:
    """Our map before upsampling [B,h,w]: the method run as ``explain`` runs it, with ``upsample`` the identity."""
    monkeypatch.setattr(cam_module, "upsample", lambda m, size: m)
    spec = explainers.get(name)
    with using(net) as hooks, torch.enable_grad():
        out = spec.fn(Context(model=net, hooks=hooks, layer=layer), x, t, **spec.resolve({}))
    monkeypatch.undo()
    return out.detach()


def peer_at_layer(name: str, net: nn.Module, layer: str, x: torch.Tensor, t: torch.Tensor, size: tuple[int, int], monkeypatch) -> torch.Tensor:
    """pytorch-grad-cam's map, its target size set to the CAM layer's (cv2.resize is then the identity); the input
    requires grad (the zoo's parameters are frozen, and the library backpropagates from the score)."""
    monkeypatch.setattr(pgc.base_cam.BaseCAM, "get_target_width_height", lambda self, inp: (size[1], size[0]))
    module = dict(net.named_modules())[layer]
    with PEERS[name](model=net, target_layers=[module]) as c:
        out = c(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(int(i)) for i in t])
    monkeypatch.undo()
    return torch.from_numpy(out).float()


def check(name: str, net: nn.Module, layer: str, x: torch.Tensor, monkeypatch) -> float:
    with torch.no_grad():
        t = net(x).argmax(1)
    ours = ours_at_layer(name, net, layer, x, t, monkeypatch)
    peer = peer_at_layer(name, net, layer, x, t, tuple(ours.shape[-2:]), monkeypatch)
    assert ours.shape == peer.shape and float(ours.amax()) > 0
    err = float((unit(ours) - peer).abs().max())
    assert err <= 1e-4, f"{name}: max difference {err:.2e} to pytorch-grad-cam"
    print(f"{name} {layer}: max |ours - pytorch-grad-cam| = {err:.1e}")
    return err


@pytest.fixture(scope="module")
def shapes_batch(shapes) -> torch.Tensor:
    import zoo

    imgs = zoo.sample_images()
    return torch.cat([shapes.preprocess(imgs[f"shapes: {k}"]) for k in ("circle", "square", "triangle", "cross")])


@pytest.mark.parametrize("name", list(PEERS))
def test_equals_pytorch_grad_cam_on_the_synthetic_model(name, shapes, shapes_batch, monkeypatch):
    check(name, shapes.model, shapes.cam_layer, shapes_batch[:3], monkeypatch)


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


@pytest.mark.parametrize("name", list(PEERS))
def test_equals_pytorch_grad_cam_on_resnet18(name, resnet18, monkeypatch):
    """layer3 (post-ReLU, 4x4 at 64 px; before layer4, so the gradient varies over positions and HiResCAM is not
    Grad-CAM): pytorch-grad-cam ablates to zero there, as the paper (it ablates to min - 1e7 on layers with negative
    outputs)."""
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    check(name, resnet18, "layer3", x, monkeypatch)


def test_the_variants_differ_from_gradcam(shapes, shapes_batch):
    """The cross-checks cannot pass by computing Grad-CAM: before the last layer (features.6, where the gradient
    varies over positions) each variant gives another map. (At the last layer before global pooling, HiResCAM equals
    Grad-CAM, as Draelos & Carin state.)"""
    x = shapes_batch[:2]
    t = shapes.predict(x).argmax(1)
    base = unit(explainers.explain("gradcam", shapes, x, t, layer="features.6"))
    for name in ("hires_cam", "xgrad_cam", "layer_cam", "eigen_cam", "ablation_cam"):
        assert float((unit(explainers.explain(name, shapes, x, t, layer="features.6")) - base).abs().max()) > 1e-3, name


def test_ablation_cam_batching_does_not_change_the_map(shapes, shapes_batch):
    x = shapes_batch[:2]
    a = explainers.explain("ablation_cam", shapes, x, 0, batch_size=7)
    b = explainers.explain("ablation_cam", shapes, x, 0, batch_size=128)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def _affine_residual(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """Largest residual of the best fit theirs ~ a * ours + b per image (a > 0 asserted): pytorch-grad-cam's FullGrad
    ends with a min-max scaling of the summed map, an affine map."""
    worst = 0.0
    for a, b in zip(ours.flatten(1).double(), torch.as_tensor(theirs).flatten(1).double(), strict=True):
        design = torch.stack([a, torch.ones_like(a)], 1)
        sol = torch.linalg.lstsq(design, b.unsqueeze(1)).solution
        assert sol[0] > 0, "the maps are anti-correlated"
        worst = max(worst, float((design @ sol).squeeze(1).sub(b).abs().max()))
    return worst


def _fullgrad_peer(net: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    import copy

    ref = copy.deepcopy(net).requires_grad_(True)  # the library calls .backward
    with pgc.FullGrad(model=ref, target_layers=[]) as c:
        return torch.from_numpy(c(input_tensor=x.clone(), targets=[ClassifierOutputTarget(int(i)) for i in t]))


def test_fullgrad_equals_pytorch_grad_cam_on_the_synthetic_model_and_resnet18(shapes, shapes_batch, resnet18):
    """Conv biases (synthetic), BatchNorm implicit biases and in-place ReLUs after them (ResNet-18)."""
    for net, x in ((shapes.model, shapes_batch[:2]), (resnet18, torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)))):
        with torch.no_grad():
            t = net(x).argmax(1)
        ours = explainers.explain("fullgrad", net, x, t)
        assert _affine_residual(ours, _fullgrad_peer(net, x, t)) < 1e-4


def test_fullgrad_of_a_bias_free_net_is_its_input_gradient_term():
    """No biases: FullGrad is psi(|x * grad|) summed over channels, written out here from the paper."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2, bias=False)).eval()
    x = torch.randn(1, 3, 8, 8)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(xg)[0, 1], xg)
    t = (g * x).abs()
    t = t - t.amin(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(explainers.explain("fullgrad", net, x, 1), (t / (t.amax(dim=(2, 3), keepdim=True) + 1e-7)).sum(1))


def test_fullgrad_counts_a_biased_module_at_each_of_its_calls():
    """A conv applied twice contributes two bias-gradient terms (one per call), not one."""

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.conv(torch.relu(self.conv(x)))).mean(dim=(2, 3)))

    torch.manual_seed(1)
    net, x = Twice().eval(), torch.randn(1, 3, 8, 8)
    xg = x.clone().requires_grad_(True)
    z1 = net.conv(xg)
    z2 = net.conv(torch.relu(z1))
    y = net.fc(torch.relu(z2).mean(dim=(2, 3)))[0, 0]
    gx, g1, g2 = torch.autograd.grad(y, [xg, z1, z2])
    b = net.conv.bias.detach().view(1, -1, 1, 1)
    expected = sum(cam_module._channel_scaled(t.abs().detach(), (8, 8)) for t in (gx * x, b * g1, b * g2))
    torch.testing.assert_close(explainers.explain("fullgrad", net, x, 0), expected)
