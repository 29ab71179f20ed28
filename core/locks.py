"""Locks shared by every session: one re-entrant lock per model (hooks on a shared model are registered,
used and removed under it, and every forward pass of a shared model runs under it, so no session's forward
can fire another session's hooks), and one lock for the global random generators."""

from __future__ import annotations

import threading
import weakref

from torch import nn

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()
RNG_LOCK = threading.RLock()  # captum samples from the global RNG: seeded methods hold this


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock that guards ``model`` (created on first use)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock
