"""``explainers.compatibility``: the structure read from one torch.fx trace and the verdicts, on the zoo's models and
on tiny models built to trip each case (functional ReLU, a reused ReLU module, in-place ReLU, residual add, SiLU,
an untraceable forward, no conv, a head without pooling)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import explainers
from explainers.compatibility import Report, compatibility


class Net(nn.Module):
    """conv -> act -> conv -> act -> GAP -> fc; ``kind`` changes one thing."""

    def __init__(self, kind: str = "plain") -> None:
        super().__init__()
        self.kind = kind
        self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.act = {"silu": nn.SiLU(), "inplace": nn.ReLU(inplace=True)}.get(kind, nn.ReLU())
        self.act2 = nn.ReLU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.c1(x))
        if self.kind == "functional":
            h2 = F.relu(self.c2(h))
        elif self.kind == "reused":
            h2 = self.act(self.c2(h))
        elif self.kind == "residual":
            h2 = self.act2(self.c2(h)) + h
        else:
            h2 = self.act2(self.c2(h))
        return self.fc(h2.mean(dim=(2, 3)))


def verdicts(report: Report) -> dict[str, str]:
    return {r["method"]: r["verdict"] for r in report.table()}


def test_a_plain_relu_net_is_exact_for_every_method():
    report = compatibility(Net())
    assert report.structure.traced and report.structure.pooled_head
    assert report.structure.activations == {"ReLU (module)": 2}
    assert set(verdicts(report).values()) == {"exact"}
    assert [r["method"] for r in report.table()] == explainers.names()


def test_functional_relu_gets_no_rule():
    report = compatibility(Net("functional"))
    assert report.structure.activations == {"ReLU (module)": 1, "relu (functional)": 1}
    v = verdicts(report)
    for name in ("guided_backprop", "deconvolution", "deeplift", "lrp_epsilon_plus", "guided_gradcam"):
        assert v[name] == "approximate", name
    assert "functional" in report.verdict("guided_backprop").reason
    assert v["saliency"] == v["gradcam"] == v["occlusion"] == "exact"


def test_a_reused_relu_module_is_listed_and_handled():
    report = compatibility(Net("reused"))
    assert report.structure.reused == {"act": 2}
    assert verdicts(report)["guided_backprop"] == verdicts(report)["deeplift"] == "exact"


def test_a_reused_cam_layer_makes_cam_methods_not_applicable():
    report = compatibility(Net("reused"), layer="act")
    assert verdicts(report)["gradcam"] == verdicts(report)["ablation_cam"] == "not applicable"
    assert "called 2 times" in report.verdict("gradcam").reason


def test_inplace_relu_is_listed():
    report = compatibility(Net("inplace"))
    assert report.structure.inplace == ["act"]
    assert verdicts(report)["guided_backprop"] == "exact"


def test_a_residual_addition_makes_lrp_approximate():
    report = compatibility(Net("residual"))
    assert report.structure.residual_adds == 1
    v = verdicts(report)
    assert v["lrp_epsilon_plus"] == v["deep_taylor"] == v["pattern_net"] == "approximate"
    assert v["guided_backprop"] == v["deeplift"] == "exact"


def test_silu_is_a_generalization_for_the_rectifier_rules():
    report = compatibility(Net("silu"))
    assert "SiLU (module)" in report.structure.activations
    v = verdicts(report)
    assert v["guided_backprop"] == v["lrp_epsilon_plus"] == "approximate"
    assert v["deeplift"] == "approximate"  # captum has no rescale rule for SiLU: treated as linear
    assert "SiLU" in report.verdict("deeplift").reason


def test_an_untraceable_model_falls_back_and_says_so():
    class Branchy(Net):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                x = -x
            return super().forward(x)

    report = compatibility(Branchy())
    s = report.structure
    assert not s.traced and "could not trace" in s.note and s.pooled_head is None
    assert s.activations == {"ReLU (module)": 2}
    v = verdicts(report)
    assert v["lrp_epsilon_plus"] == v["deeplift"] == "not applicable"
    assert v["gradcam"] == v["saliency"] == "exact"
    assert report.summary()[0]["value"].startswith("no: torch.fx could not trace")


def test_no_conv_and_no_pooled_head():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2))
    assert verdicts(compatibility(mlp))["gradcam"] == "not applicable"
    unpooled = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    report = compatibility(unpooled)
    assert report.structure.pooled_head is False
    assert verdicts(report)["cam"] == "not applicable" and verdicts(report)["gradcam"] == "exact"


def test_the_synthetic_model_is_exact_everywhere(shapes):
    report = explainers.compatibility(shapes)
    assert report.structure.activations == {"ReLU (module)": 4} and report.structure.cam_layer == shapes.cam_layer
    assert set(verdicts(report).values()) == {"exact"}


def test_efficientnet_lite0_structure(lite0):
    """ReLU6 modules called twice per block, residual additions, BatchNorm after every conv: the rectifier rules are
    exact here (ours hook every call), LRP and PatternNet approximate (skip connections)."""
    report = compatibility(lite0)
    s = report.structure
    assert s.traced and set(s.activations) == {"ReLU6 (module)"} and s.residual_adds > 0
    assert s.reused and all(n == 2 for n in s.reused.values())
    assert s.batchnorm_folded > 0 and not s.batchnorm_other and s.pooled_head
    v = verdicts(report)
    assert v["guided_backprop"] == v["deeplift"] == v["gradcam"] == v["cam"] == "exact"
    assert v["lrp_epsilon_plus"] == v["pattern_attribution"] == "approximate"


def test_fullgrad_is_exact_on_relu_nets_and_approximate_on_smooth_activations():
    assert verdicts(compatibility(Net()))["fullgrad"] == verdicts(compatibility(Net("residual")))["fullgrad"] == "exact"
    silu = compatibility(Net("silu")).verdict("fullgrad")
    assert silu.verdict == "approximate" and "SiLU" in silu.reason and "piecewise-linear" in silu.reason
    assert verdicts(compatibility(Net("silu")))["sobol"] == verdicts(compatibility(Net("silu")))["extremal_perturbation"] == "exact"
