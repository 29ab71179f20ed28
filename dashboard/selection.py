"""The shared sidebar, drawn once per run by the entry file: model, image, uploads, target, methods and their
parameters. It returns one frozen ``Selection`` that every page reads (``current()``), instead of each page drawing
its own pickers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
from PIL import Image

import explainers
import zoo
from core.errors import InputError
from dashboard import cache, model_upload
from dashboard import state as S

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"]
TARGET_SCOPE = "target"
NOTICE = "selection_notice"  # a one-off message for the next run (plain state)


@dataclass(frozen=True)
class Selection:
    """What the sidebar chose: the model (``model_key`` names it in caches), the images on offer, the current image
    ``x`` [1,3,S,S] (model input space) with its class ``probs`` [K], the ``target`` class, the ``methods`` and their
    parameters (method -> hashable ((name, value), ...))."""

    model_key: str
    loaded: zoo.LoadedModel
    images: dict[str, Image.Image]
    image_key: str
    x: torch.Tensor
    probs: np.ndarray
    target: int
    methods: tuple[str, ...]
    params: dict[str, tuple[tuple[str, object], ...]]

    @property
    def unit(self) -> np.ndarray:
        """The image as the model sees it: float [H,W,3] in [0,1]."""
        return unit(self.loaded, self.x)

    @property
    def target_label(self) -> str:
        return f"{self.target}: {self.loaded.classes[self.target]}"

    def mask(self) -> torch.Tensor | None:
        """The ground-truth mask [1,S,S] of a synthetic sample image (None for any other image)."""
        masks = zoo.sample_masks()
        return self.loaded.preprocess_mask(masks[self.image_key]) if self.image_key in masks else None


def unit(loaded: zoo.LoadedModel, x: torch.Tensor) -> np.ndarray:
    """A preprocessed image as the model sees it: float [H,W,3] in [0,1] (no second resize)."""
    return loaded.denormalize(x)[0].permute(1, 2, 0).cpu().numpy().astype(np.float64)


def current() -> Selection | None:
    """This run's selection (None when no model could be loaded: the sidebar says why)."""
    return st.session_state.get(S.SELECTION)


def require() -> Selection:
    """This run's selection, or stop the page (the reason is already on screen)."""
    sel = current()
    if sel is None:
        st.stop()
    return sel


def draw() -> Selection | None:
    """The sidebar; stores and returns the selection."""
    st.session_state[S.SELECTION] = None
    _image_uploads()
    user_model = model_upload.panel()
    loaded_pair = _model_picker(user_model)
    images = _image_picker(loaded_pair[1] if loaded_pair else None)
    if loaded_pair is None:
        return None
    model_key, loaded = loaded_pair
    image_key = st.session_state[S.IMAGE]
    x = loaded.preprocess(images[image_key])
    probs = cache.predictions(model_key, image_key, loaded, x)
    target = _target_picker(model_key, image_key, loaded, probs)
    methods = methods_picker()
    sel = Selection(model_key, loaded, images, image_key, x, probs, target, tuple(methods), method_params(methods))
    st.session_state[S.SELECTION] = sel
    _sync_link(sel)
    return sel


# ---------------------------------------------------------------------------------- model and image


def _image_uploads() -> None:
    files = st.sidebar.file_uploader("Upload images", type=IMAGE_TYPES, accept_multiple_files=True, key="image_upload")
    uploaded: dict[str, Image.Image] = st.session_state[S.UPLOADED_IMAGES]
    for f in files or []:
        data = f.getvalue()
        name = f"upload: {f.name} ({cache.digest(data)[:6]})"
        if name in uploaded:
            continue
        try:
            uploaded[name] = zoo.load_image(data)
            st.session_state[S.IMAGE] = name
        except InputError as exc:
            st.sidebar.error(f"{f.name}: {exc}")


def _model_label(name: str) -> str:
    if name == model_upload.UPLOADED:
        return "Your uploaded model"
    spec = zoo.MODELS.get(name)
    return spec.title + ("" if zoo.unavailable_reason(name) is None else "  (weights missing)")


def _on_model_change() -> None:
    """A sample image of the other kind (a photo for the shapes CNN, a shape for an ImageNet model) is swapped for the
    new model's own sample, and the page says so; uploads are left alone."""
    name = st.session_state[S.MODEL]
    if name == model_upload.UPLOADED or name not in zoo.model_names():
        return
    wanted = zoo.MODELS.get(name).default_image
    image = st.session_state[S.IMAGE]
    if image in zoo.sample_images() and image.startswith("shapes: ") != wanted.startswith("shapes: "):
        st.session_state[S.IMAGE] = wanted
        st.session_state[NOTICE] = f"Image switched to **{wanted}**, a sample of what {zoo.MODELS.get(name).title} was trained on (pick any image in the sidebar)."


def _model_picker(user_model: zoo.LoadedModel | None) -> tuple[str, zoo.LoadedModel] | None:
    models = zoo.model_names() + ([model_upload.UPLOADED] if user_model is not None else [])
    if st.session_state[S.MODEL] not in models:
        st.session_state[S.MODEL] = zoo.DEFAULT_MODEL
    st.sidebar.selectbox("Model", models, key=S.MODEL, format_func=_model_label, on_change=_on_model_change)
    name = st.session_state[S.MODEL]
    if name == model_upload.UPLOADED:
        return model_upload.key(), user_model
    reason = zoo.unavailable_reason(name)
    if reason:
        _missing_weights(name, reason)
        return None
    try:
        with st.spinner(f"Loading {zoo.MODELS.get(name).title}..."):
            return name, cache.model(name)
    except InputError as exc:
        st.error(str(exc))
        return None


def _missing_weights(name: str, reason: str) -> None:
    st.error(reason)
    if st.button("Try to download the weights", key="download_weights"):
        with st.spinner("Downloading..."):
            try:
                zoo.download_weights(name)
            except InputError as exc:
                st.error(str(exc))
                return
        st.rerun()


def _image_picker(loaded: zoo.LoadedModel | None) -> dict[str, Image.Image]:
    images = zoo.sample_images()
    images.update(st.session_state[S.UPLOADED_IMAGES])
    if st.session_state[S.IMAGE] not in images:
        st.session_state[S.IMAGE] = loaded.default_image if loaded is not None else zoo.DEFAULT_IMAGE
    st.sidebar.selectbox("Image", list(images), key=S.IMAGE)
    notice = st.session_state.pop(NOTICE, None)
    if notice:
        st.toast(notice)
    return images


# ---------------------------------------------------------------------------------- target and methods


def _target_picker(model_key: str, image_key: str, loaded: zoo.LoadedModel, probs: np.ndarray) -> int:
    """The searchable target class (default: the top prediction, or the link's target), remembered per model and image."""
    top = int(np.argmax(probs))
    link = st.session_state.pop(S.key("link", "target"), None)
    k = S.key(TARGET_SCOPE, f"{model_key}|{image_key}")
    if link is not None and 0 <= link < len(loaded.classes):
        st.session_state[k] = link
    top5 = [int(i) for i in np.argsort(-probs)[:5]]
    order = [top] + [i for i in top5 if i != top] + [i for i in range(len(loaded.classes)) if i not in set(top5)]
    return int(
        st.sidebar.selectbox(
            "Target class (type to search)",
            order,
            format_func=lambda i: f"{i}: {loaded.classes[i]} ({probs[i]:.3f})",
            key=k,
            help="The class every map explains; the list starts with the top-5 predictions (probability in brackets)",
            **S.unless_set(k, index=0),
        )
    )


def method_label(name: str) -> str:
    """A method's title (chips stay short enough to read in the sidebar; the list is ordered by family)."""
    return explainers.get(name).title


def methods_picker() -> list[str]:
    """The methods multiselect, labelled by family."""
    families = list(explainers.FAMILIES)
    all_methods = sorted(explainers.names(), key=lambda n: families.index(explainers.get(n).family))
    st.session_state[S.METHODS] = [m for m in st.session_state[S.METHODS] if m in all_methods]
    st.sidebar.multiselect("Methods", all_methods, key=S.METHODS, format_func=method_label, placeholder="Choose methods")
    return list(st.session_state[S.METHODS])


def method_params(methods: list[str]) -> dict[str, tuple[tuple[str, object], ...]]:
    """Each selected method's parameters (in a sidebar expander), returned hashable."""
    with_params = [m for m in methods if explainers.get(m).params]
    if with_params:
        with st.sidebar.expander("Method parameters"):
            for m in with_params:
                st.markdown(f"**{explainers.get(m).title}**")
                for p in explainers.get(m).params:
                    _param_widget(m, p)
    return {m: tuple((p.name, st.session_state.get(S.param_key(m, p.name), p.default)) for p in explainers.get(m).params) for m in methods}


def _param_widget(method: str, p: object) -> None:
    k = S.param_key(method, p.name)
    if p.choices:
        st.selectbox(p.name, p.choices, key=k, help=p.help, **S.unless_set(k, index=p.choices.index(p.default)))
    elif isinstance(p.default, bool):
        st.checkbox(p.name, key=k, help=p.help, **S.unless_set(k, value=p.default))
    elif isinstance(p.default, int):
        st.number_input(p.name, min_value=int(p.low), max_value=int(p.high), step=int(p.step or 1), key=k, help=p.help, **S.unless_set(k, value=p.default))
    else:
        st.number_input(
            p.name, min_value=float(p.low), max_value=float(p.high), step=float(p.step or 0.01), format="%g", key=k, help=p.help, **S.unless_set(k, value=float(p.default))
        )


def _sync_link(sel: Selection) -> None:
    """Keep the address bar a link to this view (model, image, methods, target): copy it to share the view."""
    q = {"model": sel.model_key, "methods": ",".join(sel.methods), "target": str(sel.target)}
    if sel.image_key in zoo.sample_images():
        q["image"] = sel.image_key
    if sel.model_key not in zoo.model_names():
        q.pop("model")
    for k, v in q.items():
        if st.query_params.get(k) != v:
            st.query_params[k] = v
