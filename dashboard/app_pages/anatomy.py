"""Anatomy page: the model's layers, first-layer filters, feature maps for the current image, and activation maximization."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import streamlit as st
import torch
from PIL import Image

import anatomy as V
import zoo
from core.errors import InputError
from dashboard import render, selection, work
from dashboard import state as S

FILTER_LAYER = S.key("anatomy", "filter_layer")
FMAP_LAYER = S.key("anatomy", "fmap_layer")
TOP = S.key("anatomy", "top")
OBJECTIVE = S.key("anatomy", "objective")
CLASS = S.key("anatomy", "class")
OBJ_LAYER = S.key("anatomy", "obj_layer")
CHANNEL = S.key("anatomy", "channel")
PARAM = S.key("anatomy", "param")
STEPS = S.key("anatomy", "steps")
SEED = S.key("anatomy", "seed")
RESULT = "anatomy_result"  # plain state: the last optimized image and its settings
PARAMS = {"fourier": "Fourier + colour decorrelation, transforms (Olah et al. 2017)", "pixel": "plain pixels, no transforms (Simonyan et al. 2014)"}


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _grid(tiles: torch.Tensor, cols: int = 8, cell: int = 48) -> np.ndarray:
    """Images [N,3,h,w] in [0,1] -> one uint8 grid image (nearest upsampling, 2 px white gaps)."""
    n = tiles.shape[0]
    rows = (n + cols - 1) // cols
    out = np.full((rows * (cell + 2), cols * (cell + 2), 3), 255, dtype=np.uint8)
    for i in range(n):
        t = torch.nn.functional.interpolate(tiles[i : i + 1], size=(cell, cell), mode="nearest")[0]
        r, c = divmod(i, cols)
        out[r * (cell + 2) : r * (cell + 2) + cell, c * (cell + 2) : c * (cell + 2) + cell] = (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return out


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    return (img[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)


def _layers_section(loaded: zoo.LoadedModel) -> None:
    with st.expander("Layers", expanded=False):
        rows = [
            {"layer": layer.name, "type": layer.kind, "parameters": layer.params, "output [C, H, W]": str(list(layer.out_shape)) if layer.out_shape else "-"}
            for layer in V.layers(loaded)
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True, height=320)


def _filters_section(loaded: zoo.LoadedModel, convs: list[str]) -> None:
    st.subheader("Filters")
    st.selectbox("Convolution", convs, key=FILTER_LAYER, help="the first layer's filters look at RGB; deeper ones are shown as grey means over their inputs")
    f = V.filters(loaded, st.session_state[FILTER_LAYER])
    shown = f[:64]
    grid = _grid(shown, cols=16, cell=40)
    st.image(
        grid,
        caption=f"{st.session_state[FILTER_LAYER]}: {len(shown)} of {f.shape[0]} filters, {f.shape[-1]}×{f.shape[-1]}, each min-max scaled",
        width="stretch",
    )
    st.download_button("Download the filters (PNG)", _png(grid), file_name="filters.png", mime="image/png", on_click="ignore")


def _feature_maps_section(loaded: zoo.LoadedModel, x: torch.Tensor, image_key: str, convs: list[str]) -> None:
    st.subheader("Feature maps")
    c1, c2 = st.columns([3, 1])
    with c1:
        choices = convs + ([loaded.cam_layer] if loaded.cam_layer and loaded.cam_layer not in convs else [])
        st.selectbox("Layer", choices, key=FMAP_LAYER, **S.unless_set(FMAP_LAYER, index=len(choices) - 1))
    with c2:
        st.slider("Top channels", 4, 32, key=TOP, step=4, **S.unless_set(TOP, value=16))
    try:
        fm = V.feature_maps(loaded, x, st.session_state[FMAP_LAYER], top=int(st.session_state[TOP]))
    except InputError as exc:
        st.warning(str(exc))
        return
    st.caption(f"{image_key} through {st.session_state[FMAP_LAYER]} (output {list(fm.shape)}): the channels with the largest mean activation, each on its own colour scale")
    cols = st.columns(8)
    for i, (m, c, mean) in enumerate(zip(fm.maps, fm.channels, fm.means, strict=True)):
        with cols[i % 8]:
            st.image(
                render.colorize(render.normalize_map(m.numpy(), signed=False), "viridis", signed=False), caption=f"ch {c} · mean {mean:.3f}", width="stretch"
            )
    bar = render.Scale("viridis", False, None, "activation")
    st.image(render.colorbar(bar), caption=bar.caption(99), width=480)


def _objective_settings(loaded: zoo.LoadedModel, target: int, convs: list[str]) -> tuple[str, int, str | None]:
    c1, c2, c3 = st.columns(3)
    c1.radio("Maximize", ["class logit", "channel (mean)", "neuron (centre)"], key=OBJECTIVE)
    kind = {"class logit": "class", "channel (mean)": "channel", "neuron (centre)": "neuron"}[st.session_state[OBJECTIVE]]
    if kind == "class":
        c2.selectbox("Class", list(range(len(loaded.classes))), format_func=lambda i: f"{i}: {loaded.classes[i]}", key=CLASS, **S.unless_set(CLASS, index=target))
    else:
        c2.selectbox("Layer", convs, key=OBJ_LAYER, **S.unless_set(OBJ_LAYER, index=len(convs) - 1))
        c2.number_input("Channel", min_value=0, max_value=4095, step=1, key=CHANNEL, **S.unless_set(CHANNEL, value=0))
    c3.radio("Parametrization", list(PARAMS), key=PARAM, format_func=PARAMS.get)
    c3.slider("Steps", 16, 512, key=STEPS, step=16, **S.unless_set(STEPS, value=128))
    c3.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=SEED, **S.unless_set(SEED, value=0))
    index = int(st.session_state[CLASS]) if kind == "class" else int(st.session_state[CHANNEL])
    return kind, index, None if kind == "class" else st.session_state[OBJ_LAYER]


def _optimize(loaded: zoo.LoadedModel, settings: tuple) -> None:
    """Run the optimization with a live preview; the result goes to ``RESULT`` (an error is shown instead)."""
    _, kind, index, layer, param, steps, seed = settings
    work.resume()
    preview = st.empty()
    pixel = param == "pixel"
    try:
        with work.Work(work.signature("maximize", settings), "Optimizing...", key="anatomy_opt"):
            img = V.maximize(
                loaded,
                V.Objective(kind, index, layer),
                steps=steps,
                seed=seed,
                param=param,
                transforms=not pixel,
                l2=1.0 if pixel and kind == "class" else 0.0,
                tv=0.05 if pixel and kind != "class" else 0.0,
                preview=lambda step, _n, img: preview.image(_to_uint8(img), caption=f"step {step}", width=256),
                preview_every=8,
            )
    except InputError as exc:
        st.error(str(exc))
        return
    finally:
        preview.empty()
    probs = loaded.predict(loaded.normalize(img))[0].cpu().numpy()
    st.session_state[RESULT] = {"settings": settings, "image": _to_uint8(img), "probs": probs}


def _maximize_section(model_key: str, loaded: zoo.LoadedModel, target: int, convs: list[str]) -> None:
    st.subheader("Activation maximization")
    kind, index, layer = _objective_settings(loaded, target, convs)
    settings = (model_key, kind, index, layer, st.session_state[PARAM], int(st.session_state[STEPS]), int(st.session_state[SEED]))
    if st.button("Optimize", type="primary"):
        _optimize(loaded, settings)
    res = st.session_state.get(RESULT)
    if not res or res["settings"][0] != model_key:
        return
    left, right = st.columns([1, 2])
    kind_r, index_r, layer_r = res["settings"][1:4]
    what = f"class {index_r}: {loaded.classes[index_r]}" if kind_r == "class" else f"{kind_r} {index_r} of {layer_r}"
    with left:
        st.image(res["image"], caption=f"maximizes {what} ({res['settings'][5]} steps, seed {res['settings'][6]})", width="stretch")
        st.download_button("Download the image (PNG)", _png(res["image"]), file_name="activation_maximization.png", mime="image/png", on_click="ignore")
    with right:
        top = np.argsort(-res["probs"])[:5]
        st.markdown("**What the model sees in it**")
        st.dataframe(
            {"class": [f"{i}: {loaded.classes[i]}" for i in top], "probability": [float(res["probs"][i]) for i in top]},
            hide_index=True,
            column_config={"probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0, format="%.3f")},
        )


def _fit_choices(loaded: zoo.LoadedModel, convs: list[str], target: int) -> None:
    """After a model switch, choices remembered from the other model fall back to this model's defaults."""
    fmap_choices = convs + ([loaded.cam_layer] if loaded.cam_layer and loaded.cam_layer not in convs else [])
    for key, ok, default in ((FILTER_LAYER, convs, convs[0]), (FMAP_LAYER, fmap_choices, fmap_choices[-1]), (OBJ_LAYER, convs, convs[-1])):
        if key in st.session_state and st.session_state[key] not in ok:
            st.session_state[key] = default
    if CLASS in st.session_state and not 0 <= int(st.session_state[CLASS]) < len(loaded.classes):
        st.session_state[CLASS] = target


def page() -> None:
    sel = selection.require()
    st.markdown(f"#### Model anatomy · {sel.loaded.title}")
    st.caption("The visualization half of interpretability: layers, filters, feature maps, and images that maximize a unit (Olah et al. 2017; Simonyan et al. 2014).")
    convs = V.conv_layers(sel.loaded)
    if not convs:
        st.info("This model has no convolution modules to show (a TorchScript model hides its layers).")
        return
    _fit_choices(sel.loaded, convs, sel.target)
    _layers_section(sel.loaded)
    _filters_section(sel.loaded, convs)
    _feature_maps_section(sel.loaded, sel.x, sel.image_key, convs)
    _maximize_section(sel.model_key, sel.loaded, sel.target, convs)


page()
