"""Locks shared by every session: one re-entrant lock per model (hooks on a shared model are registered,
used and removed under it, and every forward pass of a shared model runs under it, so no session's forward
can fire another session's hooks), and one lock for the global random generators.

A thread waiting for a lock ticks (``core.progress``) a few times a second, so a session waiting behind
another session's long computation shows that it waits and can still be stopped."""

from __future__ import annotations

import threading
import weakref
from types import TracebackType

from torch import nn

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
RNG_LOCK = WaitingLock("the random generators")  # captum samples from the global RNG: seeded methods hold this


def model_lock(model: nn.Module) -> WaitingLock:
    """The lock that guards ``model`` (created on first use)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = WaitingLock("this model")
        return lock
