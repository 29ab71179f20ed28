"""What a method sees of the model, and the machinery that keeps the shared model untouched.

- ``model_lock(model)``: one re-entrant lock per model object; every explainer runs under it,
  so two sessions never see each other's hooks on a shared cached model.
- ``rectified_activations(...)``: the Guided Backprop / DeconvNet backward rules attached by a
  forward hook on *each call* of every activation module (EfficientNet-Lite0 reuses one
  ``nn.ReLU6`` twice per block; captum's rules only cover ``nn.ReLU`` and would silently
  return the plain gradient there). Removed on exit.
- ``private_copy(model)``: a deep copy taken under the model's lock with every module hook
  dropped, so a hook that a computation has attached for the moment (a progress tick, a CAM
  capture, a backward rule) never becomes part of a cached copy.
- ``canonical_copy(model)``: an fx-traced private copy (built once per model) in which every
  activation call has its own module, BatchNorm is folded into the preceding convolution and
  residual additions are ``zennit.layer.Sum`` modules. LRP rules and DeepLIFT's rescale rule
  are applied to that copy, where they are well defined; the shared model is never modified.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import operator
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from zennit.layer import Sum

from core.errors import MethodNotApplicable
from core.locks import RNG_LOCK, model_lock  # noqa: F401  (re-exported: explainers.context.model_lock)

ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Softplus,
)


@dataclass
class Context:
    """A method's view of the model.

    ``model``: eval mode, parameters frozen. ``layer``: name of the module whose output is
    the CAM feature map (None: the model's last ``nn.Conv2d``). ``bounds``: the input domain's lowest and highest
    values per channel, [1,3,1,1] each (the normalized images of black and white pixels).
    """

    model: nn.Module
    layer: str | None = None
    bounds: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """Logits for a batch, evaluated ``chunk`` images at a time (no grad)."""
        with torch.no_grad():
            return torch.cat([self.model(x[i : i + chunk]) for i in range(0, len(x), chunk)])

    def layer_module(self) -> nn.Module:
        """The CAM layer: ``layer`` by name, else the model's last ``nn.Conv2d`` (in module order)."""
        modules = dict(self.model.named_modules())
        if not self.layer:
            convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
            if not convs:
                raise MethodNotApplicable("needs a convolutional layer to hook, and this model has none")
            self.layer = convs[-1]
        if self.layer not in modules:
            raise MethodNotApplicable(f"the CAM layer {self.layer!r} is not a module of this model")
        return modules[self.layer]

    def pixel_bounds(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.bounds is not None:
            return self.bounds[0].to(x), self.bounds[1].to(x)
        return x.amin(dim=(0, 2, 3), keepdim=True), x.amax(dim=(0, 2, 3), keepdim=True)


def require_module_model(model: nn.Module, what: str) -> None:
    """Refuse TorchScript models for methods that hook the model's layers (hooks cannot be added after scripting)."""
    if isinstance(model, torch.jit.ScriptModule):
        raise MethodNotApplicable(f"{what}: this method hooks the model's layers, which a TorchScript model does not allow")


def has_conv(model: nn.Module) -> bool:
    """Whether the model has a 2-D convolution (for TorchScript models: by the scripted module's original class)."""
    return any(isinstance(m, nn.Conv2d) or getattr(m, "original_name", None) == "Conv2d" for m in model.modules())


@contextlib.contextmanager
def forward_hooks(model: nn.Module, hooks: dict[nn.Module, object]) -> Iterator[None]:
    """Register forward hooks (module -> hook fn) and remove them all on exit."""
    handles = [m.register_forward_hook(h) for m, h in hooks.items()]  # type: ignore[arg-type]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class _GuidedGrad(torch.autograd.Function):
    """Identity forward; backward keeps only positive gradients (the activation's own
    derivative is then applied by its backward): Guided Backprop (Springenberg et al. 2015)."""

    @staticmethod
    def forward(ctx, out):  # type: ignore[override]
        return out.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad.clamp(min=0)


class _DeconvGrad(torch.autograd.Function):
    """Forward returns the activation's output; backward sends ReLU(grad) straight to the
    activation's input, skipping its derivative: DeconvNet (Zeiler & Fergus 2014)."""

    @staticmethod
    def forward(ctx, inp, out):  # type: ignore[override]
        return out.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad.clamp(min=0), None


@contextlib.contextmanager
def rectified_activations(model: nn.Module, mode: str) -> Iterator[int]:
    """Apply the guided (``mode="guided"``) or deconvnet rule at every activation call."""
    require_module_model(model, "Guided Backprop / DeconvNet")
    acts = [m for m in model.modules() if isinstance(m, ACTIVATIONS)]
    if not acts:
        raise MethodNotApplicable("the model has no activation modules (nn.ReLU, nn.ReLU6, ...) to attach the rule to")
    inplace = {m: m.inplace for m in acts if getattr(m, "inplace", False)}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        if mode == "guided":
            return _GuidedGrad.apply(output)
        return _DeconvGrad.apply(inputs[0], output)

    for m in inplace:
        m.inplace = False
    try:
        with forward_hooks(model, dict.fromkeys(acts, hook)):
            yield len(acts)
    finally:
        for m, flag in inplace.items():
            m.inplace = flag


@contextlib.contextmanager
def capture_layer(module: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Store the module's output (with grad kept) under ``store["act"]`` during a forward."""
    store: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _i: tuple, out: torch.Tensor) -> None:
        if "act" in store:
            raise MethodNotApplicable("the CAM layer is called more than once per forward pass")
        if out.requires_grad:
            out.retain_grad()
        store["act"] = out

    with forward_hooks(module, {module: hook}):
        yield store


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run with torch's and numpy's global RNGs seeded, restored afterwards (captum samples
    from both: GradientShap draws its baselines and alphas with numpy)."""
    with RNG_LOCK:
        devices = [device] if device.type == "cuda" else []
        np_state = np.random.get_state()
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            try:
                yield
            finally:
                np.random.set_state(np_state)


# --- private copies -------------------------------------------------------------------

_HOOKS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with no module hooks, copied under the model's lock.

    The lock keeps the copy from catching another session's half-made changes (hooks being added while
    they are copied); dropping the hooks keeps transient ones of the calling computation (progress ticks,
    CAM captures, Guided Backprop rules) out of copies that are cached and reused.
    """
    with model_lock(model):
        private = copy.deepcopy(model)
    if not isinstance(private, torch.jit.ScriptModule):
        for m in private.modules():
            for name in _HOOKS:
                hooks = getattr(m, name, None)
                if hooks:
                    hooks.clear()
            if getattr(m, "_is_full_backward_hook", None) is not None:
                m._is_full_backward_hook = None
    return private.eval()


# --- the canonical copy for LRP and DeepLIFT -------------------------------------------

_LEAVES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Dropout) + ACTIVATIONS


FX_LOCK = threading.Lock()  # held while torch.fx traces, and while torch.compile compiles (see _Tracer)


class _Tracer(fx.Tracer):
    """Treat subclasses of standard layers (e.g. EfficientNet's same-padding conv) as leaves.

    Thread-safe: while it traces, torch.fx patches ``nn.Module.__call__`` and ``__getattr__`` for the whole
    process, so another session's forward pass (of any model) would run through this tracer and fail with
    "module is not installed as a submodule": calls from other threads go straight to the original methods.
    And torch.fx keeps its patches in one global "current patcher": two traces that overlap and end in the
    order they began revert each other's patches, leave a tracer's ``__call__`` installed for good and fail
    the second trace; torch.compile (dynamo) also takes the current patcher's patches off while it compiles.
    So traces and compilations run one at a time (``FX_LOCK``: nothing else is locked while it is held).
    """

    def trace(self, root: nn.Module, concrete_args: dict | None = None) -> fx.Graph:  # type: ignore[override]
        with FX_LOCK:
            self._thread = threading.get_ident()
            return super().trace(root, concrete_args)

    def call_module(self, m: nn.Module, forward, args, kwargs):  # type: ignore[no-untyped-def]
        if threading.get_ident() != self._thread:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val, parameter_proxy_cache: dict):  # type: ignore[no-untyped-def]
        if threading.get_ident() != self._thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.GraphModule:
    """A torch.fx GraphModule of ``model`` (standard layers and their subclasses kept as leaves); shares its modules."""
    return fx.GraphModule(model, _Tracer().trace(model))


_CANONICAL: weakref.WeakKeyDictionary[nn.Module, fx.GraphModule] = weakref.WeakKeyDictionary()


def canonical_copy(model: nn.Module) -> fx.GraphModule:
    """The cached LRP-ready copy of ``model`` (see module docstring); same outputs in eval mode."""
    with model_lock(model):
        gm = _CANONICAL.get(model)
        if gm is None:
            gm = _CANONICAL[model] = _build_canonical(model)
        return gm


def forget(model: nn.Module) -> None:
    """Drop the derived copies cached for ``model`` (call after changing its weights in place)."""
    with model_lock(model):
        _CANONICAL.pop(model, None)


def _build_canonical(model: nn.Module) -> fx.GraphModule:
    require_module_model(model, "LRP / DeepLIFT")
    private = private_copy(model)
    try:
        graph = _Tracer().trace(private)
    except Exception as exc:
        raise MethodNotApplicable(f"the model cannot be traced by torch.fx ({type(exc).__name__}: {str(exc)[:120]})") from exc
    gm = fx.GraphModule(private, graph)
    modules = dict(gm.named_modules())
    seen: set[str] = set()
    counter = 0
    for node in list(gm.graph.nodes):
        if node.op == "call_module":
            # 1. one module per call
            if node.target in seen:
                counter += 1
                new_name = f"unshared_{counter}"
                gm.add_submodule(new_name, copy.deepcopy(modules[node.target]))
                node.target = new_name
            seen.add(node.target)
            mod = gm.get_submodule(node.target)
            if hasattr(mod, "inplace"):
                mod.inplace = False
        elif node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add):
            # 2. residual additions of two tensors become Sum modules (LRP can then split relevance)
            a, b = node.args[:2]
            if isinstance(a, fx.Node) and isinstance(b, fx.Node) and not node.kwargs:
                counter += 1
                name = f"residual_sum_{counter}"
                gm.add_submodule(name, Sum())
                with gm.graph.inserting_before(node):
                    stacked = gm.graph.call_function(torch.stack, ((a, b),), {"dim": -1})
                    summed = gm.graph.call_module(name, (stacked,))
                node.replace_all_uses_with(summed)
                gm.graph.erase_node(node)
    # 3. fold BatchNorm into the convolution that feeds it (and only it)
    fold_batchnorm(gm)
    gm.graph.lint()
    gm.recompile()
    for p in gm.parameters():
        p.requires_grad_(False)
    return gm.eval()


def fold_batchnorm(gm: fx.GraphModule) -> int:
    """Fold every eval-mode BatchNorm2d fed only by a Conv2d into that conv, in place; returns how many."""
    modules = dict(gm.named_modules())
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0]
        if not (isinstance(src, fx.Node) and src.op == "call_module" and isinstance(modules.get(src.target), nn.Conv2d)):
            continue
        if len(src.users) != 1:
            continue
        _fold_bn(modules[src.target], modules[node.target])
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        folded += 1
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return folded


@torch.no_grad()
def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * scale + bn.bias
    conv.bias = nn.Parameter(new_bias, requires_grad=False)


def fingerprint(model: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of every parameter and buffer, by name and value: equal exactly when the
    weights are bit-identical (memory layout, e.g. channels_last, does not count)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def hook_count(model: nn.Module) -> int:
    """Number of forward and backward hooks on all modules (a test asserts it is unchanged by every method)."""
    return sum(len(getattr(m, name, None) or ()) for m in model.modules() for name in _HOOKS)
