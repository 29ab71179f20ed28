"""Dataset runs: labelled folders, the Parquet store and its reader, resume after a kill, and the two engines
(a real local Ray cluster with 2 workers) giving the same numbers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

import explainers
import metrics
from core.errors import DatasetError
from metrics.__main__ import main
from metrics.runs import RunSettings, Store, analysis, decode_map, encode_map, engines, list_folder, list_images, load_ref, match_labels, run_dataset
from zoo.synthetic import CLASSES, make_sample, write_folder

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("saliency", "gradcam", "random")
METRICS = ("deletion", "pointing_game", "sparseness")
N = 6  # shard 0: images 0-3 in two checkpoints of 2; shard 1: images 4-5


def _settings(folder: Path, **kw) -> RunSettings:
    # what ``python -m metrics --step 256 --batch-size 64 --shard-size 4 --checkpoint 2`` sets
    base = {"methods": METHODS, "metrics": METRICS, "metric_params": {"deletion": {"step": 256, "substrate": "zero"}}, "shard_size": 4, "checkpoint": 2, "batch_size": 64}
    return RunSettings(model="synthetic_shapes", images=str(folder), **{**base, **kw})


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("shapes")
    write_folder(d, N, seed=1)
    return d


@pytest.fixture(scope="module")
def reference(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "local"
    run_dataset(_settings(folder), out)
    return out


def _same_numbers(a: metrics.runs.Run, b: metrics.runs.Run, tol: float = 1e-6) -> None:
    cols = ["image", "label", "prediction", "target", "correct"]
    pd.testing.assert_frame_equal(a.predictions[cols], b.predictions[cols])
    np.testing.assert_allclose(a.probs, b.probs, atol=tol)
    sa, sb = (r.scores.sort_values(["image", "metric", "method"]).reset_index(drop=True) for r in (a, b))
    pd.testing.assert_frame_equal(sa.drop(columns="value"), sb.drop(columns="value"))
    np.testing.assert_allclose(sa["value"], sb["value"], atol=tol)
    images = list(a.predictions["image"])
    for kind in ("label", "prediction"):
        ma, mb = a.maps(images, kind=kind), b.maps(images, kind=kind)
        for i in images:
            for m in METHODS:
                np.testing.assert_allclose(ma[i][m], mb[i][m], atol=tol)


# ------------------------------------------------------------------------------------------ image folders


def test_synthetic_folder_writer_matches_the_generator(tmp_path: Path) -> None:
    paths = write_folder(tmp_path, 5, seed=3)
    rng = np.random.default_rng(3)
    from PIL import Image

    for i, p in enumerate(paths):
        s = make_sample(rng)
        assert p.parent.name == CLASSES[s.label] and p.name == f"{i:05d}.png"
        assert np.array_equal(np.asarray(Image.open(p)), s.image)
        assert np.array_equal(np.asarray(Image.open(p.with_name(f"{i:05d}.mask.png"))) > 127, s.mask)
    listing = list_folder(tmp_path, CLASSES)
    assert listing.layout == "imagefolder" and len(listing.refs) == 5 and all(r.mask for r in listing.refs)
    assert sorted(r.name for r in listing.refs) == sorted(p.relative_to(tmp_path).as_posix() for p in paths)


def test_labels_match_names_ignoring_case_spaces_underscores_or_indices() -> None:
    classes = ["tabby", "tiger cat", "Egyptian cat", "crane", "crane"]
    assert match_labels(["Tiger_Cat", "TABBY", "egyptian  cat", "2"], classes) == {"Tiger_Cat": 1, "TABBY": 0, "egyptian  cat": 2, "2": 2}
    with pytest.raises(DatasetError, match="several classes"):
        match_labels(["crane"], classes)
    with pytest.raises(DatasetError, match=r"2 label\(s\) are not classes of this model: 'lion', '7'"):
        match_labels(["lion", "tabby", "7"], classes)


def test_bad_folders_get_their_messages(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(DatasetError, match="is not a folder"):
        list_folder(tmp_path / "missing", CLASSES)
    (tmp_path / "empty" / "circle").mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no images"):
        list_folder(tmp_path / "empty", CLASSES)
    assert main(["--model", "synthetic_shapes", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "holds no images" in capsys.readouterr().err
    unknown = tmp_path / "unknown"
    for name in ("circle", "hexagon", "star"):
        write_folder(unknown / name, 1, seed=0)  # writes <name>/<class>/00000.png: images anywhere under the class folder
    with pytest.raises(DatasetError, match=r"2 label\(s\) are not classes of this model: 'hexagon', 'star'"):
        list_folder(unknown, CLASSES)
    csv_dir = tmp_path / "csv"
    write_folder(csv_dir, 2, seed=0)
    (csv_dir / "labels.csv").write_text("file,class\n")
    with pytest.raises(DatasetError, match="path,label"):
        list_folder(csv_dir, CLASSES)
    (csv_dir / "labels.csv").write_text("path,label\nnope.png,dodecahedron\n")
    with pytest.raises(DatasetError, match="'dodecahedron'"):
        list_folder(csv_dir, CLASSES)
    (csv_dir / "labels.csv").write_text("path,label\n../outside.png,circle\n")
    with pytest.raises(DatasetError, match="inside"):
        list_folder(csv_dir, CLASSES)
    first = sorted(csv_dir.rglob("0000*.png"))[0].relative_to(csv_dir).as_posix()
    (csv_dir / "labels.csv").write_text(f"path,label\n{first},Cross\n")
    listing = list_folder(csv_dir, CLASSES)
    assert listing.layout == "labels.csv" and [(r.name, r.label) for r in listing.refs] == [(first, 3)]
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((csv_dir).rglob("0000?.png")):
        shutil.copy(p, flat / p.name)
    listing = list_images(str(flat), CLASSES)
    assert listing.layout == "unlabelled" and not listing.labelled and len(listing.refs) == 2
    write_folder(flat / "circle", 1, seed=5)  # now a class folder beside loose images
    listing = list_folder(flat, CLASSES)
    assert listing.layout == "imagefolder" and "2 image(s) directly in" in listing.warnings[0]


def test_unreadable_files_and_bad_masks_are_skipped_and_reported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_folder(data, 2, seed=0)
    cls = sorted(d for d in data.iterdir())[0]
    (cls / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good = sorted(cls.glob("0000?.png"))[0]
    shutil.copy(good, cls / "badmask.png")
    from PIL import Image

    Image.new("L", (10, 10)).save(cls / "badmask.mask.png")
    out = tmp_path / "run"
    s = RunSettings(model="synthetic_shapes", images=str(data), methods=("saliency",), metrics=("sparseness", "pointing_game"))
    manifest = run_dataset(s, out)
    reasons = {r["image"]: r["error"] for r in manifest["skipped"]}
    assert set(reasons) == {f"{cls.name}/broken.png", f"{cls.name}/badmask.png"}
    assert "damaged" in reasons[f"{cls.name}/broken.png"] and "mask is 10 x 10 px but the image is 64 x 64" in reasons[f"{cls.name}/badmask.png"]
    run = metrics.load_run(out)
    assert manifest["status"] == "complete" and len(run.predictions) == 2 and set(run.skipped["image"]) == set(reasons)
    assert set(run.scores["image"]) == set(run.predictions["image"])


# ------------------------------------------------------------------------------------------ store and reader


def test_maps_are_stored_normalized_so_tiny_values_survive_float16() -> None:
    m = torch.rand(1, 64, 64) * 1e-9 - 0.3e-9
    data, scale = encode_map(m, 56)
    back = decode_map(data, scale, 56)
    pooled = torch.nn.functional.adaptive_avg_pool2d(m[None], 56)[0, 0].numpy()
    assert scale == pytest.approx(float(np.abs(pooled).max()))
    np.testing.assert_allclose(back, pooled, atol=scale * 1e-3)
    assert decode_map(*encode_map(torch.zeros(56, 56), 56), 56).sum() == 0


def test_load_run_schema_and_values_are_the_cores(reference: Path, folder: Path, shapes) -> None:
    run = metrics.load_run(reference)
    p = run.predictions
    assert {"image", "label", "label_name", "prediction", "prediction_name", "p_prediction", "p_label", "p_target", "correct", "target"} <= set(p.columns)
    assert list(run.scores.columns) == ["image", "label", "prediction", "correct", "method", "metric", "value", "error"]
    assert len(p) == N and len(run.scores) == N * len(METHODS) * len(METRICS)  # every image has a mask
    assert run.manifest["status"] == "complete" and run.manifest["images_done"] == N and run.manifest["model"]["name"] == "synthetic_shapes"
    assert run.probs.shape == (N, 4) and np.allclose(run.probs.sum(1), 1, atol=1e-5)
    assert (run.probs.argmax(1) == p["prediction"]).all() and (p["label_name"] == [CLASSES[y] for y in p["label"]]).all()
    np.testing.assert_allclose(p["p_label"], run.probs[np.arange(N), p["label"].to_numpy(int)], atol=1e-7)
    assert (p["correct"] == (p["label"] == p["prediction"])).all()
    # the stored numbers are the core's numbers for that image
    ref = list_folder(folder, CLASSES).refs[0]
    x, mask = load_ref(ref, shapes)
    amap = explainers.explain("gradcam", shapes, x, ref.label)
    stored = run.scores.query("image == @ref.name and method == 'gradcam'").set_index("metric")["value"]
    assert stored["deletion"] == pytest.approx(float(metrics.score("deletion", shapes, x, ref.label, amap, step=256)["map"][0]), abs=1e-6)
    assert stored["pointing_game"] == float(metrics.score("pointing_game", shapes, x, ref.label, amap, mask=mask)["map"][0])
    np.testing.assert_allclose(run.maps([ref.name])[ref.name]["gradcam"], torch.nn.functional.adaptive_avg_pool2d(amap[None], 56)[0, 0], atol=2e-3 * amap.abs().max().item())
    pics = run.pictures([ref.name])
    assert pics[ref.name].shape == (64, 64, 3) and pics[ref.name].dtype == np.uint8
    means = run.class_means("saliency")
    assert sum(n for _, n in means.values()) == N and all(m.shape == (56, 56) and m.max() <= 1 for m, _ in means.values())
    with pytest.raises(DatasetError, match="not a run folder"):
        metrics.load_run(folder)


def test_other_settings_on_a_run_folder_are_refused_naming_the_difference(reference: Path, folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    before = {f.name: f.read_bytes() for f in copy.glob("*.parquet")}
    with pytest.raises(DatasetError, match=r"other settings \(settings.metric_params.deletion.step: 256 in the run, 128 now"):
        run_dataset(_settings(folder, metric_params={"deletion": {"step": 128, "substrate": "zero"}}), copy)
    with pytest.raises(DatasetError, match="settings.methods"):
        run_dataset(_settings(folder, methods=("saliency",)), copy)
    assert {f.name: f.read_bytes() for f in copy.glob("*.parquet")} == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="holds no run"):
        run_dataset(_settings(folder), tmp_path / "other")
    writer = Store(copy)
    writer.begin({"format": 1, "settings": {"seed": 9}}, {}, {}, restart=True)  # --restart: the old run is gone
    assert not list(copy.glob("part-*.parquet")) and Store(copy).manifest()["settings"] == {"seed": 9}
    with pytest.raises(DatasetError, match="another process is writing"):  # one writer at a time
        Store(copy).begin({"format": 1, "settings": {"seed": 9}}, {}, {})
    writer.finish(0, 0)
    Store(copy).begin({"format": 1, "settings": {"seed": 9}}, {}, {})  # the lock is free again


def test_analysis_tables_and_label_errors() -> None:
    classes = ["a", "b", "c"]
    labels = np.array([0] * 6 + [1] * 6 + [2] * 6)
    probs = np.full((18, 3), 0.05)
    probs[np.arange(18), labels] = 0.9
    probs[[2, 9], :] = [[0.03, 0.94, 0.03], [0.02, 0.02, 0.96]]  # images 2 and 9: labelled a and b, the model is sure of b and c
    pred = pd.DataFrame({"image": [f"i{i}" for i in range(18)], "label": pd.array(labels, "Int64"), "prediction": probs.argmax(1)})
    pred = pred.assign(
        label_name=[classes[y] for y in labels],
        prediction_name=[classes[y] for y in probs.argmax(1)],
        correct=pd.array(labels == probs.argmax(1), "boolean"),
        p_prediction=probs.max(1),
        p_label=probs[np.arange(18), labels],
    )
    issues = analysis.label_issues(pred, probs)
    assert list(issues["image"]) == ["i9", "i2"] and list(issues["rank"]) == [1, 2]  # lowest self-confidence first
    cm = analysis.confusion(pred)
    assert cm.loc["a", "b"] == 1 and cm.loc["b", "c"] == 1 and cm.to_numpy().sum() == 18
    acc = analysis.per_class(pred).set_index("class")
    assert acc.loc["a", "accuracy"] == pytest.approx(5 / 6) and acc.loc["c", "accuracy"] == 1.0 and acc["images"].sum() == 18
    with pytest.raises(DatasetError, match="at least two classes"):
        analysis.label_issues(pred[pred["label"] == 0], probs[:6])
    scores = pd.DataFrame({"image": ["i0", "i1", "i6", "i7"] * 2, "method": ["m"] * 4 + ["n"] * 4, "metric": "sparseness", "value": [0.1, 0.3, 0.5, 0.7, 0.4, 0.4, 0.9, 0.9]})
    by_class = analysis.leaderboard_by_class(scores, pred).set_index(["class", "method"])
    assert by_class.loc[("a", "m"), "mean"] == pytest.approx(0.2) and by_class.loc[("b", "n"), "rank"] == 1 and by_class.loc[("a", "m"), "rank"] == 2


# ------------------------------------------------------------------------------------------ resume


def test_a_run_killed_in_the_middle_of_a_shard_resumes_computing_only_the_missing_images(folder: Path, reference: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "metrics", "--model", "synthetic_shapes", "--images", str(folder), "--methods", ",".join(METHODS)]
    cmd += ["--metrics", ",".join(METRICS), "--step", "256", "--batch-size", "64", "--shard-size", "4", "--checkpoint", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not list((out / "pending").glob("part-*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.kill()  # SIGKILL while shard 0's second checkpoint is computed: no handler, no finally
    finally:
        proc.wait()
    # on disk: shard 0 half done (its first checkpoint, whole), no part; a write cut short would leave a temporary file
    assert not list(out.glob("part-*.parquet")), "the shard finished before the kill: the test proved nothing"
    assert [p.name for p in (out / "pending").glob("part-*.parquet")] == ["part-00000-0000.parquet"]
    kept = pq.read_table(out / "pending" / "part-00000-0000.parquet").column("image").to_pylist()
    assert len(kept) == 2
    (out / ".tmp-1234abcd-part-00000.parquet").write_bytes(b"PAR1 half a file")

    real = engines.process
    resumed: list[str] = []
    monkeypatch.setattr(engines, "process", lambda refs, s, m, **kw: (resumed.extend(r.name for r in refs), real(refs, s, m, **kw))[1])
    manifest = run_dataset(_settings(folder), out)  # the same settings as the command: it resumes
    everything = [r.name for r in list_folder(folder, CLASSES).refs]
    assert sorted(resumed) == sorted(set(everything) - set(kept)) and len(resumed) == N - 2
    assert manifest["status"] == "complete" and len(manifest["sessions"]) == 2 and manifest["sessions"][-1]["computed"] == N - 2
    assert sorted(p.name for p in out.glob("part-*.parquet")) == ["part-00000.parquet", "part-00001.parquet"]
    assert not list(out.glob(".tmp-*")) and not list((out / "pending").iterdir())
    _same_numbers(metrics.load_run(out), metrics.load_run(reference), tol=0)  # bit-identical to the run never killed
    resumed.clear()
    run_dataset(_settings(folder), out)  # complete: nothing to compute
    assert resumed == []


# ------------------------------------------------------------------------------------------ engines


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # as the engine starts one: the project as the job's working_dir, so the workers import this checkout
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024**2, configure_logging=False, runtime_env=engines.runtime_env())
    yield ray
    ray.shutdown()


def test_local_and_ray_engines_give_the_same_numbers(folder: Path, reference: Path, ray_cluster, tmp_path: Path) -> None:
    manifest = run_dataset(_settings(folder), tmp_path / "ray", engine="ray", workers=2)
    assert manifest["status"] == "complete" and manifest["sessions"][-1]["engine"] == "ray" and manifest["sessions"][-1]["workers"] == 2
    assert sorted(p.name for p in (tmp_path / "ray").glob("part-*.parquet")) == ["part-00000.parquet", "part-00001.parquet"]
    _same_numbers(metrics.load_run(tmp_path / "ray"), metrics.load_run(reference))
