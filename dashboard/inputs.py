"""Inputs shared by the pages: the sidebar (model, image, uploads), the target, the methods and their parameters.

Every page renders the same sidebar with the same widget keys, so the choices carry over between pages.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from PIL import Image

import explainers
import zoo
from core.errors import InputError
from dashboard import cache, work
from dashboard import state as S

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"]


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


def method_label(name: str) -> str:
    spec = explainers.get(name)
    return f"{explainers.FAMILIES[spec.family]} · {spec.title}"


def method_params(methods: list[str]) -> dict[str, tuple[tuple[str, object], ...]]:
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
                            st.selectbox(p.name, p.choices, key=key, help=p.help, **S.unless_set(key, index=p.choices.index(p.default)))
                        elif isinstance(p.default, bool):
                            st.checkbox(p.name, key=key, help=p.help, **S.unless_set(key, value=p.default))
                        elif isinstance(p.default, int):
                            st.number_input(
                                p.name,
                                min_value=int(p.low),
                                max_value=int(p.high),
                                step=int(p.step or 1),
                                key=key,
                                help=p.help,
                                **S.unless_set(key, value=p.default),
                            )
                        else:
                            st.number_input(
                                p.name,
                                min_value=float(p.low),
                                max_value=float(p.high),
                                **S.unless_set(key, value=float(p.default)),
                                step=float(p.step or 0.01),
                                format="%g",
                                key=key,
                                help=p.help,
                            )
    for m in methods:
        spec = explainers.get(m)
        out[m] = tuple((p.name, st.session_state.get(S.param_key(m, p.name), p.default)) for p in spec.params)
    return out


def compute(
    jobs: list[tuple[str, str, torch.Tensor, int]], methods: list[str], params: dict, model_key: str, loaded: zoo.LoadedModel, *, key: str
) -> dict[tuple[str, str], cache.MapResult] | None:
    """Every (image, method) map, cached, with progress and a Stop button (``key``: the page's). None when the
    user stopped this computation (a message with a Resume button is shown instead)."""
    sig = work.signature("maps", model_key, [(j[0], j[3]) for j in jobs], methods, [params[m] for m in methods])
    if work.stopped(sig, key=key):
        return None
    results = {}
    total = len(jobs) * len(methods)
    with work.Work(sig, "Computing attributions...", key=key) as w:
        done = 0
        for image_key, _label, x, target in jobs:
            for m in methods:
                w.step(done, total, f"{explainers.get(m).title} ({done + 1}/{total})")
                results[(image_key, m)] = cache.attribution(model_key, image_key, m, params[m], target, loaded, x)
                done += 1
    return results


def page_start(title: str, caption: str) -> tuple[str, zoo.LoadedModel, dict[str, Image.Image]] | None:
    """An analysis page's opening: state defaults, title and caption, then the shared sidebar (see ``sidebar``)."""
    S.init()
    st.title(title)
    st.caption(caption)
    return sidebar()


def sidebar() -> tuple[str, zoo.LoadedModel, dict[str, Image.Image]] | None:
    """Uploads, model and image pickers; returns (model key, loaded model, image choices) or None (message shown)."""
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
    loaded_pair = _load_selected_model()
    if loaded_pair is None:
        return None
    return loaded_pair[0], loaded_pair[1], images


def target_picker(model_key: str, image_key: str, loaded: zoo.LoadedModel, probs: np.ndarray) -> int:
    """The searchable target class (default: the top prediction), remembered per model and image."""
    top = int(np.argmax(probs))
    key = f"target::{model_key}::{image_key}"
    return int(
        st.selectbox(
            "Target class (type to search)",
            list(range(len(loaded.classes))),
            format_func=lambda i: f"{i}: {loaded.classes[i]}",
            key=key,
            **S.unless_set(key, index=top),
        )
    )


def methods_picker(label: str = "Methods") -> list[str]:
    """The methods multiselect (shared by the pages), labelled by family."""
    all_methods = sorted(explainers.names(), key=lambda n: list(explainers.FAMILIES).index(explainers.get(n).family))
    st.multiselect(label, all_methods, key=S.METHODS, format_func=method_label, placeholder="Choose methods")
    return list(st.session_state[S.METHODS])


def unit(loaded: zoo.LoadedModel, x: torch.Tensor) -> np.ndarray:
    """The preprocessed image as the model sees it: float [H,W,3] in [0,1] (no second resize)."""
    return loaded.denormalize(x)[0].permute(1, 2, 0).cpu().numpy().astype(np.float64)


def image_header(
    model_key: str, loaded: zoo.LoadedModel, images: dict[str, Image.Image], *, with_methods: bool = True
) -> tuple[str, torch.Tensor, np.ndarray, int, list[str], dict]:
    """The analysis pages' header: the image as the model sees it, the target and (optionally) the methods with
    their parameters. Returns (image key, x [1,3,S,S], class probabilities, target, methods, parameters)."""
    image_key = st.session_state[S.IMAGE]
    x = loaded.preprocess(images[image_key])
    probs = cache.predictions(model_key, image_key, loaded, x)
    left, right = st.columns([1, 3])
    with left:
        st.image(unit(loaded, x), caption=f"{image_key} (as the model sees it)", width="stretch")
    with right:
        target = target_picker(model_key, image_key, loaded, probs)
        st.caption(f"p(target) on the image: {float(probs[target]):.4f}")
        methods = methods_picker() if with_methods else []
        params = method_params(methods) if with_methods else {}
    return image_key, x, probs, target, methods, params
