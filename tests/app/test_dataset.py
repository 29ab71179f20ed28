"""The Dataset page driven by AppTest: a run with misclassified images and label errors, a run with none, a run
with one class, an unlabelled run, and runs started from the page (unknown labels, Stop and Resume)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import metrics
from dashboard import work
from metrics.runs import RunSettings, analysis, run_dataset
from tests.app.conftest import APP
from zoo.synthetic import CLASSES, write_folder

PAGE = "app_pages/dataset.py"
METHODS = ("saliency", "gradcam")
METRICS = ("deletion", "pointing_game", "sparseness")
FLIPPED = (1, 5)  # images whose label is written wrong (the next class): misclassified, and label errors


def _run(images: Path, out: Path) -> None:
    s = RunSettings(model="synthetic_shapes", images=str(images), methods=METHODS, metrics=METRICS, metric_params={"deletion": {"step": 256}}, batch_size=64)
    run_dataset(s, out)


def _labels_csv(folder: Path, labels: dict[str, str]) -> None:
    (folder / "labels.csv").write_text("path,label\n" + "".join(f"{p},{y}\n" for p, y in labels.items()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """normal: 12 images, two with a wrong label; all_correct: 4 images labelled as predicted; one_class: 3 circles;
    unlabelled: 2 images, no labels."""
    data, out = tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("runs")
    paths = [p.relative_to(data / "normal").as_posix() for p in write_folder(data / "normal", 12, seed=7)]
    labels = {p: p.split("/")[0] for p in paths}
    for i in FLIPPED:
        labels[paths[i]] = CLASSES[(CLASSES.index(labels[paths[i]]) + 1) % len(CLASSES)]
    _labels_csv(data / "normal", labels)
    _run(data / "normal", out / "normal")
    pred = metrics.load_run(out / "normal").predictions.set_index("image")["prediction_name"]
    _labels_csv(data / "normal", {p: pred[p] for p in paths[6:10]})  # now: 4 images labelled as the model predicts them
    _run(data / "normal", out / "all_correct")
    (data / "one" / "circle").mkdir(parents=True)
    (data / "flat").mkdir()
    for p in [p for p in paths if p.startswith("circle/")][:3]:
        shutil.copy(data / "normal" / p, data / "one" / "circle" / Path(p).name)
        shutil.copy(data / "normal" / p.replace(".png", ".mask.png"), data / "one" / "circle" / Path(p).name.replace(".png", ".mask.png"))
    for p in paths[:2]:
        shutil.copy(data / "normal" / p, data / "flat" / Path(p).name)
    _run(data / "one", out / "one_class")
    _run(data / "flat", out / "unlabelled")
    return out


def _page(folder: Path, run: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state["dataset::folder"] = str(folder)
    if run:
        at.session_state["dataset::run"] = str(folder / run)
    at.switch_page(PAGE)
    return at.run()


def _texts(elements) -> str:
    return " | ".join(str(e.value) for e in elements)


def _gallery_images(run, images: list[str]) -> int:
    """Pictures plus tiles: each method's map for the label, and for the prediction where it differs."""
    p = run.predictions.set_index("image")
    return sum(1 + len(METHODS) * (2 if p.loc[i, "label_name"] != p.loc[i, "prediction_name"] else 1) for i in images)


def test_a_run_draws_every_section_with_the_stores_numbers(runs: Path) -> None:
    at = _page(runs, "normal")
    assert not at.exception, at.exception
    assert not at.error, _texts(at.error)
    run = metrics.load_run(runs / "normal")
    p = run.predictions
    assert [h.value for h in at.header] == ["Accuracy", "Images", "What the model looks at, per class", "Leaderboard"]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Images"] == "12 / 12" and shown["Accuracy"] == f"{p['correct'].mean():.1%}"
    assert len(at.get("plotly_chart")) == 3  # confusion matrix, per-class accuracy, Kendall tau
    tables = [d.value for d in at.dataframe]
    wrong = p[p["correct"] == False]  # noqa: E712
    assert sorted(tables[1]["image"]) == sorted(wrong["image"]) and len(wrong) >= len(FLIPPED)  # the misclassified table
    issues = analysis.label_issues(p, run.probs)
    flipped = {p.loc[i, "image"] for i in FLIPPED}
    assert flipped <= set(issues["image"]) and list(tables[2]["image"]) == list(issues["image"])  # cleanlab finds both
    summary = analysis.leaderboard(run.scores).set_index(["metric", "method"])
    mean = summary.loc[("deletion", "gradcam"), "mean"]
    assert tables[3].loc["Grad-CAM"].iloc[0].startswith(f"{mean:.3f} [")
    rows = 8
    shown_rows = list(p.sort_values("p_prediction")["image"][:rows])
    expected = _gallery_images(run, list(wrong.sort_values("p_prediction")["image"][:rows])) + _gallery_images(run, list(issues["image"][:rows]))
    expected += _gallery_images(run, shown_rows) + 4 * (1 + len(METHODS))  # all images tab; a mean map per class and method
    assert len(at.get("image")) == expected
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels.count("Download this gallery (PNG)") == 4 and "Download the per-class summary (CSV)" in labels


def test_filters_and_a_confusion_cell_narrow_every_section(runs: Path) -> None:
    at = _page(runs, "normal")
    run = metrics.load_run(runs / "normal")
    p = run.predictions
    at.radio(key="dataset::outcome").set_value("Misclassified").run()
    assert not at.exception, at.exception
    wrong = p[p["correct"] == False]  # noqa: E712
    assert {m.label: m.value for m in at.metric}["Images"] == "12 / 12"
    assert f"{len(wrong)} images." in _texts(at.caption)  # the leaderboard counts the filtered images
    at.radio(key="dataset::outcome").set_value("All").run()
    one = wrong.iloc[0]
    at.session_state["dataset_cell"] = (one["label_name"], one["prediction_name"])  # what a click on that cell sets
    at.run()
    assert not at.exception, at.exception
    assert f"labelled **{one['label_name']}** and predicted **{one['prediction_name']}**" in _texts(at.info)
    cell = p[(p["label_name"] == one["label_name"]) & (p["prediction_name"] == one["prediction_name"])]
    assert f"{len(cell)} images." in _texts(at.caption)
    next(b for b in at.button if b.label == "Show all").click().run()
    assert "the confusion-matrix cell you clicked" not in _texts(at.info)
    at.slider(key="dataset::confidence").set_value((0.99, 1.0)).run()
    kept = p[p["p_prediction"] >= 0.99]
    assert f"{len(kept)} images." in _texts(at.caption)


def test_a_run_with_no_misclassified_image(runs: Path) -> None:
    at = _page(runs, "all_correct")
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Accuracy"] == "100.0%"
    assert "No misclassified images." in _texts(at.success)
    assert len(at.get("plotly_chart")) == 3


def test_a_run_with_one_class(runs: Path) -> None:
    at = _page(runs, "one_class")
    assert not at.exception, at.exception
    assert not at.error, _texts(at.error)
    assert "suspected label errors need labels of at least two classes" in _texts(at.info)
    assert at.dataframe[0].value["class"].tolist() == ["circle"]  # per-class accuracy: one row


def test_an_unlabelled_run(runs: Path) -> None:
    at = _page(runs, "unlabelled")
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Accuracy"] == "no labels"
    info = _texts(at.info)
    assert "No labels in this run" in info and "nothing can be misclassified" in info
    assert "Leaderboard" in [h.value for h in at.header]


def test_runs_started_from_the_page(runs: Path, tmp_path: Path) -> None:
    unknown = tmp_path / "unknown"
    for name in ("circle", "hexagon"):
        write_folder(unknown / name, 1, seed=0)
    at = _page(tmp_path / "runs")
    assert "No runs in" in _texts(at.info)
    at.text_input(key="dataset::new_images").set_value(str(unknown))
    at.selectbox(key="dataset::new_model").set_value("synthetic_shapes")
    at.multiselect(key="dataset::new_methods").set_value(["saliency"])
    at.multiselect(key="dataset::new_metrics").set_value(["sparseness"])
    at.text_input(key="dataset::new_name").set_value("from-the-page").run()
    next(b for b in at.button if b.label == "Start the run").click().run()
    assert "1 label(s) are not classes of this model: 'hexagon'" in _texts(at.error)
    at.text_input(key="dataset::new_images").set_value("synthetic:2").run()
    next(b for b in at.button if b.label == "Start the run").click().run()
    assert not at.exception, at.exception
    assert "Run from-the-page: 2 images (complete)." in _texts(at.success)
    assert {m.label: m.value for m in at.metric}["Images"] == "2 / 2"
    assert metrics.load_run(tmp_path / "runs" / "from-the-page").manifest["sessions"][0]["engine"] == "local"

    # a run the user stopped: the page offers Resume, which continues from the store
    out = tmp_path / "runs" / "stopped"
    settings = RunSettings("synthetic_shapes", "synthetic:3", ("saliency",), ("sparseness",)).to_json()
    at.session_state["dataset_pending_run"] = {"settings": settings, "out": str(out)}
    at.session_state[work.STOPPED] = work.signature("dataset_run", str(out), settings)
    at.run()
    assert "Stopped." in _texts(at.info) and not out.exists()
    next(b for b in at.button if b.label == "Resume").click().run()
    assert not at.exception, at.exception
    assert "Run stopped: 3 images (complete)." in _texts(at.success)
