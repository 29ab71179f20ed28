"""The compatibility report on the zoo's models and on small models built to trip each case."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import explainers
from explainers.compatibility import APPROXIMATE, EXACT, NOT_APPLICABLE


class Plain(nn.Module):
    """conv-BN-ReLU-conv-ReLU-GAP-linear: every method applies exactly."""

    def __init__(self, act: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1, self.bn1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, padding=1)
        self.act1, self.act2 = act or nn.ReLU(), act or nn.ReLU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.fc(h.mean(dim=(2, 3)))


class FunctionalRelu(Plain):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return self.fc(h.mean(dim=(2, 3)))


class ReusedInplaceResidual(Plain):
    """One in-place ReLU module called twice, a residual addition and a BatchNorm after the addition."""

    def __init__(self) -> None:
        super().__init__(nn.ReLU(inplace=True))
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.bn1(self.conv1(x)))
        h = self.bn2(self.act1(self.conv2(h)) + h)
        return self.fc(h.mean(dim=(2, 3)))


class NoConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(x.flatten(1)))


def test_a_plain_relu_conv_net_gets_exact_verdicts_for_every_method():
    report = explainers.compatibility(Plain())
    assert set(report.methods) == set(explainers.names())
    assert {v.status for v in report.methods.values()} == {EXACT}, [r for r in report.rows() if r["status"] != EXACT]
    assert report.structure.activations == {"ReLU (module)": 2}
    assert report.structure.batchnorm == {"after a conv": 1} and report.structure.residual_adds == 0
    assert report.peer_notes == ()


def test_functional_relu_makes_the_activation_rules_approximate():
    report = explainers.compatibility(FunctionalRelu())
    assert report.structure.activations == {"ReLU (function)": 2}
    for name in ("guided_backprop", "deconvolution", "deeplift", "guided_gradcam"):
        v = report.verdict(name)
        assert v.status == APPROXIMATE and "functional" in v.reason, (name, v)
    assert report.verdict("gradcam").status == EXACT and report.verdict("saliency").status == EXACT
    assert any("functional" in n for n in report.peer_notes)


def test_silu_is_approximate_for_the_activation_rules_fullgrad_lrp_and_deeplift():
    report = explainers.compatibility(Plain(nn.SiLU()))
    assert report.structure.activations == {"SiLU (module)": 2}
    for name in ("guided_backprop", "fullgrad", "lrp_epsilon_plus", "deep_taylor", "deeplift"):
        v = report.verdict(name)
        assert v.status == APPROXIMATE and "SiLU" in v.reason, (name, v)
    assert report.verdict("integrated_gradients").status == EXACT and report.verdict("hires_cam").status == EXACT


def test_reused_inplace_module_residual_add_and_unfoldable_batchnorm_are_reported():
    report = explainers.compatibility(ReusedInplaceResidual())
    s = report.structure
    assert s.reused == ("act1",)
    assert any(i.startswith("act1") for i in s.inplace)
    assert s.residual_adds == 1
    assert s.batchnorm == {"after a conv": 1, "elsewhere (cannot be folded)": 1}
    lrp = report.verdict("lrp_epsilon_plus")
    assert lrp.status == APPROXIMATE and "residual" in lrp.reason and "BatchNorm" in lrp.reason
    assert report.verdict("guided_backprop").status == EXACT, "our rule sits on every call, so reuse is handled"
    assert any("more than once" in n for n in report.peer_notes)


def test_a_reused_cam_layer_and_a_model_without_conv_are_not_applicable_for_cams():
    reused = explainers.compatibility(ReusedInplaceResidual())
    # the last Conv2d (conv2) is called once; name the reused activation as the CAM layer through a loaded-model-like object
    loaded = type("Loaded", (), {"model": ReusedInplaceResidual(), "cam_layer": "act1"})()
    assert explainers.compatibility(loaded).verdict("gradcam").status == NOT_APPLICABLE
    assert reused.verdict("gradcam").status == EXACT
    flat = explainers.compatibility(NoConv())
    for name in ("cam", "gradcam", "eigen_cam", "ablation_cam"):
        assert flat.verdict(name).status == NOT_APPLICABLE and "conv" in flat.verdict(name).reason


def test_an_untraceable_model_reports_why_and_refuses_graph_methods():
    class DataDependent(Plain):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # control flow on values: torch.fx cannot trace it
                x = -x
            return super().forward(x)

    report = explainers.compatibility(DataDependent())
    assert report.structure.trace_error and "trace" in report.summary()[0]
    assert report.verdict("deeplift").status == NOT_APPLICABLE and report.verdict("lrp_epsilon_plus").status == NOT_APPLICABLE
    assert report.verdict("saliency").status == EXACT


def test_zoo_models(shapes, lite0):
    small = explainers.compatibility(shapes)
    assert {v.status for v in small.methods.values()} == {EXACT}
    assert small.structure.activations == {"ReLU (module)": 4}
    lite = explainers.compatibility(lite0)  # structure only: one trace, no forward pass on data
    s = lite.structure
    assert s.activations == {"ReLU6 (module)": 33} and len(s.reused) == 16 and s.residual_adds == 9
    assert s.batchnorm == {"after a conv": 49}
    assert lite.verdict("deeplift").status == EXACT and lite.verdict("guided_backprop").status == EXACT
    assert lite.verdict("lrp_epsilon_plus").status == APPROXIMATE
