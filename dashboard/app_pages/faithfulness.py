"""Faithfulness page: deletion/insertion curves of the chosen methods on the current image (each method's curves on
screen as soon as they are done), their AUCs and other metrics, and a step scrubber with an animated export."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image
from plotly.subplots import make_subplots

import explainers
import metrics
from dashboard import cache, charts, maps, selection, work
from dashboard import scores as score_panel
from dashboard import state as S
from dashboard.selection import Selection
from metrics.deletion_insertion import conventions

SCOPE = "faith"
STEP = S.key(SCOPE, "step")
SUBSTRATE = S.key(SCOPE, "substrate")
EXTRA = S.key(SCOPE, "extra")
POINT = S.key(SCOPE, "point")
GIF_METHOD = S.key(SCOPE, "gif_method")
Curves = dict[str, metrics.DeletionInsertion]


def _title(method: str) -> str:
    return explainers.get(method).title


# ---------------------------------------------------------------------------------- settings


def _settings(sel: Selection, mask: torch.Tensor | None) -> tuple[int, str, list[str]]:
    h, w = sel.x.shape[-2:]
    if st.session_state.get(STEP, 0) > h * w:  # another model with a smaller input
        st.session_state[STEP] = h * w
    others = [k for k in score_panel.names(("faithfulness", "localization", "complexity"), mask=mask is not None) if k not in ("deletion", "insertion")]
    if EXTRA in st.session_state:  # a localization metric stays chosen only while the image has a mask
        st.session_state[EXTRA] = [k for k in st.session_state[EXTRA] if k in others]
    c1, c2, c3 = st.columns([1, 1, 2])
    c1.number_input(
        "Pixels per step", min_value=1, max_value=h * w, step=1, key=STEP, help=f"{h}: one row's worth; 224 at 224 px is the paper's setting (225 points)", **S.unless_set(STEP, value=min(224, h * w))
    )
    c2.selectbox("Deletion substrate", ["zero", "blur", "mean"], key=SUBSTRATE, help="what deleted pixels become (zero: in the normalized input space, as in RISE)")
    c3.multiselect("More metrics for this image", others, key=EXTRA, format_func=lambda k: metrics.get(k).title, placeholder="ROAD, infidelity, complexity...")
    return int(st.session_state[STEP]), st.session_state[SUBSTRATE], [k for k in st.session_state[EXTRA] if k in others]


# ---------------------------------------------------------------------------------- curves


def _figure(curves: Curves, point: int) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Deletion (lower AUC is better)", "Insertion (higher AUC is better)"), shared_yaxes=True)
    for i, (m, r) in enumerate(curves.items()):
        frac = r.fraction.numpy()
        for col, (curve, score) in enumerate(((r.deletion, r.deletion_auc), (r.insertion, r.insertion_auc)), start=1):
            fig.add_trace(
                go.Scatter(
                    x=frac,
                    y=curve[0].numpy(),
                    mode="lines",
                    name=f"{_title(m)} ({float(score[0]):.3f})",
                    legendgroup=m,
                    showlegend=col == 1,
                    line={"color": charts.colour(i), "width": 2},
                    customdata=np.stack([np.arange(len(frac)), r.pixels.numpy()], axis=1),
                    hovertemplate=f"<b>{_title(m)}</b><br>step %{{customdata[0]}} (%{{customdata[1]}} px, %{{x:.1%}})<br>p(target) = %{{y:.4f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        if i == 0:
            for col in (1, 2):
                fig.add_vline(x=float(frac[min(point, len(frac) - 1)]), line={"dash": "dot", "color": "grey"}, row=1, col=col)
    fig.update_xaxes(title_text="share of pixels replaced / restored", tickformat=".0%")
    fig.update_yaxes(title_text="softmax probability of the target", range=[0, 1.02], row=1, col=1)
    fig.update_layout(height=430, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return fig


def _table(curves: Curves, extra: dict[str, dict[str, cache.Outcome]], seconds: dict[str, float]) -> pd.DataFrame:
    rows = []
    for m, r in curves.items():
        row = {"method": _title(m), "deletion AUC ↓": float(r.deletion_auc[0]), "insertion AUC ↑": float(r.insertion_auc[0])}
        for k, per in extra.items():
            spec = metrics.get(k)
            o = per.get(m)
            row[f"{spec.title} {'↑' if spec.higher_is_better else '↓'}"] = o.value if o is not None and o.ok else math.nan
        row["curve seconds"] = round(seconds[m], 2)
        rows.append(row)
    return pd.DataFrame(rows)


def _compute(sel: Selection, amaps: dict[str, np.ndarray], step: int, substrate: str, extra: list[str], mask, slots) -> tuple[Curves, dict, dict] | None:
    """Every method's curves (drawn into ``slots`` as each one finishes) and extra scores; None when stopped."""
    n_points = math.ceil(sel.x.shape[-1] * sel.x.shape[-2] / step) + 1
    sig = work.signature("curves", sel.model_key, sel.image_key, sel.target, list(amaps), [sel.params[m] for m in amaps], step, substrate, extra)
    if work.stopped(sig, key="faith_curves"):
        return None
    curves: Curves = {}
    seconds: dict[str, float] = {}
    scores: dict[str, dict[str, cache.Outcome]] = {k: {} for k in extra}
    with work.Work(sig, "Deletion and insertion curves...", key="faith_curves") as job:
        for i, m in enumerate(amaps):
            job.step(i, len(amaps), f"Deletion and insertion: {_title(m)} ({i + 1}/{len(amaps)}, {2 * n_points} points each)")
            o = cache.curves(sel.model_key, sel.image_key, m, sel.params[m], sel.target, step, substrate, sel.loaded, sel.x, amaps[m])
            if not o.ok:
                st.warning(f"**{_title(m)}**: {o.error}")
                continue
            curves[m], seconds[m] = o.value, o.seconds
            slots[0].plotly_chart(_figure(curves, 0), key=f"faith_partial_{i}")
            slots[1].dataframe(_table(curves, {}, seconds), hide_index=True)
        for j, (k, m) in enumerate((k, m) for k in extra for m in curves):
            job.step(j, len(extra) * len(curves), f"{metrics.get(k).title}: {_title(m)}")
            scores[k][m] = cache.metric_score(sel.model_key, sel.image_key, m, sel.params[m], sel.target, k, (), sel.loaded, sel.x, amaps[m], mask)
    return curves, scores, seconds


# ---------------------------------------------------------------------------------- scrubber


@st.cache_data(show_spinner=False, max_entries=4096)
def _frame(model_key: str, image_key: str, method: str, params: tuple, target: int, curve: str, point: int, step: int, substrate: str, _sel: Selection, _map: np.ndarray) -> np.ndarray:
    """What the model sees at ``point`` of one curve, uint8 [H,W,3] (cached: scrubbing back is instant)."""
    amap = torch.from_numpy(_map).unsqueeze(0).to(_sel.x.device)
    img = metrics.perturbed(_sel.x, amap, point, curve=curve, step=step, substrate=substrate)
    return (selection.unit(_sel.loaded, img).clip(0, 1) * 255).round().astype(np.uint8)


def _frames(sel: Selection, m: str, amap: np.ndarray, point: int, step: int, substrate: str) -> tuple[np.ndarray, np.ndarray]:
    return tuple(_frame(sel.model_key, sel.image_key, m, sel.params[m], sel.target, c, point, step, substrate, sel, amap) for c in ("deletion", "insertion"))  # type: ignore[return-value]


def _scrubber(sel: Selection, curves: Curves, amaps: dict[str, np.ndarray], step: int, substrate: str, n_points: int) -> int:
    """The slider and one row per method (deletion | insertion) with the probability at that point; returns the point."""
    st.slider("Step", 0, n_points - 1, key=POINT, help="k: the top k × step pixels are replaced (deletion) or restored (insertion)", **S.unless_set(POINT, value=0))
    point = min(int(st.session_state[POINT]), n_points - 1)
    for m, r in curves.items():
        d, i = _frames(sel, m, amaps[m], point, step, substrate)
        c1, c2 = st.columns(2)
        c1.image(d, caption=f"{_title(m)} · deletion: p = {float(r.deletion[0, point]):.3f}", width="stretch")
        c2.image(i, caption=f"insertion: p = {float(r.insertion[0, point]):.3f}", width="stretch")
    return point


def _gif(sel: Selection, m: str, amap: np.ndarray, step: int, substrate: str, n_points: int, frames: int = 40) -> bytes:
    """An animated GIF of one method's deletion | insertion sequence (``frames`` evenly spaced points)."""
    pics = []
    for p in np.unique(np.linspace(0, n_points - 1, frames).round().astype(int)):
        d, i = _frames(sel, m, amap, int(p), step, substrate)
        pics.append(Image.fromarray(np.concatenate([d, np.full((d.shape[0], 4, 3), 255, np.uint8), i], axis=1)))
    buf = io.BytesIO()
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=120, loop=0)
    return buf.getvalue()


# ---------------------------------------------------------------------------------- page


def _results(sel: Selection, curves: Curves, scores: dict, seconds: dict, amaps: dict, step: int, substrate: str, slots) -> None:
    n_points = next(iter(curves.values())).pixels.numel()
    for k, per in scores.items():
        for m, o in per.items():
            if not o.ok:
                st.warning(f"{metrics.get(k).title} of {_title(m)}: {o.error}")
    table = _table(curves, scores, seconds)
    slots[1].dataframe(table, hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.4f") for c in table.columns if c not in ("method", "curve seconds")})
    with slots[2].container():
        st.markdown("**What the model sees at each step**")
        point = _scrubber(sel, curves, amaps, step, substrate, n_points)
        st.selectbox("Animate", list(curves), key=GIF_METHOD, format_func=_title)
        gm = st.session_state[GIF_METHOD]
        st.download_button("Download the sequence (GIF)", lambda: _gif(sel, gm, amaps[gm], step, substrate, n_points), file_name=f"deletion_insertion_{gm}.gif", mime="image/gif", on_click="ignore")
    slots[0].plotly_chart(_figure(curves, point), key="faith_curves")
    with slots[3].container():
        st.caption("Conventions: " + conventions(step, substrate, int(sel.x.shape[-1] * sel.x.shape[-2])))
        for k in scores:
            spec = metrics.get(k)
            st.caption(f"{spec.title} ({spec.direction}; {spec.paper}): {spec.conventions}")
        st.caption(f"Inference path: {next(iter(curves.values())).engine}")
        c1, c2 = st.columns(2)
        with c1:
            st.download_button("Download the scores (CSV)", table.assign(image=sel.image_key, target=sel.target, step=step, substrate=substrate).to_csv(index=False).encode(), file_name="faithfulness_scores.csv", mime="text/csv", on_click="ignore")
        with c2:
            charts.export_buttons(_figure(curves, point), "faithfulness_curves", key="faith_curves")


def page() -> None:
    sel = selection.require()
    st.markdown(f"#### Faithfulness · {sel.loaded.title}")
    st.caption(f"Does the map point at what the model uses? Deletion and insertion (Petsiuk et al. 2018) for **target {sel.target_label}** on **{sel.image_key}**, plus ROAD, infidelity, localization and complexity.")
    mask = sel.mask()
    step, substrate, extra = _settings(sel, mask)
    if not sel.methods:
        st.info("Choose at least one method in the sidebar.")
        return
    got = maps.compute(sel, [maps.Job(sel.image_key, sel.image_key, sel.x, sel.target)], list(sel.methods), key="faith_maps")
    if got is None:
        return
    for m in sel.methods:
        if not got[(0, m)].ok:
            st.warning(f"**{_title(m)}** is left out: {got[(0, m)].error}")
    amaps = {m: got[(0, m)].value for m in sel.methods if got[(0, m)].ok}
    if not amaps:
        return
    plot, side = st.columns([3, 2])
    slots = (plot.empty(), plot.empty(), side.empty(), st.empty())
    res = _compute(sel, amaps, step, substrate, extra, mask, slots)
    if res is None or not res[0]:
        return
    _results(sel, *res, amaps, step, substrate, slots)


page()
