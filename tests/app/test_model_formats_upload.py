"""The upload widget takes torch.export programs and safetensors weights (issue 19): a good file becomes the session's
model and the grid computes on it; a bad one gets a message naming the problem and the previous model stays."""

from __future__ import annotations

import io
import pickle

import torch
from streamlit.testing.v1 import AppTest

import zoo
from tests.app.test_bad_uploads import _app, _grid_images, _ok


def _upload(at: AppTest, name: str, data: bytes, size: int = 64, arch: str = "resnet18", k: int = 4) -> AppTest:
    at.file_uploader(key="model_upload").set_value([(name, data, "application/octet-stream")])
    at.number_input(key="model_upload_size").set_value(size)
    at.text_input(key="model_upload_arch").set_value(arch)
    at.number_input(key="model_upload_classes").set_value(k)
    at.run()
    at.button(key="model_upload_go").click().run()
    return at


def test_a_pt2_program_uploads_and_a_disguised_pickle_is_refused() -> None:
    at = _upload(_app(), "evil.pt2", pickle.dumps({"w": 1}))
    _ok(at)
    assert any("Python pickle" in e.value for e in at.error), [e.value for e in at.error]
    assert at.selectbox(key="model_name").value == "synthetic_shapes"
    net = zoo.load_model("synthetic_shapes").model
    ep = torch.export.export(net, (torch.rand(2, 3, 64, 64),), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    at = _upload(at, "shapes.pt2", buf.getvalue())
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="model_name").value == "uploaded"
    captions = _grid_images(at)
    assert any(c.startswith("Saliency ·") for c in captions) and any(c.startswith("Grad-CAM ·") for c in captions)


def test_safetensors_for_the_wrong_architecture_names_the_tensor() -> None:
    import safetensors.torch
    import torchvision

    data = safetensors.torch.save(torchvision.models.resnet18(weights=None, num_classes=4).state_dict())
    at = _upload(_app(), "w.safetensors", data, arch="resnet18", k=5)
    _ok(at)
    assert any("'fc.weight' has shape [4, 512]" in e.value for e in at.error), [e.value for e in at.error]
    at = _upload(at, "w.safetensors", data, arch="resnet18", k=4)
    _ok(at)
    assert at.selectbox(key="model_name").value == "uploaded"
