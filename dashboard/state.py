"""Session-state keys in one place, their defaults, and the one rule that keeps every setting across page switches.

Streamlit forgets a widget's value when a run does not draw that widget (a page switch), unless the value was last
set through session state. So every page-level setting's key is made by ``key(scope, name)`` ("<scope>::<name>"),
which records it, and ``persist()``, called by the entry file on every run, re-assigns every recorded key: a page
cannot forget to register a setting. (Buttons, uploads and downloads must not be re-assigned: their keys are not
made by ``key()``.)
The shared sidebar's keys (``MODEL``, ``IMAGE``, ``METHODS``...) are drawn on every page and need nothing more.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

import explainers
import zoo

MODEL = "model_name"
IMAGE = "image_name"
IMAGES = "image_names"  # methods x images mode
UPLOADED_IMAGES = "uploaded_images"  # key -> PIL image (this session only)
USER_MODEL = "user_model_key"  # key of this session's uploaded model
USER_MODEL_FILES = "user_model_files"  # what reloads it: (bytes, class names bytes | None, input size, kind, arch, classes)
METHODS = "methods"
SELECTION = "selection"  # the Selection drawn by the entry file in this run (plain state, not a widget)
SEP = "::"
_KEPT: set[str] = set()  # every key made by key(), in any session of this process

DEFAULTS: dict[str, Any] = {
    MODEL: zoo.DEFAULT_MODEL,
    IMAGE: zoo.DEFAULT_IMAGE,
    IMAGES: [zoo.DEFAULT_IMAGE, "chelsea"],
    UPLOADED_IMAGES: {},
    USER_MODEL: None,
    USER_MODEL_FILES: None,
    METHODS: None,  # filled from explainers.default_methods() at first use
}


def key(scope: str, name: str) -> str:
    """The session key of a page-level setting (a widget that holds a value): kept across page switches by ``persist``."""
    k = f"{scope}{SEP}{name}"
    _KEPT.add(k)
    return k


def param_key(method: str, param: str) -> str:
    """Widget key of one method parameter."""
    return key(f"param{SEP}{method}", param)


def init() -> None:
    """Put every default into ``st.session_state`` that is not there yet. A new session may start from the link's
    query parameters: ``?model=<registry name>&image=<sample name>&methods=<name>,<name>&target=<index>`` (the page
    keeps its address in step with the sidebar, so the address bar is always a link to the current view; unknown
    names are ignored)."""
    first = MODEL not in st.session_state
    for k, value in DEFAULTS.items():
        if k not in st.session_state:
            st.session_state[k] = value.copy() if isinstance(value, (dict, list)) else value
    if st.session_state[METHODS] is None:
        st.session_state[METHODS] = explainers.default_methods()
    if first:
        _from_link()


def _from_link() -> None:
    q = st.query_params
    model, image = q.get("model"), q.get("image")
    if model in zoo.model_names():
        st.session_state[MODEL] = model
    if image and image in zoo.sample_images():
        st.session_state[IMAGE] = image
    chosen = [m for m in (q.get("methods") or "").split(",") if m in explainers.names()]
    if chosen:
        st.session_state[METHODS] = list(dict.fromkeys(chosen))
    target = q.get("target")
    if target and target.isdigit():
        st.session_state[key("link", "target")] = int(target)


def persist() -> None:
    """Keep widget values across pages: every key made by ``key()`` is re-assigned through session state (the
    documented workaround for widgets a run does not draw)."""
    for k in list(st.session_state):
        if k in _KEPT:
            st.session_state[k] = st.session_state[k]


def unless_set(k: str, **default: Any) -> dict[str, Any]:
    """A widget's default value argument, left out once the key has a value (avoids Streamlit's double-default warning)."""
    return {} if k in st.session_state else default
