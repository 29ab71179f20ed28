"""Explainers: registry-driven invariants, then oracles and cross-checks against references."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F
from captum.attr import Deconvolution, GuidedBackprop, LayerAttribution, LayerGradCam
from torch import nn

import explainers
from core.errors import MethodNotApplicable, ParameterError
from core.model_state import hook_count
from explainers.canonical import canonical_copy
from tests.conftest import make_tiny

# Cheaper settings for the costly methods; every other method runs at its defaults.
FAST: dict[str, dict] = {
    "integrated_gradients": {"n_steps": 8},
    "smoothgrad": {"n_samples": 4},
    "vargrad": {"n_samples": 4},
    "gradient_shap": {"n_samples": 4, "n_baselines": 3},
    "rise": {"n_masks": 64, "cells": 4},
    "lime": {"n_samples": 40},
    "kernel_shap": {"n_samples": 40},
    "scorecam": {"max_channels": 16},
    "occlusion": {"window": 0.25, "stride": 0.25},
    "sobol": {"grid_size": 4, "n_design": 8},
    "extremal_perturbation": {"steps": 10},
}


def _state(model: nn.Module) -> tuple:
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [p.requires_grad for p in model.parameters()],
        model.training,
        hook_count(model),
    )


@pytest.fixture(scope="module")
def batch(shapes):
    import zoo

    imgs = zoo.sample_images()
    return torch.cat([shapes.preprocess(imgs["shapes: circle"]), shapes.preprocess(imgs["shapes: cross"])])


@pytest.mark.parametrize("name", explainers.names())
def test_every_method_shape_finite_deterministic_and_leaves_model_untouched(name, shapes, batch):
    before = _state(shapes.model)
    target = shapes.predict(batch).argmax(1)
    a = explainers.explain(name, shapes, batch, target, **FAST.get(name, {}))
    b = explainers.explain(name, shapes, batch, target, **FAST.get(name, {}))
    assert a.shape == (2, 64, 64) and a.dtype == torch.float32
    assert torch.isfinite(a).all()
    assert a.abs().sum() > 0, "an all-zero map"
    assert torch.equal(a, b), "same inputs and seed must give the same map"
    after = _state(shapes.model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1:] == after[1:], "requires_grad flags, mode and hooks must be as before"
    assert all(p.grad is None for p in shapes.model.parameters())
    if not explainers.get(name).stochastic:
        alone = explainers.explain(name, shapes, batch[:1], target[:1], **FAST.get(name, {}))
        torch.testing.assert_close(alone[0], a[0], rtol=1e-4, atol=1e-5 * float(a[0].abs().max()))


def test_a_model_in_train_mode_is_explained_in_eval_and_given_back_in_train(tiny, tiny_input):
    tiny.train()
    out = explainers.explain("saliency", tiny, tiny_input, 0)
    assert tiny.training
    tiny.eval()
    torch.testing.assert_close(out, explainers.explain("saliency", tiny, tiny_input, 0))


def test_seeds_change_stochastic_maps(shapes, batch):
    for name in ["random", "smoothgrad", "rise"]:
        p = FAST.get(name, {})
        a = explainers.explain(name, shapes, batch, 0, seed=1, **p)
        b = explainers.explain(name, shapes, batch, 0, seed=2, **p)
        assert not torch.equal(a, b), name


# ------------------------------------------------------------------------ oracles


def test_integrated_gradients_completeness(shapes, batch):
    """sum of IG = f(x) - f(baseline), within 1% (Sundararajan et al., axiom of completeness)."""
    target = shapes.predict(batch).argmax(1)
    attr = explainers.explain("integrated_gradients", shapes, batch, target, n_steps=64)
    with torch.no_grad():
        delta = shapes.model(batch).gather(1, target[:, None])[:, 0] - shapes.model(torch.zeros_like(batch)).gather(1, target[:, None])[:, 0]
    torch.testing.assert_close(attr.sum(dim=(1, 2)), delta, rtol=0.01, atol=0.0)


def test_deeplift_summation_to_delta_with_reused_relu6_batchnorm_and_residual(tiny, tiny_input):
    """DeepLIFT's rescale rule sums to f(x) - f(x') exactly, also with a ReLU6 called twice."""
    attr = explainers.explain("deeplift", tiny, tiny_input, 1)
    with torch.no_grad():
        delta = tiny(tiny_input)[:, 1] - tiny(torch.zeros_like(tiny_input))[:, 1]
    torch.testing.assert_close(attr.sum(dim=(1, 2)), delta, rtol=1e-3, atol=1e-5)


def test_saliency_of_a_linear_model_is_its_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    x = torch.randn(1, 3, 8, 8)
    sal = explainers.explain("saliency", model, x, 2)
    expected = model[1].weight[2].view(3, 8, 8).abs().amax(0)
    torch.testing.assert_close(sal[0], expected)
    ixg = explainers.explain("input_x_gradient", model, x, 2)
    torch.testing.assert_close(ixg[0], (model[1].weight[2].view(3, 8, 8) * x[0]).sum(0))


def test_gradcam_equals_hand_computation_and_captum(shapes, batch):
    target = torch.tensor([0, 3])
    ours = explainers.explain("gradcam", shapes, batch, target)
    # by hand from the paper's definition
    xg = batch.clone().requires_grad_(True)
    feats = shapes.model.features(xg)
    logits = shapes.model.fc(feats.mean(dim=(2, 3)))
    grads = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), feats)[0]
    alpha = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * feats).sum(1, keepdim=True))
    hand = F.interpolate(cam, size=(64, 64), mode="bilinear", align_corners=False)[:, 0].detach()
    torch.testing.assert_close(ours, hand, rtol=1e-4, atol=1e-5)
    layer = dict(shapes.model.named_modules())["features.9"]
    ref = LayerGradCam(shapes.model, layer).attribute(batch, target=target, relu_attributions=True)
    ref = LayerAttribution.interpolate(ref, (64, 64), interpolate_mode="bilinear")[:, 0]
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_cam_equals_weights_times_features_and_refuses_other_heads(shapes, batch):
    out = explainers.explain("cam", shapes, batch, 2)
    with torch.no_grad():
        feats = shapes.model.features(batch)
        hand = torch.einsum("k,bkhw->bhw", shapes.model.fc.weight[2], feats)
    torch.testing.assert_close(out, F.interpolate(hand[:, None], size=(64, 64), mode="bilinear", align_corners=False)[:, 0])
    two_layer_head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    with pytest.raises(MethodNotApplicable, match="not global average pooling"):
        explainers.explain("cam", two_layer_head, torch.randn(1, 3, 8, 8), 0, layer="1")
    # the other methods still work on that model
    assert explainers.explain("gradcam", two_layer_head, torch.randn(1, 3, 8, 8), 0, layer="1").shape == (1, 8, 8)


class BoxModel(nn.Module):
    """Class 0's logit depends only on the mean of channel 0 inside rows/cols 8..15."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        box = x[:, 0, 8:16, 8:16].mean(dim=(1, 2))
        return torch.stack([8 * (box - 0.5), torch.zeros_like(box)], dim=1)


def test_occlusion_finds_the_only_region_the_model_looks_at():
    x = torch.ones(1, 3, 32, 32)
    occ = explainers.explain("occlusion", BoxModel(), x, 0, window=0.125, stride=0.125)[0]
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[8:16, 8:16] = True
    assert (occ[~inside] == 0).all() and (occ[inside] > 0).all()


def test_rise_is_highest_where_the_model_looks():
    x = torch.ones(1, 3, 32, 32)
    sal = explainers.explain("rise", BoxModel(), x, 0, n_masks=400, cells=4)[0]
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[8:16, 8:16] = True
    assert sal[inside].mean() > 1.3 * sal[~inside].mean()
    peak = int(sal.argmax())
    assert inside.flatten()[peak]


def test_guided_backprop_and_deconvnet_match_captum_on_a_plain_relu_net(shapes, batch):
    for name, ref_cls in [("guided_backprop", GuidedBackprop), ("deconvolution", Deconvolution)]:
        ours = explainers.explain(name, shapes, batch, 1)
        ref = ref_cls(shapes.model).attribute(batch.clone(), target=1).abs().amax(1)
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-6)


def test_guided_backprop_applies_its_rule_on_a_reused_relu6(tiny, tiny_input):
    """The trap: captum's GuidedBackprop skips nn.ReLU6 and returns the plain gradient."""
    sal = explainers.explain("saliency", tiny, tiny_input, 0)
    ours = explainers.explain("guided_backprop", tiny, tiny_input, 0)
    captum = GuidedBackprop(tiny).attribute(tiny_input.clone(), target=0).abs().amax(1)
    torch.testing.assert_close(captum, sal)  # captum: no rule applied
    assert not torch.allclose(ours, sal, rtol=1e-3)
    # slow reference from the definition: grad with negative gradients zeroed at each ReLU6 call
    x = tiny_input.clone().requires_grad_(True)

    def guided(t: torch.Tensor) -> torch.Tensor:
        out = F.relu6(t)
        if out.requires_grad:
            out.register_hook(lambda g: g.clamp(min=0))
        return out

    h = guided(tiny.bn1(tiny.conv1(x)))
    h = guided(tiny.conv2(h)) + h
    y = tiny.fc(h.mean(dim=(2, 3)))
    (g,) = torch.autograd.grad(y[:, 0].sum(), x)
    torch.testing.assert_close(ours, g.abs().amax(1), rtol=1e-4, atol=1e-6)


def test_guided_backprop_differs_from_saliency_on_the_default_model(lite0):
    import zoo

    x = lite0.preprocess(zoo.sample_images()["chelsea"])
    target = int(lite0.predict(x).argmax())
    sal = explainers.explain("saliency", lite0, x, target)
    gb = explainers.explain("guided_backprop", lite0, x, target)
    dc = explainers.explain("deconvolution", lite0, x, target)
    assert not torch.allclose(gb, sal, rtol=0.05)
    assert not torch.allclose(dc, sal, rtol=0.05)
    # the canonical copy used by LRP / DeepLIFT computes the same function
    with torch.no_grad():
        torch.testing.assert_close(canonical_copy(lite0.model)(x), lite0.model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["lrp_epsilon_plus", "lrp_alpha_beta", "deep_taylor"])
def test_lrp_conserves_relevance_on_a_relu_net(name, shapes, batch):
    target = shapes.predict(batch).argmax(1)
    rel = explainers.explain(name, shapes, batch, target)
    with torch.no_grad():  # relevance starts from the logit without the output layer's bias (explainers.propagation)
        logit = shapes.model(batch).gather(1, target[:, None])[:, 0] - shapes.model.fc.bias[target]
    torch.testing.assert_close(rel.sum(dim=(1, 2)), logit.abs() if name == "deep_taylor" else logit, rtol=1e-3, atol=1e-4)


def test_lrp_epsilon_matches_the_rule_written_from_the_paper():
    """Dense ReLU net: Flat at the first layer, epsilon rule above (EpsilonPlusFlat on MLPs)."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x = torch.randn(1, 3, 2, 2)
    eps = 0.1
    ours = explainers.explain("lrp_epsilon_plus", model, x, 1, epsilon=eps)
    w1, w2 = model[1].weight, model[3].weight
    a0 = x.flatten(1)[0]
    a1 = F.relu(w1 @ a0 + model[1].bias)
    out = model(x)[0]
    r2 = torch.zeros(3)
    r2[1] = out[1] - model[3].bias[1]  # relevance starts from the logit without its bias
    z = w2 @ a1  # biases are left out of the rules (zero_params="bias")
    r1 = a1 * (w2.t() @ (r2 / (z + eps * torch.where(z >= 0, 1.0, -1.0))))
    r0 = torch.ones(12, 6) @ (r1 / 12)  # flat rule: every input of a neuron shares its relevance equally
    torch.testing.assert_close(ours[0], r0.view(3, 2, 2).sum(0), rtol=1e-4, atol=1e-6)


def test_controls():
    x = torch.full((1, 3, 16, 16), 0.3)
    assert explainers.explain("edge_sobel", nn.Identity(), x, 0).abs().max() == 0
    x[..., 8:] = 1.0
    edges = explainers.explain("edge_sobel", nn.Identity(), x, 0)[0]
    assert edges[:, 7:9].min() > 0 and edges[:, :6].max() == 0


def test_bad_inputs_raise_clear_errors(shapes, batch):
    with pytest.raises(ParameterError, match="out of range"):
        explainers.explain("saliency", shapes, batch, 99)
    with pytest.raises(ParameterError, match="entries"):
        explainers.explain("saliency", shapes, batch, torch.tensor([0, 1, 2]))
    with pytest.raises(ParameterError, match=r"\[B, C, H, W\]"):
        explainers.explain("saliency", shapes, batch[0], 0)
    with pytest.raises(ParameterError, match="NaN"):
        explainers.explain("saliency", shapes, batch * float("nan"), 0)
    with pytest.raises(ParameterError):
        explainers.explain("integrated_gradients", shapes, batch, 0, n_steps=0)
    with pytest.raises(KeyError):
        explainers.explain("no_such_method", shapes, batch, 0)


def test_concurrent_calls_on_one_model_match_single_calls(shapes, batch):
    names = ["guided_backprop", "gradcam", "lrp_epsilon_plus", "deeplift", "saliency", "deconvolution"]
    single = {n: explainers.explain(n, shapes, batch, 1) for n in names}
    results: dict[str, torch.Tensor] = {}
    errors: list[BaseException] = []

    def work(n: str) -> None:
        try:
            for _ in range(3):
                results[n] = explainers.explain(n, shapes, batch, 1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for n in names:
        torch.testing.assert_close(results[n], single[n], rtol=0, atol=1e-6)
    assert hook_count(shapes.model) == 0


def test_fresh_tiny_model_is_not_changed_by_lrp_copy():
    m = make_tiny()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    explainers.explain("lrp_epsilon_plus", m, torch.randn(1, 3, 8, 8), 0)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_tracing_in_one_thread_does_not_break_forward_passes_in_another(tiny, tiny_input):
    """torch.fx patches nn.Module.__call__ for the whole process while it traces: another session's forward
    must still run normally (the browser concurrency test found this)."""
    from core.fx import trace

    inside, release = threading.Event(), threading.Event()

    class Blocking(nn.Module):
        def forward(self, x):
            inside.set()
            release.wait(10)
            return x * 2

    class Traced(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = Blocking()
            self.lin = nn.Linear(4, 2)

        def forward(self, x):
            return self.lin(self.block(x))

    want = tiny(tiny_input)
    t = threading.Thread(target=lambda: trace(Traced()))
    t.start()
    assert inside.wait(10)  # the tracer is now mid-trace, with nn.Module.__call__ patched
    try:
        assert torch.equal(tiny(tiny_input), want)  # another thread's forward of an unrelated model
    finally:
        release.set()
        t.join(10)


def test_overlapping_traces_in_two_threads_both_succeed_and_leave_torch_unpatched():
    """torch.fx keeps its patches in one global "current patcher": a trace that begins while another is under
    way and ends after it used to revert the wrong patches, fail ("CURRENT_PATCHER is None") and leave the
    first tracer's nn.Module.__call__ installed for good, so later forwards in a thread with that id failed
    (a CI run of the real-server sessions test). Traces must not overlap."""
    from core.fx import trace

    call, getattr_ = nn.Module.__call__, nn.Module.__getattr__
    events = {k: threading.Event() for k in ("a_in", "a_go", "b_in", "b_go")}

    def blocking(entered: str, go: str) -> nn.Module:
        class Waits(nn.Module):
            def forward(self, x):
                events[entered].set()
                events[go].wait(10)
                return x * 2

        class Traced(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.waits, self.lin = Waits(), nn.Linear(4, 2)

            def forward(self, x):
                return self.lin(self.waits(x))

        return Traced()

    graphs, errors = {}, []

    def run(name: str, entered: str, go: str) -> None:
        try:
            graphs[name] = trace(blocking(entered, go))
        except Exception as exc:  # collected: the assertion below names it
            errors.append(exc)

    a = threading.Thread(target=run, args=("a", "a_in", "a_go"))
    b = threading.Thread(target=run, args=("b", "b_in", "b_go"))
    a.start()
    assert events["a_in"].wait(10)  # A is mid-trace
    b.start()
    events["b_in"].wait(1)  # B starts tracing too (unless traces are serialized: then it waits for A)
    events["a_go"].set()  # A ends first, B after it: the order that broke torch.fx's bookkeeping
    a.join(10)
    events["b_go"].set()
    b.join(10)
    assert not errors, errors
    assert nn.Module.__call__ is call and nn.Module.__getattr__ is getattr_
    x = torch.randn(3, 4)
    for g in graphs.values():
        assert [n.op for n in g.graph.nodes] == ["placeholder", "call_function", "call_module", "output"]  # x * 2, then the Linear
        torch.testing.assert_close(g(x), g.lin(2 * x))
