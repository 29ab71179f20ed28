import pytest

import explainers
from core import Registry
from core.errors import ParameterError

EXPECTED = (
    "saliency input_x_gradient integrated_gradients smoothgrad vargrad gradient_shap guided_backprop "
    "deconvolution deeplift occlusion rise lime kernel_shap cam gradcam gradcam_plus_plus scorecam "
    "guided_gradcam hires_cam xgrad_cam layer_cam eigen_cam ablation_cam lrp_epsilon_plus lrp_alpha_beta deep_taylor pattern_net pattern_attribution random edge_sobel "
    "fullgrad sobol extremal_perturbation"
).split()


def test_every_required_method_is_registered():
    assert sorted(explainers.names()) == sorted(EXPECTED)


def test_duplicate_name_is_an_error():
    reg: Registry[int] = Registry("thing")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 2)
    with pytest.raises(KeyError, match="unknown thing 'b'"):
        reg.get("b")


def test_params_are_checked():
    spec = explainers.get("integrated_gradients")
    assert spec.resolve({})["n_steps"] == 32
    assert spec.resolve({"n_steps": 10.0})["n_steps"] == 10
    for bad in ({"n_steps": -1}, {"n_steps": 2.5}, {"n_steps": float("nan")}, {"baseline": "nope"}, {"colour": 1}):
        with pytest.raises(ParameterError):
            spec.resolve(bad)


def test_every_method_has_metadata_the_ui_needs():
    for name in explainers.names():
        spec = explainers.get(name)
        assert spec.family in explainers.FAMILIES and spec.paper and spec.library and spec.title
        fwd, fb = spec.cost(spec.defaults(), 224, 224, 1280)
        assert fwd >= 0 and fb >= 0
        for p in spec.params:
            assert p.check(p.default) == p.default
    assert len(explainers.default_methods()) >= 6


def test_registry_keys_are_function_names_and_seeds_are_accepted_by_every_method():
    import metrics

    for name, spec in explainers.EXPLAINERS.items():
        assert spec.fn.__name__ == name
        assert spec.stochastic == ("seed" in spec.param_map)
        resolved = spec.resolve({}, seed=7)
        assert resolved.get("seed", 7) == 7 and ("seed" in resolved) == spec.stochastic
    for name in metrics.names():
        assert metrics.get(name).fn.__name__ == name
    assert explainers.get("rise").resolve({"seed": 3}, seed=7)["seed"] == 3, "an explicit seed parameter wins"
    with pytest.raises(ParameterError, match="saliency has no parameter n_steps; it takes none"):
        explainers.get("saliency").resolve({"n_steps": 3})
