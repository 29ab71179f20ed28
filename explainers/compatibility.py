"""Which methods apply exactly, approximately or not at all to a model, read from one torch.fx trace (no forward pass).

No peer library has this: captum's Guided Backprop / DeconvNet / DeepLIFT rules see only the activation modules they
list, zennit's LRP rules are derived for ReLU nets without skip connections, and both fail silently otherwise. The
verdicts follow what *this project's* implementations do (``explainers.hooks.rectified_activations``: the rule at
every call of every ``core.fx.ACTIVATIONS`` module; ``explainers.canonical``: one module per call, BatchNorm folded,
residual sums as zennit ``Sum``; captum's DeepLIFT table extended by ``explainers.gradient.RESCALE_ACTIVATIONS``).
"""

from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from core.checks import as_module
from core.fx import ACTIVATIONS, trace
from core.model_state import model_lock
from explainers.registry import EXPLAINERS

RECTIFIERS = (nn.ReLU, nn.ReLU6)  # Guided Backprop, DeconvNet, LRP and PatternNet are defined for these gates
_FUNCTIONAL = {
    F.relu: "relu", torch.relu: "relu", F.relu6: "relu6", F.silu: "silu", F.gelu: "gelu", F.hardswish: "hardswish",
    F.leaky_relu: "leaky_relu", F.elu: "elu", F.hardtanh: "hardtanh", F.softplus: "softplus", torch.sigmoid: "sigmoid",
    torch.tanh: "tanh", F.mish: "mish", torch.relu_: "relu_", F.relu_: "relu_",
}
_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clamp", "clamp_"}
_EXTRA_ACTS = (nn.Sigmoid, nn.Tanh, nn.Mish, nn.PReLU, nn.SELU, nn.CELU, nn.Hardsigmoid)
_RESHAPES = {"flatten", "view", "reshape", "squeeze", torch.flatten, torch.squeeze}


@dataclass(frozen=True)
class Structure:
    """What the trace shows. ``activations``: "ReLU6 (module)" / "silu (functional)" -> calls. ``reused``: module name
    -> calls (> 1). ``inplace``: in-place ops (module names or op names). ``residual_adds``: tensor + tensor additions.
    ``batchnorm_folded`` / ``batchnorm_other``: BatchNorms right after a conv (foldable) / elsewhere (names).
    ``traced``: False when torch.fx failed and the rest comes from the module list (``note`` says so)."""

    traced: bool
    note: str
    activations: dict[str, int]
    reused: dict[str, int]
    inplace: list[str]
    residual_adds: int
    batchnorm_folded: int
    batchnorm_other: list[str]
    convs: int
    pooled_head: bool | None  # global average pooling then one Linear as the output (None: unknown)
    cam_layer: str | None
    scripted: bool = False
    activation_types: frozenset = field(default_factory=frozenset)  # module classes called
    functional: frozenset = field(default_factory=frozenset)  # functional activation names called


@dataclass(frozen=True)
class Verdict:
    method: str
    title: str
    verdict: str  # "exact" | "approximate" | "not applicable"
    reason: str


@dataclass(frozen=True)
class Report:
    """``structure`` of the model and one ``Verdict`` per registered method (registry order)."""

    structure: Structure
    verdicts: list[Verdict]

    def table(self) -> list[dict[str, str]]:
        """One row per method: method, title, verdict, reason."""
        return [{"method": v.method, "title": v.title, "verdict": v.verdict, "reason": v.reason} for v in self.verdicts]

    def verdict(self, method: str) -> Verdict:
        return next(v for v in self.verdicts if v.method == method)

    def summary(self) -> list[dict[str, str]]:
        """The structure as rows (what, value) for a table."""
        s = self.structure
        acts = ", ".join(f"{k} x{n}" for k, n in s.activations.items()) or "none found"
        reused = ", ".join(f"{k} x{n}" for k, n in s.reused.items()) or ("none" if s.traced else "unknown (not traced)")
        rows = [
            ("traced by torch.fx", "yes" if s.traced else f"no: {s.note}"),
            ("activations", acts),
            ("modules called more than once", reused),
            ("in-place ops", ", ".join(s.inplace) or "none"),
            ("residual additions", str(s.residual_adds) if s.traced else "unknown (not traced)"),
            ("BatchNorm", f"{s.batchnorm_folded} right after a conv (folded for LRP/DeepLIFT)" + (f"; elsewhere: {', '.join(s.batchnorm_other)}" if s.batchnorm_other else "")),
            ("CAM layer", s.cam_layer or "none (no nn.Conv2d)"),
            ("head", {True: "global average pooling + one linear layer", False: "not GAP + linear", None: "unknown"}[s.pooled_head]),
        ]
        return [{"what": a, "value": b} for a, b in rows]


def compatibility(model: Any, layer: str | None = None) -> Report:
    """The compatibility ``Report`` of ``model`` (``zoo.LoadedModel`` or ``nn.Module``; ``layer``: the CAM layer, by
    default the model's ``cam_layer`` or its last ``nn.Conv2d``). Traces once under the model's lock; runs nothing."""
    net = as_module(model)
    layer = layer or getattr(model, "cam_layer", None) or _last_conv(net)
    structure = _structure(net, layer)
    verdicts = []
    for name, spec in EXPLAINERS.items():
        verdict, reason = _judge(name, spec.family, structure)
        verdicts.append(Verdict(name, spec.title, verdict, reason))
    return Report(structure, verdicts)


def _last_conv(net: nn.Module) -> str | None:
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d) or getattr(m, "original_name", None) == "Conv2d"]
    return convs[-1] if convs else None


def _structure(net: nn.Module, layer: str | None) -> Structure:
    modules = dict(net.named_modules())
    convs = sum(isinstance(m, nn.Conv2d) for m in modules.values())
    if isinstance(net, torch.jit.ScriptModule):
        return _from_modules(net, layer, "a TorchScript model cannot be traced", scripted=True)
    try:
        with model_lock(net):
            gm = trace(net)
    except Exception as exc:  # noqa: BLE001  (any tracing failure: fall back, and say so)
        return _from_modules(net, layer, f"torch.fx could not trace it ({type(exc).__name__}: {str(exc)[:100]}); "
                             "read from the module list: functional activations, reuse and residual additions unknown")
    calls: Counter[str] = Counter()
    acts: Counter[str] = Counter()
    act_types, functional, inplace = set(), set(), []
    residual, bn_folded, bn_other = 0, 0, []
    for node in gm.graph.nodes:
        if node.op == "call_module":
            mod = modules[node.target]
            calls[node.target] += 1
            if isinstance(mod, ACTIVATIONS + _EXTRA_ACTS):
                acts[f"{type(mod).__name__} (module)"] += 1
                act_types.add(type(mod))
            if getattr(mod, "inplace", False) and calls[node.target] == 1:
                inplace.append(node.target)
            if isinstance(mod, nn.BatchNorm2d):
                src = node.args[0]
                foldable = isinstance(src, fx.Node) and src.op == "call_module" and isinstance(modules.get(src.target), nn.Conv2d) and len(src.users) == 1
                bn_folded += foldable
                if not foldable:
                    bn_other.append(node.target)
        elif node.op in ("call_function", "call_method"):
            fname = _FUNCTIONAL.get(node.target) if node.op == "call_function" else (node.target if node.target in _METHODS else None)
            if fname:
                acts[f"{fname} (functional)"] += 1
                functional.add(fname)
            if node.kwargs.get("inplace") or (node.op == "call_method" and str(node.target).endswith("_")) or node.target in (operator.iadd, torch.relu_, F.relu_):
                inplace.append(str(getattr(node.target, "__name__", node.target)))
            if node.target in (operator.add, operator.iadd, torch.add) and all(isinstance(a, fx.Node) for a in node.args[:2]):
                residual += 1
    return Structure(
        traced=True, note="", activations=dict(acts), reused={k: n for k, n in calls.items() if n > 1}, inplace=inplace,
        residual_adds=residual, batchnorm_folded=bn_folded, batchnorm_other=bn_other, convs=convs,
        pooled_head=_pooled_head(gm, modules), cam_layer=layer, activation_types=frozenset(act_types), functional=frozenset(functional),
    )


def _from_modules(net: nn.Module, layer: str | None, note: str, scripted: bool = False) -> Structure:
    """The fallback: what the module list alone shows (each activation module counted once)."""
    modules = dict(net.named_modules())
    acts = [m for m in modules.values() if isinstance(m, ACTIVATIONS + _EXTRA_ACTS)]
    return Structure(
        traced=False, note=note, activations=dict(Counter(f"{type(m).__name__} (module)" for m in acts)), reused={},
        inplace=[n for n, m in modules.items() if getattr(m, "inplace", False)], residual_adds=0, batchnorm_folded=0,
        batchnorm_other=[n for n, m in modules.items() if isinstance(m, nn.BatchNorm2d)],
        convs=sum(isinstance(m, nn.Conv2d) or getattr(m, "original_name", None) == "Conv2d" for m in modules.values()),
        pooled_head=None, cam_layer=layer, scripted=scripted, activation_types=frozenset(type(m) for m in acts),
    )


def _skip_reshapes(node: Any, modules: dict[str, nn.Module]) -> Any:
    while isinstance(node, fx.Node) and (node.target in _RESHAPES or (node.op == "call_module" and isinstance(modules.get(node.target), nn.Dropout))):
        node = node.args[0]
    return node


def _pooled_head(gm: fx.GraphModule, modules: dict[str, nn.Module]) -> bool:
    """Whether the output is one Linear on a global average pool (CAM's requirement)."""
    out = next(n for n in gm.graph.nodes if n.op == "output")
    fc = _skip_reshapes(out.args[0], modules)
    if not (isinstance(fc, fx.Node) and fc.op == "call_module" and isinstance(modules.get(fc.target), nn.Linear)):
        return False
    pool = _skip_reshapes(fc.args[0], modules)
    if not isinstance(pool, fx.Node):
        return False
    if pool.op == "call_module":
        m = modules.get(pool.target)
        return isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1))
    if pool.target in ("mean", torch.mean):
        dims = pool.args[1] if len(pool.args) > 1 else pool.kwargs.get("dim")
        return tuple(dims) == (2, 3) if isinstance(dims, (tuple, list)) else False
    return pool.target is F.adaptive_avg_pool2d and pool.args[1:2] in ((1,), ((1, 1),))


EXACT, APPROX, NA = "exact", "approximate", "not applicable"


def _names(types: set | frozenset) -> str:
    return ", ".join(sorted(t.__name__ for t in types))


def _rectified(s: Structure, what: str) -> tuple[str, str]:
    """Guided Backprop / DeconvNet: our rule at every call of every ``core.fx.ACTIVATIONS`` module."""
    if s.scripted:
        return NA, "TorchScript: the rule is attached by hooks, which a scripted model does not allow"
    if not s.activation_types and not s.functional:
        return NA, "no activation modules to attach the rule to"
    if s.functional:
        return APPROX, f"functional activations ({', '.join(sorted(s.functional))}) get no {what} rule: plain gradient there"
    hookless = {t for t in s.activation_types if not issubclass(t, ACTIVATIONS)}
    if hookless:
        return APPROX, f"{_names(hookless)} get no {what} rule: plain gradient there"
    other = {t for t in s.activation_types if not issubclass(t, RECTIFIERS)}
    if other:
        return APPROX, f"the rule is defined for ReLU gates; on {_names(other)} it is a generalization (their own derivative kept)"
    return EXACT, f"rule on every call of {_names(s.activation_types)} (reused and in-place modules included)"


def _deeplift(s: Structure) -> tuple[str, str]:
    """captum's DeepLIFT (rescale) on the canonical copy, its table extended by ``RESCALE_ACTIVATIONS``."""
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    from explainers.gradient import RESCALE_ACTIVATIONS

    if not s.traced:
        return NA, "runs on the canonical copy, which needs a torch.fx trace"
    if s.functional:
        return APPROX, f"functional activations ({', '.join(sorted(s.functional))}) are invisible to captum: treated as linear"
    unknown = {t for t in s.activation_types if t not in SUPPORTED_NON_LINEAR and not issubclass(t, RESCALE_ACTIVATIONS)}
    if unknown:
        return APPROX, f"captum has no rescale rule for {_names(unknown)}: treated as linear (plain gradient)"
    return EXACT, "rescale rule on every activation call (canonical copy: one module per call)"


def _relu_net(s: Structure, what: str) -> tuple[str, str]:
    """LRP / Deep Taylor / PatternNet: zennit or our rules on the canonical copy, derived for ReLU nets."""
    if not s.traced:
        return NA, f"{what} runs on the canonical copy, which needs a torch.fx trace"
    if s.residual_adds:
        return APPROX, f"{s.residual_adds} residual additions: the backward pass splits at each by a Sum rule (the paper has no skip connections)"
    other = {t for t in s.activation_types if not issubclass(t, RECTIFIERS)}
    if other or s.functional:
        names = ", ".join(sorted({t.__name__ for t in other} | set(s.functional)))
        return APPROX, f"rules derived for ReLU nets; {names} passed as identity"
    if s.batchnorm_other:
        return APPROX, f"BatchNorm not after a conv ({', '.join(s.batchnorm_other[:3])}): not folded, treated as a linear layer"
    return EXACT, "ReLU net without skip connections; BatchNorm folded into its conv"


def _cam(s: Structure, name: str) -> tuple[str, str]:
    if s.scripted:
        return NA, "TorchScript: the CAM layer is hooked, which a scripted model does not allow"
    if not s.convs or not s.cam_layer:
        return NA, "no nn.Conv2d: nothing to weight"
    if s.reused.get(s.cam_layer, 1) > 1:
        return NA, f"the CAM layer {s.cam_layer} is called {s.reused[s.cam_layer]} times per forward"
    if name == "cam" and s.pooled_head is False:
        return NA, "the head is not global average pooling + one linear layer"
    if name == "cam" and s.pooled_head is None:
        return EXACT, "head checked when it runs (not traced)"
    return EXACT, f"weights the feature maps of {s.cam_layer}"


def _fullgrad(s: Structure) -> tuple[str, str]:
    """FullGrad: input-gradient and bias-gradient terms; complete (they sum to the logit) only for piecewise-linear nets."""
    if s.scripted:
        return NA, "TorchScript: the biased layers are hooked, which a scripted model does not allow"
    smooth = {t for t in s.activation_types if not issubclass(t, (*RECTIFIERS, nn.LeakyReLU, nn.Hardtanh))}
    smooth_fn = {f for f in s.functional if "relu" not in f and f not in ("hardtanh", "clamp", "clamp_")}
    if smooth or smooth_fn:
        names = ", ".join(sorted({t.__name__ for t in smooth} | smooth_fn))
        return APPROX, f"the full-gradient decomposition is complete only for piecewise-linear nets; {names} are not"
    return EXACT, "input gradient and every bias gradient (Conv2d biases, BatchNorm's implicit bias)"


def _judge(name: str, family: str, s: Structure) -> tuple[str, str]:
    if name == "fullgrad":
        return _fullgrad(s)
    if name == "extremal_perturbation":
        return EXACT, "optimises a mask with autograd gradients of the logit: any differentiable model"
    if name in ("guided_backprop", "deconvolution"):
        return _rectified(s, "Guided Backprop" if name == "guided_backprop" else "DeconvNet")
    if name == "deeplift":
        return _deeplift(s)
    if family == "propagation" or name.startswith("pattern_"):
        return _relu_net(s, "LRP" if family == "propagation" else "PatternNet")
    if name == "guided_gradcam":
        cam_v, guided = _cam(s, name), _rectified(s, "Guided Backprop")
        return (cam_v if cam_v[0] != EXACT else guided) if (cam_v[0], guided[0]) != (EXACT, EXACT) else (EXACT, guided[1])
    if family == "cam":
        return _cam(s, name)
    if family == "control":
        return EXACT, "a control: uses nothing inside the model"
    if family == "perturbation":
        return EXACT, "forward passes only: any model"
    return EXACT, "autograd gradients of the logit: any differentiable model"
