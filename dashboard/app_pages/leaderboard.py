"""Leaderboard page: every chosen method scored by the chosen metrics over a set of images: mean with a 95%
bootstrap interval, rank per metric, one bar panel per metric, and whether the metrics agree (Kendall tau)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import explainers
import metrics
import zoo
from core.errors import InputError
from dashboard import charts, selection, work
from dashboard import state as S
from dashboard.maps import seconds_for
from dashboard.selection import Selection
from metrics.leaderboard import Item, agreement, evaluate, image_set, items_from_images, summarize

SCOPE = "leaderboard"
SOURCE = S.key(SCOPE, "source")
IMAGES = S.key(SCOPE, "images")
N = S.key(SCOPE, "n")
METRICS = S.key(SCOPE, "metrics")
STEP = S.key(SCOPE, "step")
RESULT = "leaderboard_result"  # plain session state (not a widget): survives page switches
SOURCES = ["Sample images", "Synthetic shapes (with masks)"]


def _title(m: str) -> str:
    return explainers.get(m).title


def _label(k: str) -> str:
    spec = metrics.get(k)
    return f"{spec.title} {'↑' if spec.higher_is_better else '↓'}"


# ---------------------------------------------------------------------------------- settings and run


def _settings(sel: Selection) -> tuple[bool, list[str]]:
    st.radio("Images", SOURCES, key=SOURCE, horizontal=True)
    synthetic = st.session_state[SOURCE] == SOURCES[1]
    if synthetic:
        st.number_input("How many synthetic images (held-out, with labels and masks)", min_value=1, max_value=500, step=1, key=N, **S.unless_set(N, value=20))
    else:
        photos = [k for k in sel.images if not k.startswith("shapes: ")]
        if IMAGES in st.session_state:
            st.session_state[IMAGES] = [k for k in st.session_state[IMAGES] if k in sel.images]
        st.multiselect("Which images", list(sel.images), key=IMAGES, **S.unless_set(IMAGES, default=photos[:3]))
    default = ["deletion", "insertion", "sparseness", "complexity"] + (["pointing_game", "relevance_mass"] if synthetic else [])
    c1, c2 = st.columns([3, 1])
    c1.multiselect("Metrics", metrics.names(), key=METRICS, format_func=lambda k: metrics.get(k).title, **S.unless_set(METRICS, default=default))
    h, w = sel.x.shape[-2:]
    c2.number_input("Pixels per step (deletion, insertion)", 1, h * w, key=STEP, **S.unless_set(STEP, value=min(224, h * w)))
    return synthetic, list(st.session_state[METRICS])


def _items(sel: Selection, synthetic: bool) -> list[Item]:
    if synthetic:
        return image_set(sel.loaded, f"synthetic:{int(st.session_state[N])}")[0]
    chosen = [k for k in st.session_state[IMAGES] if k in sel.images]
    if not chosen:
        raise InputError("choose at least one image")
    return items_from_images(sel.loaded, {k: sel.images[k] for k in chosen}, zoo.sample_masks())


def _run(sel: Selection, synthetic: bool, chosen: list[str]) -> None:
    n = int(st.session_state[N]) if synthetic else len(st.session_state[IMAGES])
    st.caption(f"{len(sel.methods)} methods × {n} images: about {work.duration(seconds_for(sel, sel.methods, n) * 1.5)} on this machine (maps, then the metrics' forward passes).")
    if not st.button("Run the leaderboard", type="primary", disabled=not (sel.methods and chosen)):
        return
    try:
        items = _items(sel, synthetic)
    except InputError as exc:
        st.error(str(exc))
        return
    step = int(st.session_state[STEP])
    metric_params = {k: v for k, v in {"deletion": {"step": step}, "insertion": {"step": step}}.items() if k in chosen}
    work.resume()
    with work.Work(work.signature("leaderboard", sel.model_key), "Leaderboard...", key="leaderboard"):
        rows = evaluate(sel.loaded, items, list(sel.methods), chosen, metric_params=metric_params, method_params={m: dict(sel.params[m]) for m in sel.methods})
    summary = summarize(rows)
    st.session_state[RESULT] = {"model": sel.model_key, "rows": rows, "summary": summary, "agreement": agreement(summary), "images": len(items), "step": step, "methods": list(sel.methods)}


# ---------------------------------------------------------------------------------- results


def _table(summary: pd.DataFrame, methods: list[str]) -> None:
    cell = summary.apply(lambda r: f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] #{int(r['rank']) if pd.notna(r['rank']) else '-'}", axis=1)
    table = summary.assign(cell=cell, method=summary["method"].map(_title), metric=summary["metric"].map(_label)).pivot(index="method", columns="metric", values="cell")
    order = [_label(k) for k in dict.fromkeys(summary["metric"])]
    rows = [_title(m) for m in methods if _title(m) in table.index] + [m for m in table.index if m not in {_title(x) for x in methods}]
    st.dataframe(table.loc[rows, order])
    st.caption("Each cell: mean [95% bootstrap interval] #rank. " + " ".join(f"{metrics.get(k).title}: {metrics.get(k).conventions}." for k in dict.fromkeys(summary["metric"])))


def _bars(summary: pd.DataFrame) -> go.Figure:
    """One panel per metric, each on its own axis (an entropy in nats and an AUC in [0, 1] cannot share one)."""
    ks = list(dict.fromkeys(summary["metric"]))
    fig = make_subplots(rows=1, cols=len(ks), subplot_titles=[_label(k) for k in ks], horizontal_spacing=0.06)
    for c, k in enumerate(ks, start=1):
        grp = summary[summary["metric"] == k]
        fig.add_trace(
            go.Bar(
                x=grp["method"].map(_title),
                y=grp["mean"],
                marker_color=[charts.colour(i) for i in range(len(grp))],
                error_y={"type": "data", "symmetric": False, "array": grp["ci_high"] - grp["mean"], "arrayminus": grp["mean"] - grp["ci_low"]},
                hovertemplate="%{x}: %{y:.4f}<extra>" + _label(k) + "</extra>",
                showlegend=False,
            ),
            row=1,
            col=c,
        )
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def _tau(ks: list[str], tau: np.ndarray) -> go.Figure:
    titles = [metrics.get(k).title for k in ks]
    fig = go.Figure(go.Heatmap(z=tau, x=titles, y=titles, zmin=-1, zmax=1, colorscale="RdBu", text=np.round(tau, 2), texttemplate="%{text}", hovertemplate="%{y} vs %{x}: τ = %{z:.2f}<extra></extra>"))
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title="Do the metrics agree on the ranking? (Kendall τ, oriented: +1 = same order of merit)")
    return fig


def _results(sel: Selection) -> None:
    result = st.session_state.get(RESULT)
    if not result:
        return
    if result["model"] != sel.model_key:
        st.info(f"The last leaderboard was run on {result['model']}; run it again for this model.")
    summary = pd.DataFrame(result["summary"])
    if summary.empty or summary["mean"].isna().all():
        st.warning("No scores: every method failed or no metric applied to these images (localization needs masks).")
        return
    st.markdown(f"**{result['images']} images**, {result['step']} pixels per step")
    _table(summary, result["methods"])
    bars = _bars(summary)
    st.plotly_chart(bars, key="lb_bars")
    charts.export_buttons(bars, "leaderboard", key="lb_bars")
    ks, tau = result["agreement"]
    if len(ks) >= 2 and not np.isnan(tau).all():
        st.plotly_chart(_tau(ks, tau), key="lb_tau")
    c1, c2 = st.columns(2)
    c1.download_button("Download the summary (CSV)", pd.DataFrame(result["summary"]).to_csv(index=False).encode(), file_name="leaderboard_summary.csv", mime="text/csv", on_click="ignore")
    c2.download_button("Download every score (CSV)", pd.DataFrame(result["rows"]).to_csv(index=False).encode(), file_name="leaderboard_rows.csv", mime="text/csv", on_click="ignore")


def page() -> None:
    sel = selection.require()
    st.markdown(f"#### Leaderboard · {sel.loaded.title}")
    st.caption(
        "Every chosen method (sidebar) scored on a set of images: mean with a 95% percentile-bootstrap interval over images, rank per metric, "
        "and the agreement of the metrics' rankings (Kendall τ). Target: the label where the set has one, else the top prediction. "
        "For labelled folders and whole datasets, use `python -m metrics` (README, Datasets)."
    )
    synthetic, chosen = _settings(sel)
    _run(sel, synthetic, chosen)
    _results(sel)


page()
