"""Compare page: a grid of attribution methods over one model and one or several images."""

from __future__ import annotations

import numpy as np
import streamlit as st

import explainers
from dashboard import cache, inputs, render
from dashboard import state as S

MAX_COLS = 5


# ---------------------------------------------------------------------------------- inputs


def _display_options() -> dict:
    with st.sidebar.expander("Display", expanded=True):
        st.radio("View", ["Overlay", "Heatmap"], key=S.VIEW, horizontal=True)
        st.radio("Sign", ["Auto", "Absolute", "Signed"], key=S.SIGN, horizontal=True, help="Auto: diverging colours for signed methods, absolute for the rest")
        st.selectbox("Colour map (signed)", render.SIGNED_CMAPS, key=S.CMAP_SIGNED)
        st.selectbox("Colour map (absolute)", render.ABS_CMAPS, key=S.CMAP_ABS)
        st.slider("Overlay opacity", 0.0, 1.0, key=S.OPACITY, step=0.05)
        st.slider("Clip at percentile", 50.0, 100.0, key=S.CLIP, step=0.5, help="values above this percentile of |map| saturate")
    return {k: st.session_state[k] for k in (S.VIEW, S.SIGN, S.CMAP_SIGNED, S.CMAP_ABS, S.OPACITY, S.CLIP)}


def _tile(result: cache.MapResult, image: np.ndarray, opts: dict) -> np.ndarray:
    spec = explainers.get(result.method)
    signed = {"Auto": spec.signed, "Absolute": False, "Signed": True}[opts[S.SIGN]]
    return render.render_tile(
        result.map,
        image,
        signed=signed,
        cmap=opts[S.CMAP_SIGNED] if signed else opts[S.CMAP_ABS],
        overlay=opts[S.VIEW] == "Overlay",
        opacity=opts[S.OPACITY],
        clip_percentile=opts[S.CLIP],
    )


# ---------------------------------------------------------------------------------- compute


def _draw_rows(rows: list[tuple[str, np.ndarray, list[tuple[str, cache.MapResult]]]], opts: dict) -> list:
    """Draw the grid; returns the figure rows for the PNG export."""
    fig_rows = []
    for label, image, results in rows:
        st.markdown(f"**{label}**")
        cells = [("Input", None)] + results
        fig_tiles = []
        for start in range(0, len(cells), MAX_COLS):
            cols = st.columns(MAX_COLS)
            for col, (title, res) in zip(cols, cells[start : start + MAX_COLS], strict=False):
                with col:
                    if res is None:
                        st.image((image * 255).astype(np.uint8), caption=title, width="stretch")
                    elif res.error:
                        st.warning(f"**{title}** — not available: {res.error}")
                    else:
                        tile = _tile(res, image, opts)
                        caption = f"{title} · {res.seconds:.2f} s"
                        st.image(tile, caption=" · ".join([caption, *res.notes]), width="stretch")
                        fig_tiles.append((caption, tile))
        fig_rows.append((label, image, fig_tiles))
    return fig_rows


# ---------------------------------------------------------------------------------- page


def page() -> None:
    S.init()
    st.title("Compare attribution methods")
    chosen = inputs.sidebar()
    opts = _display_options()
    if chosen is None:
        return
    model_key, loaded, images = chosen

    st.radio("Mode", ["One image", "Methods × images"], key=S.MODE, horizontal=True)
    methods = inputs.methods_picker()
    params = inputs.method_params(methods)

    if st.session_state[S.MODE] == "One image":
        image_key = st.session_state[S.IMAGE]
        image = images[image_key]
        x = loaded.preprocess(image)
        probs = cache.predictions(model_key, image_key, loaded, x)
        top = np.argsort(-probs)[:5]
        left, right = st.columns([1, 2])
        with left:
            st.image(inputs.unit(loaded, x), caption=f"{image_key} (as the model sees it)", width="stretch")
        with right:
            st.markdown("**Top-5 predictions**")
            st.dataframe(
                {"class": [loaded.classes[i] for i in top], "index": [int(i) for i in top], "probability": [float(probs[i]) for i in top]},
                hide_index=True,
                column_config={"probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0, format="%.3f")},
            )
            target = inputs.target_picker(model_key, image_key, loaded, probs)
        jobs = [(image_key, image_key, x, int(target))]
    else:
        chosen_images = st.multiselect("Images (one row each; target = each image's predicted class)", list(images), key=S.IMAGES)
        jobs = []
        for key in chosen_images:
            x = loaded.preprocess(images[key])
            pred = int(np.argmax(cache.predictions(model_key, key, loaded, x)))
            jobs.append((key, f"{key} → {loaded.classes[pred]}", x, pred))

    if not methods or not jobs:
        st.info("Choose at least one method and one image.")
        return
    results = inputs.compute(jobs, methods, params, model_key, loaded, key="compare")
    if results is None:
        return
    rows = []
    for image_key, label, x, target in jobs:
        unit = inputs.unit(loaded, x)
        title = label if st.session_state[S.MODE] != "One image" else f"{image_key} → target {target}: {loaded.classes[target]}"
        rows.append((title, unit, [(explainers.get(m).title, results[(image_key, m)]) for m in methods]))
    fig_rows = _draw_rows(rows, opts)

    ok = {f"{img}::{m}": r.map for (img, m), r in results.items() if r.map is not None}
    c1, c2 = st.columns(2)
    with c1:
        st.download_button(
            "Download the grid (PNG, labelled)", lambda: render.grid_png(fig_rows), file_name="attribution_grid.png", mime="image/png", on_click="ignore"
        )
    with c2:
        st.download_button(
            "Download the raw maps (.npz)",
            lambda: render.maps_npz(ok, model=model_key, targets=",".join(f"{j[0]}={j[3]}" for j in jobs)),
            file_name="attribution_maps.npz",
            mime="application/octet-stream",
            on_click="ignore",
        )


page()
