"""The contract every registered metric keeps, checked on the synthetic-shapes model with cheap settings: finite
scores [B] per method, the same seed gives the same scores, the model is left as it was (weights, buffers, hooks,
requires_grad, mode), the metadata the pages and the CLI print is there, and unknown parameters are refused."""

from __future__ import annotations

import pytest
import torch

import metrics
from core.errors import ParameterError
from core.model_state import hook_count

# Cheaper settings for the costly metrics; every other metric runs at its defaults.
CHEAP: dict[str, dict] = {
    "deletion": {"step": 512},
    "insertion": {"step": 512},
    "infidelity": {"n_samples": 5},
    "faithfulness_correlation": {"n_runs": 10},
    "sensitivity_n": {"n_runs": 10},
    "monotonicity_arya": {"step": 512},
    "monotonicity_nguyen": {"step": 512, "n_samples": 2},
    "irof": {"n_segments": 16},
    "local_lipschitz_estimate": {"n_samples": 2},
    "relative_input_stability": {"n_samples": 2},
    "relative_output_stability": {"n_samples": 2},
    "smooth_mprt": {"n_samples": 2},
}
METHODS = ("saliency", "gradcam")  # maps keyed by method name, so the metrics that recompute maps can


@pytest.fixture(scope="module")
def case(shapes):
    import explainers
    import zoo

    imgs, masks = zoo.sample_images(), zoo.sample_masks()
    names = ["shapes: circle", "shapes: cross"]
    x = torch.cat([shapes.preprocess(imgs[n]) for n in names])
    mask = torch.cat([shapes.preprocess_mask(masks[n]) for n in names])
    target = shapes.predict(x).argmax(1)
    maps = {m: explainers.explain(m, shapes, x, target) for m in METHODS}
    return x, target, mask, maps


def _state(model: torch.nn.Module) -> tuple:
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [p.requires_grad for p in model.parameters()],
        model.training,
        hook_count(model),
    )


@pytest.mark.parametrize("name", metrics.names())
def test_every_metric_keeps_the_contract(name, shapes, case) -> None:
    x, target, mask, maps = case
    spec = metrics.get(name)
    assert isinstance(spec.higher_is_better, bool) and spec.direction in ("higher is better", "lower is better")
    assert spec.category in metrics.CATEGORIES and spec.title and spec.paper and spec.conventions
    cost = spec.cost(spec.defaults(), 224, 224)
    assert isinstance(cost, int) and cost >= 0 and (cost > 0 or not spec.explains)
    for p in spec.params:
        assert p.check(p.default) == p.default
    before = _state(shapes.model)
    kw = {"mask": mask if spec.needs_mask else None, **CHEAP.get(name, {})}
    a = metrics.score(name, shapes, x, target, maps, seed=3, **kw)
    b = metrics.score(name, shapes, x, target, maps, seed=3, **kw)
    assert set(a) == set(METHODS)
    for m in METHODS:
        assert a[m].shape == (2,) and a[m].dtype == torch.float32, (m, a[m])
        assert torch.isfinite(a[m]).all(), (m, a[m])
        assert torch.equal(a[m], b[m]), "the same seed must give the same scores"
    after = _state(shapes.model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0]), "weights or buffers changed"
    assert before[1:] == after[1:], "requires_grad flags, mode and hooks must be as before"
    assert all(p.grad is None for p in shapes.model.parameters())
    with pytest.raises(ParameterError, match="no parameter"):
        metrics.score(name, shapes, x, target, maps, mask=kw["mask"], no_such_parameter=1)


def test_the_new_categories_and_modules_are_ordered() -> None:
    names = metrics.names()
    cats = [metrics.get(n).category for n in names]
    assert cats == sorted(cats, key=list(metrics.CATEGORIES).index), "names() lists the metrics category by category"
    assert {"robustness", "randomization"} <= set(cats)
    assert names.index("faithfulness_correlation") < names.index("monotonicity_arya") < names.index("irof") < names.index("average_drop")
    for n in ("local_lipschitz_estimate", "relative_input_stability", "relative_output_stability", "random_logit", "smooth_mprt", "efficient_mprt"):
        assert metrics.get(n).explains, n


def test_the_leaderboard_and_the_cli_take_the_new_metrics_from_the_registry(shapes, tmp_path) -> None:
    import json

    import explainers
    from metrics.__main__ import main
    from metrics.leaderboard import evaluate, image_set

    items, _ = image_set(shapes, "shapes: circle")
    params = {"faithfulness_correlation": {"n_runs": 10}}
    rows = evaluate(shapes, items, ["saliency", "gradcam"], ["faithfulness_correlation", "random_logit"], metric_params=params, seed=2)
    assert {(r["method"], r["metric"]) for r in rows} == {(m, k) for m in ("saliency", "gradcam") for k in ("faithfulness_correlation", "random_logit")}
    assert all(r["error"] == "" and r["target"] == items[0].label for r in rows)
    x, t = items[0].x, items[0].label
    maps = {m: explainers.explain(m, shapes, x, t, seed=2) for m in ("saliency", "gradcam")}
    for k in ("faithfulness_correlation", "random_logit"):
        direct = metrics.score(k, shapes, x, t, maps, seed=2, **params.get(k, {}))
        for r in (r for r in rows if r["metric"] == k):
            assert r["value"] == pytest.approx(float(direct[r["method"]][0]), abs=1e-6)
    out = tmp_path / "lb"
    args = ["--model", "synthetic_shapes", "--images", "shapes: circle", "--methods", "saliency", "--metrics", "irof,average_drop"]
    assert main([*args, "--set", "irof.n_segments=16", "--out", str(out)]) == 0
    report = json.loads((out / "leaderboard.json").read_text())
    assert report["metrics"]["irof"] == {"title": "IROF", "higher_is_better": True, "conventions": metrics.get("irof").conventions}
    assert {r["metric"] for r in report["summary"]} == {"irof", "average_drop"}
    assert main([*args, "--set", "irof.segments=16", "--out", str(tmp_path / "bad")]) == 2  # an unknown parameter: refused up front
