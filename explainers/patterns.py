"""Patterns learned from data for PatternNet and PatternAttribution (Kindermans et al. 2018, "Learning how to explain
neural networks: PatternNet and PatternAttribution", ICLR): the estimators, one pass over batches, save and load.

A layer's neurons are linear, y = w^T x + b: a conv's neuron is one output channel and its samples x are the
receptive-field patches of every position of every image (im2col, padding included as the conv pads); a linear
layer's neuron is one output and x its input vector. The pattern a of a neuron is the signal's direction in x,
estimated from the data; it has the weight's shape, and w^T a = 1 for every neuron (so PatternAttribution's
``w * a`` adds up to y). With E the mean over the samples of the regime named below, and cov_r(x, y) =
E_r[x y] - E_r[x] E_r[y]:

- ``linear`` (S_a): every sample; a = cov(x, y) / (w^T cov(x, y)) = cov(x, y) / var(y).
- ``two_component`` (S_a+-) for a layer whose only consumer is a ReLU-like gate: the samples where
  the gate passes the signal, +: a_+ = (E_+[x y] - E_+[x] E_+[y]) / (w^T E_+[x y] - w^T E_+[x] E_+[y]). The regime +
  is y > 0 for ``nn.ReLU`` and 0 < y < 6 for ``nn.ReLU6`` (our extension: above its clip ReLU6's output is constant
  and its derivative 0, as a ReLU's below 0; any ``nn.Hardtanh`` with min_val 0 likewise). a_- (the other samples) is
  never used: the gate stops the backward pass there, so it is not computed. A layer with no gate after it (the
  classifier, linear bottlenecks, a conv feeding a residual sum) gets S_a under both estimators.
- A residual addition (zennit ``Sum`` in the canonical copy) is a linear layer too: per channel, x = (u, v) the two
  branches, w = (1, 1), pattern [C, 2] with a_u + a_v = 1, estimated the same way.

A neuron with fewer than 2 samples in its regime, or whose y barely varies there (w^T cov <= 1e-9 E[y^2]), gets the
pattern 0 and is counted as degenerate. One pass over the data, batch by batch (never all activations at once): each
batch's centred moments (float32) are merged into float64 running moments (Chan et al.'s parallel formulas).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.func import functional_call
from zennit.layer import Sum

from core import progress
from core.checks import as_module, check_x
from core.errors import InputError, ParameterError
from core.model_state import fingerprint, model_lock, private_copy, using
from explainers.canonical import canonical_copy, forget

ESTIMATORS = ("two_component", "linear")
FORMAT = "attribution-dashboard patterns 1"
KERNELS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
DEGENERATE_REL = 1e-9
Regime = tuple[float, float] | None  # (low, high): low < y < high; None: every sample


@dataclass(frozen=True)
class Layer:
    """A layer that gets a pattern: ``kind`` "conv", "linear" or "sum"; ``gate``: the active regime of the ReLU-like
    activation that is its output's only consumer (None: no gate)."""

    name: str
    kind: str
    gate: Regime


def gate_regime(module: nn.Module) -> Regime:
    """(low, high) where a ReLU-like gate passes the signal (derivative 1), or None for any other module."""
    if isinstance(module, nn.ReLU):
        return (0.0, float("inf"))
    if isinstance(module, nn.Hardtanh) and module.min_val == 0:
        return (0.0, float(module.max_val))
    return None


def pattern_layers(gm: fx.GraphModule) -> dict[str, Layer]:
    """Every conv, linear and ``Sum`` module of a canonical copy, in graph order, with the gate that follows it."""
    modules = dict(gm.named_modules())
    out: dict[str, Layer] = {}
    for node in gm.graph.nodes:
        m = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(m, (*KERNELS, Sum)):
            continue
        kind = "sum" if isinstance(m, Sum) else "linear" if isinstance(m, nn.Linear) else "conv"
        users = list(node.users)
        gate = None
        if len(users) == 1 and users[0].op == "call_module":
            gate = gate_regime(modules[users[0].target])
        out[node.target] = Layer(node.target, kind, gate)
    return out


@dataclass(frozen=True)
class Patterns:
    """Learned patterns: ``tensors`` maps a layer name of the model's canonical copy to its pattern (float32, the
    shape of the layer's weight; [C, 2] for a residual ``Sum``). ``estimator``: "two_component" or "linear";
    ``data``: what the patterns were learned from; ``fingerprint``: the weights they belong to
    (``core.model_state.fingerprint``); ``layers``: per layer, its kind, regime, samples per neuron (min) and
    degenerate neurons."""

    tensors: dict[str, torch.Tensor]
    estimator: str
    data: str
    n_images: int
    fingerprint: str
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: str = ""

    def meta(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "data": self.data,
            "n_images": self.n_images,
            "fingerprint": self.fingerprint,
            "layers": self.layers,
            "created": self.created,
        }

    def save(self, path: str | Path) -> Path:
        """Write one safetensors file (tensors + this metadata as JSON in its header); atomic (temporary file, then
        rename). No pickle."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.tensors.items()}
        tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
        try:
            tmp.write_bytes(safetensors_bytes(tensors, metadata={"format": FORMAT, "meta": json.dumps(self.meta())}))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Patterns:
        """Read a file written by ``save``; ``InputError`` if it is not one."""
        try:
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            raise InputError(f"{path} is not a patterns file that can be read ({type(exc).__name__}: {str(exc)[:120]})") from exc
        if header.get("format") != FORMAT:
            raise InputError(f"{path} is not a patterns file of this project (format {header.get('format')!r})")
        try:
            return cls(tensors=tensors, **json.loads(header["meta"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path} is not a patterns file of this project: its metadata is damaged ({exc})") from exc

    def to(self, device: torch.device) -> dict[str, torch.Tensor]:
        return {k: v.to(device) for k, v in self.tensors.items()}


class _Moments:
    """Running moments of one layer's neurons in one regime, float64, merged batch by batch with Chan et al.'s
    parallel formulas (exact; no E[xy] - E[x] E[y] cancellation): count n and mean y, sum of squared deviations of y
    (per neuron), mean x and co-moment sum (x - mean x)(y - mean y) (weight-shaped)."""

    def __init__(self) -> None:
        self.parts: list[torch.Tensor] | None = None

    def add(self, n: torch.Tensor, my: torch.Tensor, m2y: torch.Tensor, mx: torch.Tensor, cxy: torch.Tensor) -> None:
        new = [t.detach().double() for t in (n, my, m2y, mx, cxy)]
        if self.parts is None:
            self.parts = new
            return
        (na, mya, m2a, mxa, ca), (nb, myb, m2b, mxb, cb) = self.parts, new
        shape = (-1,) + (1,) * (mxa.dim() - 1)
        n = na + nb
        frac = torch.where(n > 0, nb / n.clamp(min=1), torch.zeros_like(n))
        dy, dx = myb - mya, mxb - mxa
        self.parts = [n, mya + dy * frac, m2a + m2b + dy * dy * na * frac, mxa + dx * frac.view(shape), ca + cb + dx * (dy * na * frac).view(shape)]

    def pattern(self, w: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, Any]]:
        """The pattern cov / (w^T cov) per neuron (0 for a degenerate one) and a summary; ``w`` None: a ``Sum``'s ones."""
        if self.parts is None:
            raise ParameterError("no data reached this layer: the batches were empty")
        n, my, m2y, _, cxy = self.parts
        w = torch.ones_like(cxy) if w is None else w.double()
        shape = (-1,) + (1,) * (w.dim() - 1)
        cov = cxy / n.clamp(min=1).view(shape)
        d = (w * cov).flatten(1).sum(1)
        ey2 = m2y / n.clamp(min=1) + my * my
        ok = (n >= 2) & (d > 0) & (d > DEGENERATE_REL * ey2)
        a = torch.where(ok.view(shape), cov / torch.where(ok, d, torch.ones_like(d)).view(shape), torch.zeros_like(cov))
        return a.float(), {"samples_min": int(n.min()), "degenerate": int((~ok).sum())}


def _per_neuron(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum over every dim but ``dim`` -> [N]."""
    return t.movedim(dim, 0).flatten(1).sum(1)


def _mask(y: torch.Tensor, regime: Regime) -> torch.Tensor:
    if regime is None:
        return torch.ones_like(y)
    return ((y > regime[0]) & (y < regime[1])).to(y.dtype)


def _centred(y: torch.Tensor, regime: Regime, dim: int) -> tuple[torch.Tensor, ...]:
    """Mask m, count n, mean y, m (y - mean y), its sum of squares: the per-neuron moments of y in ``regime``."""
    m = _mask(y, regime)
    n = _per_neuron(m, dim)
    my = _per_neuron(m * y, dim) / n.clamp(min=1)
    shape = [1] * y.dim()
    shape[dim] = -1
    yc = m * (y - my.view(shape))
    return m, n, my, yc, _per_neuron(yc * yc, dim)


def _kernel_moments(module: nn.Module, x: torch.Tensor, regimes: list[Regime]) -> list[tuple[torch.Tensor, ...]]:
    """One batch's moments for a conv or linear layer, by autograd: the sum over samples of m x (resp. m (y - mean y)
    x) is the weight gradient of <m, conv(x; w)> (resp. <m (y - mean y), ...>), whatever the padding (the layer's own
    forward runs), stride, dilation or groups. Within the batch in float32 (float64 convolutions are 3-5x slower on
    CPU); merged across batches in float64."""
    w = module.weight.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = functional_call(module, {"weight": w}, (x.detach(),))
    dim = -1 if isinstance(module, nn.Linear) else 1
    out = []
    for regime in regimes:
        m, n, my, yc, m2y = _centred(y.detach(), regime, dim)
        sx, cxy = torch.autograd.grad(y, w, grad_outputs=torch.stack([m, yc]), retain_graph=True, is_grads_batched=True)[0]
        out.append((n, my, m2y, sx / n.clamp(min=1).view((-1,) + (1,) * (w.dim() - 1)), cxy))
    return out


def _sum_moments(stacked: torch.Tensor, regimes: list[Regime]) -> list[tuple[torch.Tensor, ...]]:
    """One batch's moments for a residual ``Sum`` over stacked branches [B,C,...,2]: per channel, x = the two
    branches, y = their sum."""
    s = stacked.detach()
    out = []
    for regime in regimes:
        m, n, my, yc, m2y = _centred(s.sum(-1), regime, 1)
        sx = (m.unsqueeze(-1) * s).movedim(1, 0).flatten(1, -2).sum(1)  # [C, 2]
        cxy = (yc.unsqueeze(-1) * s).movedim(1, 0).flatten(1, -2).sum(1)
        out.append((n, my, m2y, sx / n.clamp(min=1).view(-1, 1), cxy))
    return out


def _regimes(layer: Layer, estimators: Iterable[str]) -> list[Regime]:
    """The regimes whose sums the estimators need, each once: None (S_a) and/or the gate's (S_a+-)."""
    need = [None if e == "linear" or layer.gate is None else layer.gate for e in estimators]
    return list(dict.fromkeys(need))


def fit(model: Any, batches: Iterable[torch.Tensor], *, estimator: str = "two_component", data: str = "unnamed data") -> Patterns:
    """Learn the patterns of every conv, linear and residual-sum layer of ``model``'s canonical copy from ``batches``
    (tensors [B,C,H,W] in the model's input space, e.g. ``LoadedModel.normalize(pixels)``), with ``estimator``
    "two_component" (S_a+-) or "linear" (S_a); ``data`` describes the batches. One pass; ``core.progress.tick`` per
    batch (a reporter may cancel)."""
    return fit_estimators(model, batches, (estimator,), data=data)[estimator]


def fit_estimators(model: Any, batches: Iterable[torch.Tensor], estimators: Iterable[str] = ESTIMATORS, *, data: str = "unnamed data") -> dict[str, Patterns]:
    """``fit`` for several estimators in one pass over the data (the sums they share are computed once). Runs on a
    private copy of the model: the shared model's lock is held only to copy it, not for the minutes a fit takes."""
    estimators = tuple(dict.fromkeys(estimators))
    bad = [e for e in estimators if e not in ESTIMATORS]
    if bad or not estimators:
        raise ParameterError(f"estimator must be one of {', '.join(ESTIMATORS)}; got {', '.join(bad) or 'none'}")
    net = as_module(model)
    with model_lock(net):
        fp = fingerprint(net)
    private = private_copy(net)
    try:
        with using(private) as hooks, torch.no_grad():
            gm = canonical_copy(private)
            layers = pattern_layers(gm)
            sums = {(name, r): _Moments() for name, layer in layers.items() for r in _regimes(layer, estimators)}
            _attach_statistics(gm, layers, estimators, sums, hooks)
            n_images = _run(gm, batches)
    finally:
        forget(private)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return {e: _patterns(gm, layers, e, sums, data=data, n_images=n_images, fp=fp, created=created) for e in estimators}


def _run(gm: fx.GraphModule, batches: Iterable[torch.Tensor]) -> int:
    """Forward every batch (the hooks gather the moments), ticking ``core.progress``; returns the number of images."""
    device = next(gm.parameters()).device
    n_images = 0
    for i, x in enumerate(batches):
        progress.tick(f"learning patterns: batch {i + 1} ({n_images} images so far)")
        x = check_x(x).to(device)
        gm(x)
        n_images += x.shape[0]
    if n_images == 0:
        raise ParameterError("no images to learn patterns from: the batches were empty")
    return n_images


def outer_calls_only(hook: Callable[..., Any]) -> Callable[..., Any]:
    """A forward hook that is skipped while it runs itself: its ``functional_call`` of the same module would call it
    again."""
    busy: list[bool] = []

    def wrapped(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> Any:
        if busy:
            return None
        busy.append(True)
        try:
            return hook(module, inputs, out)
        finally:
            busy.pop()

    return wrapped


def _attach_statistics(gm: fx.GraphModule, layers: dict[str, Layer], estimators: tuple[str, ...], sums: dict, hooks: Any) -> None:
    """Forward hooks that add each batch's moments of each layer to ``sums``."""

    def make(layer: Layer) -> Callable[..., None]:
        regimes = _regimes(layer, estimators)

        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            parts = _sum_moments(inputs[0], regimes) if layer.kind == "sum" else _kernel_moments(module, inputs[0], regimes)
            for regime, p in zip(regimes, parts, strict=True):
                sums[(layer.name, regime)].add(*p)

        return outer_calls_only(hook)

    for name, layer in layers.items():
        hooks.forward(gm.get_submodule(name), make(layer))


def _patterns(gm: fx.GraphModule, layers: dict[str, Layer], estimator: str, sums: dict, *, data: str, n_images: int, fp: str, created: str) -> Patterns:
    tensors, info = {}, {}
    for name, layer in layers.items():
        regime = _regimes(layer, (estimator,))[0]
        acc = sums[(name, regime)]
        tensors[name], summary = acc.pattern(None if layer.kind == "sum" else gm.get_submodule(name).weight)
        info[name] = {"kind": layer.kind, "regime": _regime_text(regime), **summary}
    return Patterns(tensors=tensors, estimator=estimator, data=data, n_images=n_images, fingerprint=fp, layers=info, created=created)


def _regime_text(regime: Regime) -> str:
    if regime is None:
        return "all samples"
    return "y > 0" if regime[1] == float("inf") else f"0 < y < {regime[1]:g}"
