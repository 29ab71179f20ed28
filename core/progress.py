"""Cooperative progress and cancellation for long computations: one channel, no UI here.

Long work declares stages and ticks inside them::

    with progress.stage("Deletion and insertion", total=len(methods)) as s:
        for i, m in enumerate(methods):
            s.at(i, m)                      # job i of total starts ("m" says which)
            ...                             # inner work may open its own stages and tick

``tick(note)`` marks a point where work may be cancelled (every chunk of forward passes, every optimization
step, every forward of an explainer). A caller that shows progress, or can stop the work, installs a reporter
with ``reporting(fn)``: ``fn(report)`` runs at every tick and stage change in the computing thread and may
raise to cancel (the dashboard's reporter is where Streamlit's Stop takes effect). ``report.fraction`` is the
share done across the nested stages (job i of n with its inner stage j of m at (i + j/m) / n). Every core
context manager releases its hooks, locks and private copies as a cancelling exception passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Stage:
    """One level of nested work: ``done`` of ``total`` jobs of ``what``; ``note`` names the current job. A stage
    counted in forward passes (``unit="passes"``) moves with every ``passes(n)`` made inside it."""

    what: str
    total: int
    done: int = 0
    note: str = ""
    unit: str = "jobs"

    def at(self, done: int, note: str = "") -> None:
        """Job ``done`` (0-based) of ``total`` starts; ``note`` says which. Reports and may cancel."""
        self.done, self.note = done, note
        tick()


@dataclass(frozen=True)
class Report:
    """What a reporter sees: the latest ``note``, the nested stages (outermost first) and the share done."""

    note: str
    stages: tuple[tuple[str, int, int, str], ...]
    fraction: float | None


Reporter = Callable[[Report], None]

_REPORTER: ContextVar[Reporter | None] = ContextVar("xai_progress_reporter", default=None)
_STAGES: ContextVar[tuple[Stage, ...]] = ContextVar("xai_progress_stages", default=())


@contextlib.contextmanager
def reporting(fn: Reporter) -> Iterator[None]:
    """Call ``fn(report)`` at every tick made by this thread inside the block (nested: the inner one wins)."""
    token = _REPORTER.set(fn)
    try:
        yield
    finally:
        _REPORTER.reset(token)


def active() -> bool:
    """Whether a reporter is installed (lets callers skip setting up per-forward ticks when nobody listens)."""
    return _REPORTER.get() is not None


@contextlib.contextmanager
def stage(what: str, total: int, unit: str = "jobs") -> Iterator[Stage]:
    """A nested stage of ``total`` jobs (or forward passes: ``unit="passes"``); its fraction counts inside the
    enclosing stage's current job."""
    s = Stage(what, max(int(total), 1), unit=unit)
    token = _STAGES.set((*_STAGES.get(), s))
    try:
        tick()
        yield s
    finally:
        _STAGES.reset(token)


def advance(note: str = "", n: int = 1) -> None:
    """The innermost stage moves ``n`` jobs forward (a tick without a stage when there is none)."""
    stages = _STAGES.get()
    if stages:
        stages[-1].done = min(stages[-1].done + n, stages[-1].total)
    tick(note)


def passes(n: int, note: str = "") -> None:
    """``n`` forward passes (images) done: the innermost stage counted in passes moves (a plain tick without one)."""
    for s in reversed(_STAGES.get()):
        if s.unit == "passes":
            s.done = min(s.done + int(n), s.total)
            break
    tick(note)


def fraction() -> float | None:
    """Share done over the nested stages (None outside any stage)."""
    stages = _STAGES.get()
    if not stages:
        return None
    out, scale = 0.0, 1.0
    for s in stages:
        out += scale * min(s.done, s.total) / s.total
        scale /= s.total
    return min(out, 1.0)


def tick(note: str = "") -> None:
    """A point where work may be cancelled; reports ``note`` and the stages. May raise: the reporter cancels."""
    fn = _REPORTER.get()
    if fn is not None:
        stages = _STAGES.get()
        fn(Report(note, tuple((s.what, s.done, s.total, s.note) for s in stages), fraction()))
