"""Long computations in a page: a progress bar with the elapsed time, and a Stop button.

Inside ``with Work(signature, text, key=...) as w``, ``w.step(done, total, text)`` moves the bar between
jobs: it is the outermost ``core.progress`` stage, and the core's own stages (chunks of forward passes,
optimization steps, randomized blocks) move the bar within a job. Every ``progress.tick`` (every chunk,
step, forward of an explainer, every wait for a model another session is using) refreshes the bar, its
text, the elapsed time and an estimate of the time left, at most five times a second. Each refresh sends a message to the browser, which is where Streamlit acts on a
pending stop or rerun: pressing Stop (ours, or Streamlit's own in the toolbar) interrupts the work within
one chunk, and the core's context managers remove hooks and release locks as the stop passes through.
Results finished before the stop stay cached.

The stopped computation is remembered by its signature (the settings it was computing): the page then
shows "Stopped" with a Resume button instead of starting it again, until a setting changes.
"""

from __future__ import annotations

import hashlib
import time
from types import TracebackType

import streamlit as st

from core import progress
from dashboard import state as S
from dashboard.st_private import in_cached_function

STOPPED = "stopped_work"  # session key: the signature of the computation the user stopped
REFRESH_S = 0.2


def _button_key(kind: str, key: str) -> str:
    """A button's key: never contains ``state.SEP`` (buttons cannot be re-assigned by ``state.persist``)."""
    return f"{kind}|{key.replace(S.SEP, '|')}"


def signature(*settings: object) -> str:
    """A short stable name for a computation's settings."""
    return hashlib.sha256(repr(settings).encode()).hexdigest()[:16]


def _stop(sig: str) -> None:
    st.session_state[STOPPED] = sig


def resume() -> None:
    """Forget a stop (the Resume button; a Run button too: running again is resuming)."""
    st.session_state.pop(STOPPED, None)


def stopped(sig: str, *, key: str) -> bool:
    """True when the user stopped the computation ``sig``: then a message and a Resume button are shown."""
    if st.session_state.get(STOPPED) != sig:
        return False
    c1, c2 = st.columns([5, 1], vertical_alignment="center")
    c1.info("Stopped. Press **Resume** (or change a setting) to compute again; what had finished is kept.")
    c2.button("Resume", key=_button_key("resume", key), on_click=resume, type="primary")
    return True


def run_button(label: str, settings: tuple, *, key: str, hint: str | None = None, primary: bool = True) -> str | None:
    """A Run button for work on ``settings`` (kept under ``key`` in the session, so results stay on screen across
    reruns until a setting changes): the work's signature once pressed; None before (``hint`` shown) or when the
    user stopped it (Resume shown)."""
    if st.button(label, type="primary" if primary else "secondary"):
        st.session_state[key] = settings
        resume()
    if st.session_state.get(key) != settings:
        if hint:
            st.info(hint)
        return None
    sig = signature(key, settings)
    return None if stopped(sig, key=key) else sig


class Work:
    """A progress bar and a Stop button for one computation (see the module docstring)."""

    def __init__(self, sig: str, text: str, *, key: str) -> None:
        self._slot = st.empty()
        with self._slot.container():
            c1, c2 = st.columns([6, 1], vertical_alignment="center")
            self._bar = c1.progress(0.0, text=text)
            c2.button("Stop", key=_button_key("stop", key), on_click=_stop, args=(sig,), help="Stop this computation; the page stays usable")
        self._text = text
        self._report = progress.Report("", (), 0.0)
        self._start = self._last = time.perf_counter()
        self._stage = progress.stage(text, 1)
        self._reporting = progress.reporting(self._tick)

    def step(self, done: int, total: int, text: str) -> None:
        """Job ``done`` of ``total`` starts; ``text`` says which."""
        self._outer.total, self._text = max(total, 1), text
        self._outer.at(done, text)
        self._draw()

    def _tick(self, report: progress.Report) -> None:
        self._report = report
        if time.perf_counter() - self._last >= REFRESH_S:
            self._draw()

    def _draw(self) -> None:
        self._last = time.perf_counter()
        r = self._report
        inner = r.stages[-1] if len(r.stages) > 1 else None
        detail = r.note or (f"{inner[0]} {inner[1]}/{inner[2]}" if inner else "")
        frac = r.fraction or 0.0
        text = " · ".join(t for t in (self._text, detail, eta(self._last - self._start, frac)) if t)
        # a refresh made from inside a cached function belongs to this run, not to the cached result
        token = in_cached_function.set(False)
        try:
            self._bar.progress(min(max(frac, 0.0), 1.0), text=text)
        finally:
            in_cached_function.reset(token)

    def __enter__(self) -> Work:
        self._reporting.__enter__()
        self._outer = self._stage.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stage.__exit__(exc_type, exc, tb)
        self._reporting.__exit__(exc_type, exc, tb)
        if exc_type is None or issubclass(exc_type, Exception):  # not on Streamlit's stop/rerun: the run is ending
            self._slot.empty()


def eta(elapsed: float, fraction: float) -> str:
    """"12 s" elapsed, plus "about 40 s left" once the share done makes an estimate meaningful."""
    out = f"{elapsed:.0f} s"
    if fraction > 0.03 and elapsed > 2:
        left = elapsed * (1 - fraction) / fraction
        out += f", about {duration(left)} left"
    return out


def duration(seconds: float) -> str:
    """Seconds as a short human duration: "40 s", "3 min", "1 h 10 min"."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:.0f} min"
