"""The bad-input catalogue through the real upload widgets (AppTest): each file gets a message naming it, the
session goes on computing, and the shared cached model is untouched."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from core.model_state import fingerprint, hook_count
from tests.app.conftest import open_app
from tests.test_bad_inputs import IMAGE_CASES, MODEL_CASES, Evil, NoConv, script


def _app() -> AppTest:
    return open_app(methods=["saliency", "gradcam"])


def _ok(at: AppTest) -> None:
    assert not at.exception, [(e.message, "".join(e.stack_trace)[-800:]) for e in at.exception]


def _grid_images(at: AppTest) -> list[str]:
    return [img.proto.imgs[0].caption for img in at.get("image")]


def test_every_catalogue_image_uploaded_at_once_gets_its_own_answer_and_the_session_goes_on():
    from dashboard import cache

    at = _app()
    _ok(at)
    shared = cache.model("synthetic_shapes").model
    before, hooks = fingerprint(shared), hook_count(shared)
    files = [(f"case{i}.png", c.data(), "image/png") for i, c in enumerate(IMAGE_CASES)]
    at.file_uploader(key="image_upload").set_value(files).run()
    _ok(at)
    errors = " ".join(e.value for e in at.error)
    choices = at.selectbox(key="image_name").options
    for i, c in enumerate(IMAGE_CASES):
        name = f"case{i}.png"
        if c.error is None:
            assert any(o.startswith(f"upload: {name} ") for o in choices), c.name
            assert name + ":" not in errors, c.name
        else:
            assert f"{name}:" in errors, c.name  # the message names the file
    # the last good upload is selected and the grid is computed on it
    last_good = max(i for i, c in enumerate(IMAGE_CASES) if c.error is None)
    assert at.selectbox(key="image_name").value.startswith(f"upload: case{last_good}.png")
    captions = _grid_images(at)
    assert any(c.startswith("Saliency ·") for c in captions) and any(c.startswith("Grad-CAM ·") for c in captions)
    # and a sample image still works in the same session
    at.selectbox(key="image_name").set_value("shapes: cross").run()
    _ok(at)
    assert any(c.startswith("Saliency ·") for c in _grid_images(at))
    assert fingerprint(shared) == before and hook_count(shared) == hooks


def _upload_model(at: AppTest, data: bytes, names: bytes | None = None, size: int = 224) -> AppTest:
    at.file_uploader(key="model_upload").set_value([("model.pt", data, "application/octet-stream")])
    if names is not None:
        at.file_uploader(key="names_upload").set_value([("classes.txt", names, "text/plain")])
    at.number_input(key="model_upload_size").set_value(size)
    at.run()
    at.button(key="model_upload_go").click().run()
    return at


@pytest.mark.parametrize("case", MODEL_CASES, ids=[c.name for c in MODEL_CASES])
def test_every_catalogue_model_is_refused_in_the_page_and_the_previous_model_stays(case):
    at = _upload_model(_app(), case.data(), case.names, case.input_size)
    _ok(at)
    assert any(re.search(case.error, e.value) for e in at.error), [e.value for e in at.error]
    assert at.selectbox(key="model_name").value == "synthetic_shapes"
    assert any(c.startswith("Saliency ·") for c in _grid_images(at))


def test_a_malicious_pickle_uploaded_as_a_model_never_runs(tmp_path):
    import io
    import pickle

    import torch

    Evil.target = str(tmp_path / "owned.txt")
    buf = io.BytesIO()
    torch.save({"state": Evil()}, buf)
    for data in (pickle.dumps(Evil()), buf.getvalue()):
        at = _upload_model(_app(), data)
        _ok(at)
        assert any("TorchScript" in e.value for e in at.error)
    assert not (tmp_path / "owned.txt").exists()


def test_a_model_without_conv_layers_cam_tiles_say_why_and_the_others_render():
    at = _upload_model(_app(), script(NoConv()), b"a\nb\nc\n", 32)
    _ok(at)
    assert at.selectbox(key="model_name").value == "uploaded"
    warnings = " ".join(w.value for w in at.warning)
    assert "Grad-CAM" in warnings and "no nn.Conv2d" in warnings
    captions = _grid_images(at)
    assert any(c.startswith("Saliency ·") for c in captions) and not any(c.startswith("Grad-CAM ·") for c in captions)
    assert at.session_state["methods"] == ["saliency", "gradcam"]  # the failing method is kept, with its reason
