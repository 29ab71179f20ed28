"""Methods page: the registries as tables (methods: family, paper, library, parameters; metrics: direction, conventions)."""

from __future__ import annotations

import streamlit as st

import explainers
import metrics
from dashboard import cache, selection

WIDE = {c: st.column_config.TextColumn(c, width="large") for c in ("paper", "computed by", "parameters", "conventions")}


def _height(n: int) -> int:
    return min(36 * (n + 1) + 4, 1200)  # every row visible, no inner scrolling for the registry's size


def compatibility_section() -> None:
    """The chosen model's structure and, for each method, whether it applies exactly, approximately or not at all."""
    st.markdown("#### On the chosen model")
    sel = selection.current()
    if sel is None:
        st.caption("Choose a model in the sidebar to see which methods apply to it exactly.")
        return
    report = cache.compatibility(sel.model_key, sel.loaded)
    st.caption("Read from one torch.fx trace of the model, before anything runs. " + " · ".join(report.summary()))
    rows = [{"method": explainers.get(r["method"]).title, "applies": r["status"], "why": r["reason"]} for r in report.rows()]
    st.dataframe(rows, hide_index=True, width="stretch", height=_height(len(rows)), column_config={"why": st.column_config.TextColumn("why", width="large")})
    for note in report.peer_notes:
        st.caption(f"Peer libraries: {note}.")


def page() -> None:
    compatibility_section()
    st.markdown("#### Methods")
    st.caption("Every method in the registry, with the paper it follows and the library that computes it.")
    rows = [
        {
            "name": name,
            "method": spec.title,
            "family": explainers.FAMILIES[spec.family],
            "paper": spec.paper,
            "computed by": spec.library,
            "signed": spec.signed,
            "units": spec.units or "-",
            "parameters": ", ".join(f"{p.name}={p.default}" for p in spec.params),
            "in default grid": spec.default,
        }
        for name, spec in ((n, explainers.get(n)) for n in explainers.names())
    ]
    st.dataframe(rows, hide_index=True, width="stretch", height=_height(len(rows)), column_config=WIDE)
    st.markdown("#### Metrics")
    st.caption("Every metric in the registry: what it measures, which way is better, and the conventions used here.")
    table = [
        {
            "name": name,
            "metric": spec.title,
            "category": metrics.CATEGORIES[spec.category],
            "better": spec.direction,
            "paper": spec.paper,
            "conventions": spec.conventions,
            "needs a mask": spec.needs_mask,
        }
        for name, spec in ((n, metrics.get(n)) for n in metrics.names())
    ]
    st.dataframe(table, hide_index=True, width="stretch", height=_height(len(table)), column_config=WIDE)


page()
