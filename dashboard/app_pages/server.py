"""Server page: what this server process holds, for whoever runs the dashboard for a room of people."""

from __future__ import annotations

import streamlit as st
import torch

from core.device import DEVICE
from core.memory import cuda_peak_gb, peak_rss_gb, rss_gb
from core.model_state import fingerprint, hook_count, is_busy
from dashboard import cache

st.title("Server")
st.caption(
    "What this server process holds. Every session shares the cached models read-only: each computation that hooks or "
    "runs a shared model holds that model's lock, removes its hooks on the way out (also when stopped), and anything "
    "that changes weights (sanity checks, fragility's smooth copy) works on a private copy."
)
rows = []
for key, loaded in sorted(cache.LOADED.items()):
    idle = not is_busy(loaded.model)
    rows.append(
        {
            "model": key,
            "title": loaded.title,
            "parameters": sum(p.numel() for p in loaded.model.parameters()),
            "weights fingerprint": fingerprint(loaded.model),
            "hooks attached": hook_count(loaded.model),
            "state": "idle" if idle else "computing",
        }
    )
if rows:
    st.table(rows)
    st.caption(
        "Weights fingerprint: SHA-256 of every parameter and buffer (bit-identical weights, same fingerprint). Hooks attached: 0 whenever the model is idle."
    )
else:
    st.info("No model is loaded yet: open another page first.")
now = rss_gb()
cuda = cuda_peak_gb()
st.markdown(
    f"**Memory:** {'' if now is None else f'{now:.2f} GB now, '}{peak_rss_gb():.2f} GB peak (resident)"
    + (f"; CUDA peak allocated {cuda:.2f} GB" if cuda is not None else "")
    + f"  \n**Device:** {DEVICE}, {torch.get_num_threads()} CPU threads for torch"
)
