"""The sidebar panel for the user's own model (torch.export, safetensors or TorchScript), kept in this session only."""

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
    with st.sidebar.expander("Your own model"):
        st.caption(
            "A `torch.export.save` program (.pt2), safetensors weights (.safetensors) for a torchvision or timm "
            "architecture, or a `torch.jit.save` file (TorchScript: deprecated since torch 2.14, and methods that hook "
            "layers cannot apply). It returns logits [B, K]; optional class names, one per line."
        )
        model_file = st.file_uploader("Model file", type=["pt2", "safetensors", "pt", "pth", "ts", "zip"], key="model_upload")
        names_file = st.file_uploader("Class names (.txt)", type=["txt"], key="names_upload")
        size = st.number_input("Input size (px; safetensors: the architecture's)", min_value=16, max_value=1024, value=224, step=1, key="model_upload_size")
        arch = st.text_input("Architecture (safetensors)", value="resnet18", key="model_upload_arch")
        k = st.number_input("Number of classes (safetensors)", min_value=1, max_value=100000, value=1000, step=1, key="model_upload_classes")
        if st.button("Load model", disabled=model_file is None, key="model_upload_go"):
            kind = next((f for f in ("pt2", "safetensors") if model_file.name.lower().endswith("." + f)), "torchscript")
            _load((model_file.getvalue(), names_file.getvalue() if names_file is not None else None, int(size), kind, arch, int(k)))
    files = st.session_state[S.USER_MODEL_FILES]
    if not st.session_state[S.USER_MODEL] or files is None:
        return None
    return cache.uploaded_model(st.session_state[S.USER_MODEL], *files)


def _load(files: tuple[bytes, bytes | None, int, str, str, int]) -> None:
    """Load (model bytes, class names, input size, kind, architecture, classes); keep them when the model loads."""
    data, names, size, kind, arch, k = files
    digest = cache.digest(data + (names or b"") + f"{size}|{kind}|{arch}|{k}".encode())
    try:
        cache.uploaded_model(digest, *files)
    except InputError as exc:
        st.sidebar.error(str(exc))
        return
    st.session_state[S.USER_MODEL] = digest
    st.session_state[S.USER_MODEL_FILES] = files
    st.session_state[S.MODEL] = UPLOADED
    st.sidebar.success("Model loaded.")
