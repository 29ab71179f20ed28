"""Which methods apply exactly, approximately or not at all to a model, read from one torch.fx traced forward pass.

No peer library reports this: captum's Guided Backprop and DeepLIFT rules only see the activation modules they list
(``nn.ReLU``...), so on ReLU6, SiLU, GELU or functional activations they quietly return something else, and LRP
rules assume ReLU-type activations and stable residual sums. ``compatibility(model)`` traces the model once (no
forward pass on data), describes its structure and gives each registered method a verdict with its reason.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from core.checks import as_module
from core.fx import ACTIVATIONS, trace
from core.model_state import model_lock
from explainers.gradient import RESCALE_ACTIVATIONS
from explainers.hooks import has_conv
from explainers.registry import EXPLAINERS

EXACT, APPROXIMATE, NOT_APPLICABLE = "exact", "approximate", "not applicable"

# elementwise activations whose derivative is piecewise constant: the rules of Guided Backprop, DeconvNet and
# FullGrad's completeness are defined for them
PIECEWISE_LINEAR = ("ReLU", "ReLU6", "LeakyReLU", "Hardtanh")
_FUNCTIONAL: dict[Any, str] = {
    F.relu: "ReLU", torch.relu: "ReLU", F.relu_: "ReLU", torch.relu_: "ReLU", F.relu6: "ReLU6", F.leaky_relu: "LeakyReLU",
    F.hardtanh: "Hardtanh", F.elu: "ELU", F.silu: "SiLU", F.gelu: "GELU", F.hardswish: "Hardswish", F.mish: "Mish",
    F.softplus: "Softplus", torch.sigmoid: "Sigmoid", F.sigmoid: "Sigmoid", torch.tanh: "Tanh", F.tanh: "Tanh",
    F.hardsigmoid: "Hardsigmoid",
}  # fmt: skip
_METHODS = {"relu": "ReLU", "relu_": "ReLU", "sigmoid": "Sigmoid", "sigmoid_": "Sigmoid", "tanh": "Tanh", "tanh_": "Tanh"}
_MODULE_ACTS = (*ACTIVATIONS, nn.Sigmoid, nn.Tanh, nn.Mish, nn.Hardsigmoid)
_ADDS = (operator.add, operator.iadd, torch.add)


@dataclass(frozen=True)
class Verdict:
    """``status``: "exact", "approximate" or "not applicable"; ``reason``: why (empty when exact and obvious)."""

    status: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.status} ({self.reason})" if self.reason and self.status != EXACT else self.status


@dataclass(frozen=True)
class Structure:
    """What the traced graph shows. ``activations``: "SiLU (module)" / "relu (function)" -> calls; ``reused``: modules
    called more than once; ``inplace``: in-place operations; ``residual_adds``: additions of two computed tensors;
    ``batchnorm``: "after a conv" / "elsewhere" -> count; ``trace_error``: why tracing failed (then the rest is empty)."""

    activations: dict[str, int] = field(default_factory=dict)
    reused: tuple[str, ...] = ()
    inplace: tuple[str, ...] = ()
    residual_adds: int = 0
    batchnorm: dict[str, int] = field(default_factory=dict)
    has_conv: bool = False
    trace_error: str = ""

    def kinds(self) -> set[str]:
        """Activation kinds (e.g. {"ReLU6", "SiLU"}), module or function."""
        return {k.split(" (")[0] for k in self.activations}

    def functional(self) -> int:
        return sum(n for k, n in self.activations.items() if k.endswith("(function)"))


@dataclass(frozen=True)
class Report:
    """The model's ``structure``, each registered method's ``Verdict`` and notes on what peer libraries would do."""

    structure: Structure
    methods: dict[str, Verdict]
    peer_notes: tuple[str, ...] = ()

    def verdict(self, method: str) -> Verdict:
        return self.methods.get(method, Verdict(EXACT))

    def rows(self) -> list[dict[str, str]]:
        """One row per method: method, status, reason (for a table)."""
        return [{"method": m, "status": v.status, "reason": v.reason} for m, v in self.methods.items()]

    def summary(self) -> list[str]:
        """The structure in short lines."""
        s = self.structure
        if s.trace_error:
            return [f"torch.fx could not trace the model: {s.trace_error}"]
        acts = ", ".join(f"{k} x{n}" for k, n in sorted(s.activations.items())) or "none"
        bns = ", ".join(f"{n} {k}" for k, n in s.batchnorm.items()) or "none"
        return [
            f"activations: {acts}",
            f"modules called more than once: {', '.join(s.reused) or 'none'}",
            f"in-place operations: {', '.join(s.inplace) or 'none'}",
            f"residual additions: {s.residual_adds}",
            f"BatchNorm: {bns}",
        ]


def _activation(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    if node.op == "call_module" and isinstance(modules.get(node.target), _MODULE_ACTS):
        return f"{type(modules[node.target]).__name__} (module)"
    if node.op == "call_function" and node.target in _FUNCTIONAL:
        return f"{_FUNCTIONAL[node.target]} (function)"
    if node.op == "call_method" and node.target in _METHODS:
        return f"{_METHODS[node.target]} (function)"
    return None


def _inplace(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    if node.op == "call_module" and getattr(modules.get(node.target), "inplace", False):
        return f"{node.target} ({type(modules[node.target]).__name__}, inplace=True)"
    if node.op == "call_function" and (node.kwargs.get("inplace") or node.target in (operator.iadd, operator.imul, F.relu_, torch.relu_)):
        return f"{node.name} ({getattr(node.target, '__name__', node.target)})"
    if node.op == "call_method" and str(node.target).endswith("_") and not str(node.target).startswith("_"):
        return f"{node.name} (.{node.target})"
    return None


def _batchnorm_place(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    src = node.args[0] if node.args else None
    after_conv = isinstance(src, fx.Node) and src.op == "call_module" and isinstance(modules.get(src.target), nn.Conv2d)
    return "after a conv" if after_conv and len(src.users) == 1 else "elsewhere (cannot be folded)"


def structure(model: nn.Module) -> Structure:
    """The structure of ``model`` from one torch.fx trace (standard layers and their subclasses as leaves)."""
    try:
        with model_lock(model):
            gm = trace(model)
    except Exception as exc:  # noqa: BLE001  (any tracing failure is reported, not raised)
        return Structure(has_conv=has_conv(model), trace_error=f"{type(exc).__name__}: {str(exc)[:160]}")
    modules = dict(gm.named_modules())
    acts: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    inplace, bns = [], Counter()
    adds = 0
    for node in gm.graph.nodes:
        kind = _activation(node, modules)
        if kind:
            acts[kind] += 1
        if node.op == "call_module":
            calls[node.target] += 1
            if isinstance(modules.get(node.target), nn.BatchNorm2d):
                bns[_batchnorm_place(node, modules)] += 1
        where = _inplace(node, modules)
        if where and where not in inplace:
            inplace.append(where)
        if node.op == "call_function" and node.target in _ADDS and sum(isinstance(a, fx.Node) for a in node.args[:2]) == 2:
            adds += 1
    reused = tuple(n for n, c in calls.items() if c > 1)
    return Structure(dict(acts), reused, tuple(inplace), adds, dict(bns), has_conv(model))


def _cam_layer(model: Any, net: nn.Module) -> str | None:
    layer = getattr(model, "cam_layer", None)
    if layer:
        return layer
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def _cam(s: Structure, cam_layer: str | None, scripted: bool) -> Verdict:
    if scripted:
        return Verdict(NOT_APPLICABLE, "CAM methods hook a layer, which a TorchScript model does not allow")
    if not s.has_conv or cam_layer is None:
        return Verdict(NOT_APPLICABLE, "needs a convolutional layer, and the model has none")
    if cam_layer in s.reused:
        return Verdict(NOT_APPLICABLE, f"the CAM layer {cam_layer} is called more than once per forward pass")
    return Verdict(EXACT, f"on {cam_layer}")


def _rectified(s: Structure, what: str) -> Verdict:
    """Guided Backprop / DeconvNet: our rule sits on every call of every activation module (reuse and in-place are
    handled); functional activations and non-ReLU-type activations are where it is approximate."""
    reasons = []
    if s.functional():
        reasons.append(f"{s.functional()} functional activation call(s) get the plain gradient (the rule needs a module)")
    other = sorted(s.kinds() - set(PIECEWISE_LINEAR))
    if other:
        reasons.append(f"{what}'s rule is defined for ReLU; on {', '.join(other)} it is applied after their smooth derivative")
    if not s.activations:
        return Verdict(NOT_APPLICABLE, "the model has no activation to attach the rule to")
    return Verdict(APPROXIMATE, "; ".join(reasons)) if reasons else Verdict(EXACT)


def _deeplift(s: Structure) -> Verdict:
    from captum.attr._core import deep_lift as captum_deep_lift

    known = {c.__name__ for c in captum_deep_lift.SUPPORTED_NON_LINEAR} | {c.__name__ for c in RESCALE_ACTIVATIONS}
    reasons = []
    if s.functional():
        reasons.append(f"{s.functional()} functional activation call(s) are treated as linear (no rescale rule)")
    missing = sorted(k for k in s.kinds() if k not in known)
    if missing:
        reasons.append(f"captum has no rescale rule for {', '.join(missing)} and treats them as linear")
    return Verdict(APPROXIMATE, "; ".join(reasons) + ": summation-to-delta no longer holds") if reasons else Verdict(EXACT, "on the canonical copy")


def _lrp(s: Structure) -> Verdict:
    reasons = []
    other = sorted(s.kinds() - set(PIECEWISE_LINEAR))
    if other:
        reasons.append(f"LRP rules assume ReLU-type activations; {', '.join(other)} pass relevance through unchanged")
    if s.functional():
        reasons.append(f"{s.functional()} functional activation call(s) are outside zennit's rules")
    if s.batchnorm.get("elsewhere (cannot be folded)"):
        reasons.append("BatchNorm not directly after a conv cannot be folded and gets no LRP rule")
    if s.residual_adds:
        reasons.append(f"{s.residual_adds} residual additions: relevance is split in proportion to the branches, which can be unstable")
    return Verdict(APPROXIMATE, "; ".join(reasons)) if reasons else Verdict(EXACT, "on the canonical copy (BatchNorm folded)")


def _fullgrad(s: Structure, scripted: bool) -> Verdict:
    if scripted:
        return Verdict(NOT_APPLICABLE, "FullGrad hooks every biased layer, which a TorchScript model does not allow")
    other = sorted(s.kinds() - set(PIECEWISE_LINEAR))
    if other:
        return Verdict(APPROXIMATE, f"the full-gradient decomposition is complete only for piecewise-linear nets; {', '.join(other)} are not")
    return Verdict(EXACT)


def _verdict(name: str, s: Structure, cam_layer: str | None, scripted: bool) -> Verdict:
    family = EXPLAINERS.get(name).family
    graph_based = family == "propagation" or name == "deeplift"
    if s.trace_error and graph_based:
        return Verdict(NOT_APPLICABLE, f"needs the model's torch.fx graph, and tracing failed ({s.trace_error})")
    rules: dict[str, Callable[[], Verdict]] = {
        "guided_backprop": lambda: _rectified(s, "Guided Backprop"),
        "deconvolution": lambda: _rectified(s, "DeconvNet"),
        "deeplift": lambda: _deeplift(s),
        "fullgrad": lambda: _fullgrad(s, scripted),
    }
    if name in rules:
        return rules[name]()
    if name == "guided_gradcam":
        cam, guided = _cam(s, cam_layer, scripted), _rectified(s, "Guided Backprop")
        return cam if cam.status != EXACT else guided
    if family == "cam":
        return _cam(s, cam_layer, scripted)
    if family == "propagation":
        return _lrp(s)
    if family == "control":
        return Verdict(EXACT, "a control: does not depend on the model's structure")
    return Verdict(EXACT)


def _peer_notes(s: Structure) -> tuple[str, ...]:
    notes = []
    other = sorted(s.kinds() - {"ReLU"})
    if other or s.functional():
        seen = ", ".join(other + (["functional activations"] if s.functional() else []))
        notes.append(f"captum's GuidedBackprop / Deconvolution only rectify nn.ReLU modules: on {seen} they silently return plain gradients")
    if s.reused:
        notes.append(
            f"captum's DeepLift and zennit's rules break on modules called more than once ({len(s.reused)} here); this dashboard uses a canonical copy"
        )
    if s.residual_adds:
        notes.append("zennit's LRP on the raw model treats residual additions by gradient; this dashboard makes them Sum layers")
    return tuple(notes)


def compatibility(model: Any) -> Report:
    """The compatibility report of ``model`` (``zoo.LoadedModel`` or ``nn.Module``): its structure from one torch.fx
    trace, and for every registered method a ``Verdict`` ("exact", "approximate (why)", "not applicable (why)")::

        report = explainers.compatibility(zoo.load_model("efficientnet_lite0"))
        report.verdict("deeplift")   # Verdict(status="exact", reason="on the canonical copy")
    """
    net = as_module(model)
    scripted = isinstance(net, torch.jit.ScriptModule)
    s = structure(net)
    cam_layer = _cam_layer(model, net)
    return Report(s, {name: _verdict(name, s, cam_layer, scripted) for name in EXPLAINERS.names()}, _peer_notes(s))
