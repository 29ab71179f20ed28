"""Compare page: a grid of attribution methods over one model and one or several images."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from PIL import Image

import explainers
import zoo
from core.errors import InputError
from dashboard import cache, render
from dashboard import state as S

MAX_COLS = 5
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"]


# ---------------------------------------------------------------------------------- inputs


def _image_choices() -> dict[str, Image.Image]:
    images = zoo.sample_images()
    images.update(st.session_state[S.UPLOADED_IMAGES])
    return images


def _sidebar_uploads() -> None:
    files = st.sidebar.file_uploader("Upload images", type=IMAGE_TYPES, accept_multiple_files=True, key="image_upload")
    uploaded: dict[str, Image.Image] = st.session_state[S.UPLOADED_IMAGES]
    for f in files or []:
        data = f.getvalue()
        key = f"upload: {f.name} ({cache.digest(data)[:6]})"
        if key in uploaded:
            continue
        try:
            uploaded[key] = zoo.load_image(data)
            st.session_state[S.IMAGE] = key
        except InputError as exc:
            st.sidebar.error(f"{f.name}: {exc}")


def _sidebar_model_upload() -> None:
    with st.sidebar.expander("Your own model (TorchScript)"):
        st.caption("A file written by `torch.jit.save`, returning logits [B, K]; optional class names, one per line.")
        model_file = st.file_uploader("Model file", type=["pt", "pth", "ts", "zip"], key="model_upload")
        names_file = st.file_uploader("Class names (.txt)", type=["txt"], key="names_upload")
        size = st.number_input("Input size (px)", min_value=16, max_value=1024, value=224, step=1, key="model_upload_size")
        if st.button("Load model", disabled=model_file is None, key="model_upload_go"):
            data = model_file.getvalue()
            names = names_file.getvalue() if names_file is not None else None
            key = cache.digest(data + (names or b"") + str(size).encode())
            try:
                cache.uploaded_model(key, data, names, int(size))
            except InputError as exc:
                st.error(str(exc))
                return
            st.session_state[S.USER_MODEL] = key
            st.session_state[S.USER_MODEL_FILES] = (data, names, int(size))
            st.session_state[S.MODEL] = "uploaded"
            st.success("Model loaded.")


def _model_label(name: str) -> str:
    if name == "uploaded":
        return "Uploaded TorchScript model"
    spec = zoo.MODELS.get(name)
    return spec.title + ("" if zoo.unavailable_reason(name) is None else "  (weights missing)")


def _load_selected_model() -> tuple[str, zoo.LoadedModel] | None:
    name = st.session_state[S.MODEL]
    if name == "uploaded":
        key = st.session_state[S.USER_MODEL]
        data, names, size = st.session_state[S.USER_MODEL_FILES]
        return f"upload:{key}", cache.uploaded_model(key, data, names, size)
    reason = zoo.unavailable_reason(name)
    if reason:
        st.error(reason)
        if st.button("Try to download the weights", key="download_weights"):
            with st.spinner("Downloading..."):
                try:
                    zoo.download_weights(name)
                    st.rerun()
                except InputError as exc:
                    st.error(str(exc))
        return None
    with st.spinner(f"Loading {zoo.MODELS.get(name).title}..."):
        try:
            return name, cache.model(name)
        except InputError as exc:
            st.error(str(exc))
            return None


def _method_label(name: str) -> str:
    spec = explainers.get(name)
    return f"{explainers.FAMILIES[spec.family]} · {spec.title}"


def _method_params(methods: list[str]) -> dict[str, tuple[tuple[str, object], ...]]:
    """Render each selected method's parameters (in an expander) and return them, hashable."""
    out = {}
    with_params = [m for m in methods if explainers.get(m).params]
    if with_params:
        with st.expander("Method parameters"):
            cols = st.columns(min(3, len(with_params)))
            for i, m in enumerate(with_params):
                with cols[i % len(cols)]:
                    st.markdown(f"**{explainers.get(m).title}**")
                    for p in explainers.get(m).params:
                        key = S.param_key(m, p.name)
                        if p.choices:
                            st.selectbox(p.name, p.choices, index=p.choices.index(p.default), key=key, help=p.help)
                        elif isinstance(p.default, bool):
                            st.checkbox(p.name, value=p.default, key=key, help=p.help)
                        elif isinstance(p.default, int):
                            st.number_input(p.name, min_value=int(p.low), max_value=int(p.high), value=p.default, step=int(p.step or 1), key=key, help=p.help)
                        else:
                            st.number_input(
                                p.name,
                                min_value=float(p.low),
                                max_value=float(p.high),
                                value=float(p.default),
                                step=float(p.step or 0.01),
                                format="%g",
                                key=key,
                                help=p.help,
                            )
    for m in methods:
        spec = explainers.get(m)
        out[m] = tuple((p.name, st.session_state.get(S.param_key(m, p.name), p.default)) for p in spec.params)
    return out


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


def _compute(
    jobs: list[tuple[str, str, torch.Tensor, int]], methods: list[str], params: dict, model_key: str, loaded: zoo.LoadedModel
) -> dict[tuple[str, str], cache.MapResult]:
    """Every (image, method) map, cached; a progress bar while anything is computed."""
    results = {}
    total = len(jobs) * len(methods)
    bar = st.progress(0.0, text="Computing attributions...") if total else None
    done = 0
    for image_key, _label, x, target in jobs:
        for m in methods:
            if bar is not None:
                bar.progress(done / total, text=f"Computing {explainers.get(m).title} ({done + 1}/{total})")
            results[(image_key, m)] = cache.attribution(model_key, image_key, m, params[m], target, loaded, x)
            done += 1
    if bar is not None:
        bar.empty()
    return results


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
                        st.image(tile, caption=caption, width="stretch")
                        fig_tiles.append((caption, tile))
        fig_rows.append((label, image, fig_tiles))
    return fig_rows


# ---------------------------------------------------------------------------------- page


def page() -> None:
    S.init()
    st.title("Compare attribution methods")
    _sidebar_uploads()
    _sidebar_model_upload()
    models = zoo.model_names() + (["uploaded"] if st.session_state[S.USER_MODEL] else [])
    if st.session_state[S.MODEL] not in models:
        st.session_state[S.MODEL] = zoo.DEFAULT_MODEL
    st.sidebar.selectbox("Model", models, key=S.MODEL, format_func=_model_label)
    images = _image_choices()
    if st.session_state[S.IMAGE] not in images:
        st.session_state[S.IMAGE] = zoo.DEFAULT_IMAGE
    st.sidebar.selectbox("Image", list(images), key=S.IMAGE)
    opts = _display_options()

    loaded_pair = _load_selected_model()
    if loaded_pair is None:
        return
    model_key, loaded = loaded_pair

    st.radio("Mode", ["One image", "Methods × images"], key=S.MODE, horizontal=True)
    all_methods = sorted(explainers.names(), key=lambda n: list(explainers.FAMILIES).index(explainers.get(n).family))
    st.multiselect("Methods", all_methods, key=S.METHODS, format_func=_method_label, placeholder="Choose methods")
    methods: list[str] = st.session_state[S.METHODS]
    params = _method_params(methods)

    if st.session_state[S.MODE] == "One image":
        image_key = st.session_state[S.IMAGE]
        image = images[image_key]
        x = loaded.preprocess(image)
        probs = cache.predictions(model_key, image_key, loaded, x)
        top = np.argsort(-probs)[:5]
        left, right = st.columns([1, 2])
        with left:
            st.image(_unit(loaded, x), caption=f"{image_key} (as the model sees it)", width="stretch")
        with right:
            st.markdown("**Top-5 predictions**")
            st.dataframe(
                {"class": [loaded.classes[i] for i in top], "index": [int(i) for i in top], "probability": [float(probs[i]) for i in top]},
                hide_index=True,
                column_config={"probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0, format="%.3f")},
            )
            target = st.selectbox(
                "Target class (type to search)",
                list(range(len(loaded.classes))),
                index=int(top[0]),
                format_func=lambda i: f"{i}: {loaded.classes[i]}",
                key=f"target::{model_key}::{image_key}",
            )
        jobs = [(image_key, image_key, x, int(target))]
    else:
        chosen = st.multiselect("Images (one row each; target = each image's predicted class)", list(images), key=S.IMAGES)
        jobs = []
        for key in chosen:
            x = loaded.preprocess(images[key])
            pred = int(np.argmax(cache.predictions(model_key, key, loaded, x)))
            jobs.append((key, f"{key} → {loaded.classes[pred]}", x, pred))

    if not methods or not jobs:
        st.info("Choose at least one method and one image.")
        return
    results = _compute(jobs, methods, params, model_key, loaded)
    rows = []
    for image_key, label, x, target in jobs:
        unit = _unit(loaded, x)
        title = label if st.session_state[S.MODE] != "One image" else f"{image_key} → target {target}: {loaded.classes[target]}"
        rows.append((title, unit, [(explainers.get(m).title, results[(image_key, m)]) for m in methods]))
    fig_rows = _draw_rows(rows, opts)

    ok = {f"{img}::{m}": r.map for (img, m), r in results.items() if r.map is not None}
    c1, c2 = st.columns(2)
    with c1:
        st.download_button("Download the grid (PNG, labelled)", lambda: render.grid_png(fig_rows), file_name="attribution_grid.png", mime="image/png")
    with c2:
        st.download_button(
            "Download the raw maps (.npz)",
            lambda: render.maps_npz(ok, model=model_key, targets=",".join(f"{j[0]}={j[3]}" for j in jobs)),
            file_name="attribution_maps.npz",
            mime="application/octet-stream",
        )


def _unit(loaded: zoo.LoadedModel, x: torch.Tensor) -> np.ndarray:
    """The preprocessed image as the model sees it: float [H,W,3] in [0,1] (no second resize)."""
    return loaded.denormalize(x)[0].permute(1, 2, 0).cpu().numpy().astype(np.float64)


page()
