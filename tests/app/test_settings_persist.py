"""Every page's settings survive a page switch (the shared sidebar is drawn by the entry file; every page-level widget
key is made by ``dashboard.state.key`` and kept by ``state.persist``)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_app

# page -> [(widget kind, key, value set)]: a setting that differs from its default on each page
SETTINGS = {
    "compare": [("radio", "compare::mode", "Methods × images"), ("radio", "display::view", "Heatmap"), ("slider", "display::clip", 90.0)],
    "faithfulness": [("number_input", "faith::step", 512), ("selectbox", "faith::substrate", "blur")],
    "leaderboard": [("radio", "leaderboard::source", "Synthetic shapes (with masks)"), ("number_input", "leaderboard::n", 7)],
    "sanity": [("number_input", "sanity::seeds", 3), ("radio", "sanity::mode", "independent")],
    "robustness": [("radio", "robust::kind", "pgd"), ("slider", "robust::eps", 7)],
    "anatomy": [("slider", "anatomy::steps", 64), ("radio", "anatomy::objective", "channel (mean)")],
}


def _widget(at: AppTest, kind: str, key: str):
    return getattr(at, kind)(key=key)


def test_every_pages_settings_survive_switching_pages():
    at = open_app(methods=["saliency"])
    for page, settings in SETTINGS.items():
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        for kind, key, value in settings:
            _widget(at, kind, key).set_value(value).run()
            assert not at.exception, (page, key, at.exception)
    at.switch_page("app_pages/methods.py").run()
    at.switch_page("app_pages/server.py").run()
    for page, settings in SETTINGS.items():
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        for kind, key, value in settings:
            assert _widget(at, kind, key).value == value, (page, key)
    assert at.multiselect(key="methods").value == ["saliency"] and at.selectbox(key="model_name").value == "synthetic_shapes"
