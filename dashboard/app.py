"""Entry point: ``streamlit run dashboard/app.py``. Draws the shared sidebar once (``dashboard.selection``), then the
chosen page."""

from __future__ import annotations

import warnings
from pathlib import Path

import streamlit as st

from dashboard import selection, state, threads

# captum notes, on every call, that it set requires_grad on the inputs itself: not a problem, and it floods the log
warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
warnings.filterwarnings("ignore", message="Setting forward, backward hooks")

st.set_page_config(page_title="Attribution dashboard", page_icon=":material/insights:", layout="wide")
threads.apply()
state.init()
state.persist()
PAGES = Path(__file__).parent / "app_pages"
page = st.navigation(
    [
        st.Page(PAGES / "compare.py", title="Compare", icon=":material/grid_view:", default=True),
        st.Page(PAGES / "faithfulness.py", title="Faithfulness", icon=":material/show_chart:"),
        st.Page(PAGES / "leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
        st.Page(PAGES / "sanity.py", title="Sanity checks", icon=":material/casino:"),
        st.Page(PAGES / "robustness.py", title="Robustness", icon=":material/shield:"),
        st.Page(PAGES / "anatomy.py", title="Anatomy", icon=":material/biotech:"),
        st.Page(PAGES / "bias.py", title="Bias", icon=":material/balance:"),
        st.Page(PAGES / "dataset.py", title="Dataset", icon=":material/dataset:"),
        st.Page(PAGES / "methods.py", title="Methods", icon=":material/menu_book:"),
        st.Page(PAGES / "server.py", title="Server", icon=":material/dns:"),
    ]
)
selection.draw()
page.run()
