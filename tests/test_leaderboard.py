"""Leaderboard: summary statistics, rank agreement, image sets, and the CLI's resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.errors import ParameterError
from metrics import load_run
from metrics.__main__ import main
from metrics.leaderboard import agreement, image_set, summarize


def _rows(metric: str, values: dict[str, list[float]]) -> list[dict]:
    return [{"image": f"i{j}", "method": m, "metric": metric, "value": v} for m, vs in values.items() for j, v in enumerate(vs)]


def test_summary_means_intervals_and_direction_aware_ranks() -> None:
    rows = _rows("deletion", {"a": [0.1, 0.2, 0.3], "b": [0.5, 0.6, 0.7], "c": [math.nan, 0.4, 0.4]})
    rows += _rows("insertion", {"a": [0.9, 0.8, 0.7], "b": [0.2, 0.3, 0.1], "c": [0.5, 0.5, 0.5]})
    s = {(r["metric"], r["method"]): r for r in summarize(rows, n_boot=500)}
    assert s[("deletion", "a")]["mean"] == pytest.approx(0.2)
    assert s[("deletion", "a")]["rank"] == 1 and s[("deletion", "b")]["rank"] == 3  # lower is better
    assert s[("insertion", "a")]["rank"] == 1 and s[("insertion", "b")]["rank"] == 3  # higher is better
    assert s[("deletion", "c")]["n"] == 2 and s[("deletion", "c")]["failed"] == 1
    lo, hi = s[("deletion", "a")]["ci_low"], s[("deletion", "a")]["ci_high"]
    assert 0.1 <= lo < 0.2 < hi <= 0.3
    assert s[("insertion", "c")]["ci_low"] == s[("insertion", "c")]["ci_high"] == 0.5
    ks, tau = agreement(list(s.values()))
    assert ks == ["deletion", "insertion"]
    assert tau[0, 1] == pytest.approx(1.0)  # both rank a > c > b once directions are accounted for


def test_agreement_detects_opposite_rankings() -> None:
    rows = _rows("sparseness", {"a": [0.9], "b": [0.5], "c": [0.1]}) + _rows("complexity", {"a": [0.9], "b": [0.5], "c": [0.1]})
    ks, tau = agreement(summarize(rows))
    # sparseness: higher is better (a first); complexity: lower is better (c first)
    assert tau[ks.index("sparseness"), ks.index("complexity")] == pytest.approx(-1.0)
    assert np.isnan(agreement(summarize(_rows("deletion", {"a": [1.0], "b": [2.0]})))[1][0, 0])  # < 3 methods


def test_image_sets(shapes, tmp_path: Path) -> None:
    items, warnings = image_set(shapes, "synthetic:3")
    assert len(items) == 3 and all(it.mask is not None and it.label is not None for it in items)
    assert items[0].mask.shape == (1, 64, 64) and items[0].x.shape == (1, 3, 64, 64)
    items, _ = image_set(shapes, "shapes: circle, chelsea")
    assert items[0].label == shapes.classes.index("circle") and items[0].mask is not None and items[1].mask is None
    with pytest.raises(ParameterError, match="unknown image"):
        image_set(shapes, "nope")
    with pytest.raises(ParameterError, match="whole number"):
        image_set(shapes, "synthetic:x")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    import zoo

    zoo.sample_images()["coffee"].save(tmp_path / "good.jpg")
    items, warnings = image_set(shapes, str(tmp_path))
    assert [it.name for it in items] == ["good.jpg"] and "bad.png" in warnings[0]


ARGS = ["--model", "synthetic_shapes", "--images", "synthetic:3", "--methods", "saliency,gradcam", "--metrics", "deletion,pointing_game", "--step", "256"]
ARGS += ["--checkpoint", "1", "--batch-size", "64"]


def _read(run: Path) -> dict[tuple[str, str, str], float]:
    return {(r.image, r.method, r.metric): r.value for r in load_run(run).scores.itertuples()}


def test_cli_resumes_an_interrupted_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    full = tmp_path / "full"
    assert main([*ARGS, "--out", str(full)]) == 0
    reference = _read(full)
    assert len(reference) == 3 * 2 * 2
    manifest = json.loads((full / "manifest.json").read_text())
    report = json.loads((full / "leaderboard.json").read_text())
    assert manifest["status"] == "complete" and manifest["sessions"][0]["computed"] == 3 and len(report["summary"]) == 4

    # an interruption: the first image's checkpoint was stored, the run died while writing the second one
    part = tmp_path / "part"
    (part / "pending").mkdir(parents=True)
    (part / "manifest.json").write_text(json.dumps({**manifest, "status": "running", "sessions": manifest["sessions"][:1]}))
    pq.write_table(pq.read_table(full / "part-00000.parquet").slice(0, 1), part / "pending" / "part-00000-0000.parquet")
    (part / "pending" / ".tmp-0a1b2c3d-part-00000-0001.parquet").write_bytes(b"PAR1 cut off")
    capsys.readouterr()
    assert main([*ARGS, "--out", str(part)]) == 0
    err = capsys.readouterr().err
    assert "resuming: 1 of 3 images" in err
    resumed = json.loads((part / "manifest.json").read_text())
    assert resumed["sessions"][-1]["computed"] == 2  # only the missing images were computed
    got = _read(part)
    assert got.keys() == reference.keys()
    for k, v in reference.items():
        assert got[k] == pytest.approx(v, abs=1e-6)

    # other settings on the same run folder: refused with a clear message, nothing overwritten
    before = {f.name: f.read_bytes() for f in part.iterdir() if f.is_file()}
    assert main([*ARGS[:9], "64", *ARGS[10:], "--out", str(part)]) == 2
    assert "other settings (settings.metric_params.deletion.step: 256 in the run, 64 now)" in capsys.readouterr().err
    assert {f.name: f.read_bytes() for f in part.iterdir() if f.is_file()} == before


def test_cli_rejects_unknown_names(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--methods", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown explainer" in capsys.readouterr().err
    assert main(["--set", "deletion.stp=3", "--out", str(tmp_path / "x")]) == 2
    assert "no parameter" in capsys.readouterr().err
