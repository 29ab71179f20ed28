"""The panel that learns PatternNet / PatternAttribution patterns for the chosen model, shown where a pattern method
is chosen and its patterns are missing (progress, Stop; the files are kept on disk by ``explainers.pattern_store``)."""

from __future__ import annotations

import streamlit as st

from core.errors import InputError
from core.model_state import fingerprint
from dashboard import cache, work
from dashboard import state as S
from dashboard.selection import Selection
from explainers import pattern_store
from explainers.patterns import ESTIMATORS

METHODS = ("pattern_net", "pattern_attribution")
DATA, FOLDER, N = S.key("patterns", "data"), S.key("patterns", "folder"), S.key("patterns", "n")
RUN = "patterns_learn"


def missing(sel: Selection) -> bool:
    """Whether a pattern method is chosen and the model's weights have no stored patterns."""
    return any(m in sel.methods for m in METHODS) and not pattern_store.stored_files(fingerprint(sel.loaded.model))


def panel(sel: Selection) -> None:
    """Offer to learn the patterns (both estimators in one pass) when they are missing; clears the maps' cache after."""
    if not missing(sel):
        return
    with st.container(border=True):
        st.markdown("**PatternNet and PatternAttribution need patterns learned from data for these weights** (once; kept on disk).")
        choices = (["synthetic"] if pattern_store.is_synthetic(sel.loaded) else []) + ["photos", "folder"]
        labels = {"synthetic": "the model's own generator", "photos": "random crops of the sample photos", "folder": "a folder of images"}
        c1, c2, c3 = st.columns([2, 3, 1])
        c1.radio("Learn from", choices, format_func=labels.get, key=DATA)
        if st.session_state[DATA] == "folder":
            c2.text_input("Folder of images (recursive)", key=FOLDER, placeholder="/data/imagenet_val")
        c3.number_input("Images", 16, 5000, step=16, key=N, **S.unless_set(N, value=256))
        data = st.session_state[DATA] if st.session_state[DATA] != "folder" else (st.session_state.get(FOLDER) or "").strip()
        if not data:
            st.info("Name a folder of images of the model's domain.")
            return
        try:
            st.caption(pattern_store.data_note(sel.loaded, data, n=int(st.session_state[N])))
        except InputError as exc:
            st.error(str(exc))
            return
        _learn(sel, data, int(st.session_state[N]))


def _learn(sel: Selection, data: str, n: int) -> None:
    sig = work.run_button("Learn the patterns", (sel.model_key, data, n), key=RUN, primary=False)
    if sig is None:
        return
    try:
        with work.Work(sig, f"Learning the patterns of {sel.loaded.title} from {data}...", key=RUN):
            paths = pattern_store.fit_and_store(sel.loaded, data, n=n)
    except InputError as exc:
        st.error(str(exc))
        return
    cache.attribution.clear()  # the tiles that said "no patterns" are computed again
    st.success(f"Learned {', '.join(ESTIMATORS)} patterns: {', '.join(str(p) for p in paths.values())}")
    st.rerun()
