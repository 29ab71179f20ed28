"""The Bias page driven by AppTest: the shortcut model's accuracies, shares with intervals, examples, the
counterfactual, and the probe for any model with a box or a mask image."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_app


def _page(**state) -> AppTest:
    return open_app("bias", image="shapes: cross", **state)


def _click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label.startswith(label)).click().run()


def _frame(at: AppTest, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_the_shortcut_model_shows_its_accuracy_drop_the_shares_and_the_counterfactual():
    at = _page(**{"bias::n": 20, "bias::methods": ["input_x_gradient", "random"]})
    assert not at.exception, at.exception
    acc = _frame(at, "test set")
    values = dict(zip(acc["test set"], acc.iloc[:, 1], strict=True))
    assert values["marker agrees with the class"] - values["another class's marker"] >= 0.3
    assert any("Press" in i.value for i in at.info)  # nothing heavy before the button
    _click(at, "Run the shortcut check")
    assert not at.exception, at.exception
    shares = _frame(at, "points at").set_index("method")
    assert shares.loc["Gradient x Input", "points at"] == "marker"  # the shortcut, revealed
    assert shares.loc["Random (control)", "points at"] == "neither clearly"  # the control finds nothing
    assert len(at.get("plotly_chart")) == 1
    cf = _frame(at, "intervention").set_index("intervention")
    assert cf.loc["marker removed", "prediction changed"] > 0.5  # without its marker the model is lost
    assert cf.loc["shape removed", "prediction changed"] < 0.2  # without its shape it hardly cares
    assert any("Conventions" in c.value for c in at.caption)
    at.selectbox(key="bias::measure").set_value("relevance_rank").run()  # another measure: redrawn from the cache
    assert not at.exception, at.exception
    assert "Relevance rank accuracy" in at.get("plotly_chart")[0].proto.spec
    # another class's marker, maps for the prediction: the evidence for the (wrong) prediction is the marker
    at.selectbox(key="bias::test").set_value("other").run()
    _click(at, "Run the shortcut check")
    assert not at.exception, at.exception
    assert _frame(at, "points at").set_index("method").loc["Gradient x Input", "points at"] == "marker"


def test_the_probe_with_a_box_and_with_a_mask_image():
    at = _page(**{"methods": ["saliency"], "bias::probe_images": ["shapes: cross", "shapes: circle"]})
    at.slider(key="bias::box_x").set_value((0.0, 0.5)).run()
    _click(at, "Run the probe")
    assert not at.exception, at.exception
    table = _frame(at, "class (top-1)")
    assert set(table["what"]) == {"Saliency: share", "removed: change in p", "pasted from shapes: cross: change in p(cross)"}
    assert table["images"].sum() == 3 * 2  # two images, each in its class's rows, three quantities
    share = table[table["what"] == "Saliency: share"]["mean"]
    assert ((share >= 0) & (share <= 1)).all()
    # a mask image instead of the box (AppTest cannot upload: the browser test does)
    at.radio(key="bias::region_kind").set_value("A mask image").run()
    assert any("Upload a mask" in i.value for i in at.info)


def test_an_empty_box_and_a_missing_folder_say_so():
    at = _page(**{"methods": ["saliency"]})
    at.slider(key="bias::box_x").set_value((0.3, 0.3)).run()
    assert any("region is empty" in w.value for w in at.warning)
    at.radio(key="bias::probe_source").set_value("A folder on this server").run()
    at.text_input(key="bias::probe_folder").set_value("/no/such/folder").run()
    assert not at.exception, at.exception
    assert any("no/such/folder" in e.value or "unknown image" in e.value for e in at.error)
