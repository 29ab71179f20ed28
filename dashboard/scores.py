"""A page's panel of registered metrics of some categories: pick metrics, run them on the sidebar's methods for the
current image (progress, Stop, cached per map and metric), and a table with each metric's conventions."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

import explainers
import metrics
from dashboard import cache, maps, work
from dashboard import state as S
from dashboard.selection import Selection


def names(categories: tuple[str, ...], *, mask: bool) -> list[str]:
    """The registered metrics of ``categories`` (registry order); those needing a mask only when the image has one."""
    return [k for k in metrics.names() if metrics.get(k).category in categories and (mask or not metrics.get(k).needs_mask)]


def panel(sel: Selection, categories: tuple[str, ...], *, scope: str, title: str, default: tuple[str, ...] = ()) -> None:
    """Metrics of ``categories`` for the sidebar's methods on the current image, computed on Run."""
    mask = sel.mask()
    choices = names(categories, mask=mask is not None)
    chosen_key = S.key(scope, "metrics")
    if chosen_key in st.session_state:
        st.session_state[chosen_key] = [k for k in st.session_state[chosen_key] if k in choices]
    st.markdown(f"##### {title}")
    st.multiselect("Metrics", choices, key=chosen_key, format_func=lambda k: metrics.get(k).title, **S.unless_set(chosen_key, default=[d for d in default if d in choices]))
    chosen = list(st.session_state[chosen_key])
    methods = list(sel.methods)
    if not chosen or not methods:
        st.info("Choose at least one metric here and one method in the sidebar.")
        return
    settings = (sel.model_key, sel.image_key, sel.target, tuple(methods), tuple(sel.params[m] for m in methods), tuple(chosen))
    sig = work.run_button("Score the maps", settings, key=f"{scope}_scores", primary=False, hint="Press **Score the maps** to compute these metrics for every chosen method (seeded; cached).")
    if sig is None:
        return
    results = maps.compute(sel, [maps.Job(sel.image_key, sel.image_key, sel.x, sel.target)], methods, key=f"{scope}_maps")
    if results is None:
        return
    ok = {m: results[(0, m)].value for m in methods if results[(0, m)].ok}
    scores: dict[tuple[str, str], cache.Outcome] = {}
    with work.Work(sig, f"{title}...", key=f"{scope}_scores") as job:
        pairs = [(k, m) for k in chosen for m in ok]
        for i, (k, m) in enumerate(pairs):
            job.step(i, len(pairs), f"{metrics.get(k).title}: {explainers.get(m).title}")
            scores[(k, m)] = cache.metric_score(sel.model_key, sel.image_key, m, sel.params[m], sel.target, k, (), sel.loaded, sel.x, ok[m], mask)
    _table(chosen, list(ok), scores)


def _table(chosen: list[str], methods: list[str], scores: dict[tuple[str, str], cache.Outcome]) -> None:
    rows = []
    for m in methods:
        row: dict[str, object] = {"method": explainers.get(m).title}
        for k in chosen:
            spec, o = metrics.get(k), scores[(k, m)]
            row[f"{spec.title} {'↑' if spec.higher_is_better else '↓'}"] = o.value if o.ok else math.nan
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    for k in chosen:
        spec = metrics.get(k)
        errors = {m: scores[(k, m)].error for m in methods if not scores[(k, m)].ok}
        st.caption(f"**{spec.title}** ({spec.paper}): {spec.conventions}" + "".join(f" · {explainers.get(m).title}: {e}" for m, e in errors.items()))
