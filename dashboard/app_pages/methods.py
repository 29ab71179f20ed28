"""Methods page: the registry as a table (family, paper, library, parameters, cost)."""

from __future__ import annotations

import streamlit as st

import explainers
import metrics

st.title("Methods")
st.caption("Every method in the registry, with the paper it follows and the library that computes it.")
rows = []
for name in explainers.names():
    spec = explainers.get(name)
    rows.append(
        {
            "name": name,
            "method": spec.title,
            "family": explainers.FAMILIES[spec.family],
            "paper": spec.paper,
            "computed by": spec.library,
            "signed": spec.signed,
            "parameters": ", ".join(f"{p.name}={p.default}" for p in spec.params),
            "in default grid": spec.default,
        }
    )
st.dataframe(rows, hide_index=True, width="stretch")

st.subheader("Metrics")
st.caption("Every metric in the registry: what it measures, which way is better, and the conventions used here.")
st.dataframe(
    [
        {
            "name": name,
            "metric": metrics.get(name).title,
            "category": metrics.CATEGORIES[metrics.get(name).category],
            "better": metrics.get(name).direction,
            "paper": metrics.get(name).paper,
            "conventions": metrics.get(name).conventions,
            "needs a mask": metrics.get(name).needs_mask,
        }
        for name in metrics.names()
    ],
    hide_index=True,
    width="stretch",
)
