"""Methods page: the registries as tables (methods: family, paper, library, parameters; metrics: direction, conventions)."""

from __future__ import annotations

import streamlit as st

import explainers
import metrics
from dashboard import cache, selection

WIDE = {c: st.column_config.TextColumn(c, width="large") for c in ("paper", "computed by", "parameters", "conventions")}


def _height(n: int) -> int:
    return min(36 * (n + 1) + 4, 1200)  # every row visible, no inner scrolling for the registry's size


def compatibility_table() -> None:
    """The chosen model's structure and each method's verdict (exact / approximate / not applicable), before running."""
    sel = selection.current()
    if sel is None:
        return
    report = cache.compatibility(sel.model_key, sel.loaded)
    st.markdown(f"#### Compatibility with {sel.model_key}")
    st.caption("Read from one torch.fx trace of the model, before anything runs: which methods compute their definition "
               "exactly here, which approximately (and why), which not at all.")
    st.dataframe(report.summary(), hide_index=True, width="stretch", column_config={"value": st.column_config.TextColumn("value", width="large")})
    rows = report.table()
    st.dataframe(rows, hide_index=True, width="stretch", height=_height(len(rows)), column_config={"reason": st.column_config.TextColumn("reason", width="large")})


def page() -> None:
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
    compatibility_table()
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
