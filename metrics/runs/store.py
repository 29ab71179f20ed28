"""The results store of a run: a folder with ``manifest.json`` and Parquet parts, and its reader ``load_run``.

::

    RUN/manifest.json                      what the run is (settings, model and weights fingerprint, the image
                                           list's digest), its sessions (engine, workers, code version, start, end)
                                           and progress (images done, skipped files)
    RUN/part-00000.parquet                 shard 0: a row per image (columns: ``process.schema``)
    RUN/pending/part-00003-0001.parquet    a finished checkpoint of shard 3, which is not finished yet
    RUN/leaderboard.json                   the summary (written when the run completes)
    RUN/.lock                              locked (flock) while a process writes the run: one writer at a time

Every file is written under a temporary name in the same folder and renamed (``os.replace``, atomic), so a run
killed at any moment leaves only complete files: finished shards, finished checkpoints, and at worst a stray
temporary file (ignored, removed on resume). A shard's part is written from its checkpoints, then they are
deleted; readers drop the duplicates of that short window. Resume = the same settings on the same folder:
finished shards and checkpoints are kept, only the missing images are computed.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import explainers
from core.errors import DatasetError
from metrics.runs.images import ImageRef
from metrics.runs.process import RunSettings, decode_map
from metrics.runs.process import schema as process_schema

FORMAT = 1
MANIFEST = "manifest.json"
PENDING = "pending"
LOCK = ".lock"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Batch:
    """The unit of work: checkpoint ``part`` of shard ``shard`` (``refs``: its images)."""

    shard: int
    part: int
    refs: tuple[ImageRef, ...]


def plan(refs: Sequence[ImageRef], shard_size: int, checkpoint: int) -> list[Batch]:
    """Shard k = images [k*shard_size, (k+1)*shard_size), cut into checkpoints of ``checkpoint`` images."""
    out = []
    for shard, start in enumerate(range(0, len(refs), shard_size)):
        chunk = refs[start : start + shard_size]
        out += [Batch(shard, j, tuple(chunk[i : i + checkpoint])) for j, i in enumerate(range(0, len(chunk), checkpoint))]
    return out


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def code_version() -> str:
    """The project's git commit (``+dirty`` with uncommitted changes), or "unknown" outside a git checkout."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """``write(file)`` into a temporary file beside ``path``, synced, then renamed onto ``path``."""
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        with tmp.open("wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str) for d in _differences(old.get(k), new.get(k), f"{where}.{k}" if where else str(k))]
    return [] if old == new else [f"{where}: {json.dumps(old)} in the run, {json.dumps(new)} now"]


class Store:
    """Writes one run folder (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.pending = self.path / PENDING

    def part(self, shard: int) -> Path:
        return self.path / f"part-{shard:05d}.parquet"

    def checkpoint(self, shard: int, part: int) -> Path:
        return self.pending / f"part-{shard:05d}-{part:04d}.parquet"

    def manifest(self) -> dict[str, Any] | None:
        f = self.path / MANIFEST
        return json.loads(f.read_text()) if f.is_file() else None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        manifest["updated"] = now()
        write_atomic(self.path / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2).encode()))

    def begin(self, identity: dict[str, Any], extra: dict[str, Any], session: dict[str, Any], *, restart: bool = False) -> dict[str, Any]:
        """Open the folder for writing: a new run, or the same run again (``identity`` equal: resume). Other
        settings are refused naming each difference; ``restart`` deletes the old run first. One writer at a time:
        the folder's lock is held until ``finish`` (the system drops it when a writer is killed)."""
        if self.manifest() is None and self.path.is_dir() and any(p.name not in (PENDING, LOCK) for p in self.path.iterdir()):
            raise DatasetError(f"{self.path} is not empty and holds no run ({MANIFEST} missing): choose another folder")
        self._lock()
        try:
            old = self.manifest()
            if old is not None and restart:
                self.clear()
                old = None
            diff = _differences({k: old.get(k) for k in identity}, json.loads(json.dumps(identity))) if old is not None else []
            if diff:
                raise DatasetError(f"{self.path} was started with other settings ({'; '.join(diff)}): use another folder, or restart it (--restart)")
            self.pending.mkdir(parents=True, exist_ok=True)
            for tmp in [*self.path.glob(".tmp-*"), *self.pending.glob(".tmp-*")]:
                tmp.unlink()  # left by a kill during a write: never a finished file
            manifest = old or {**identity, **extra, "created": now(), "sessions": []}
            manifest.update(status="running", sessions=[*manifest.get("sessions", []), {**session, "started": now(), "code": code_version()}])
            self.write_manifest(manifest)
        except BaseException:
            self._unlock()
            raise
        return manifest

    def _lock(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file = (self.path / LOCK).open("a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise DatasetError(f"another process is writing {self.path} right now; wait for it, or stop it first") from None

    def _unlock(self) -> None:
        lock = getattr(self, "_lock_file", None)
        if lock is not None:
            lock.close()  # closing drops the lock
            self._lock_file = None

    def clear(self) -> None:
        """Delete this run's files (and only those)."""
        for f in [self.path / MANIFEST, self.path / "leaderboard.json", *self.path.glob("part-*.parquet")]:
            f.unlink(missing_ok=True)
        shutil.rmtree(self.pending, ignore_errors=True)

    def done(self) -> tuple[set[int], set[tuple[int, int]]]:
        """Finished shards, and finished checkpoints (shard, part) of the others."""
        shards = {int(p.stem.split("-")[1]) for p in self.path.glob("part-*.parquet")}
        checkpoints = {(int(p.stem.split("-")[1]), int(p.stem.split("-")[2])) for p in self.pending.glob("part-*.parquet")}
        return shards, {c for c in checkpoints if c[0] not in shards}

    def todo(self, batches: Sequence[Batch]) -> list[Batch]:
        """The batches still to compute (shards whose checkpoints are all there are merged first)."""
        by_shard: dict[int, list[Batch]] = {}
        for b in batches:
            by_shard.setdefault(b.shard, []).append(b)
        for shard, shard_batches in by_shard.items():
            self.merge(shard, shard_batches)
        shards, checkpoints = self.done()
        return [b for b in batches if b.shard not in shards and (b.shard, b.part) not in checkpoints]

    def add(self, batch: Batch, table: pa.Table, shard_batches: Sequence[Batch]) -> bool:
        """Store a computed batch as a checkpoint; when its shard is complete, merge it. True if merged."""
        write_atomic(self.checkpoint(batch.shard, batch.part), lambda f: pq.write_table(table, f))
        return self.merge(batch.shard, shard_batches)

    def merge(self, shard: int, shard_batches: Sequence[Batch]) -> bool:
        """Write ``part-<shard>`` from its checkpoints when all are there, then delete them (also those a kill left
        behind a written part). True when the shard's part exists."""
        files = [self.checkpoint(shard, b.part) for b in sorted(shard_batches, key=lambda b: b.part)]
        if not self.part(shard).exists():
            if not files or not all(f.exists() for f in files):
                return False
            table = pa.concat_tables([pq.read_table(f) for f in files])
            write_atomic(self.part(shard), lambda f: pq.write_table(table, f))
        for f in files:
            f.unlink(missing_ok=True)
        return True

    def count(self) -> int:
        """Images stored (finished shards and checkpoints), from the Parquet footers."""
        shards, _ = self.done()
        pending = [p for p in self.pending.glob("part-*.parquet") if int(p.stem.split("-")[1]) not in shards]
        return sum(pq.ParquetFile(f).metadata.num_rows for f in [*self.path.glob("part-*.parquet"), *pending])

    def finish(self, total: int, computed: int) -> dict[str, Any]:
        """Record the session's end and how many images it computed, the images done, the skipped files and the
        status (complete or incomplete)."""
        manifest = self.manifest() or {}
        done = self.count()
        skipped = load_run(self.path).skipped if done else pd.DataFrame(columns=["image", "error"])
        manifest.update(images_done=done, status="complete" if done >= total else "incomplete", skipped=skipped.to_dict("records"))
        if manifest.get("sessions"):
            manifest["sessions"][-1].update(ended=now(), computed=computed, images_done=done)
        self.write_manifest(manifest)
        self._unlock()
        return manifest


# ------------------------------------------------------------------------------------------------- reader

BASE_COLUMNS = ["index", "image", "label", "prediction", "target", "p_prediction", "p_target", "p_label", "correct", "seconds", "error"]


def files(path: str | Path) -> list[Path]:
    """A run's finished shards, then its checkpoints."""
    path = Path(path)
    return sorted(path.glob("part-*.parquet")) + sorted((path / PENDING).glob("part-*.parquet"))


def version(path: str | Path) -> str:
    """Changes whenever the run's files change (a cache key for readers)."""
    stamp = [(f.name, f.stat().st_mtime_ns) for f in [Path(path) / MANIFEST, *files(path)] if f.exists()]
    return str(hash(tuple(stamp)))


@dataclass
class Run:
    """A run read back: ``manifest`` (dict), ``predictions`` (a row per image), ``scores`` (a row per image,
    method and metric), ``timings`` (a row per image and method), ``skipped`` (unreadable files and why),
    ``probs`` [N,K] aligned with ``predictions``; maps and pictures are read on demand."""

    path: Path
    manifest: dict[str, Any]
    predictions: pd.DataFrame
    scores: pd.DataFrame
    timings: pd.DataFrame
    skipped: pd.DataFrame
    probs: np.ndarray

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def settings(self) -> RunSettings:
        return RunSettings.from_json(self.manifest["settings"])

    def _read(self, images: Sequence[str], columns: list[str]) -> pa.Table:
        where = self.predictions.set_index("image").loc[list(images), "file"]
        tables = [pq.read_table(f, columns=["image", *columns], filters=[("image", "in", list(grp.index))]) for f, grp in where.groupby(where)]
        return pa.concat_tables(tables) if tables else pa.table({"image": pa.array([], pa.string())})

    def maps(self, images: Sequence[str], methods: Sequence[str] | None = None, kind: str = "label") -> dict[str, dict[str, np.ndarray | None]]:
        """{image: {method: float32 [s,s] map (None if it failed)}}; ``kind`` "label" (the target: the label, or
        the top prediction for unlabelled images) or "prediction" (the same map where it equals the target)."""
        methods = list(methods or self.settings.methods)
        size = self.settings.map_size
        cols = [c for m in methods for c in (f"map:{m}", f"scale:{m}") + ((f"map_pred:{m}", f"scale_pred:{m}") if kind == "prediction" else ())]
        out: dict[str, dict[str, np.ndarray | None]] = {}
        for r in self._read(images, cols).to_pylist():
            own = {m: (r[f"map:{m}"], r[f"scale:{m}"]) for m in methods}
            if kind == "prediction":
                own = {m: (r[f"map_pred:{m}"], r[f"scale_pred:{m}"]) if r[f"map_pred:{m}"] is not None else own[m] for m in methods}
            out[r["image"]] = {m: None if d is None else decode_map(d, s, size) for m, (d, s) in own.items()}
        return out

    def pictures(self, images: Sequence[str]) -> dict[str, np.ndarray]:
        """{image: uint8 [h,w,3]}: the model's input as stored in the run (no access to the original files)."""
        import io

        from PIL import Image

        return {r["image"]: np.asarray(Image.open(io.BytesIO(r["thumb"])).convert("RGB")) for r in self._read(images, ["thumb"]).to_pylist()}

    def class_means(self, method: str, images: Sequence[str] | None = None) -> dict[int, tuple[np.ndarray, int]]:
        """Per target class (the label, else the prediction): (mean of the method's maps over ``images`` (None:
        all), each scaled to max |value| = 1, |map| for unsigned methods, float32 [s,s]; how many images). Read
        file by file: memory stays one part."""
        size, signed = self.settings.map_size, explainers.get(method).signed
        wanted = None if images is None else set(images)
        sums: dict[int, np.ndarray] = {}
        counts: dict[int, int] = {}
        seen: set[str] = set()  # a shard and its last checkpoints may both be there for a moment
        for f in files(self.path):
            for name, t, d in _maps_column(f, method):
                if name in seen or (wanted is not None and name not in wanted):
                    continue
                seen.add(name)
                unit = decode_map(d, 1.0, size)
                sums[t] = sums.get(t, 0) + (unit if signed else np.abs(unit))
                counts[t] = counts.get(t, 0) + 1
        return {t: (sums[t] / counts[t], counts[t]) for t in sorted(sums)}


def _maps_column(f: Path, method: str) -> list[tuple[str, int, bytes]]:
    t = pq.read_table(f, columns=["image", "target", f"map:{method}"]).to_pydict()
    return [(n, int(y), d) for n, y, d in zip(t["image"], t["target"], t[f"map:{method}"], strict=True) if y is not None and d is not None]


def _long_scores(wide: pd.DataFrame, s: RunSettings) -> pd.DataFrame:
    keep = ["image", "label", "prediction", "correct"]
    parts = []
    for k in s.metrics:
        for m in s.methods:
            col = f"score:{k}:{m}"
            part = wide.loc[wide[col].notna() | wide[f"error:{m}"].notna(), [*keep, col, f"error:{m}"]]
            parts.append(part.rename(columns={col: "value", f"error:{m}": "error"}).assign(method=m, metric=k))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*keep, "value", "error", "method", "metric"])
    out = out[out["image"].isin(wide.loc[wide["error"].isna(), "image"])]
    out = out.astype({"label": "Int64", "prediction": "int64", "correct": "boolean", "value": "float64"})
    return out[[*keep, "method", "metric", "value", "error"]].reset_index(drop=True)


def _timings(wide: pd.DataFrame, s: RunSettings) -> pd.DataFrame:
    parts = [wide[["image", f"seconds:{m}", f"error:{m}"]].rename(columns={f"seconds:{m}": "seconds", f"error:{m}": "error"}).assign(method=m) for m in s.methods]
    out = pd.concat(parts, ignore_index=True)
    return out[out["image"].isin(wide.loc[wide["error"].isna(), "image"])][["image", "method", "seconds", "error"]].reset_index(drop=True)


def load_run(path: str | Path) -> Run:
    """Read a run folder (complete or not): see ``Run``. Raises ``DatasetError`` when it is not a run."""
    path = Path(path)
    manifest = Store(path).manifest()
    if manifest is None:
        raise DatasetError(f"{path} is not a run folder ({MANIFEST} missing)")
    s = RunSettings.from_json(manifest["settings"])
    wanted = BASE_COLUMNS + ["probs"] + [c for m in s.methods for c in (f"seconds:{m}", f"error:{m}")] + [f"score:{k}:{m}" for k in s.metrics for m in s.methods]
    tables = [pq.read_table(f, columns=wanted).append_column("file", pa.array([str(f)] * pq.ParquetFile(f).metadata.num_rows)) for f in files(path)]
    table = pa.concat_tables(tables) if tables else pa.table({c: pa.array([], process_schema(s).field(c).type) for c in wanted}).append_column("file", pa.array([], pa.string()))
    wide = table.drop_columns("probs").to_pandas().reset_index(drop=True)
    wide = wide.drop_duplicates("image").sort_values("index")  # the original row numbers stay as the index
    classes = manifest["classes"]
    ok = wide[wide["error"].isna()]
    vectors = table.column("probs").take(pa.array(ok.index.to_numpy(), pa.int64())).combine_chunks()
    probs = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(ok), len(classes))
    wide, ok = wide.reset_index(drop=True), ok.reset_index(drop=True)
    predictions = ok[[*BASE_COLUMNS, "file"]].drop(columns="error").astype({"label": "Int64", "prediction": "int64", "target": "int64", "correct": "boolean"})
    predictions.insert(3, "label_name", pd.Series([classes[y] if pd.notna(y) else None for y in predictions["label"]], dtype="str"))
    predictions.insert(5, "prediction_name", pd.Series([classes[y] for y in predictions["prediction"]], dtype="str"))
    skipped = wide.loc[wide["error"].notna(), ["image", "error"]].reset_index(drop=True)
    return Run(path, manifest, predictions, _long_scores(wide, s), _timings(wide, s), skipped, probs)


def list_runs(folder: str | Path) -> list[dict[str, Any]]:
    """The runs directly under ``folder``, newest first: {path, name, manifest}."""
    folder = Path(folder)
    runs = []
    for d in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            m = Store(d).manifest() if d.is_dir() else None
        except (OSError, ValueError):
            continue  # a manifest being replaced or not JSON: not a run to list
        if m is not None:
            runs.append({"path": d, "name": d.name, "manifest": m})
    return sorted(runs, key=lambda r: r["manifest"].get("created", ""), reverse=True)
