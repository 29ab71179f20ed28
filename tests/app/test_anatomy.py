"""The Anatomy page driven by AppTest: layers, filters, feature maps, activation maximization with a live preview."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

import zoo
from tests.app.conftest import open_app


def _page() -> AppTest:
    return open_app("anatomy", image="shapes: triangle")


def test_layers_filters_feature_maps():
    at = _page()
    assert not at.exception, at.exception
    layers = at.dataframe[0].value  # the layers table (in its expander)
    assert "features.0" in set(layers["layer"])
    captions = [img.proto.imgs[0].caption for img in at.get("image")]
    assert any("16 of 16 filters" in c for c in captions)
    assert sum(c.startswith("ch ") for c in captions) == 16
    at.slider(key="anatomy::top").set_value(8).run()
    assert sum(img.proto.imgs[0].caption.startswith("ch ") for img in at.get("image")) == 8


def test_class_maximization_is_seen_as_that_class():
    at = _page()
    at.selectbox(key="anatomy::class").set_value(1).run()
    at.slider(key="anatomy::steps").set_value(96).run()
    next(b for b in at.button if b.label == "Optimize").click().run()
    assert not at.exception, at.exception
    res = at.session_state["anatomy_result"]
    assert res["image"].shape == (64, 64, 3)
    assert res["probs"].argmax() == 1 and res["probs"][1] > 0.9
    assert any("maximizes class 1: square" in img.proto.imgs[0].caption for img in at.get("image"))


def test_bad_channel_is_a_message_not_a_traceback():
    at = _page()
    at.radio(key="anatomy::objective").set_value("channel (mean)").run()
    at.number_input(key="anatomy::channel").set_value(999).run()
    next(b for b in at.button if b.label == "Optimize").click().run()
    assert not at.exception
    assert any("no channel" in e.value for e in at.error)
    assert zoo.load_model("synthetic_shapes").model.training is False


def test_switching_models_keeps_the_page_valid():
    at = _page()
    at.selectbox(key="anatomy::fmap_layer").set_value("features.5").run()
    at.selectbox(key="model_name").set_value("efficientnet_lite0").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="anatomy::fmap_layer").value == "_avg_pooling.0"  # features.5 does not exist here: the CAM layer
    at.selectbox(key="model_name").set_value("synthetic_shapes").run()
    assert not at.exception, at.exception
