"""Cooperative progress and cancellation for long computations; no UI here.

Long loops in the core call ``tick()`` once per unit of work (a chunk of forward passes, an
optimization step, a randomized block, and every forward of a model inside ``explainers.explain``).
A caller that wants to show progress, or to be able to stop the work, installs a reporter with
``reporting(fn)``: ``fn(note)`` runs at every tick, in the computing thread, and may raise to cancel
(the dashboard's reporter is where Streamlit's Stop takes effect). Every core context manager releases
its hooks, locks and private copies as the exception passes, so a cancelled computation leaves the
shared model exactly as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

Reporter = Callable[[str], None]

_REPORTER: ContextVar[Reporter | None] = ContextVar("xai_progress_reporter", default=None)


@contextlib.contextmanager
def reporting(fn: Reporter) -> Iterator[None]:
    """Call ``fn(note)`` at every ``tick()`` made by this thread inside the block (nested: the inner one wins)."""
    token = _REPORTER.set(fn)
    try:
        yield
    finally:
        _REPORTER.reset(token)


def active() -> bool:
    """Whether a reporter is installed (lets callers skip setting up per-forward ticks when nobody listens)."""
    return _REPORTER.get() is not None


def tick(note: str = "") -> None:
    """One unit of work done (``note``: what is happening, for the reporter). May raise: the reporter cancels."""
    fn = _REPORTER.get()
    if fn is not None:
        fn(note)
