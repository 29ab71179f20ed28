"""The metrics added to the registry show up on the page of their kind: randomization metrics on the Sanity page,
stability metrics on the Robustness page; each scores the sidebar's methods on Run, equal to metrics.score."""

from __future__ import annotations

import pytest
import torch

import explainers
import metrics
import zoo
from tests.app.conftest import open_app


@pytest.mark.parametrize(("page", "scope", "metric"), [("sanity", "sanity_scores", "random_logit"), ("robustness", "robustness_scores", "local_lipschitz_estimate")])
def test_a_page_scores_the_maps_with_the_metrics_of_its_kind(page, scope, metric):
    at = open_app(page, methods=["saliency", "gradcam"], **{f"{scope}::metrics": [metric]})
    assert not at.exception, at.exception
    next(b for b in at.button if b.label == "Score the maps").click().run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "method" in d.value.columns and any(metrics.get(metric).title in c for c in d.value.columns))
    loaded = zoo.load_model("synthetic_shapes")
    x = loaded.preprocess(zoo.sample_images()["shapes: circle"])
    t = int(loaded.predict(x).argmax(1))
    want = metrics.score(metric, loaded, x, t, {"saliency": explainers.explain("saliency", loaded, x, t)}, method_params={"saliency": {}})["saliency"]
    got = table.set_index("method").loc["Saliency"].iloc[0]
    assert got == pytest.approx(float(want[0]), rel=1e-5, abs=1e-7)
    assert any(metrics.get(metric).conventions[:40] in c.value for c in at.caption)
    assert torch.isfinite(want).all()
