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
from dashboard import cache, charts, maps, render, selection, work
from dashboard import scores as score_panel
from dashboard import state as S
from dashboard.selection import Selection
from metrics.similarity import SIMILARITIES

SCOPE = "sanity"
MODE = S.key(SCOPE, "mode")
SEEDS = S.key(SCOPE, "seeds")
MEASURES = S.key(SCOPE, "measures")
SCALE = S.key(SCOPE, "scale")
RUN = S.key(SCOPE, "run")  # the settings last run (the page recomputes from the cache on reruns)
CONTROLS = ["edge_sobel"]  # model-independent: its curves must stay at 1
PERMUTED = "synthetic_shapes_permuted"
SCALES = ["one per map (structure visible)", "one per row (magnitudes comparable)"]
Rows = dict[str, list[metrics.Randomization]]


def _title(m: str) -> str:
    return explainers.get(m).title


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------- settings and run


def _settings() -> list[str]:
    c1, c2, c3 = st.columns([1, 1, 2])
    c1.radio("Randomization", ["cascading", "independent"], key=MODE, help="cascading: from the logits down, cumulatively; independent: one block at a time")
    c2.number_input("Seeds", min_value=1, max_value=5, step=1, key=SEEDS, help="more than one: a band over the seeds", **S.unless_set(SEEDS, value=1))
    c3.multiselect("Similarity", list(SIMILARITIES), key=MEASURES, format_func=lambda s: SIMILARITIES[s], **S.unless_set(MEASURES, default=list(SIMILARITIES)))
    return [s for s in SIMILARITIES if s in st.session_state[MEASURES]]


def _run(sel: Selection, methods: list[str], measures: list[str]) -> Rows | None:
    blocks = metrics.model_blocks(sel.loaded)
    seeds = list(range(int(st.session_state[SEEDS])))
    n_steps = len(blocks) + 1
    secs = maps.seconds_for(sel, methods) * n_steps * len(seeds)
    st.caption(
        f"{len(methods)} methods (the control {', '.join(_title(c) for c in CONTROLS)} always included) × {n_steps} steps ({len(blocks)} blocks of "
        f"{sel.loaded.title}) × {len(seeds)} seed(s): about {work.duration(secs)} on this machine."
    )
    settings = (sel.model_key, sel.image_key, sel.target, tuple(methods), tuple(sel.params.get(m, ()) for m in methods), st.session_state[MODE], tuple(seeds), tuple(measures))
    sig = work.run_button("Run the sanity check", settings, key=RUN, hint="Press **Run the sanity check** to randomize a copy of the model (the model you explore is never touched).")
    if sig is None:
        return None
    rows: Rows = {}
    jobs = [(m, s) for s in seeds for m in methods]
    with work.Work(sig, f"Randomizing (about {work.duration(secs)})...", key=RUN) as w:
        for i, (m, seed) in enumerate(jobs):
            w.step(i, len(jobs), f"{_title(m)}, seed {seed}: {n_steps} maps ({i + 1}/{len(jobs)})")
            o = cache.randomization(sel.model_key, sel.image_key, m, sel.params.get(m, ()), sel.target, st.session_state[MODE], seed, tuple(measures), sel.loaded, sel.x)
            if not o.ok:
                st.warning(f"**{_title(m)}** (seed {seed}): {o.error}")
                continue
            for err in o.value.errors.values():
                st.warning(f"**{_title(m)}** (seed {seed}): {err}")
            rows.setdefault(m, []).append(o.value)
    return {m: rs for m, rs in rows.items() if len(rs) == len(seeds)}


# ---------------------------------------------------------------------------------- results


def _curves(rows: Rows, measures: list[str], floor: dict[str, float]) -> go.Figure:
    steps = next(iter(rows.values()))[0].steps[1:]
    fig = make_subplots(rows=1, cols=len(measures), subplot_titles=[SIMILARITIES[s] for s in measures], shared_yaxes=True)
    for i, (m, runs) in enumerate(rows.items()):
        for c, s in enumerate(measures, start=1):
            vals = np.stack([r.similarity[s][m].numpy() for r in runs])  # [seeds, S]
            if len(runs) > 1:
                band = np.concatenate([vals.max(0), vals.min(0)[::-1]])
                fig.add_trace(go.Scatter(x=steps + steps[::-1], y=band, fill="toself", fillcolor=charts.colour(i), opacity=0.18, line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=m), row=1, col=c)
            fig.add_trace(
                go.Scatter(x=steps, y=vals.mean(0), mode="lines+markers", name=_title(m), legendgroup=m, showlegend=c == 1, line={"color": charts.colour(i), "dash": "dot" if m in CONTROLS else "solid"}, hovertemplate=f"<b>{_title(m)}</b><br>%{{x}}<br>{s} = %{{y:.3f}}<extra></extra>"),
                row=1,
                col=c,
            )
            fig.add_hline(y=floor[s], line={"dash": "dash", "color": "grey", "width": 1}, row=1, col=c, annotation_text="two random maps" if c == 1 else None, annotation_position="bottom left")
    fig.update_yaxes(range=[-1.05, 1.05], row=1, col=1, title_text="similarity to the original map")
    fig.update_xaxes(tickangle=-60, title_text="randomized down to (top first)")
    fig.update_layout(height=460, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.45})
    return fig


def _figure(rows: Rows) -> np.ndarray:
    st.radio("Colour scale", SCALES, key=SCALE, horizontal=True, help="one per map: where a map survives randomization, its structure shows even if its magnitude collapsed")
    per_map = st.session_state[SCALE] == SCALES[0]
    first = {m: rs[0] for m, rs in rows.items()}
    steps = next(iter(first.values())).steps
    fig = render.randomization_figure([_title(m) for m in first], steps, [r.maps[m].cpu().numpy() for m, r in first.items()], per_map=per_map)
    st.image(fig, caption=f"|map|, {'each map on its own colour scale' if per_map else 'one colour scale per row'}; seed {first[next(iter(first))].seed}", width="stretch")
    return fig


def _table(rows: Rows, measures: list[str]) -> pd.DataFrame:
    table = pd.DataFrame(
        [{"method": m, "seed": r.seed, "step": i, "block": r.steps[i], "measure": s, "value": float(v)} for m, rs in rows.items() for r in rs for s in measures for i, v in enumerate(r.similarity[s][m].tolist(), start=1)]
    )
    table.insert(0, "mode", st.session_state[MODE])
    return table


def _results(rows: Rows, measures: list[str], shape: tuple[int, int]) -> None:
    st.subheader("Maps as the model is randomized" + (" (cascading, from the logits down)" if st.session_state[MODE] == "cascading" else " (one block at a time)"))
    fig = _figure(rows)
    curves = _curves(rows, measures, metrics.random_floor(shape, measures))
    st.plotly_chart(curves, key="sanity_curves")
    st.caption(
        "Similarity of each step's map to the original: Spearman rank correlation (of the maps and of |map|), SSIM and the Pearson correlation of HOG "
        "features on |map| / max|map|; an undefined correlation counts as 0. Re-initialization: each module's reset_parameters() under a seeded "
        "generator (the same seed, the same weights). A method that explains the model falls to the dashed line (the similarity of two independent "
        "random maps); one that follows the image, like the edge-detector control, stays near 1."
    )
    table = _table(rows, measures)
    wide = table.groupby(["method", "step", "block", "measure"], sort=False)["value"].mean().unstack("measure").reset_index()
    wide["method"] = wide["method"].map(_title)
    st.dataframe(wide, hide_index=True, column_config={s: st.column_config.NumberColumn(format="%.3f") for s in measures})
    c1, c2, c3 = st.columns(3)
    c1.download_button("Download the similarities (CSV)", table.to_csv(index=False).encode(), file_name="sanity_similarity.csv", mime="text/csv", on_click="ignore")
    c2.download_button("Download the figure (PNG)", lambda: _png(fig), file_name="sanity_figure.png", mime="image/png", on_click="ignore")
    with c3:
        charts.export_buttons(curves, "sanity_curves", key="sanity_curves")


def _model_randomization(sel: Selection) -> None:
    measures = _settings()
    if not measures:
        st.info("Choose at least one similarity measure.")
        return
    methods = list(sel.methods) + [c for c in CONTROLS if c not in sel.methods]
    rows = _run(sel, methods, measures)
    if rows:
        _results(rows, measures, tuple(sel.x.shape[-2:]))


def _data_randomization(sel: Selection) -> None:
    st.caption(
        "Adebayo et al.'s data randomization test: the same network trained on permuted labels (`python -m zoo.train_synthetic --permuted-labels`). "
        "A method whose maps barely change explains the image, not what the model learned."
    )
    if sel.model_key != "synthetic_shapes":
        st.info("The data randomization test uses the synthetic-shapes model and its permuted-label twin: choose **Synthetic shapes CNN** in the sidebar.")
        return
    reason = zoo.unavailable_reason(PERMUTED)
    if reason:
        st.error(reason)
        return
    methods = list(sel.methods) + [c for c in CONTROLS if c not in sel.methods]
    sig = work.signature("data randomization", sel.model_key, sel.image_key, methods, [sel.params.get(m, ()) for m in methods], sel.target)
    if work.stopped(sig, key="sanity_data"):
        return
    with work.Work(sig, "Maps from both models...", key="sanity_data"):
        o = cache.data_randomization(sel.model_key, sel.image_key, tuple(methods), tuple((m, sel.params.get(m, ())) for m in methods), sel.target, tuple(SIMILARITIES), sel.loaded, cache.model(PERMUTED), sel.x)
    if not o.ok:
        st.error(o.error)
        return
    res = o.value
    for m, err in res.errors.items():
        st.warning(f"**{_title(m)}**: {err}")
    if not res.maps:
        return
    fig = render.randomization_figure([_title(m) for m in res.maps], ["trained", "permuted labels"], [v.cpu().numpy() for v in res.maps.values()], tile=128)
    st.image(fig, caption="|map| from the trained model and from the permuted-label model, each map on its own colour scale", width=460)
    table = pd.DataFrame({"method": [_title(m) for m in res.maps], **{SIMILARITIES[s]: [res.similarity[s][m] for m in res.maps] for s in SIMILARITIES}})
    st.dataframe(table, hide_index=True, column_config={SIMILARITIES[s]: st.column_config.NumberColumn(format="%.3f") for s in SIMILARITIES})
    st.download_button("Download (CSV)", table.to_csv(index=False).encode(), file_name="data_randomization.csv", mime="text/csv", on_click="ignore")


def page() -> None:
    sel = selection.require()
    st.markdown(f"#### Sanity checks · {sel.loaded.title}")
    st.caption(f'Adebayo et al. 2018, "Sanity Checks for Saliency Maps": does the map change when the model\'s weights (or its training labels) are randomized? Target {sel.target_label} on {sel.image_key}.')
    if not sel.methods:
        st.info("Choose at least one method in the sidebar.")
        return
    tab_model, tab_data = st.tabs(["Model randomization", "Data randomization"])
    with tab_model:
        _model_randomization(sel)
    with tab_data:
        _data_randomization(sel)
    score_panel.panel(sel, ("randomization",), scope="sanity_scores", title="Randomization metrics (Sixt et al. 2020; Hedström et al. 2023)", default=("random_logit",))


page()
