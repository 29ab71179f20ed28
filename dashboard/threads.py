"""How many CPU threads torch uses in this server process: ``XAI_THREADS`` at start, changeable on the Server page.

On a CPU shared with another busy process, two torch threads fighting for a busy core can run many times slower than
one (see the README's figures); one setting for the whole process, since torch's thread pool is process-wide.
"""

from __future__ import annotations

import os
import threading

import torch

_LOCK = threading.Lock()
_WANTED: list[int] = []


def default() -> int:
    """``XAI_THREADS`` when set (a whole number >= 1), else torch's own default for this machine."""
    env = os.environ.get("XAI_THREADS", "")
    return int(env) if env.isdigit() and int(env) >= 1 else torch.get_num_threads()


def wanted() -> int:
    with _LOCK:
        if not _WANTED:
            _WANTED.append(default())
        return _WANTED[0]


def set_threads(n: int) -> None:
    """Use ``n`` threads from now on, for every session of this process."""
    with _LOCK:
        _WANTED[:] = [max(1, int(n))]
    apply()


def apply() -> None:
    """Make torch use the wanted number of threads (cheap when it already does)."""
    n = wanted()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
