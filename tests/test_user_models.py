"""Models users bring (issue 19): plain nn.Module in a notebook (CAM layer, pixel domain), torch.export programs,
safetensors weights."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import pytest
import safetensors.torch
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


def _pt2(module: torch.nn.Module, size: int, dynamic: bool = True) -> bytes:
    shapes = {"x": {0: torch.export.Dim("batch")}} if dynamic else None
    ep = torch.export.export(module, (torch.rand(2, 3, size, size),), dynamic_shapes=shapes)
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def shapes_pt2() -> bytes:
    return _pt2(zoo.load_model("synthetic_shapes").model, 64)


def test_exported_program_gives_the_source_modules_maps(shapes_pt2: bytes, resnet: torch.nn.Module) -> None:
    src = zoo.load_model("synthetic_shapes")
    got = zoo.load_exported(shapes_pt2, mean=src.mean, std=src.std, classes=src.classes)
    assert got.input_size == 64 and got.classes == src.classes
    assert "features.9" in dict(got.model.named_modules())  # names kept by unflatten
    x = torch.cat([src.preprocess(zoo.sample_images()[f"shapes: {s}"]) for s in ("circle", "square")])
    for method in ("saliency", "gradcam", "occlusion"):
        torch.testing.assert_close(explainers.explain(method, got, x, 1), explainers.explain(method, src, x, 1))
    with pytest.raises(MethodNotApplicable, match="torch.export"):
        explainers.explain("lrp_epsilon_plus", got, x, 1)
    net = zoo.load_exported(_pt2(resnet, 64), input_size=64)
    assert net.cam_layer == "layer4"
    xr = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(explainers.explain("gradcam", net, xr, 3), explainers.explain("gradcam", resnet, xr, 3))


class Flat(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)[:, :4]


def _rewrite(data: bytes, name_end: str, new: bytes) -> bytes:
    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            z.writestr(info, new if info.filename.endswith(name_end) else src.read(info))
    return out.getvalue()


def test_bad_pt2_files_get_clear_errors(shapes_pt2: bytes) -> None:
    net = zoo.load_model("synthetic_shapes").model
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)  # torch.save's zip, renamed .pt2
    cfg = json.loads(zipfile.ZipFile(io.BytesIO(shapes_pt2)).read("archive/data/weights/model_weights_config.json"))
    cfg["config"]["fc.bias"]["use_pickle"] = True
    cases = {
        "pickle": pickle.dumps({"w": torch.zeros(2)}),
        "not the archive torch.export.save writes": buf.getvalue(),
        "truncated": shapes_pt2[: len(shapes_pt2) // 2],
        "'fc.bias' is stored as a pickle": _rewrite(shapes_pt2, "model_weights_config.json", json.dumps(cfg).encode()),
        "sample inputs are not plain tensors": _rewrite(shapes_pt2, "sample_inputs/model.pt", pickle.dumps(len)),
        "one batch size": _pt2(Flat(), 8, dynamic=False),  # reshape(2, -1) baked in
        "empty": b"",
    }
    for message, data in cases.items():
        with pytest.raises(ModelFileError, match=message):
            zoo.load_exported(data)


def test_safetensors_weights_for_a_torchvision_architecture(resnet: torch.nn.Module) -> None:
    data = safetensors.torch.save({k: v.contiguous() for k, v in resnet.state_dict().items()})
    got = zoo.load_safetensors(data, "resnet18", 10, classes=[str(i) for i in range(10)])
    assert got.cam_layer == "layer4" and got.classes[3] == "3" and got.mean == (0.485, 0.456, 0.406)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(got.model(x), resnet(x))
    torch.testing.assert_close(explainers.explain("gradcam", got, x, 3), explainers.explain("gradcam", resnet, x, 3, layer="layer4"))
    for arch, k, message in [("resnet18", 1000, "'fc.weight' has shape \\[10, 512\\] in the file, \\[1000, 512\\]"),
                             ("resnet34", 10, "no tensor 'layer1.2.conv1.weight'"), ("no_such_net", 10, "Unknown architecture")]:
        with pytest.raises(ModelFileError, match=message):
            zoo.load_safetensors(data, arch, k)
    for bad, message in [(data[: len(data) // 2], "not a complete safetensors"), (b"", "empty"), (pickle.dumps({}), "not a complete safetensors")]:
        with pytest.raises(ModelFileError, match=message):
            zoo.load_safetensors(bad, "resnet18", 10)


def test_safetensors_weights_for_a_timm_architecture_use_its_preprocessing() -> None:
    import timm

    torch.manual_seed(0)
    src = timm.create_model("test_efficientnet", pretrained=False, num_classes=5).eval()
    got = zoo.load_safetensors(safetensors.torch.save(src.state_dict()), "test_efficientnet", 5)
    assert got.input_size == src.pretrained_cfg["input_size"][-1] and got.mean == tuple(src.pretrained_cfg["mean"])
    assert got.cam_layer == "bn2"  # timm's BatchNormAct2d: BatchNorm + activation, before global pooling
    x = torch.rand(1, 3, got.input_size, got.input_size, generator=torch.Generator().manual_seed(5))
    for method in ("cam", "guided_backprop", "lrp_epsilon_plus"):
        torch.testing.assert_close(explainers.explain(method, got, x, 2), explainers.explain(method, src, x, 2), rtol=1e-4, atol=1e-6)
