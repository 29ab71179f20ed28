"""Faithfulness page: deletion/insertion curves of the chosen methods, their AUCs and other metrics, a step
scrubber, and a leaderboard over a set of images."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

import explainers
import metrics
import zoo
from core.errors import InputError
from dashboard import cache, inputs, work
from dashboard import state as S
from metrics.deletion_insertion import conventions
from metrics.inference import is_ready, should_compile
from metrics.leaderboard import agreement, evaluate, image_set, items_from_images, summarize

STEP = "faith::step"
SUBSTRATE = "faith::substrate"
EXTRA = "faith::extra"
POINT = "faith::point"
LB_SOURCE = "faith::lb_source"
LB_IMAGES = "faith::lb_images"
LB_N = "faith::lb_n"
LB_METRICS = "faith::lb_metrics"
LB_RESULT = "leaderboard_result"  # plain session state (not a widget): survives page switches
MAX_COLS = 5
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def _title(method: str) -> str:
    return explainers.get(method).title


def _curves_figure(results: list[cache.Curves], point: int) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Deletion (lower AUC is better)", "Insertion (higher AUC is better)"), shared_yaxes=True)
    for i, r in enumerate(results):
        colour = PALETTE[i % len(PALETTE)]
        frac = r.pixels / r.pixels[-1]
        steps = np.arange(len(frac))
        for col, (curve, score) in enumerate(((r.deletion, r.deletion_auc), (r.insertion, r.insertion_auc)), start=1):
            fig.add_trace(
                go.Scatter(
                    x=frac,
                    y=curve,
                    mode="lines",
                    name=f"{_title(r.method)} ({score:.3f})",
                    legendgroup=r.method,
                    showlegend=col == 1,
                    line={"color": colour, "width": 2},
                    customdata=np.stack([steps, r.pixels], axis=1),
                    hovertemplate=f"<b>{_title(r.method)}</b><br>step %{{customdata[0]}} (%{{customdata[1]}} px, %{{x:.1%}})<br>p(target) = %{{y:.4f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    if results:
        x = float(results[0].pixels[point] / results[0].pixels[-1])
        for col in (1, 2):
            fig.add_vline(x=x, line={"dash": "dot", "color": "grey"}, row=1, col=col)
    fig.update_xaxes(title_text="share of pixels replaced / restored", tickformat=".0%")
    fig.update_yaxes(title_text="softmax probability of the target", range=[0, 1.02], row=1, col=1)
    fig.update_layout(height=420, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return fig


def _csv(df: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue().encode()


def _scores_table(results: list[cache.Curves], extra: dict[str, dict[str, float | str]]) -> pd.DataFrame:
    rows = []
    for r in results:
        row = {"method": _title(r.method), "deletion AUC ↓": r.deletion_auc, "insertion AUC ↑": r.insertion_auc}
        for k, per in extra.items():
            spec = metrics.get(k)
            v = per.get(r.method)
            row[f"{spec.title} {'↑' if spec.higher_is_better else '↓'}"] = v if isinstance(v, float) else math.nan
        row["curve seconds"] = round(r.seconds, 2)
        rows.append(row)
    return pd.DataFrame(rows)


def _scrubber(results: list[cache.Curves], maps: dict[str, np.ndarray], loaded: zoo.LoadedModel, x, step: int, substrate: str, point: int) -> None:
    for start in range(0, len(results), MAX_COLS):
        cols = st.columns(MAX_COLS)
        for col, r in zip(cols, results[start : start + MAX_COLS], strict=False):
            amap = torch.from_numpy(maps[r.method]).unsqueeze(0).to(x.device)
            with col:
                for curve, values in (("deletion", r.deletion), ("insertion", r.insertion)):
                    img = metrics.perturbed(x, amap, point, curve=curve, step=step, substrate=substrate)
                    st.image(inputs.unit(loaded, img).clip(0, 1), caption=f"{_title(r.method)} · {curve}: p = {values[point]:.3f}", width="stretch")


def _current_image(model_key: str, loaded: zoo.LoadedModel, image_key: str, x: torch.Tensor, target: int, methods: list[str], params: dict) -> None:
    masks = zoo.sample_masks()
    mask = loaded.preprocess_mask(masks[image_key]) if image_key in masks else None
    h, w = x.shape[-2:]
    if st.session_state.get(STEP, 0) > h * w:  # another model with a smaller input
        st.session_state[STEP] = h * w
    others = [k for k in metrics.names() if k not in ("deletion", "insertion") and (mask is not None or not metrics.get(k).needs_mask)]
    if EXTRA in st.session_state:  # a localization metric stays chosen only while the image has a mask
        st.session_state[EXTRA] = [k for k in st.session_state[EXTRA] if k in others]
    c1, c2, c3 = st.columns([1, 1, 2])
    with c1:
        st.number_input(
            "Pixels per step",
            min_value=1,
            max_value=h * w,
            step=1,
            key=STEP,
            help=f"{h}: one row's worth; 224 at 224 px is the paper's setting (225 points)",
            **S.unless_set(STEP, value=224),
        )
    with c2:
        st.selectbox(
            "Deletion substrate", ["zero", "blur", "mean"], key=SUBSTRATE, help="what deleted pixels become (zero: in the normalized input space, as in RISE)"
        )
    with c3:
        st.multiselect(
            "More metrics for this image", others, key=EXTRA, format_func=lambda k: metrics.get(k).title, placeholder="ROAD, infidelity, complexity..."
        )
    step, substrate = int(st.session_state[STEP]), st.session_state[SUBSTRATE]
    extra_names = [k for k in st.session_state[EXTRA] if k in others]
    if not methods:
        st.info("Choose at least one method.")
        return
    results_maps = inputs.compute([(image_key, image_key, x, target)], methods, params, model_key, loaded, key="faith_maps")
    if results_maps is None:
        return
    failed = {m: r.error for (_, m), r in results_maps.items() if r.error}
    for m, err in failed.items():
        st.warning(f"**{_title(m)}** is left out: {err}")
    ok = [m for m in methods if m not in failed]
    if not ok:
        return
    maps = {m: results_maps[(image_key, m)].map for m in ok}
    n_points = math.ceil(h * w / step) + 1
    compile_ = should_compile(len(ok) * 2 * max(n_points - 2, 0))
    sig = work.signature("curves", model_key, image_key, target, ok, [params[m] for m in ok], step, substrate, extra_names)
    if work.stopped(sig, key="faith_curves"):
        return
    results = []
    extra: dict[str, dict[str, float | str]] = {k: {} for k in extra_names}
    first_build = not is_ready(loaded.model, x, compiled=compile_)
    with work.Work(sig, "Deletion and insertion curves...", key="faith_curves") as job:
        for i, m in enumerate(ok):
            note = " — preparing the fast forward path first (torch.compile: up to a minute, once per server)" if i == 0 and first_build and compile_ else ""
            job.step(i, len(ok), f"Deletion and insertion: {_title(m)} ({i + 1}/{len(ok)}, {2 * n_points} points each){note}")
            results.append(cache.curves(model_key, image_key, m, params[m], target, step, substrate, compile_, loaded, x, maps[m]))
        total = len(extra_names) * len(ok)
        for j, (k, m) in enumerate((k, m) for k in extra_names for m in ok):
            job.step(j, total, f"{metrics.get(k).title}: {_title(m)}")
            extra[k][m] = cache.metric_score(model_key, image_key, m, params[m], target, k, (), loaded, x, maps[m], mask)
    bad = [r for r in results if r.error]
    for r in bad:
        st.warning(f"**{_title(r.method)}**: {r.error}")
    results = [r for r in results if not r.error]
    if not results:
        return
    for k, per in extra.items():
        for m, v in per.items():
            if isinstance(v, str):
                st.warning(f"{metrics.get(k).title} of {_title(m)}: {v}")

    point = min(int(st.session_state.get(POINT, 0)), n_points - 1)
    if POINT in st.session_state:
        st.session_state[POINT] = point
    st.plotly_chart(_curves_figure(results, point), key="faith_curves")
    st.caption("Conventions: " + conventions(step, substrate, h * w))
    for k in extra_names:
        spec = metrics.get(k)
        st.caption(f"{spec.title} ({spec.direction}; {spec.paper}): {spec.conventions}")
    table = _scores_table(results, extra)
    st.dataframe(
        table, hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.4f") for c in table.columns if c not in ("method", "curve seconds")}
    )
    st.download_button(
        "Download the scores (CSV)",
        _csv(table.assign(image=image_key, target=target, step=step, substrate=substrate)),
        file_name="faithfulness_scores.csv",
        mime="text/csv",
        on_click="ignore",
    )
    st.caption(f"Inference path: {results[0].engine}" if results[0].engine else "")

    st.subheader("What the model sees at each step")
    st.slider(
        "Step", 0, n_points - 1, key=POINT, help="k: the top k × step pixels are replaced (deletion) or restored (insertion)", **S.unless_set(POINT, value=0)
    )
    _scrubber(results, maps, loaded, x, step, substrate, min(int(st.session_state[POINT]), n_points - 1))


# ---------------------------------------------------------------------------------- leaderboard


def _leaderboard(model_key: str, loaded: zoo.LoadedModel, images: dict, methods: list[str], params: dict) -> None:
    st.header("Leaderboard")
    st.caption(
        "Every chosen method scored on a set of images: mean with a 95% percentile-bootstrap interval over images, rank per metric, and the agreement of the metrics' rankings (Kendall τ). Target: the label where the set has one, else the top prediction."
    )
    st.radio("Images", ["Sample images", "Synthetic shapes (with masks)"], key=LB_SOURCE, horizontal=True)
    synthetic = st.session_state[LB_SOURCE].startswith("Synthetic")
    if synthetic:
        st.number_input("How many synthetic images", min_value=1, max_value=500, step=1, key=LB_N, **S.unless_set(LB_N, value=20))
    else:
        photos = [k for k in images if not k.startswith("shapes: ")]
        if LB_IMAGES in st.session_state:
            st.session_state[LB_IMAGES] = [k for k in st.session_state[LB_IMAGES] if k in images]
        st.multiselect("Which images", list(images), key=LB_IMAGES, **S.unless_set(LB_IMAGES, default=photos[:3]))
    default_metrics = ["deletion", "insertion", "sparseness", "complexity"] + (["pointing_game", "relevance_mass"] if synthetic else [])
    st.multiselect("Metrics", metrics.names(), key=LB_METRICS, format_func=lambda k: metrics.get(k).title, **S.unless_set(LB_METRICS, default=default_metrics))
    chosen_metrics = list(st.session_state[LB_METRICS])
    step = int(st.session_state.get(STEP, 224))
    substrate = st.session_state.get(SUBSTRATE, "zero")
    if st.button("Run the leaderboard", type="primary", disabled=not (methods and chosen_metrics)):
        try:
            if synthetic:
                items, _ = image_set(loaded, f"synthetic:{int(st.session_state[LB_N])}")
            else:
                chosen = [k for k in st.session_state[LB_IMAGES] if k in images]
                if not chosen:
                    raise InputError("choose at least one image")
                items = items_from_images(loaded, {k: images[k] for k in chosen}, zoo.sample_masks())
        except InputError as exc:
            st.error(str(exc))
            return
        metric_params = {"deletion": {"step": step, "substrate": substrate}, "insertion": {"step": step}}
        method_params = {m: dict(params[m]) for m in methods}
        work.resume()
        with work.Work(work.signature("leaderboard", model_key), "Leaderboard...", key="leaderboard"):
            rows = evaluate(
                loaded,
                items,
                methods,
                chosen_metrics,
                metric_params={k: v for k, v in metric_params.items() if k in chosen_metrics},
                method_params=method_params,
            )
        summary = summarize(rows)
        st.session_state[LB_RESULT] = {
            "model": model_key,
            "rows": rows,
            "summary": summary,
            "agreement": agreement(summary),
            "images": len(items),
            "step": step,
            "substrate": substrate,
        }
    result = st.session_state.get(LB_RESULT)
    if not result:
        return
    if result["model"] != model_key:
        st.info(f"The last leaderboard was run on {result['model']}; run it again for this model.")
    summary = pd.DataFrame(result["summary"])
    if summary.empty:
        st.warning("No scores: every method failed or no metric applied to these images (localization needs masks).")
        return
    summary["method"] = summary["method"].map(_title)
    summary["metric"] = summary["metric"].map(lambda k: f"{metrics.get(k).title} {'↑' if metrics.get(k).higher_is_better else '↓'}")
    st.markdown(f"**{result['images']} images**, {result['step']} pixels per step, substrate {result['substrate']}")
    wide = summary.assign(
        cell=summary.apply(lambda r: f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] #{int(r['rank']) if pd.notna(r['rank']) else '-'}", axis=1)
    )
    table = wide.pivot(index="method", columns="metric", values="cell")
    order = list(dict.fromkeys(summary["metric"]))  # registry order: deletion, insertion, ...
    methods_order = [_title(m) for m in methods if _title(m) in table.index] + [m for m in table.index if m not in {_title(x) for x in methods}]
    st.dataframe(table.loc[methods_order, order], column_config={"method": st.column_config.TextColumn("method")})
    st.caption(
        "Each cell: mean [95% bootstrap interval] #rank. "
        + " ".join(f"{metrics.get(k).title}: {metrics.get(k).conventions}." for k in dict.fromkeys(r["metric"] for r in result["summary"]))
    )
    fig = go.Figure()
    for k, grp in summary.groupby("metric", sort=False):
        fig.add_trace(
            go.Bar(
                x=grp["method"],
                y=grp["mean"],
                name=k,
                error_y={"type": "data", "symmetric": False, "array": grp["ci_high"] - grp["mean"], "arrayminus": grp["mean"] - grp["ci_low"]},
                hovertemplate="%{x}: %{y:.4f}<extra>" + k + "</extra>",
            )
        )
    fig.update_layout(barmode="group", height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10}, yaxis_title="mean score (95% CI)")
    st.plotly_chart(fig, key="lb_bars")
    ks, tau = result["agreement"]
    if len(ks) >= 2:
        titles = [metrics.get(k).title for k in ks]
        heat = go.Figure(
            go.Heatmap(
                z=tau,
                x=titles,
                y=titles,
                zmin=-1,
                zmax=1,
                colorscale="RdBu",
                text=np.round(tau, 2),
                texttemplate="%{text}",
                hovertemplate="%{y} vs %{x}: τ = %{z:.2f}<extra></extra>",
            )
        )
        heat.update_layout(
            height=360,
            margin={"l": 10, "r": 10, "t": 30, "b": 10},
            title="Do the metrics agree on the ranking? (Kendall τ, oriented: +1 = same order of merit)",
        )
        st.plotly_chart(heat, key="lb_tau")
    c1, c2 = st.columns(2)
    with c1:
        st.download_button(
            "Download the summary (CSV)", _csv(pd.DataFrame(result["summary"])), file_name="leaderboard_summary.csv", mime="text/csv", on_click="ignore"
        )
    with c2:
        st.download_button(
            "Download every score (CSV)", _csv(pd.DataFrame(result["rows"])), file_name="leaderboard_rows.csv", mime="text/csv", on_click="ignore"
        )


def page() -> None:
    chosen = inputs.page_start(
        "Faithfulness",
        "Does the map point at what the model uses? Deletion and insertion (Petsiuk et al. 2018), ROAD, infidelity, localization and complexity.",
    )
    if chosen is None:
        return
    model_key, loaded, images = chosen
    image_key, x, _, target, methods, params = inputs.image_header(model_key, loaded, images)
    _current_image(model_key, loaded, image_key, x, target, methods, params)
    st.divider()
    _leaderboard(model_key, loaded, images, methods, params)


page()
