"""The sidebar panel for the user's own model (a TorchScript file today), kept in this session only."""

from __future__ import annotations

import streamlit as st

import zoo
from core.errors import InputError
from dashboard import cache
from dashboard import state as S

UPLOADED = "uploaded"  # the model picker's entry for this session's model


def key() -> str:
    """The cache key of this session's uploaded model."""
    return f"upload:{st.session_state[S.USER_MODEL]}"


def panel() -> zoo.LoadedModel | None:
    """The upload expander; returns this session's uploaded model (None when there is none)."""
    with st.sidebar.expander("Your own model (TorchScript)"):
        st.caption("A file written by `torch.jit.save`, returning logits [B, K]; optional class names, one per line.")
        model_file = st.file_uploader("Model file", type=["pt", "pth", "ts", "zip"], key="model_upload")
        names_file = st.file_uploader("Class names (.txt)", type=["txt"], key="names_upload")
        size = st.number_input("Input size (px)", min_value=16, max_value=1024, value=224, step=1, key="model_upload_size")
        if st.button("Load model", disabled=model_file is None, key="model_upload_go"):
            _load(model_file.getvalue(), names_file.getvalue() if names_file is not None else None, int(size))
    files = st.session_state[S.USER_MODEL_FILES]
    if not st.session_state[S.USER_MODEL] or files is None:
        return None
    data, names, size = files
    return cache.uploaded_model(st.session_state[S.USER_MODEL], data, names, size)


def _load(data: bytes, names: bytes | None, size: int) -> None:
    digest = cache.digest(data + (names or b"") + str(size).encode())
    try:
        cache.uploaded_model(digest, data, names, size)
    except InputError as exc:
        st.sidebar.error(str(exc))
        return
    st.session_state[S.USER_MODEL] = digest
    st.session_state[S.USER_MODEL_FILES] = (data, names, size)
    st.session_state[S.MODEL] = UPLOADED
    st.sidebar.success("Model loaded.")
