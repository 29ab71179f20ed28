"""The Sanity page driven by AppTest: the figure, the curves, controls, seeds, modes, data randomization."""

from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

import explainers
import zoo
from tests.app.conftest import open_app


def _sanity(methods: list[str]) -> AppTest:
    return open_app("sanity", methods=methods)


def _run_button(at: AppTest):
    return next(b for b in at.button if b.label == "Run the sanity check")


def test_cascade_figure_curves_table_and_the_model_untouched():
    shared = zoo.load_model("synthetic_shapes").model
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    at = _sanity(["saliency", "guided_backprop"])
    assert not at.exception, at.exception
    assert any("Press" in i.value for i in at.info)  # nothing heavy runs before the button
    _run_button(at).click().run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    titles = {explainers.get(m).title for m in ["saliency", "guided_backprop", "edge_sobel"]}
    assert set(table["method"]) == titles  # the model-independent control is always there
    sobel = table[table["method"] == explainers.get("edge_sobel").title]
    assert sobel["spearman"].tolist() == pytest.approx([1.0] * 5)
    assert list(table[table["method"] == "Saliency"]["block"]) == ["fc (logits)", "conv 4", "conv 3", "conv 2", "conv 1"]
    # the default figure shows each map on its own scale (the paper's finding stays visible as magnitudes collapse)
    assert any("each map on its own colour scale" in img.proto.imgs[0].caption for img in at.get("image"))
    assert '"two random maps"' in at.get("plotly_chart")[0].proto.spec  # the floor line
    at.radio(key="sanity::scale").set_value("one per row (magnitudes comparable)").run()
    assert not at.exception, at.exception
    assert any("one colour scale per row" in img.proto.imgs[0].caption for img in at.get("image"))
    for k, v in shared.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_seeds_band_and_independent_mode():
    at = _sanity(["saliency"])
    at.number_input(key="sanity::seeds").set_value(2).run()
    at.radio(key="sanity::mode").set_value("independent").run()
    _run_button(at).click().run()
    assert not at.exception, at.exception
    fig = at.get("plotly_chart")[0].proto.spec
    assert '"fill":"toself"' in fig.replace(" ", "")  # the band over the seeds
    assert at.dataframe[0].value.shape[0] == 2 * 5  # 2 methods (with the control) x 5 steps, averaged over the seeds
    # changing a setting asks for a new run instead of recomputing on its own
    at.radio(key="sanity::mode").set_value("cascading").run()
    assert any("Press" in i.value for i in at.info)


def test_data_randomization_tab():
    at = _sanity(["saliency", "gradcam"])
    assert not at.exception, at.exception
    frames = [d.value for d in at.dataframe]
    data = frames[-1]
    assert "Spearman rank correlation" in data.columns and len(data) == 3
    sobel = data[data["method"] == explainers.get("edge_sobel").title]
    assert float(sobel["SSIM"].iloc[0]) == pytest.approx(1.0)
    at.selectbox(key="model_name").set_value("efficientnet_lite0").run()
    assert not at.exception
    assert any("synthetic-shapes model" in i.value for i in at.info)
