"""The Compare page driven by Streamlit's AppTest (no browser)."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

import explainers
from tests.app.conftest import APP


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=240)


def _tiles(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def _images(at: AppTest) -> int:
    return len(at.get("image"))


def test_default_render_shows_the_default_grid_on_efficientnet():
    at = _app().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="model_name").value == "efficientnet_lite0"
    assert at.selectbox(key="image_name").value == "chelsea"
    assert at.multiselect(key="methods").value == explainers.default_methods()
    md = " ".join(m.value for m in at.markdown)
    assert "target 282: tiger cat" in md  # predicted class of the cat photo is the default target
    assert not at.warning, [w.value for w in at.warning]
    assert _images(at) == 2 + len(explainers.default_methods())  # cropped input + grid input + one tile per method
    # a display option redraws from the cache: no recomputation, same runtimes shown
    start = time.perf_counter()
    at.radio(key="view").set_value("Heatmap").run()
    assert not at.exception
    assert time.perf_counter() - start < 30  # generous: AppTest overhead; the benchmark reports the real figure


def test_switch_model_image_and_methods():
    at = _app().run()
    at.selectbox(key="model_name").set_value("synthetic_shapes").run()
    at.selectbox(key="image_name").set_value("shapes: triangle").run()
    at.multiselect(key="methods").set_value(["saliency", "cam", "gradcam", "lrp_epsilon_plus", "random"]).run()
    assert not at.exception, at.exception
    md = " ".join(m.value for m in at.markdown)
    assert "triangle" in md
    assert _images(at) == 2 + 5
    assert not at.warning


def test_methods_by_images_mode_has_a_row_per_image():
    at = _app().run()
    at.selectbox(key="model_name").set_value("synthetic_shapes").run()
    at.radio(key="grid_mode").set_value("Methods × images").run()
    at.multiselect(key="image_names").set_value(["shapes: circle", "shapes: cross", "shapes: square"]).run()
    at.multiselect(key="methods").set_value(["saliency", "gradcam"]).run()
    assert not at.exception
    assert _images(at) == 3 * (1 + 2)


def test_a_method_that_cannot_apply_says_why_in_its_tile_while_the_rest_render():
    at = _app().run()
    at.selectbox(key="model_name").set_value("synthetic_shapes").run()
    at.multiselect(key="methods").set_value(["saliency", "lime"]).run()
    at.number_input(key="param::lime::n_segments").set_value(4).run()
    assert not at.exception
    texts = [w.value for w in at.warning]
    assert any("LIME" in t and "superpixel" in t for t in texts), texts
    assert _images(at) == 2 + 1


def test_missing_weights_are_explained_not_a_traceback(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    at = _app().run()
    at.selectbox(key="model_name").set_value("vgg16").run()
    assert not at.exception
    assert any("vgg16-397923af.pth" in e.value for e in at.error)


def test_methods_page_lists_every_method():
    at = _app().run()
    at.switch_page("app_pages/methods.py").run()
    assert not at.exception
    assert len(at.dataframe[0].value) == len(explainers.names())
    import metrics

    table = at.dataframe[1].value
    assert list(table["name"]) == metrics.names()
    assert dict(zip(table["name"], table["better"], strict=True))["deletion"] == "lower is better"


def test_a_shareable_link_opens_on_its_model_and_image():
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params["model"] = "synthetic_shapes"
    at.query_params["image"] = "shapes: cross"
    at.query_params["methods"] = "gradcam,no_such_method,saliency"
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="model_name").value == "synthetic_shapes"
    assert at.selectbox(key="image_name").value == "shapes: cross"
    assert at.multiselect(key="methods").value == ["gradcam", "saliency"]  # unknown names are dropped
    bad = AppTest.from_file(APP, default_timeout=240)
    bad.query_params["model"] = "no_such_model"
    bad.session_state["methods"] = ["saliency"]
    bad.session_state["image_name"] = "shapes: cross"
    bad.run()
    assert not bad.exception and bad.selectbox(key="model_name").value == "efficientnet_lite0"  # unknown: the default
