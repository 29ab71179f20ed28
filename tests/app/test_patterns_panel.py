"""The Compare page offers to learn PatternNet's patterns where the weights have none, learns them, and then shows
the maps instead of the "no patterns" message."""

from __future__ import annotations

from explainers import pattern_store
from tests.app.conftest import open_app


def test_missing_patterns_are_learned_from_the_page_and_the_tiles_then_show_maps(tmp_path, monkeypatch):
    monkeypatch.setattr(pattern_store, "SHIPPED_DIR", tmp_path / "none")  # as for weights nobody shipped patterns for
    monkeypatch.setenv("XAI_PATTERNS_DIR", str(tmp_path / "cache"))
    at = open_app(methods=["pattern_net", "saliency"])
    assert not at.exception, at.exception
    assert any("no patterns learned for these weights" in w.value for w in at.warning)
    assert at.radio(key="patterns::data").value == "synthetic"  # the synthetic model learns from its own generator
    at.number_input(key="patterns::n").set_value(64).run()
    assert any("the data the model was trained on" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Learn the patterns").click().run()
    assert not at.exception, at.exception
    assert len(pattern_store.stored_files(_model(), directories=[tmp_path / "cache"])) == 2  # both estimators, in one pass
    assert not at.warning, [w.value for w in at.warning]  # the tile is a map now
    assert not any(b.label == "Learn the patterns" for b in at.button)  # and the panel is gone


def _model():
    import zoo

    return zoo.load_model("synthetic_shapes").model
