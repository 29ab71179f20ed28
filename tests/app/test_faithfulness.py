"""The Faithfulness page driven by AppTest: curves, scores equal to the core's, scrubber, extra metrics, leaderboard."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import explainers
import metrics
import zoo
from tests.app.conftest import open_app

PAGE = "app_pages/faithfulness.py"
LEADERBOARD = "app_pages/leaderboard.py"
METHODS = ["saliency", "gradcam", "random"]


def _faithfulness() -> AppTest:
    return open_app("faithfulness", methods=METHODS)


def _table(at: AppTest):
    return at.dataframe[0].value


def test_curves_scores_match_the_core_and_conventions_are_shown():
    at = _faithfulness()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1
    table = _table(at)
    assert list(table["method"]) == [explainers.get(m).title for m in METHODS]
    # the page's numbers are the core's numbers for the same maps
    loaded = zoo.load_model("synthetic_shapes")
    x = loaded.preprocess(zoo.sample_images()["shapes: circle"])
    target = int(loaded.predict(x)[0].argmax())
    maps = {m: explainers.explain(m, loaded, x, target, **({"seed": 0} if explainers.get(m).stochastic else {})) for m in METHODS}
    res = metrics.deletion_insertion(loaded, x, maps, target, step=224)
    for i, m in enumerate(METHODS):
        assert table["deletion AUC ↓"][i] == pytest.approx(float(res.deletion_auc[m][0]), abs=1e-4)
        assert table["insertion AUC ↑"][i] == pytest.approx(float(res.insertion_auc[m][0]), abs=1e-4)
    captions = " ".join(c.value for c in at.caption)
    assert "224 pixels per step (20 points on 4096 pixels)" in captions
    assert "(sum - first/2 - last/2)/(N-1)" in captions
    # scrubber: 2 images (deletion, insertion) per method
    assert len(at.get("image")) == 2 * len(METHODS)
    at.slider(key="faith::point").set_value(19).run()
    assert not at.exception
    captions = [img.proto.imgs[0].caption for img in at.get("image")]
    assert sum("insertion: p = " in c for c in captions) == len(METHODS)
    assert sum("deletion: p = " in c for c in captions) == len(METHODS)


def test_step_substrate_and_extra_metrics():
    at = _faithfulness()
    at.number_input(key="faith::step").set_value(1024).run()
    at.selectbox(key="faith::substrate").set_value("blur").run()
    at.multiselect(key="faith::extra").set_value(["pointing_game", "sparseness"]).run()
    assert not at.exception, at.exception
    table = _table(at)
    assert "Pointing game ↑" in table.columns and "Sparseness (Gini) ↑" in table.columns
    assert set(table["Pointing game ↑"]) <= {0.0, 1.0}
    assert "1024 pixels per step (5 points" in " ".join(c.value for c in at.caption)
    # a photo has no mask: the localization metric is dropped, not an error
    at.selectbox(key="image_name").set_value("coffee").run()
    assert not at.exception, at.exception
    assert "Pointing game ↑" not in _table(at).columns


def test_leaderboard_runs_with_progress_and_shows_ranks_and_agreement():
    at = open_app("leaderboard", methods=METHODS)
    at.radio(key="leaderboard::source").set_value("Synthetic shapes (with masks)").run()
    at.number_input(key="leaderboard::n").set_value(3).run()
    at.multiselect(key="leaderboard::metrics").set_value(["deletion", "pointing_game", "sparseness"]).run()
    next(b for b in at.button if b.label == "Run the leaderboard").click().run()
    assert not at.exception, at.exception
    result = at.session_state["leaderboard_result"]
    assert result["images"] == 3 and len(result["rows"]) == 3 * len(METHODS) * 3
    assert {r["rank"] for r in result["summary"] if r["metric"] == "deletion"} == {1, 2, 3}
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # bars (one panel per metric), Kendall tau
    assert charts[0].proto.spec.count('"type":"bar"') == 3  # one bar trace per metric, each on its own axis
    # the result survives a page switch and back
    at.switch_page("app_pages/methods.py").run()
    at.switch_page(LEADERBOARD).run()
    assert at.session_state["leaderboard_result"]["images"] == 3


def test_choices_carry_over_between_pages():
    at = _faithfulness()
    at.multiselect(key="methods").set_value(["saliency", "edge_sobel"]).run()
    at.number_input(key="faith::step").set_value(512).run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="methods").value == ["saliency", "edge_sobel"]
    assert at.selectbox(key="model_name").value == "synthetic_shapes"
    at.switch_page(PAGE).run()
    assert at.number_input(key="faith::step").value == 512
