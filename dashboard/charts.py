"""Plotly figures on a page: one palette, and their export for slides (SVG, PDF, PNG) through kaleido, which drives
a Chromium (Debian's ``/usr/bin/chromium`` here; ``BROWSER_PATH`` names another)."""

from __future__ import annotations

import os
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from dashboard import state as S

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a"]
MIME = {"svg": "image/svg+xml", "pdf": "application/pdf", "png": "image/png"}
if "BROWSER_PATH" not in os.environ and Path("/usr/bin/chromium").exists():
    os.environ["BROWSER_PATH"] = "/usr/bin/chromium"


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def image_bytes(fig: go.Figure, fmt: str, *, dark: bool = False) -> bytes:
    """The figure as ``fmt`` (svg, pdf, png at 3x), white or dark, for a slide."""
    out = go.Figure(fig)
    out.update_layout(template="plotly_dark" if dark else "plotly_white")
    return out.to_image(format=fmt, scale=3 if fmt == "png" else 1, width=1100, height=int(fig.layout.height or 450))


def export_buttons(fig: go.Figure, name: str, *, key: str) -> None:
    """A format choice and a download button (the file is made only when clicked: kaleido takes a few seconds)."""
    k = S.key(f"chart|{key}", "fmt")
    c1, c2, c3 = st.columns([1, 1, 2])
    c1.selectbox("Format", list(MIME), key=k, format_func=str.upper, label_visibility="collapsed")
    dark = c2.toggle("Dark", key=S.key(f"chart|{key}", "dark"))
    fmt = st.session_state[k]
    c3.download_button(f"Download the plot ({fmt.upper()})", lambda: image_bytes(fig, fmt, dark=dark), file_name=f"{name}.{fmt}", mime=MIME[fmt], on_click="ignore", key=f"dl_{key}")
