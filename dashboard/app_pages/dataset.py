"""Dataset page: open a run of ``python -m metrics`` (or start a small one here), then accuracy, the confusion matrix
(click a cell to filter), per-class accuracy, misclassified images and suspected label errors with the maps for their
label and their prediction, per-class mean maps, and the leaderboard over the run and per class. Every table
downloads as CSV, every gallery as PNG. Everything is read from the run's store (``metrics.runs``)."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

import explainers
import metrics
import zoo
from core.errors import InputError
from dashboard import cache, grid, render, work
from dashboard import state as S
from metrics.runs import RunSettings, analysis, list_images, list_runs, run_dataset, version

ROOT = Path(__file__).resolve().parents[2]
FOLDER, RUN = S.key("dataset", "folder"), S.key("dataset", "run")
NEW_IMAGES, NEW_MODEL, NEW_METHODS, NEW_METRICS, NEW_NAME = (S.key("dataset", f"new_{k}") for k in ("images", "model", "methods", "metrics", "name"))
CLASSES, OUTCOME, CONFIDENCE, SORT = S.key("dataset", "classes"), S.key("dataset", "outcome"), S.key("dataset", "confidence"), S.key("dataset", "sort")
SHOW, ROWS = S.key("dataset", "methods"), S.key("dataset", "rows")
CLASS_METRIC = S.key("dataset", "class_metric")
PENDING, NEW_ERROR, CELL = "dataset_pending_run", "dataset_new_error", "dataset_cell"  # plain session state, not widgets
CONFUSION_KEY = "dataset_confusion"
MAX_PAGE_IMAGES = 1000  # a run started from the page; larger ones belong to the CLI (and Ray)
DEFAULT_METHODS = ["saliency", "gradcam", "random"]
DEFAULT_METRICS = ["deletion", "insertion", "sparseness", "pointing_game"]
SORTS = {
    "least confident first": ("p_prediction", True),
    "most confident first": ("p_prediction", False),
    "lowest p(label) first": ("p_label", True),
    "image name": ("image", True),
}


def _csv(df: pd.DataFrame, label: str, file_name: str) -> None:
    """A CSV download of ``df``, written only when clicked (a callable: no cost on every rerun)."""

    def data() -> bytes:
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        return buf.getvalue().encode()

    st.download_button(label, data, file_name=file_name, mime="text/csv", on_click="ignore", key=f"csv|{file_name}")


def _table(df: pd.DataFrame, file_name: str, label: str = "Download this table (CSV)") -> None:
    """Any table of the page: shown, and downloadable as CSV."""
    st.dataframe(df, hide_index=True)
    _csv(df, label, file_name)


def _refused(path: Path) -> str | None:
    """Why the page may not read or write ``path``: outside the folders of ``XAI_DATA_ROOTS`` (os.pathsep-separated;
    unset: anywhere), for a server shared by a room."""
    roots = [Path(r).expanduser().resolve() for r in os.environ.get("XAI_DATA_ROOTS", "").split(os.pathsep) if r]
    if roots and not any(path.expanduser().resolve().is_relative_to(r) for r in roots):
        return f"{path} is outside the folders this server may use (XAI_DATA_ROOTS: {', '.join(map(str, roots))})"
    return None


# ------------------------------------------------------------------------------------------ opening a run


def _run_label(r: dict) -> str:
    m = r["manifest"]
    done, total = m.get("images_done", 0), m.get("images_total", "?")
    return f"{r['name']} · {m.get('model', {}).get('name', '?')} · {done}/{total} images · {m.get('status', '?')} · {m.get('created', '')[:16]}"


def _choose_run() -> Path | None:
    st.text_input("Runs folder", key=FOLDER, help="The runs directly under this folder are listed, newest first", **S.unless_set(FOLDER, value=str(ROOT / "runs")))
    folder = Path(st.session_state[FOLDER].strip() or ROOT / "runs").expanduser()
    reason = _refused(folder)
    if reason:
        st.error(reason)
        return None
    _new_run(folder)
    runs = list_runs(folder)
    if not runs:
        st.info(f"No runs in {folder} yet: start one above, or `python -m metrics --images DIR --out {folder}/NAME` (add `--engine ray` for a big one).")
        return None
    labels = {str(r["path"]): _run_label(r) for r in runs}
    if st.session_state.get(RUN) not in labels:
        st.session_state[RUN] = next(iter(labels))
    st.selectbox("Run (newest first)", list(labels), key=RUN, format_func=labels.get)
    return Path(st.session_state[RUN])


# ------------------------------------------------------------------------------------------ starting a run


def _queue(folder: Path) -> None:
    """The Start button: check the form now (clear messages before any work), then queue the run."""
    st.session_state.pop(NEW_ERROR, None)
    images, name = st.session_state[NEW_IMAGES].strip(), st.session_state[NEW_NAME].strip()
    try:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}", name):
            raise InputError("the run name takes letters, digits, '.', '_' and '-' (no spaces or slashes)")
        if not images:
            raise InputError("give a folder of images, or synthetic:N")
        reason = _refused(Path(images)) if "/" in images or Path(images).expanduser().is_dir() else None  # a folder, not synthetic:N or samples
        if reason:
            raise InputError(reason)
        model = st.session_state[NEW_MODEL]
        listing = list_images(images, cache.model(model).classes)
        if len(listing.refs) > MAX_PAGE_IMAGES:
            raise InputError(f"{len(listing.refs)} images: the page runs up to {MAX_PAGE_IMAGES}; use `python -m metrics` (and --engine ray) for more")
        settings = RunSettings(model, images, tuple(st.session_state[NEW_METHODS]), tuple(st.session_state[NEW_METRICS])).check()
    except (InputError, KeyError, OSError) as exc:
        st.session_state[NEW_ERROR] = str(exc.args[0] if isinstance(exc, KeyError) else exc)
        return
    st.session_state[PENDING] = {"settings": settings.to_json(), "out": str(folder / name)}
    work.resume()


def _new_run(folder: Path) -> None:
    with st.expander("Start a run here (this process; progress and Stop; the same store as the CLI)", expanded=bool(st.session_state.get(NEW_ERROR))):
        st.text_input("Images", key=NEW_IMAGES, placeholder="a folder: DIR/<class>/<file>, DIR/labels.csv, or unlabelled images; or synthetic:50")
        models = [n for n in zoo.model_names() if zoo.unavailable_reason(n) is None]
        first = models.index(st.session_state[S.MODEL]) if st.session_state[S.MODEL] in models else 0
        st.selectbox("Model", models, key=NEW_MODEL, format_func=lambda n: zoo.MODELS.get(n).title, **S.unless_set(NEW_MODEL, index=first))
        c1, c2 = st.columns(2)
        c1.multiselect("Methods", explainers.names(), key=NEW_METHODS, format_func=lambda m: explainers.get(m).title, **S.unless_set(NEW_METHODS, default=DEFAULT_METHODS))
        c2.multiselect("Metrics", metrics.names(), key=NEW_METRICS, format_func=lambda k: metrics.get(k).title, **S.unless_set(NEW_METRICS, default=DEFAULT_METRICS))
        st.text_input("Run name (a folder under the runs folder; an existing run of the same settings resumes)", key=NEW_NAME, **S.unless_set(NEW_NAME, value=f"run-{dt.datetime.now():%Y%m%d-%H%M%S}"))
        st.button("Start the run", type="primary", on_click=_queue, args=(folder,))
        if st.session_state.get(NEW_ERROR):
            st.error(st.session_state[NEW_ERROR])


def _execute() -> None:
    """The queued run, computed in this script run with a progress bar and Stop; Resume continues from the store."""
    job = st.session_state.get(PENDING)
    if not job:
        return
    sig = work.signature("dataset_run", job["out"], job["settings"])
    if work.stopped(sig, key="dataset_run"):
        return
    out = Path(job["out"])
    try:
        with work.Work(sig, f"Run {out.name}...", key="dataset_run"):
            manifest = run_dataset(RunSettings.from_json(job["settings"]), out)
    except (InputError, KeyError, OSError) as exc:
        st.session_state.pop(PENDING, None)
        st.error(f"The run could not start: {exc.args[0] if isinstance(exc, KeyError) else exc}")
        return
    st.session_state.pop(PENDING, None)
    st.session_state[RUN] = str(out)
    st.success(f"Run {out.name}: {manifest['images_done']} images ({manifest['status']}).")


# ------------------------------------------------------------------------------------------ overview and filters


def _overview(run) -> None:
    m, p = run.manifest, run.predictions
    labelled = p["correct"].notna().any()
    c = st.columns(5)
    c[0].metric("Images", f"{len(p)} / {m.get('images_total', len(p))}")
    c[1].metric("Accuracy", f"{p['correct'].mean():.1%}" if labelled else "no labels")
    c[2].metric("Mean confidence", f"{p['p_prediction'].mean():.3f}" if len(p) else "-")
    c[3].metric("Skipped files", len(run.skipped))
    c[4].metric("Classes", p["label_name"].nunique() if labelled else p["prediction_name"].nunique())
    sessions = m.get("sessions", [])
    st.caption(
        f"Model: {m.get('model_title', m['model']['name'])}. Methods: {', '.join(run.settings.methods)}. Metrics: {', '.join(run.settings.metrics)}. Images: {m['images']['source']} ({m['images']['layout']}). "
        f"Weights {m['model']['fingerprint']}; sessions: "
        + "; ".join(f"{s.get('engine')} x{s.get('workers')} at {s.get('started', '')[:16]}, code {s.get('code')}" for s in sessions)
    )
    if m.get("status") != "complete":
        st.info(f"This run is incomplete ({len(p)} of {m.get('images_total')} images): run the same command again, or start it again here, to resume.")
    for w in m.get("warnings", []):
        st.warning(w)
    if len(run.skipped):
        with st.expander(f"{len(run.skipped)} file(s) could not be read and were skipped"):
            _table(run.skipped, "skipped.csv")


def _filters(run) -> pd.DataFrame:
    """Class, outcome and confidence filters; the filtered predictions, sorted as chosen."""
    p = run.predictions
    labelled = p["label"].notna().any()
    col = "label_name" if labelled else "prediction_name"
    if CLASSES in st.session_state:  # another run may have other classes
        st.session_state[CLASSES] = [c for c in st.session_state[CLASSES] if c in set(p[col])]
    c1, c2, c3, c4 = st.columns([3, 2, 3, 2])
    c1.multiselect("Classes" if labelled else "Predicted classes", sorted(p[col].dropna().unique()), key=CLASSES, placeholder="all classes")
    c2.radio("Images", ["All", "Correct", "Misclassified"], key=OUTCOME, disabled=not labelled)
    c3.slider("Confidence (probability of the prediction)", 0.0, 1.0, step=0.01, key=CONFIDENCE, **S.unless_set(CONFIDENCE, value=(0.0, 1.0)))
    c4.selectbox("Sort by", list(SORTS), key=SORT)
    chosen = st.session_state[CLASSES]
    lo, hi = st.session_state[CONFIDENCE]
    keep = p["p_prediction"].between(lo, hi)
    if chosen:
        keep &= p[col].isin(chosen)
    if labelled and st.session_state[OUTCOME] != "All":
        keep &= p["correct"].fillna(False) == (st.session_state[OUTCOME] == "Correct")
    by, ascending = SORTS[st.session_state[SORT]]
    return p[keep].sort_values(by, ascending=ascending, na_position="last")


# ------------------------------------------------------------------------------------------ accuracy


def _on_cell() -> None:
    points = st.session_state[CONFUSION_KEY].selection.points
    if points:
        st.session_state[CELL] = (str(points[0]["y"]), str(points[0]["x"]))


def _confusion(view: pd.DataFrame) -> None:
    cm = analysis.confusion(view)
    if cm.empty:
        st.info("No labels in this run (an unlabelled folder): each image's target is its top prediction, so there is no accuracy to show.")
        return
    rows, cols = list(cm.index), list(cm.columns)
    fig = go.Figure(go.Heatmap(z=cm.to_numpy(), x=cols, y=rows, colorscale="Blues", text=cm.to_numpy(), texttemplate="%{text}", hoverinfo="skip", showscale=False))
    yy, xx = np.meshgrid(range(len(rows)), range(len(cols)), indexing="ij")
    side = max(6, min(40, 700 // len(cols)))  # px: within a cell (rows 48 px apart, columns at least 700 px / n wide)
    # heatmap cells do not report clicks to Streamlit (streamlit#8760); invisible square markers over them do
    fig.add_trace(
        go.Scatter(
            x=[cols[i] for i in xx.ravel()],
            y=[rows[i] for i in yy.ravel()],
            customdata=cm.to_numpy().ravel(),
            mode="markers",
            marker={"symbol": "square", "size": side, "opacity": 0.01},
            hovertemplate="label %{y} → predicted %{x}: %{customdata} image(s)<extra>click: show them</extra>",
            showlegend=False,
        )
    )
    fig.update_layout(height=110 + 48 * len(rows), margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_title="prediction", yaxis_title="label")
    fig.update_yaxes(autorange="reversed")
    st.plotly_chart(fig, key=CONFUSION_KEY, on_select=_on_cell, selection_mode="points")
    _csv(cm.reset_index(), "Download the confusion matrix (CSV)", "confusion.csv")


def _per_class(view: pd.DataFrame) -> None:
    table = analysis.per_class(view)
    if table.empty:
        return
    st.subheader("Per-class accuracy")
    fig = go.Figure(go.Bar(x=table["class"], y=table["accuracy"], text=[f"{a:.0%}" for a in table["accuracy"]], hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis={"range": [0, 1.05], "tickformat": ".0%", "title": "accuracy"})
    c1, c2 = st.columns([1, 1])
    with c1:
        st.plotly_chart(fig, key="dataset_per_class")
    with c2:
        _table(table, "per_class_accuracy.csv")


def _cell_filter(view: pd.DataFrame) -> pd.DataFrame:
    cell = st.session_state.get(CELL)
    if not cell:
        return view
    c1, c2 = st.columns([5, 1], vertical_alignment="center")
    c1.info(f"Showing the images labelled **{cell[0]}** and predicted **{cell[1]}** (the confusion-matrix cell you clicked).")
    if c2.button("Show all", key="dataset_clear_cell"):
        st.session_state.pop(CELL, None)
        st.rerun()
    return view[(view["label_name"] == cell[0]) & (view["prediction_name"] == cell[1])]


# ------------------------------------------------------------------------------------------ galleries


def _resize(amap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(amap.astype(np.float32), mode="F").resize(size, Image.Resampling.BILINEAR))


def _tile(picture: np.ndarray, amap: np.ndarray | None, method: str) -> np.ndarray:
    """A map over the picture, with the display settings shared by the pages (sidebar of Compare)."""
    if amap is None:
        return np.full_like(picture, 235)
    opts = grid.stored_display()
    image = picture.astype(np.float64) / 255.0
    m = _resize(amap, (picture.shape[1], picture.shape[0]))
    return render.render_tile(m, image, signed=opts.signed(method), cmap=opts.cmap(method), overlay=True, opacity=opts.opacity, clip_percentile=opts.clip)


def _gallery_rows(path: str, ver: str, rows: pd.DataFrame, methods: list[str]) -> list[tuple[str, np.ndarray, list[tuple[str, np.ndarray]]]]:
    """(caption, picture, [(title, tile)]): each method's map for the label, and for the prediction where it differs."""
    names = tuple(rows["image"])
    pics = cache.run_pictures(path, ver, names)
    for_label = cache.run_maps(path, ver, names, tuple(methods), "label")
    for_pred = cache.run_maps(path, ver, names, tuple(methods), "prediction")
    out = []
    for r in rows.itertuples():
        label = r.label_name if isinstance(r.label_name, str) else r.prediction_name
        tiles = []
        for m in methods:
            title = explainers.get(m).title
            tiles.append((f"{title} · {label}", _tile(pics[r.image], for_label[r.image][m], m)))
            if r.prediction_name != label:
                tiles.append((f"{title} · {r.prediction_name}", _tile(pics[r.image], for_pred[r.image][m], m)))
        caption = f"{r.image}\nlabel {label} · predicted {r.prediction_name} ({r.p_prediction:.2f})"
        out.append((caption, pics[r.image], tiles))
    return out


def _gallery_png(rows: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray]]]]) -> bytes:
    """A gallery as one PNG: a row per image, the picture then its tiles, titled."""
    return render.figure([[(caption, picture), *tiles] for caption, picture, tiles in rows], [], render.Export(dpi=150))


def _gallery(rows: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray]]]], file_name: str) -> None:
    """Draw a gallery (a row per image: the picture, then its tiles) and offer it as one PNG."""
    for caption, picture, tiles in rows:
        cols = st.columns(1 + max(len(tiles), 6))
        cols[0].image(picture, caption=caption, width="stretch")
        for col, (title, tile) in zip(cols[1:], tiles, strict=False):
            col.image(tile, caption=title, width="stretch")
    if rows:
        st.download_button("Download this gallery (PNG)", lambda: _gallery_png(rows), file_name=file_name, mime="image/png", on_click="ignore", key=f"png|{file_name}")


def _misclassified(path: str, ver: str, run, view: pd.DataFrame, methods: list[str]) -> None:
    total = len(run.predictions)
    if run.predictions["correct"].isna().all():
        st.info("No labels: nothing can be misclassified.")
        return
    wrong = view[view["correct"] == False]  # noqa: E712  (pandas' nullable boolean)
    if wrong.empty:
        st.success("No misclassified images" + (f" among the {len(view)} images the filters keep." if len(view) < total else "."))
        return
    st.caption(f"{len(wrong)} misclassified image(s); each row: the image, then each method's map for the label and for the prediction.")
    _table(wrong[["image", "label_name", "prediction_name", "p_prediction", "p_label"]], "misclassified.csv")
    _gallery(_gallery_rows(path, ver, wrong.head(int(st.session_state[ROWS])), methods), "misclassified.png")


def _label_errors(path: str, ver: str, view: pd.DataFrame, methods: list[str]) -> None:
    found = cache.run_label_issues(path, ver)
    if not found.ok:
        st.info(f"No suspected label errors to look for: {found.error}.")
        return
    issues = found.value
    issues = issues[issues["image"].isin(set(view["image"]))]
    st.caption(
        "cleanlab's `find_label_issues` (confident learning, Northcutt et al. 2021) on the stored probabilities of the whole run, restricted to the "
        "classes that occur as labels; ranked by the label's self-confidence (lowest first). Out-of-sample probabilities are assumed: a model evaluated on its own training images hides its label errors."
    )
    if issues.empty:
        st.success("cleanlab finds no suspected label errors among these images.")
        return
    _table(issues, "label_issues.csv")
    rows = view.set_index("image").loc[issues["image"].head(int(st.session_state[ROWS]))].reset_index()
    _gallery(_gallery_rows(path, ver, rows, methods), "label_issues.png")


# ------------------------------------------------------------------------------------------ mean maps and leaderboard


def _class_means(path: str, ver: str, run, view: pd.DataFrame, methods: list[str]) -> None:
    st.header("What the model looks at, per class")
    st.caption("Each class's mean map over the filtered images (each map scaled to max |value| = 1 first; |map| for unsigned methods), for the class the map explains (the label, or the prediction without labels).")
    means = {m: cache.run_class_means(path, ver, m, tuple(view["image"])) for m in methods}
    classes = sorted({t for per in means.values() for t in per})
    first = view.drop_duplicates("target").set_index("target")["image"]
    pics = cache.run_pictures(path, ver, tuple(first.loc[[t for t in classes if t in first.index]]))
    rows = []
    for t in classes:
        n = max(per[t][1] for per in means.values() if t in per)
        tiles = []
        for m in methods:
            if t in means[m]:
                opts = grid.stored_display()
                signed = opts.signed(m)
                rgb = render.colorize(render.normalize_map(means[m][t][0], signed), opts.cmap(m), signed)
                tiles.append((explainers.get(m).title, (rgb * 255).round().astype(np.uint8)))
        rows.append((f"{run.classes[t]} ({n} images)", pics.get(first.get(t), np.full((56, 56, 3), 255, np.uint8)), tiles))
    _gallery(rows, "class_means.png")


def _cells(summary: pd.DataFrame) -> pd.DataFrame:
    """A "mean [95% interval] #rank" text cell per row of a summary."""
    return summary.assign(cell=[f"{r.mean:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] #{int(r.rank) if pd.notna(r.rank) else '-'}" for r in summary.itertuples()])


def _leaderboard(path: str, ver: str, view: pd.DataFrame) -> None:
    st.header("Leaderboard")
    images = tuple(view["image"])
    summary, ks, tau = cache.run_leaderboard(path, ver, images)
    if summary.empty:
        st.info("No scores for these images.")
        return
    s = summary.assign(method=summary["method"].map(lambda m: explainers.get(m).title), metric=summary["metric"].map(_metric_title))
    st.dataframe(_cells(s).pivot(index="method", columns="metric", values="cell")[list(dict.fromkeys(s["metric"]))])
    st.caption(f"{len(view)} images. Each cell: mean [95% percentile-bootstrap interval over images] #rank (1 = best by the metric's direction).")
    _csv(summary, "Download the summary (CSV)", "leaderboard_summary.csv")
    if len(ks) >= 2:
        titles = [_metric_title(k) for k in ks]
        heat = go.Figure(go.Heatmap(z=tau, x=titles, y=titles, zmin=-1, zmax=1, colorscale="RdBu", text=np.round(tau, 2), texttemplate="%{text}"))
        heat.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title="Kendall τ between the metrics' rankings (+1 = same order of merit)")
        st.plotly_chart(heat, key="dataset_tau")
    st.subheader("Per class")
    names = list(dict.fromkeys(summary["metric"]))
    if st.session_state.get(CLASS_METRIC) not in names:
        st.session_state[CLASS_METRIC] = names[0]
    metric = st.selectbox("Metric", names, format_func=_metric_title, key=CLASS_METRIC)
    per = cache.run_leaderboard_by_class(path, ver, images, metric)
    st.dataframe(_cells(per).pivot(index="class", columns="method", values="cell").rename(columns=lambda m: explainers.get(m).title))
    _csv(per, "Download the per-class summary (CSV)", "leaderboard_per_class.csv")


def _metric_title(k: str) -> str:
    spec = metrics.get(k)
    return f"{spec.title} {'↑' if spec.higher_is_better else '↓'}"


def page() -> None:
    st.markdown("#### Dataset")
    st.caption("A whole labelled folder at once: accuracy, confusions, misclassified images and suspected label errors with their maps, what the model looks at per class, and which method is most faithful on these images.")
    _execute()
    path = _choose_run()
    if path is None:
        return
    try:
        ver = version(path)
        run = cache.run(str(path), ver)
    except (InputError, OSError, ValueError, KeyError) as exc:
        st.error(f"{path} cannot be read as a run: {exc}")
        return
    _overview(run)
    if run.predictions.empty:
        st.info("No image of this run is computed yet.")
        return
    view = _filters(run)
    st.header("Accuracy")
    _confusion(view)
    _per_class(view)
    view = _cell_filter(view)
    st.header("Images")
    if SHOW in st.session_state:  # another run may have other methods
        st.session_state[SHOW] = [m for m in st.session_state[SHOW] if m in run.settings.methods]
    c1, c2 = st.columns([4, 1])
    c1.multiselect("Maps of", list(run.settings.methods), key=SHOW, format_func=lambda m: explainers.get(m).title, **S.unless_set(SHOW, default=list(run.settings.methods[:3])))
    c2.number_input("Rows per gallery", min_value=1, max_value=100, step=1, key=ROWS, **S.unless_set(ROWS, value=8))
    methods = [m for m in st.session_state[SHOW] if m in run.settings.methods] or list(run.settings.methods[:1])
    tab1, tab2, tab3 = st.tabs(["Misclassified", "Suspected label errors", "All images the filters keep"])
    with tab1:
        _misclassified(str(path), ver, run, view, methods)
    with tab2:
        _label_errors(str(path), ver, view, methods)
    with tab3:
        st.caption(f"{len(view)} image(s), sorted as chosen; the first {min(len(view), int(st.session_state[ROWS]))} with their maps.")
        _gallery(_gallery_rows(str(path), ver, view.head(int(st.session_state[ROWS])), methods), "images.png")
    _class_means(str(path), ver, run, view, methods)
    _leaderboard(str(path), ver, view)
    _csv(run.scores[run.scores["image"].isin(set(view["image"]))], "Download every score of these images (CSV)", "scores.csv")


page()
