"""The Compare page driven by Streamlit's AppTest (no browser)."""

from __future__ import annotations

import re
import time

from streamlit.testing.v1 import AppTest

import explainers
from tests.app.conftest import APP


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=240)


def _captions(at: AppTest) -> list[str]:
    return [img.proto.imgs[0].caption for img in at.get("image")]


def _images(at: AppTest) -> int:
    """The grid's images: the input tile and one tile per method (colour bars left out)."""
    return sum(c.startswith("Input") or re.search(r"\d\.\d\d s( · |$)", c) is not None for c in _captions(at))


def _bars(at: AppTest) -> list[str]:
    return [c for c in _captions(at) if "colours saturate" in c]


def test_default_render_shows_the_default_grid_on_efficientnet():
    at = _app().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="model_name").value == "efficientnet_lite0"
    assert at.selectbox(key="image_name").value == "coffee"
    assert at.multiselect(key="methods").value == explainers.default_methods()
    captions = " ".join(c.value for c in at.caption)
    assert "Target 967: espresso" in captions  # the predicted class of the photo is the default target
    assert not at.warning, [w.value for w in at.warning]
    assert _images(at) == 1 + len(explainers.default_methods())  # the input, shown once, and one tile per method
    assert len(_bars(at)) == 2 and any("red = evidence for the target" in b for b in _bars(at))  # signed and absolute maps
    # a display option redraws from the cache: no recomputation, same runtimes shown
    start = time.perf_counter()
    at.radio(key="display::view").set_value("Heatmap").run()
    assert not at.exception
    assert time.perf_counter() - start < 30  # generous: AppTest overhead; the benchmark reports the real figure


def test_switch_model_image_and_methods():
    at = _app().run()
    at.selectbox(key="model_name").set_value("synthetic_shapes").run()
    at.selectbox(key="image_name").set_value("shapes: triangle").run()
    at.multiselect(key="methods").set_value(["saliency", "cam", "gradcam", "lrp_epsilon_plus", "random"]).run()
    assert not at.exception, at.exception
    assert "triangle" in " ".join(c.value for c in at.caption)
    assert _images(at) == 1 + 5
    assert not at.warning


def test_methods_by_images_mode_has_a_row_per_image():
    at = _app().run()
    at.selectbox(key="model_name").set_value("synthetic_shapes").run()
    at.radio(key="compare::mode").set_value("Methods × images").run()
    at.multiselect(key="compare::images").set_value(["shapes: circle", "shapes: cross", "shapes: square"]).run()
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
    assert _images(at) == 1 + 1


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

    table = next(d.value for d in at.dataframe if "better" in d.value.columns)
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


def test_class_scan_shows_one_method_for_each_top_class():
    at = _app()
    at.session_state["model_name"] = "synthetic_shapes"
    at.session_state["image_name"] = "shapes: square"
    at.run()
    at.radio(key="compare::mode").set_value("Class scan").run()
    at.selectbox(key="compare::scan_method").set_value("gradcam").run()
    at.number_input(key="compare::scan_k").set_value(3).run()
    assert not at.exception, at.exception
    titles = [c for c in _captions(at) if c.endswith(" s")]
    assert len(titles) == 3 and titles[0].startswith("1: square (p = ")  # the top class first, with its probability
    at.multiselect(key="compare::scan_classes").set_value([0, 3]).run()
    titles = [c for c in _captions(at) if c.endswith(" s")]
    assert [t.split(" (")[0] for t in titles] == ["0: circle", "3: cross"]


def test_the_address_follows_the_view_and_a_model_switch_brings_a_fitting_image():
    at = _app().run()
    assert at.query_params["model"] == "efficientnet_lite0" and at.query_params["image"] == "coffee"
    at.selectbox(key="model_name").set_value("synthetic_shapes").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="image_name").value == "shapes: circle"  # a photo means nothing to the shapes CNN
    assert any("Image switched to" in t.value for t in at.toast)
    assert at.query_params["model"] == "synthetic_shapes" and at.query_params["target"] == "0"


def test_the_export_panel_offers_every_format():
    at = _app()
    at.session_state["model_name"] = "synthetic_shapes"
    at.session_state["image_name"] = "shapes: cross"
    at.session_state["methods"] = ["saliency", "integrated_gradients"]
    at.run()
    for fmt in ("svg", "pdf", "png"):
        at.selectbox(key="export|compare::fmt").set_value(fmt).run()
        assert not at.exception, at.exception
        assert any(b.label == f"Download the figure ({fmt.upper()})" for b in at.get("download_button"))
