"""Compare page: a grid of attribution methods over one model and one image, several images (a row each), or one
method over the image's top classes (a class scan, as in CAM's original demonstrations)."""

from __future__ import annotations

import numpy as np
import streamlit as st

import explainers
from dashboard import grid, maps, patterns_panel, render, selection
from dashboard import state as S
from dashboard.selection import Selection

SCOPE = "compare"
MODES = ["One image", "Methods × images", "Class scan"]
MODE = S.key(SCOPE, "mode")
IMAGES = S.key(SCOPE, "images")
SCAN_METHOD = S.key(SCOPE, "scan_method")
SCAN_K = S.key(SCOPE, "scan_k")
SCAN_CLASSES = S.key(SCOPE, "scan_classes")


def _header(sel: Selection) -> None:
    st.markdown(f"#### Attribution maps · {sel.loaded.title}")
    st.radio("Mode", MODES, key=MODE, horizontal=True, label_visibility="collapsed")


def _caption(sel: Selection, what: str) -> None:
    st.caption(
        f"{what} Each tile: one method's map over the image as the model sees it ({sel.x.shape[-1]} px), with its runtime. "
        "Signed maps: red = evidence for the target, blue = against; the others: bright = relevant (colour bars below)."
    )


# ---------------------------------------------------------------------------------- one image


def _one_image(sel: Selection, opts: grid.Display) -> None:
    _caption(sel, f"**Target {sel.target_label}** (p = {sel.probs[sel.target]:.3f}) on **{sel.image_key}**.")
    if not sel.methods:
        st.info("Choose at least one method in the sidebar.")
        return
    job = maps.Job(sel.image_key, sel.image_key, sel.x, sel.target)
    results = maps.compute(sel, [job], list(sel.methods), key="compare")
    if results is None:
        return
    cells = [grid.Cell(m, results[(0, m)]) for m in sel.methods]
    tiles, scales = grid.draw([(sel.image_key, sel.unit, cells)], opts)
    _downloads(sel, tiles, scales, {m: results[(0, m)] for m in sel.methods}, f"{sel.image_key}, target {sel.target_label}")
    patterns_panel.panel(sel)


def _downloads(sel: Selection, tiles: list, scales: list, outcomes: dict, note: str) -> None:
    grid.export_panel(tiles, scales, f"{sel.loaded.title} · {note}", key="compare")
    raw = {k: o.value for k, o in outcomes.items() if o.ok}
    st.download_button(
        "Download the raw maps (.npz)",
        lambda: render.maps_npz(raw, model=sel.model_key, note=note),
        file_name="attribution_maps.npz",
        mime="application/octet-stream",
        on_click="ignore",
    )


# ---------------------------------------------------------------------------------- methods x images


def _many_images(sel: Selection, opts: grid.Display) -> None:
    if IMAGES not in st.session_state:
        st.session_state[IMAGES] = [k for k in (sel.image_key, sel.loaded.default_image) if k in sel.images][:2]
    st.session_state[IMAGES] = [k for k in st.session_state[IMAGES] if k in sel.images]
    st.multiselect("Images (one row each; target = each image's predicted class)", list(sel.images), key=IMAGES)
    jobs = [maps.image_job(sel, k) for k in st.session_state[IMAGES]]
    _caption(sel, "Each row: an image and its predicted class.")
    if not sel.methods or not jobs:
        st.info("Choose at least one method (sidebar) and one image.")
        return
    results = maps.compute(sel, jobs, list(sel.methods), key="compare")
    if results is None:
        return
    rows = [(j.label, selection.unit(sel.loaded, j.x), [grid.Cell(m, results[(n, m)]) for m in sel.methods]) for n, j in enumerate(jobs)]
    tiles, scales = grid.draw(rows, opts)
    _downloads(sel, tiles, scales, {f"{jobs[n].image_key}::{m}": o for (n, m), o in results.items()}, "methods × images, targets = predicted classes")
    patterns_panel.panel(sel)


# ---------------------------------------------------------------------------------- class scan


def _scan_classes(sel: Selection) -> list[int]:
    c1, c2, c3 = st.columns([2, 1, 3])
    methods = explainers.names()
    if SCAN_METHOD not in st.session_state:
        st.session_state[SCAN_METHOD] = sel.methods[0] if sel.methods else "gradcam"
    c1.selectbox("Method", methods, key=SCAN_METHOD, format_func=selection.method_label)
    c2.number_input("Top classes", 1, min(20, len(sel.loaded.classes)), key=SCAN_K, **S.unless_set(SCAN_K, value=min(5, len(sel.loaded.classes))))
    c3.multiselect(
        "…or these classes", list(range(len(sel.loaded.classes))), key=SCAN_CLASSES, format_func=lambda i: f"{i}: {sel.loaded.classes[i]}", placeholder="top classes"
    )
    chosen = list(st.session_state[SCAN_CLASSES])
    return chosen or [int(i) for i in np.argsort(-sel.probs)[: int(st.session_state[SCAN_K])]]


def _class_scan(sel: Selection, opts: grid.Display) -> None:
    classes = _scan_classes(sel)
    method = st.session_state[SCAN_METHOD]
    _caption(sel, f"**{explainers.get(method).title}** for each class on **{sel.image_key}**: what the model would point at for that class.")
    jobs = [maps.Job(sel.image_key, f"class {c}", sel.x, c) for c in classes]  # the same image, one target per class
    results = maps.compute(sel, jobs, [method], key="compare_scan")
    if results is None:
        return
    cells = [grid.Cell(method, results[(n, method)], title=f"{c}: {sel.loaded.classes[c]} (p = {sel.probs[c]:.3f})") for n, c in enumerate(classes)]
    tiles, scales = grid.draw([(sel.image_key, sel.unit, cells)], opts)
    _downloads(sel, tiles, scales, {f"class_{c}": results[(n, method)] for n, c in enumerate(classes)}, f"{explainers.get(method).title}, class scan of {sel.image_key}")


def page() -> None:
    sel = selection.require()
    opts = grid.display_options()
    _header(sel)
    mode = st.session_state[MODE]
    if mode == MODES[0]:
        _one_image(sel, opts)
    elif mode == MODES[1]:
        _many_images(sel, opts)
    else:
        _class_scan(sel, opts)


page()
