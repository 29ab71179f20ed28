"""Sanity page: the figure of "Sanity Checks for Saliency Maps" (Adebayo et al. 2018) computed live, with the
similarity curves, cascading / independent model randomization and data randomization."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image
from plotly.subplots import make_subplots

import explainers
import metrics
import zoo
from dashboard import cache, inputs, render, work
from dashboard import state as S
from metrics.similarity import SIMILARITIES

MODE = "sanity::mode"
SEEDS = "sanity::seeds"
MEASURES = "sanity::measures"
SCALE = "sanity::scale"
RUN = "sanity::run"  # the settings last run (plain state: the page recomputes from the cache on reruns)
CONTROLS = ["edge_sobel", "random"]
PERMUTED = "synthetic_shapes_permuted"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79"]


def _title(m: str) -> str:
    return explainers.get(m).title


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _curves(rows: dict[str, list[cache.RandomizationRow]], measures: list[str], steps: list[str]) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(measures), subplot_titles=[SIMILARITIES[s] for s in measures], shared_yaxes=True)
    x = steps[1:]
    for i, (m, runs) in enumerate(rows.items()):
        colour = PALETTE[i % len(PALETTE)]
        for c, s in enumerate(measures, start=1):
            vals = np.stack([r.similarity[s] for r in runs])  # [seeds, S]
            mean = vals.mean(0)
            if len(runs) > 1:
                lo, hi = vals.min(0), vals.max(0)
                fig.add_trace(
                    go.Scatter(
                        x=x + x[::-1],
                        y=np.concatenate([hi, lo[::-1]]),
                        fill="toself",
                        fillcolor=colour,
                        opacity=0.18,
                        line={"width": 0},
                        hoverinfo="skip",
                        showlegend=False,
                        legendgroup=m,
                    ),
                    row=1,
                    col=c,
                )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=mean,
                    mode="lines+markers",
                    name=_title(m),
                    legendgroup=m,
                    showlegend=c == 1,
                    line={"color": colour, "dash": "dot" if m in CONTROLS else "solid"},
                    hovertemplate=f"<b>{_title(m)}</b><br>%{{x}}<br>{s} = %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=c,
            )
    fig.update_yaxes(range=[-1.05, 1.05], row=1, col=1, title_text="similarity to the original map")
    fig.update_xaxes(tickangle=-60, title_text="randomized down to (top first)")
    fig.update_layout(height=460, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.45})
    return fig


def _model_randomization(model_key: str, loaded: zoo.LoadedModel, image_key: str, x, target: int, methods: list[str], params: dict) -> None:
    c1, c2, c3 = st.columns([1, 1, 2])
    with c1:
        st.radio(
            "Randomization", ["cascading", "independent"], key=MODE, help="cascading: from the logits down, cumulatively; independent: one block at a time"
        )
    with c2:
        st.number_input("Seeds", min_value=1, max_value=5, step=1, key=SEEDS, help="more than one: a band over the seeds", **S.unless_set(SEEDS, value=1))
    with c3:
        st.multiselect(
            "Similarity", list(SIMILARITIES), key=MEASURES, format_func=lambda s: SIMILARITIES[s], **S.unless_set(MEASURES, default=list(SIMILARITIES))
        )
    measures = [s for s in SIMILARITIES if s in st.session_state[MEASURES]]
    rows_methods = methods + [c for c in CONTROLS if c not in methods]
    blocks = metrics.model_blocks(loaded)
    n_steps = len(blocks) + 1
    seeds = list(range(int(st.session_state[SEEDS])))
    settings = (
        model_key,
        image_key,
        target,
        tuple(rows_methods),
        tuple(params[m] if m in params else () for m in rows_methods),
        st.session_state[MODE],
        tuple(seeds),
        tuple(measures),
    )
    passes = sum(sum(explainers.get(m).cost(explainers.get(m).defaults(), *x.shape[-2:], 1280)) for m in rows_methods) * n_steps * len(seeds)
    st.caption(
        f"{len(rows_methods)} methods (the controls {', '.join(_title(c) for c in CONTROLS)} always included) × {n_steps} steps "
        f"({len(blocks)} blocks of {loaded.title}) × {len(seeds)} seed(s): about {passes:,} passes."
    )
    if not measures:
        st.info("Choose at least one similarity measure.")
        return
    hint = "Press **Run the sanity check** to randomize a copy of the model (the model you explore is never touched)."
    sig = work.run_button("Run the sanity check", settings, key=RUN, hint=hint)
    if sig is None:
        return
    results: dict[str, list[cache.RandomizationRow]] = {}
    jobs = [(m, s) for s in seeds for m in rows_methods]
    with work.Work(sig, "Randomizing...", key=RUN) as w:
        for i, (m, seed) in enumerate(jobs):
            w.step(i, len(jobs), f"{_title(m)}, seed {seed}: {n_steps} maps ({i + 1}/{len(jobs)})")
            row = cache.randomization(model_key, image_key, m, params.get(m, ()), target, st.session_state[MODE], seed, tuple(measures), loaded, x)
            results.setdefault(m, []).append(row)
    ok = {m: rs for m, rs in results.items() if all(r.maps is not None for r in rs)}
    for m, rs in results.items():
        for r in rs:
            if r.error:
                st.warning(f"**{_title(m)}** (seed {r.seed}): {r.error}")
    if not ok:
        return
    steps = next(iter(ok.values()))[0].steps
    st.subheader(
        "Maps as the model is randomized" + (" (cascading, from the logits down)" if st.session_state[MODE] == "cascading" else " (one block at a time)")
    )
    st.radio("Colour scale", ["one per row (magnitudes comparable)", "one per map (structure visible)"], key=SCALE, horizontal=True)
    per_map = st.session_state[SCALE].startswith("one per map")
    fig = render.randomization_figure([_title(m) for m in ok], steps, [rs[0].maps for rs in ok.values()], per_map=per_map)
    st.image(fig, caption=f"|map|, {'each map on its own colour scale' if per_map else 'one colour scale per row'}; seed {seeds[0]}", width="stretch")
    st.plotly_chart(_curves(ok, measures, steps), key="sanity_curves")
    st.caption(
        "Similarity of each step's map to the original: Spearman rank correlation (of the maps and of |map|), SSIM and the Pearson "
        "correlation of HOG features on |map| / max|map|; an undefined correlation counts as 0. Re-initialization: each module's "
        "reset_parameters() under a seeded generator (the same seed, the same weights). A method that explains the model drops; "
        "one that follows the image (like the edge-detector control) stays near 1."
    )
    table = pd.DataFrame(
        [
            {"method": m, "seed": r.seed, "step": i, "block": steps[i], "measure": s, "value": float(v)}
            for m, rs in ok.items()
            for r in rs
            for s in measures
            for i, v in enumerate(r.similarity[s], start=1)
        ]
    )
    table.insert(0, "mode", st.session_state[MODE])
    wide = table.groupby(["method", "step", "block", "measure"], sort=False)["value"].mean().unstack("measure").reset_index()
    wide["method"] = wide["method"].map(_title)
    st.dataframe(wide, hide_index=True, column_config={s: st.column_config.NumberColumn(format="%.3f") for s in measures})
    c1, c2 = st.columns(2)
    with c1:
        st.download_button(
            "Download the similarities (CSV)", table.to_csv(index=False).encode(), file_name="sanity_similarity.csv", mime="text/csv", on_click="ignore"
        )
    with c2:
        st.download_button("Download the figure (PNG)", lambda: _png(fig), file_name="sanity_figure.png", mime="image/png", on_click="ignore")


def _data_randomization(model_key: str, loaded: zoo.LoadedModel, image_key: str, x, target: int, methods: list[str], params: dict) -> None:
    st.caption(
        "Adebayo et al.'s data randomization test: the same network trained on permuted labels (`python -m zoo.train_synthetic "
        "--permuted-labels`). A method whose maps barely change explains the image, not what the model learned."
    )
    if model_key != "synthetic_shapes":
        st.info("The data randomization test uses the synthetic-shapes model and its permuted-label twin: choose **Synthetic shapes CNN** in the sidebar.")
        return
    reason = zoo.unavailable_reason(PERMUTED)
    if reason:
        st.error(reason)
        return
    permuted = cache.model(PERMUTED)
    rows_methods = methods + [c for c in CONTROLS if c not in methods]
    measures = tuple(SIMILARITIES)
    sig = work.signature("data randomization", model_key, image_key, rows_methods, [params.get(m, ()) for m in rows_methods], target)
    if work.stopped(sig, key="sanity_data"):
        return
    with work.Work(sig, "Maps from both models...", key="sanity_data"):
        res = cache.data_randomization(
            model_key, image_key, tuple(rows_methods), tuple((m, params.get(m, ())) for m in rows_methods), target, measures, loaded, permuted, x
        )
    for m, err in res.errors.items():
        st.warning(f"**{_title(m)}**: {err}")
    if not res.maps:
        return
    fig = render.randomization_figure([_title(m) for m in res.maps], ["trained", "permuted labels"], [v.cpu().numpy() for v in res.maps.values()], tile=128)
    st.image(fig, caption="|map| from the trained model and from the permuted-label model, one colour scale per row", width=420)
    table = pd.DataFrame({"method": [_title(m) for m in res.maps], **{SIMILARITIES[s]: [res.similarity[s][m] for m in res.maps] for s in measures}})
    st.dataframe(table, hide_index=True, column_config={SIMILARITIES[s]: st.column_config.NumberColumn(format="%.3f") for s in measures})
    st.download_button("Download (CSV)", table.to_csv(index=False).encode(), file_name="data_randomization.csv", mime="text/csv", on_click="ignore")


def page() -> None:
    chosen = inputs.page_start(
        "Sanity checks",
        'Adebayo et al. 2018, "Sanity Checks for Saliency Maps": does the map change when the model\'s weights (or its training labels) are randomized?',
    )
    if chosen is None:
        return
    model_key, loaded, images = chosen
    image_key, x, _, target, methods, params = inputs.image_header(model_key, loaded, images)
    if not methods:
        st.info("Choose at least one method.")
        return
    tab_model, tab_data = st.tabs(["Model randomization", "Data randomization"])
    with tab_model:
        _model_randomization(model_key, loaded, image_key, x, target, methods, params)
    with tab_data:
        _data_randomization(model_key, loaded, image_key, x, target, methods, params)


page()
