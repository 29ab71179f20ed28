"""Issue 14: completeness of the path methods, maps independent of the batch, LRP's sign on negative logits, and
Score-CAM's two weightings against pytorch-grad-cam."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import explainers
import metrics

# the stochastic methods at settings cheap enough for the 64 px model
CHEAP: dict[str, dict] = {
    "smoothgrad": {"n_samples": 4},
    "vargrad": {"n_samples": 4},
    "gradient_shap": {"n_samples": 4, "n_baselines": 3},
    "rise": {"n_masks": 32, "cells": 4},
    "lime": {"n_samples": 30},
    "kernel_shap": {"n_samples": 30},
    "sobol": {"grid_size": 4, "n_design": 8},
    "extremal_perturbation": {"steps": 10},
}
STOCHASTIC = [n for n in explainers.names() if explainers.get(n).stochastic]


@pytest.fixture(scope="module")
def shapes_batch(shapes):
    import zoo

    imgs = zoo.sample_images()
    return torch.cat([shapes.preprocess(imgs[f"shapes: {k}"]) for k in ("circle", "square", "triangle", "cross")])


# ---------------------------------------------------------------------------------- batch independence


def test_every_stochastic_method_is_listed():
    assert {"smoothgrad", "vargrad", "gradient_shap", "rise", "lime", "kernel_shap", "random"} <= set(STOCHASTIC)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_a_stochastic_map_depends_only_on_its_own_image(name, shapes, shapes_batch):
    """The same image, seed and model give the same map alone, first in a batch and second in a batch."""
    x, other = shapes_batch[1:2], shapes_batch[3:4]
    t = torch.tensor([1, 3])
    params = {"seed": 5, **CHEAP.get(name, {})}
    alone = explainers.explain(name, shapes, x, t[:1], **params)[0]
    first = explainers.explain(name, shapes, torch.cat([x, other]), t, **params)[0]
    second = explainers.explain(name, shapes, torch.cat([other, x]), t.flip(0), **params)[1]
    tol = 1e-6 * max(1.0, float(alone.abs().max()))
    torch.testing.assert_close(first, alone, rtol=0, atol=tol)
    torch.testing.assert_close(second, alone, rtol=0, atol=tol)


# ---------------------------------------------------------------------------------- completeness and diagnostics


def test_integrated_gradients_doubles_its_steps_until_complete(shapes, shapes_batch):
    x, t = shapes_batch[:2], torch.tensor([0, 1])
    fixed = explainers.explain_with_info("integrated_gradients", shapes, x, t, n_steps=2, tolerance=0.0)
    rough = fixed.diagnostics["completeness"]
    assert rough.ok is None and (rough.values["steps"] == 2).all()
    assert float(rough.values["error"].max()) > 0.05, "2 steps should not be complete here, or this test proves nothing"
    res = explainers.explain_with_info("integrated_gradients", shapes, x, t, n_steps=2, tolerance=0.01, max_steps=256)
    check = res.diagnostics["completeness"]
    assert check.ok.all() and (check.values["error"] <= 0.01).all() and (check.values["steps"] > 2).all()
    # the reported error is the map's own: |sum - (f(x) - f(x'))| / |f(x) - f(x')|
    with torch.no_grad():
        gap = shapes.model(x).gather(1, t[:, None])[:, 0] - shapes.model(torch.zeros_like(x)).gather(1, t[:, None])[:, 0]
    err = (res.maps.sum(dim=(1, 2)) - gap).abs() / gap.abs()
    torch.testing.assert_close(err, check.values["error"], rtol=1e-3, atol=1e-5)
    assert "steps" in res.captions(0)[0] and res.convention
    # the cap holds: a tolerance no step count meets stops at max_steps and says so
    capped = explainers.explain_with_info("integrated_gradients", shapes, x[:1], t[:1], n_steps=2, tolerance=1e-9, max_steps=8)
    assert int(capped.diagnostics["completeness"].values["steps"][0]) == 8
    assert capped.captions(0)[0].endswith("(check failed)")


def test_integrated_gradients_is_complete_at_the_defaults_on_lite0(lite0):
    """Sundararajan et al.'s check (within 5%) for every sample photo, on the default model, at the defaults."""
    import zoo

    photos = {k: v for k, v in zoo.sample_images().items() if not k.startswith("shapes")}
    errors = {}
    for name, img in photos.items():  # one call per photo: IG's passes hold batch_size path points per image
        x = lite0.preprocess(img)
        check = explainers.explain_with_info("integrated_gradients", lite0, x, lite0.predict(x).argmax(1)).diagnostics["completeness"]
        errors[name] = (check.value("error"), check.value("steps"))
    assert len(errors) == 6 and all(e <= 0.05 for e, _ in errors.values()), errors


def test_deeplift_and_gradient_shap_report_their_completeness(shapes, shapes_batch):
    x, t = shapes_batch[:2], torch.tensor([0, 1])
    dl = explainers.explain_with_info("deeplift", shapes, x, t).diagnostics["completeness"]
    assert dl.ok.all() and float(dl.values["error"].max()) < 1e-3  # summation-to-delta is exact on a ReLU net
    gs = explainers.explain_with_info("gradient_shap", shapes, x, t, n_samples=64).diagnostics["completeness"]
    assert gs.ok is None and (gs.values["draws"] == 64).all() and torch.isfinite(gs.values["error"]).all()


def test_explain_returns_the_maps_of_explain_with_info(shapes, shapes_batch):
    x, t = shapes_batch[:1], torch.tensor([0])
    res = explainers.explain_with_info("lrp_epsilon_plus", shapes, x, t)
    torch.testing.assert_close(res.maps, explainers.explain("lrp_epsilon_plus", shapes, x, t), rtol=0, atol=0)
    assert res.captions(0) == ["relevance at the input: 100.0% of the output relevance"]
    assert explainers.explain_with_info("saliency", shapes, x, t).diagnostics == {}


# ---------------------------------------------------------------------------------- LRP on negative logits


def _shifted(model: nn.Module, shift: float) -> nn.Module:
    """The same classifier with every logit lowered by ``shift`` (softmax, hence every probability, unchanged)."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        out.fc.bias -= shift
    return out.eval()


@pytest.mark.parametrize("name", ["lrp_epsilon_plus", "lrp_alpha_beta", "deep_taylor"])
def test_lrp_on_negative_logits_ranks_the_evidence_first(name, shapes, shapes_batch):
    x = shapes_batch[:3]  # circle, square, triangle
    t = shapes.predict(x).argmax(1)
    shifted = _shifted(shapes.model, 40.0)
    with torch.no_grad():
        assert (shifted(x).gather(1, t[:, None]) < 0).all(), "every target's logit must be negative here"
    maps = {"lrp": explainers.explain(name, shifted, x, t)}
    # a shift of all logits changes no probability, so it must not change the explanation
    torch.testing.assert_close(maps["lrp"], explainers.explain(name, shapes.model, x, t), rtol=1e-4, atol=1e-6)
    maps.update({f"random{s}": explainers.explain("random", shifted, x, t, seed=s) for s in range(3)})
    auc = {k: float(v.mean()) for k, v in metrics.deletion_insertion(shifted, x, maps, t, step=64, curves=("deletion",)).deletion_auc.items()}
    assert auc["lrp"] < min(auc[f"random{s}"] for s in range(3)), auc  # mean deletion AUC over the three images


def test_lrp_output_layer_hands_each_feature_its_contribution_for_any_logit_sign():
    """Montavon et al. 2019, Sec. 10.2: at the output layer R_j = a_j w_jc (the bias keeps its own share), whatever
    the sign of the logit; written by hand on a dense ReLU net (epsilon rule above a flat first layer)."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    with torch.no_grad():
        model[3].bias.copy_(torch.tensor([0.0, -50.0, 50.0]))  # logits of both signs, set by the bias
    x = torch.randn(1, 3, 2, 2)
    a1 = torch.relu(model[1](x.flatten(1)))[0]
    for c in range(3):
        contrib = a1 * model[3].weight[c]  # a_j w_jc
        expected = torch.ones(12, 6) @ (contrib / 12)  # flat rule below
        ours = explainers.explain("lrp_epsilon_plus", model, x, c, epsilon=1e-9)[0]
        torch.testing.assert_close(ours, expected.view(3, 2, 2).sum(0), rtol=1e-4, atol=1e-6)


def test_deep_taylor_is_positive_for_a_target_the_features_speak_against(shapes, shapes_batch):
    x = shapes_batch[:1]
    with torch.no_grad():
        logits = shapes.model(x)[0] - shapes.model.fc.bias
    t = int(logits.argmin())
    assert float(logits[t]) < 0
    res = explainers.explain_with_info("deep_taylor", shapes, x, t)
    assert float(res.maps.min()) >= 0 and float(res.maps.sum()) > 0
    assert "positive evidence" in res.convention


# ---------------------------------------------------------------------------------- Score-CAM against pytorch-grad-cam


def test_scorecam_channel_softmax_equals_pytorch_grad_cam(shapes, shapes_batch, monkeypatch):
    """pytorch-grad-cam weights the channels by a softmax over them of the target's logit; with its masks upsampled
    as ours (bilinear, align_corners=False, as the Score-CAM authors' code) the maps agree after min-max scaling."""
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    monkeypatch.setattr(nn, "UpsamplingBilinear2d", lambda size: nn.Upsample(size=size, mode="bilinear", align_corners=False))
    x = shapes_batch[1:3]
    t = shapes.predict(x).argmax(1)
    layer = dict(shapes.model.named_modules())[shapes.cam_layer]
    with pgc.ScoreCAM(model=shapes.model, target_layers=[layer]) as cam:
        peer = torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in t]))
    ours = explainers.explain("scorecam", shapes, x, t, weights="channel_softmax", batch_size=32)

    def unit(m: torch.Tensor) -> torch.Tensor:
        m = m - m.amin(dim=(1, 2), keepdim=True)
        return m / m.amax(dim=(1, 2), keepdim=True)

    torch.testing.assert_close(unit(ours), unit(peer.float()), rtol=0, atol=1e-5)
    # the default (the authors' probability weights) is another map
    assert (unit(explainers.explain("scorecam", shapes, x, t, batch_size=32)) - unit(peer.float())).abs().max() > 0.05
