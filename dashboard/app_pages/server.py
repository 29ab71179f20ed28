"""Server page: what this server process holds, for whoever runs the dashboard for a room of people."""

from __future__ import annotations

import streamlit as st
import torch

from core.device import DEVICE
from core.memory import cuda_peak_gb, peak_rss_gb, rss_gb
from core.model_state import fingerprint, hook_count, is_busy
from dashboard import cache, threads
from metrics.engine import built


def _models() -> None:
    rows = [
        {
            "model": key,
            "title": loaded.title,
            "parameters": sum(p.numel() for p in loaded.model.parameters()),
            "weights fingerprint": fingerprint(loaded.model),
            "hooks attached": hook_count(loaded.model),
            "state": "computing" if is_busy(loaded.model) else "idle",
        }
        for key, loaded in sorted(cache.LOADED.items())
    ]
    if not rows:
        st.info("No model is loaded yet: open another page first.")
        return
    st.table(rows)
    st.caption("Weights fingerprint: SHA-256 of every parameter and buffer (bit-identical weights, same fingerprint). Hooks attached: 0 whenever the model is idle.")
    engines = [
        {"model": key, "input (C, H, W)": str(shape), "device": device, "forward engine": eng.describe()}
        for key, loaded in sorted(cache.LOADED.items())
        for (shape, device), eng in built(loaded.model).items()
    ]
    if engines:
        st.table(engines)
        st.caption("The forward-only engine of each model and input size (built on first use: every logits-only pass of the metrics and perturbation methods runs on it).")


def _threads() -> None:
    c1, c2 = st.columns([1, 3])
    n = c1.number_input("CPU threads for torch", 1, 64, value=threads.wanted(), step=1, key="server_threads")
    if int(n) != threads.wanted():
        threads.set_threads(int(n))
    c2.caption(
        f"For every session of this server (torch's thread pool is process-wide; `XAI_THREADS` sets it at start). On a CPU shared with another busy "
        f"process, 1 thread can be many times faster than 2 fighting for a busy core (README: Speed). Now: {torch.get_num_threads()} threads. "
        "The forward engine's sessions keep the thread count they were built with."
    )


def page() -> None:
    st.markdown("#### Server")
    st.caption(
        "What this server process holds. Every session shares the cached models read-only: each computation that hooks or runs a shared model holds "
        "that model's lock, removes its hooks on the way out (also when stopped), and anything that changes weights (sanity checks, fragility's smooth "
        "copy) works on a private copy."
    )
    _models()
    _threads()
    now, cuda = rss_gb(), cuda_peak_gb()
    st.markdown(
        f"**Memory:** {'' if now is None else f'{now:.2f} GB now, '}{peak_rss_gb():.2f} GB peak (resident)"
        + (f"; CUDA peak allocated {cuda:.2f} GB" if cuda is not None else "")
        + f"  \n**Device:** {DEVICE}, {torch.get_num_threads()} CPU threads for torch"
    )


page()
