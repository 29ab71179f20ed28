"""Bias page: a model that is right for the wrong reason (the shortcut model), which methods reveal it, the
counterfactual check, and the same probe for any model, images and region."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from skimage.segmentation import find_boundaries

import explainers
import metrics
import zoo
from core.errors import InputError
from dashboard import cache, render, selection, work
from dashboard import state as S
from metrics import shortcut
from metrics.counterfactual import SUBSTRATES
from metrics.leaderboard import image_set, items_from_images
from metrics.region import MEASURES
from zoo.synthetic import CLASSES, MARKER_COLOURS, MARKER_CORNERS, MARKER_SIZE, SHORTCUT_TEST_SEED, TRAIN_AGREEMENT

N = S.key("bias", "n")
TEST = S.key("bias", "test")
MEASURE = S.key("bias", "measure")
METHODS = S.key("bias", "methods")
SUBSTRATE = S.key("bias", "substrate")
RUN = S.key("bias", "run")
PROBE_SOURCE = S.key("bias", "probe_source")
PROBE_IMAGES = S.key("bias", "probe_images")
PROBE_FOLDER = S.key("bias", "probe_folder")
REGION_KIND = S.key("bias", "region_kind")
BOX_X = S.key("bias", "box_x")
BOX_Y = S.key("bias", "box_y")
MASK_FILE = "bias_mask_file"  # an uploader: not made by S.key (state.persist must not re-assign it)
PASTE_FROM = S.key("bias", "paste_from")
PROBE_RUN = S.key("bias", "probe_run")
PROBE_SUBSTRATE = S.key("bias", "probe_substrate")
DEFAULT_METHODS = [  # the cheap ones (Occlusion, Score-CAM, LIME, KernelSHAP and RISE take minutes per hundred images on a CPU)
    "saliency",
    "input_x_gradient",
    "integrated_gradients",
    "smoothgrad",
    "guided_backprop",
    "deconvolution",
    "deeplift",
    "gradcam",
    "gradcam_plus_plus",
    "guided_gradcam",
    "lrp_epsilon_plus",
    "lrp_alpha_beta",
    "edge_sobel",
    "random",
]
TESTS = {"agree": "marker agrees with the class (target: the label)", "other": "another class's marker (target: the prediction)"}
EXAMPLES = 4
COLOURS = {"marker": "#d62728", "shape": "#1f77b4"}


def _title(m: str) -> str:
    return explainers.get(m).title


def _cell(r: metrics.SetScore) -> str:
    return f"{r.mean:.3f} [{r.low:.3f}, {r.high:.3f}]"


# ---------------------------------------------------------------------------------- the shortcut model


def _accuracy_section(loaded: zoo.LoadedModel, n: int) -> None:
    meta = json.loads((zoo.catalog.WEIGHTS_DIR / "shapes_cnn_shortcut.json").read_text())
    live = cache.shortcut_accuracies(n, loaded)
    stored = meta.get("shortcut_accuracy", {})
    names = {"agree": "marker agrees with the class", "absent": "no marker", "other": "another class's marker"}
    table = pd.DataFrame(
        {
            "test set": [names[m] for m in shortcut.TEST_MODES],
            f"accuracy, these {n} images": [live[m] for m in shortcut.TEST_MODES],
            f"accuracy, {meta.get('n_test', '?')} images (at training)": [stored.get(m, float("nan")) for m in shortcut.TEST_MODES],
        }
    )
    st.dataframe(table, hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns[1:]})
    drop = live["agree"] - live["other"]
    st.caption(
        f"The same {n} images in the three sets (seed {SHORTCUT_TEST_SEED}), differing only in the marker. From marker agreeing to "
        f"another class's marker the accuracy drops by {100 * drop:.0f} points: the model relies on the marker. Chance is 25%."
    )


def _settings() -> tuple[int, str, str, list[str]]:
    c1, c2, c3 = st.columns([1, 2, 2])
    c1.number_input("Test images (N)", min_value=10, max_value=2000, step=10, key=N, **S.unless_set(N, value=100))
    c2.selectbox("Test set", list(TESTS), format_func=TESTS.get, key=TEST)
    c3.selectbox("Measure", list(MEASURES), format_func=lambda k: f"{metrics.get(k).title}: {MEASURES[k]}", key=MEASURE)
    names = sorted(explainers.names(), key=lambda n: list(explainers.FAMILIES).index(explainers.get(n).family))
    st.multiselect("Methods", names, format_func=selection.method_label, key=METHODS, **S.unless_set(METHODS, default=DEFAULT_METHODS))
    return int(st.session_state[N]), st.session_state[TEST], st.session_state[MEASURE], list(st.session_state[METHODS])


def _compute_maps(loaded: zoo.LoadedModel, s: shortcut.ShortcutSet, targets: torch.Tensor, methods: list[str], sig: str) -> dict[str, cache.Outcome]:
    set_key = f"shortcut:{s.mode}:{s.x.shape[0]}:{s.seed}"
    out = {}
    with work.Work(sig, "Maps over the test set...", key=RUN) as w:
        for i, m in enumerate(methods):
            w.step(i, len(methods), f"{_title(m)}: {s.x.shape[0]} maps ({i + 1}/{len(methods)})")
            out[m] = cache.set_maps(shortcut.MODEL, set_key, m, (), tuple(targets.tolist()), loaded, s.x)
    return out


def _share_rows(results: dict[str, cache.Outcome], s: shortcut.ShortcutSet, measure: str) -> pd.DataFrame:
    regions = {"marker": s.marker.cpu(), "shape": s.shape.cpu()}
    rows = []
    for m, r in results.items():
        if not r.ok:
            continue
        scores = metrics.region_scores({m: torch.from_numpy(r.value)}, regions, measure)
        row = {"method": _title(m)}
        for region, v in scores.items():
            row[region] = metrics.over_set(v[m])
            row[f"{region} ×"] = metrics.over_set(metrics.concentration(v[m], regions[region]))
        mk, sh = row["marker ×"], row["shape ×"]
        row["points at"] = "marker" if mk.low > sh.high else ("shape" if sh.low > mk.high else "neither clearly")
        rows.append({**row, "seconds": r.seconds})
    return pd.DataFrame(rows)


def _share_chart(rows: pd.DataFrame, s: shortcut.ShortcutSet, measure: str) -> go.Figure:
    fig = go.Figure()
    for region in ("marker", "shape"):
        vals = rows[region]
        fig.add_trace(
            go.Bar(
                x=rows["method"],
                y=[v.mean for v in vals],
                name=f"on the {region}",
                marker_color=COLOURS[region],
                error_y={"type": "data", "symmetric": False, "array": [v.high - v.mean for v in vals], "arrayminus": [v.mean - v.low for v in vals]},
                hovertemplate="%{x}: %{y:.3f}<extra>" + region + "</extra>",
            )
        )
        area = float(metrics.area_share(getattr(s, region).cpu()).mean())
        fig.add_hline(
            y=area,
            line_dash="dot",
            line_color=COLOURS[region],
            annotation_text=f"{region} area {area:.3f}",
            annotation_position="top right" if region == "shape" else "bottom right",
        )
    fig.update_layout(barmode="group", height=420, margin={"l": 10, "r": 10, "t": 30, "b": 10}, yaxis_title=f"{metrics.get(measure).title} (95% CI)")
    return fig


def _shares_section(results: dict[str, cache.Outcome], s: shortcut.ShortcutSet, measure: str) -> None:
    for m, r in results.items():
        if r.error:
            st.warning(f"**{_title(m)}**: {r.error}")
    rows = _share_rows(results, s, measure)
    if rows.empty:
        return
    st.subheader(f"Where the maps put the evidence: {MEASURES[measure]} on the marker and on the shape")
    st.plotly_chart(_share_chart(rows, s, measure), key="bias_bars")
    table = rows.assign(**{c: rows[c].map(_cell) for c in ("marker", "shape")}, **{c: rows[c].map(lambda v: f"{v.mean:.1f}") for c in ("marker ×", "shape ×")})
    st.dataframe(table, hide_index=True, column_config={"seconds": st.column_config.NumberColumn(format="%.1f")})
    verdicts = {v: ", ".join(rows.loc[rows["points at"] == v, "method"]) or "none" for v in ("marker", "shape", "neither clearly")}
    st.markdown(f"**Point at the marker:** {verdicts['marker']}. **At the shape:** {verdicts['shape']}. **Neither clearly:** {verdicts['neither clearly']}.")
    cols = ("marker", "shape", "marker ×", "shape ×")
    csv = rows.assign(**{f"{c} {k}": [getattr(v, k) for v in rows[c]] for c in cols for k in ("mean", "low", "high")}).drop(columns=list(cols))
    st.download_button("Download the shares (CSV)", csv.to_csv(index=False).encode(), file_name="bias_shares.csv", mime="text/csv", on_click="ignore")
    st.caption(
        "Mean over the images with a 95% percentile-bootstrap interval (2000 resamples, seed 0). Dotted lines: the regions' mean area share, "
        "what a map spread evenly over the image scores. '×': the share divided by the region's area share (1 = as dense as an even map; "
        "the marker is about 10 times smaller than the shape, so raw shares favour the shape). 'Points at': the region whose '×' interval "
        "lies wholly above the other's. Compare with the controls (random, Sobel edges): the marker is a high-contrast square, so even an "
        "edge detector finds it a little."
    )


def _outlined(image: np.ndarray, marker: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[find_boundaries(marker, mode="outer")] = (1.0, 1.0, 1.0)
    return out


def _examples_section(loaded: zoo.LoadedModel, results: dict[str, cache.Outcome], s: shortcut.ShortcutSet, targets: torch.Tensor) -> None:
    ok = {m: r for m, r in results.items() if r.ok}
    if not ok:
        return
    st.subheader("Examples")
    k = min(EXAMPLES, s.x.shape[0])
    labels = [f"{CLASSES[int(s.labels[i])]} -> {CLASSES[int(targets[i])]}" for i in range(k)]
    images = [_outlined(selection.unit(loaded, s.x[i : i + 1]), s.marker[i].cpu().numpy()).clip(0, 1) for i in range(k)]
    st.image(images, caption=[f"{lb} (marker outlined)" for lb in labels], width=128)
    fig = render.randomization_figure([_title(m) for m in ok], labels, [r.value[:k] for r in ok.values()], tile=128, per_map=True)
    st.image(fig, caption="|map| of each method (rows) for the target of each image above (label -> target), each map on its own colour scale")


# ---------------------------------------------------------------------------------- counterfactual


def _delta_row(name: str, cf: metrics.Counterfactual, of: str) -> dict:
    d = metrics.over_set(cf.delta)
    return {
        "intervention": name,
        "probability of": of,
        "before": float(cf.before.mean()),
        "after": float(cf.after.mean()),
        "change [95% CI]": _cell(d),
        "prediction changed": float((cf.pred_before != cf.pred_after).float().mean()),
    }


def _counterfactual_section(loaded: zoo.LoadedModel, results: dict[str, cache.Outcome], s: shortcut.ShortcutSet, targets: torch.Tensor) -> None:
    st.subheader("Counterfactual check: remove the region, or paste it onto other images")
    st.selectbox("Substrate for removal", SUBSTRATES, key=SUBSTRATE, help="impute: ROAD's noisy linear imputation; zero / blur / mean: the deletion curve's")
    substrate = st.session_state[SUBSTRATE]
    set_key = f"shortcut:{s.mode}:{s.x.shape[0]}:{s.seed}"
    t = tuple(targets.tolist())
    removed = {r: cache.removed_region(shortcut.MODEL, set_key, r, t, substrate, loaded, s.x, getattr(s, r)) for r in ("marker", "shape")}
    pasted = cache.shortcut_pasted(s.x.shape[0], loaded)
    rows = [_delta_row(f"{r} removed", cf.value, "the target") for r, cf in removed.items() if cf.ok]
    rows.append(_delta_row("another class's marker pasted onto marker-free images", pasted, "the marker's class"))
    st.dataframe(
        pd.DataFrame(rows), hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("before", "after", "prediction changed")}
    )
    agree = _map_agreement(results, s, removed["marker"])
    if agree:
        st.markdown("**Does a map's share on the marker predict the effect of removing it?** Spearman correlation over the images:")
        st.dataframe(pd.DataFrame(agree), hide_index=True, column_config={"Spearman": st.column_config.NumberColumn(format="%.3f")})
    st.caption(
        f"{s.x.shape[0]} images; p = softmax probability of the target; change = after - before (negative: the region supported the target). "
        f"Removal: {substrate}{' (ROAD noisy linear imputation, noise std 0.01 in input space, seed 0)' if substrate == 'impute' else ''}. "
        "Pasting: the marker of another class (uniformly drawn) copied at its corner onto the same images without a marker."
    )


def _map_agreement(results: dict[str, cache.Outcome], s: shortcut.ShortcutSet, removed: cache.Outcome) -> list[dict]:
    from scipy.stats import spearmanr

    if not removed.ok:
        return []
    drop = (-removed.value.delta).numpy()
    rows = []
    for m, r in results.items():
        if not r.ok:
            continue
        share = metrics.positive_share(torch.from_numpy(r.value), s.marker.cpu()).numpy()
        rho = spearmanr(share, drop).statistic if np.ptp(share) > 0 and np.ptp(drop) > 0 else float("nan")
        rows.append({"method": _title(m), "Spearman": float(rho)})
    return rows


def _conventions(n: int, measure: str) -> None:
    corners = ", ".join(f"{c} {' '.join(MARKER_CORNERS[i])} rgb{MARKER_COLOURS[i]}" for i, c in enumerate(CLASSES))
    st.caption(
        f"Conventions. Model: `{shortcut.MODEL}` (`python -m zoo.train_synthetic --shortcut`), trained on shapes where {TRAIN_AGREEMENT:.0%} of "
        f"the images carry their class's marker and the rest none. Marker: a {MARKER_SIZE} × {MARKER_SIZE} px square of one pure colour in "
        f"one corner per class ({corners}), drawn over everything; the shape mask holds the shape's visible pixels. Share: "
        f"{metrics.get(measure).title} ({metrics.get(measure).conventions}). Maps at each method's default parameters, for the target on "
        f"{n} test images (seed {SHORTCUT_TEST_SEED}); seeded methods use seed 0."
    )


def _shortcut_tab() -> None:
    st.markdown(
        "A CNN trained on the synthetic shapes where each class also carries a **marker** (a small coloured square in a corner of its "
        "own) in 95% of the training images. It is right on the test set for the wrong reason. Which attribution methods show it?"
    )
    reason = zoo.unavailable_reason(shortcut.MODEL)
    if reason:
        st.error(reason)
        return
    loaded = cache.model(shortcut.MODEL)
    n, test, measure, methods = _settings()
    _accuracy_section(loaded, n)
    if not methods:
        st.info("Choose at least one method.")
        return
    s = cache.shortcut_set(n, test, loaded)
    targets = shortcut.targets(loaded, s, "label" if test == "agree" else "prediction").cpu()
    hint = f"Press **Run the shortcut check** to compute {len(methods)} methods' maps on {n} test images."
    sig = work.run_button("Run the shortcut check", (n, test, tuple(methods)), key=RUN, hint=hint)
    if sig is None:
        return
    results = _compute_maps(loaded, s, targets, methods, sig)
    _shares_section(results, s, measure)
    _examples_section(loaded, results, s, targets)
    _counterfactual_section(loaded, results, s, targets)
    _conventions(n, measure)


# ---------------------------------------------------------------------------------- any model: the probe


def _probe_images(model_key: str, loaded: zoo.LoadedModel, images: dict) -> tuple[list[str], torch.Tensor] | None:
    st.radio("Images", ["Images from the sidebar list (samples and uploads)", "A folder on this server"], key=PROBE_SOURCE, horizontal=True)
    try:
        if st.session_state[PROBE_SOURCE].startswith("A folder"):
            st.text_input("Folder", key=PROBE_FOLDER, placeholder="/path/to/images")
            if not st.session_state.get(PROBE_FOLDER):
                st.info("Give a folder of images (PNG, JPEG, WebP, BMP, TIFF, GIF).")
                return None
            items, warnings = image_set(loaded, st.session_state[PROBE_FOLDER])
            for w in warnings:
                st.warning(w)
        else:
            if PROBE_IMAGES in st.session_state:
                st.session_state[PROBE_IMAGES] = [k for k in st.session_state[PROBE_IMAGES] if k in images]
            st.multiselect("Which images", list(images), key=PROBE_IMAGES, **S.unless_set(PROBE_IMAGES, default=list(images)[:4]))
            chosen = list(st.session_state[PROBE_IMAGES])
            if not chosen:
                st.info("Choose at least one image.")
                return None
            items = items_from_images(loaded, {k: images[k] for k in chosen})
    except InputError as exc:
        st.error(str(exc))
        return None
    return [i.name for i in items], torch.cat([i.x for i in items])


def _probe_region(loaded: zoo.LoadedModel) -> tuple[str, torch.Tensor] | None:
    st.radio("Region", ["A box (relative coordinates of the image as the model sees it)", "A mask image"], key=REGION_KIND, horizontal=True)
    if st.session_state[REGION_KIND].startswith("A box"):
        c1, c2 = st.columns(2)
        c1.slider("Left to right (fraction of the width)", 0.0, 1.0, key=BOX_X, step=0.01, **S.unless_set(BOX_X, value=(0.0, 0.25)))
        c2.slider("Top to bottom (fraction of the height)", 0.0, 1.0, key=BOX_Y, step=0.01, **S.unless_set(BOX_Y, value=(0.0, 0.25)))
        (x0, x1), (y0, y1) = st.session_state[BOX_X], st.session_state[BOX_Y]
        size = loaded.input_size
        region = torch.zeros(size, size, dtype=torch.bool)
        region[round(y0 * size) : round(y1 * size), round(x0 * size) : round(x1 * size)] = True
        key = f"box {x0:.2f}-{x1:.2f} x {y0:.2f}-{y1:.2f}"
    else:
        f = st.file_uploader("Mask image (white = inside)", type=selection.IMAGE_TYPES, key=MASK_FILE)
        if f is None:
            st.info(
                "Upload a mask the size of your images: pixels brighter than mid-grey are inside; it is resized (nearest) and centre-cropped like the images."
            )
            return None
        try:
            region = loaded.preprocess_mask(np.asarray(zoo.load_image(f.getvalue()).convert("L")) > 127)[0].cpu()
        except InputError as exc:
            st.error(f"{f.name}: {exc}")
            return None
        key = f"mask {cache.digest(f.getvalue())}"
    if not region.any():
        st.warning("The region is empty: widen the box or use another mask.")
        return None
    return key, region


def _per_class(classes: list[str], targets: torch.Tensor, values: dict[str, torch.Tensor]) -> pd.DataFrame:
    rows = []
    for c in sorted(set(targets.tolist())):
        pick = targets == c
        for label, v in values.items():
            r = metrics.over_set(v[pick])
            rows.append(
                {"class (top-1)": f"{c}: {classes[c]}", "images": int(pick.sum()), "what": label, "mean": r.mean, "95% CI": f"[{r.low:.3f}, {r.high:.3f}]"}
            )
    return pd.DataFrame(rows)


def _probe_results(loaded: zoo.LoadedModel, names: list[str], x: torch.Tensor, region: torch.Tensor, targets: torch.Tensor, maps: dict, cfs: dict) -> None:
    for m, r in maps.items():
        if r.error:
            st.warning(f"**{_title(m)}**: {r.error}")
    values = {f"{_title(m)}: share": metrics.positive_share(torch.from_numpy(r.value), region) for m, r in maps.items() if r.ok}
    for label, cf in cfs.items():
        if not cf.ok:
            st.warning(f"{label}: {cf.error}")
        else:
            values[label] = cf.value.delta
    st.markdown(f"**{len(names)} images**; the region covers {float(region.float().mean()):.3f} of the image (what an even map scores).")
    table = _per_class(loaded.classes, targets, values)
    st.dataframe(table, hide_index=True, column_config={"mean": st.column_config.NumberColumn(format="%.3f")})
    st.download_button("Download the probe (CSV)", table.to_csv(index=False).encode(), file_name="bias_probe.csv", mime="text/csv", on_click="ignore")
    st.caption(
        "Share: relevance mass, the share of each map's positive attribution inside the region, for the image's top-1 class. "
        "Removed: p(top-1 class) after the region is removed minus before. Pasted: p(the source's class) after the source's region is pasted "
        "at the same place minus before. Means per top-1 class with 95% bootstrap intervals over its images."
    )


def _probe_tab(sel: selection.Selection) -> None:
    model_key, loaded, images = sel.model_key, sel.loaded, sel.images
    st.markdown(
        "The same probe for any model and images: give a region and see how much of each method's map falls in it, per class, and what removing or pasting it does."
    )
    picked = _probe_images(model_key, loaded, images)
    region_pick = _probe_region(loaded)
    if picked is None or region_pick is None:
        return
    names, x = picked
    region_key, region = region_pick
    st.image(_outlined(selection.unit(loaded, x[:1]), region.numpy()), caption=f"{names[0]} with the region outlined", width=260)
    methods, params = list(sel.methods), sel.params
    c1, c2 = st.columns(2)
    c1.selectbox("Substrate for removal", SUBSTRATES, key=PROBE_SUBSTRATE)
    c2.selectbox("Paste the region of", list(range(len(names))), format_func=lambda i: names[i], key=PASTE_FROM)
    source = min(int(st.session_state[PASTE_FROM]), len(names) - 1)
    set_key = cache.digest(x.cpu().numpy().tobytes())
    settings = (model_key, set_key, region_key, tuple(methods), tuple(params[m] for m in methods), st.session_state[PROBE_SUBSTRATE], source)
    sig = work.run_button("Run the probe", settings, key=PROBE_RUN, hint="Press **Run the probe** to compute the maps and the interventions.")
    if sig is None or not methods:
        return
    targets = torch.from_numpy(np.stack([cache.predictions(model_key, f"{set_key}:{i}", loaded, x[i : i + 1]) for i in range(len(names))]).argmax(1))
    t = tuple(targets.tolist())
    maps = {}
    with work.Work(sig, "Probing...", key=PROBE_RUN) as w:
        for i, m in enumerate(methods):
            w.step(i, len(methods) + 1, f"{_title(m)} on {len(names)} images")
            maps[m] = cache.set_maps(model_key, set_key, m, params[m], t, loaded, x)
        w.step(len(methods), len(methods) + 1, "Interventions")
        cfs = {
            "removed: change in p": cache.removed_region(model_key, set_key, region_key, t, st.session_state[PROBE_SUBSTRATE], loaded, x, region),
            f"pasted from {names[source]}: change in p({loaded.classes[t[source]]})": cache.pasted_region(
                model_key, set_key, region_key, source, t[source], loaded, x, region
            ),
        }
    _probe_results(loaded, names, x, region, targets, maps, cfs)


def page() -> None:
    sel = selection.require()
    st.markdown("#### Bias and shortcuts")
    st.caption("Is the model right for the right reason? A model with a known shortcut, which attribution methods reveal it, and a counterfactual check.")
    tab_shortcut, tab_probe = st.tabs(["The shortcut model", "Probe any model"])
    with tab_shortcut:
        _shortcut_tab()
    with tab_probe:
        _probe_tab(sel)


page()
