"""The one way to touch a shared model: its lock, hooks as handles always removed, eval/requires_grad frozen and
restored, private copies; and the diagnostics the Server page shows (hooks attached, weights fingerprint).

Lock policy (the only place it is written):

- A shared model (the zoo's cached ``LoadedModel.model``, used by every session) is touched only inside
  ``using(model)``, which holds its lock: every forward pass, every hook, every mode or flag change. Otherwise one
  session's forward could run through another session's hooks.
- Public entry points lock for themselves: ``explainers.explain``, ``LoadedModel.predict``, the anatomy functions,
  the attacks. Functions that run inside one of them (an explainer's body, a hook) assume the lock and never take
  another model's. The lock is re-entrant, so an entry point may call another.
- The metrics never run the shared model themselves: their forwards go through the forward-only engine, built from
  a private copy, and their maps through ``explainers.explain``. So they need no lock.
- A private copy (``private_copy``) is made under the source's lock, with every module hook dropped, and then needs
  no lock: no other thread can reach it. A copy cached per model and shared by sessions (the canonical copy LRP
  hooks) is used under the *original* model's lock.
- Lock order: a model's lock may be held while taking ``core.fx.FX_LOCK`` or a build lock, never the reverse.
- A thread waiting for a lock ticks ``core.progress`` a few times a second: the session shows that it waits, and
  can still be stopped.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import threading
import weakref
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from core import progress

POLL_S = 0.2


class WaitingLock:
    """A re-entrant lock used as ``with lock:``; while it waits it calls ``progress.tick``."""

    def __init__(self, what: str) -> None:
        self._lock = threading.RLock()
        self._what = what

    def acquire(self, timeout: float = -1) -> bool:
        return self._lock.acquire(timeout=timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> WaitingLock:
        while not self._lock.acquire(timeout=POLL_S):
            progress.tick(f"waiting for another session's work on {self._what}")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._lock.release()


_LOCKS: weakref.WeakKeyDictionary[nn.Module, WaitingLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> WaitingLock:
    """The lock that guards ``model`` (created on first use)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = WaitingLock("this model")
        return lock


def is_busy(model: nn.Module) -> bool:
    """Whether a computation holds the model's lock right now (for the Server page)."""
    lock = model_lock(model)
    if lock.acquire(timeout=0):
        lock.release()
        return False
    return True


class Hooks:
    """Hook handles removed together, on exit or by ``remove()`` (zennit's ``RemovableHandleList``)."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def forward(self, module: nn.Module, fn: Callable[..., Any]) -> RemovableHandle:
        return self.add(module.register_forward_hook(fn))

    def forward_pre(self, module: nn.Module, fn: Callable[..., Any]) -> RemovableHandle:
        return self.add(module.register_forward_pre_hook(fn))

    def add(self, handle: RemovableHandle) -> RemovableHandle:
        self._handles.append(handle)
        return handle

    def remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.remove()


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients for the block; the previous mode and flags are restored (also on error)."""
    training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    if training:
        model.eval()
    try:
        yield
    finally:
        if training:
            model.train()
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def using(model: nn.Module) -> Iterator[Hooks]:
    """Touch ``model``: hold its lock, freeze it (``frozen``) and register hooks through the yielded ``Hooks``. On exit,
    in this order: every hook removed, mode and flags restored, the lock released."""
    with model_lock(model), frozen(model), Hooks() as hooks:
        yield hooks


_HOOK_DICTS = (
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

    The lock keeps the copy from catching another session's half-made changes (hooks being added while they are
    copied); dropping the hooks keeps transient ones of the calling computation (progress ticks, CAM captures,
    Guided Backprop rules) out of copies that are cached and reused.
    """
    with model_lock(model):
        private = copy.deepcopy(model)
    if not isinstance(private, torch.jit.ScriptModule):
        for m in private.modules():
            for name in _HOOK_DICTS:
                hooks = getattr(m, name, None)
                if hooks:
                    hooks.clear()
            if getattr(m, "_is_full_backward_hook", None) is not None:
                m._is_full_backward_hook = None
    return private.eval()


def hook_count(model: nn.Module) -> int:
    """Number of forward and backward hooks on all modules (0 whenever the model is idle)."""
    return sum(len(getattr(m, name, None) or ()) for m in model.modules() for name in _HOOK_DICTS)


def fingerprint(model: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of every parameter and buffer, by name and value: equal exactly when the
    weights are bit-identical (memory layout, e.g. channels_last, does not count)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
