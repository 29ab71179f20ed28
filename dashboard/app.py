"""Entry point: ``streamlit run dashboard/app.py``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import state  # noqa: E402

st.set_page_config(page_title="Attribution dashboard", page_icon="🔍", layout="wide")
state.init()
state.persist()
PAGES = Path(__file__).parent / "app_pages"
st.navigation(
    [
        st.Page(PAGES / "compare.py", title="Compare", icon="🖼️", default=True),
        st.Page(PAGES / "faithfulness.py", title="Faithfulness", icon="📉"),
        st.Page(PAGES / "sanity.py", title="Sanity checks", icon="🎲"),
        st.Page(PAGES / "robustness.py", title="Robustness", icon="🛡️"),
        st.Page(PAGES / "anatomy.py", title="Anatomy", icon="🔬"),
        st.Page(PAGES / "dataset.py", title="Dataset", icon="🗂️"),
        st.Page(PAGES / "methods.py", title="Methods", icon="📚"),
        st.Page(PAGES / "server.py", title="Server", icon="🖥️"),
    ]
).run()
