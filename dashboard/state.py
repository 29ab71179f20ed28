"""Session-state keys in one place, with their defaults."""

from __future__ import annotations

from typing import Any

import streamlit as st

import explainers
import zoo

MODEL = "model_name"
IMAGE = "image_name"
IMAGES = "image_names"  # methods x images mode
UPLOADED_IMAGES = "uploaded_images"  # key -> PIL image (this session only)
USER_MODEL = "user_model_key"  # key of this session's uploaded TorchScript model
USER_MODEL_FILES = "user_model_files"  # (bytes, class names bytes | None, input size)
METHODS = "methods"
TARGET = "target"
MODE = "grid_mode"
VIEW = "view"  # overlay | heatmap
CMAP_SIGNED = "cmap_signed"
CMAP_ABS = "cmap_abs"
OPACITY = "opacity"
SIGN = "sign_mode"  # auto | absolute | signed
CLIP = "clip_percentile"

DEFAULTS: dict[str, Any] = {
    MODEL: zoo.DEFAULT_MODEL,
    IMAGE: zoo.DEFAULT_IMAGE,
    IMAGES: [zoo.DEFAULT_IMAGE, "coffee"],
    UPLOADED_IMAGES: {},
    USER_MODEL: None,
    USER_MODEL_FILES: None,
    METHODS: None,  # filled from explainers.default_methods() at first use
    MODE: "One image",
    VIEW: "Overlay",
    CMAP_SIGNED: "RdBu_r",
    CMAP_ABS: "inferno",
    OPACITY: 0.7,
    SIGN: "Auto",
    CLIP: 99.0,
}


def init() -> None:
    """Put every default into ``st.session_state`` that is not there yet. A new session may start from the
    link's query parameters: ``?model=<registry name>&image=<sample name>&methods=<name>,<name>`` (shareable
    views for talks; unknown names are ignored)."""
    first = MODEL not in st.session_state
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value.copy() if isinstance(value, (dict, list)) else value
    if st.session_state[METHODS] is None:
        st.session_state[METHODS] = explainers.default_methods()
    if first:
        model, image = st.query_params.get("model"), st.query_params.get("image")
        if model in zoo.model_names():
            st.session_state[MODEL] = model
        if image and image in zoo.sample_images():
            st.session_state[IMAGE] = image
        chosen = [m for m in (st.query_params.get("methods") or "").split(",") if m in explainers.names()]
        if chosen:
            st.session_state[METHODS] = list(dict.fromkeys(chosen))


def persist() -> None:
    """Keep widget values across pages: Streamlit drops the value of a widget that a run does not draw,
    unless it was last set through session state (the documented workaround)."""
    for key in list(st.session_state):
        if isinstance(key, str) and (key in DEFAULTS or key.startswith(("param::", "target::", "faith::", "dataset::"))):
            st.session_state[key] = st.session_state[key]


def unless_set(key: str, **default: Any) -> dict[str, Any]:
    """A widget's default value argument, left out once the key has a value (avoids Streamlit's double-default warning)."""
    return {} if key in st.session_state else default


def param_key(method: str, param: str) -> str:
    """Widget key of one method parameter."""
    return f"param::{method}::{param}"
