"""Dataset runs: every image of a (labelled) folder predicted, explained and scored, in-process or sharded on Ray,
into a Parquet store that resumes after a crash and that ``load_run`` reads back.

A package rather than one module: the image sets (``images``), the per-batch function both engines call
(``process``), the store and its reader (``store``) and the engines (``engines``) are four separate jobs.

::

    from metrics.runs import RunSettings, run_dataset, load_run

    s = RunSettings(model="synthetic_shapes", images="data/shapes", methods=("saliency", "gradcam"),
                    metrics=("deletion", "pointing_game"))
    run_dataset(s, "runs/shapes", engine="ray", workers=2)      # again after a crash: resumes
    run = load_run("runs/shapes")
    run.predictions, run.scores, run.maps(["circle/00009.png"], kind="prediction")
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

from core import progress
from core.errors import ParameterError
from metrics.runs import engines
from metrics.runs.images import ImageList, ImageRef, list_folder, list_images, load_ref, match_labels
from metrics.runs.process import RunSettings, decode_map, encode_map, process, schema
from metrics.runs.store import FORMAT, Batch, Run, Store, files, list_runs, load_run, plan, version

__all__ = [
    "Batch",
    "ImageList",
    "ImageRef",
    "Run",
    "RunSettings",
    "Store",
    "decode_map",
    "encode_map",
    "files",
    "list_folder",
    "list_images",
    "list_runs",
    "load_ref",
    "load_run",
    "match_labels",
    "plan",
    "process",
    "run_dataset",
    "schema",
    "version",
]



def _identity(settings: RunSettings, loaded: Any, listing: ImageList) -> dict[str, Any]:
    from core.model_state import fingerprint

    return {
        "format": FORMAT,
        "settings": settings.to_json(),
        "model": {"name": settings.model, "fingerprint": fingerprint(loaded.model)},
        "images": {"source": listing.source, "layout": listing.layout, "count": len(listing.refs), "digest": listing.digest()},
    }


def _open(settings: RunSettings, out: str | Path, engine: str, workers: int, address: str | None, restart: bool) -> tuple[Store, RunSettings, Any, ImageList]:
    """Check everything, list the images and open the store (new, or the same run again): before any work."""
    import zoo

    if engine not in engines.ENGINES or workers < 1:
        raise ParameterError(f"engine must be one of {', '.join(engines.ENGINES)} and workers >= 1; got {engine!r}, {workers}")
    loaded = zoo.load_model(settings.model)
    listing = list_images(settings.images, loaded.classes)
    settings = dataclasses.replace(settings, images=listing.source).check()
    extra = {"classes": list(loaded.classes), "model_title": loaded.title, "images_total": len(listing.refs), "warnings": listing.warnings}
    store = Store(out)
    store.begin(_identity(settings, loaded, listing), extra, {"engine": engine, "workers": workers if engine == "ray" else 1, "address": address}, restart=restart)
    return store, settings, loaded, listing


def run_dataset(
    settings: RunSettings,
    out: str | Path,
    *,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    restart: bool = False,
) -> dict[str, Any]:
    """Compute every image of ``settings.images`` not yet in the store ``out`` and return the final manifest.

    ``engine`` "local" (this process) or "ray" (``workers`` actors; ``address`` joins a cluster). The same
    command again resumes; other settings on the same folder raise ``DatasetError`` naming the difference.
    Raises ``ParameterError`` / ``DatasetError`` / ``KeyError`` (unknown names) before any work starts. A
    ``core.progress`` stage counts the images (those already stored count as done)."""
    store, settings, loaded, listing = _open(settings, out, engine, workers, address, restart)
    batches = plan(listing.refs, settings.shard_size, settings.checkpoint)
    by_shard: dict[int, list[Batch]] = {}
    for b in batches:
        by_shard.setdefault(b.shard, []).append(b)
    todo = store.todo(batches)
    total = len(listing.refs)
    done = total - sum(len(b.refs) for b in todo)
    stored = 0  # images this session computed and stored (a batch cut short by a kill is not)

    with progress.stage("images", total) as st:

        def on_image(name: str) -> None:
            st.at(min(st.done + 1, total), name)

        st.at(done, f"resuming: {done} of {total} images already stored" if done else "")
        source = engines.local(todo, settings, loaded, on_image) if engine == "local" else engines.ray(todo, settings, workers=workers, address=address)
        try:
            with contextlib.closing(source):
                for batch, table in source:
                    store.add(batch, table, by_shard[batch.shard])
                    stored += len(batch.refs)
                    if engine == "ray":
                        st.at(min(st.done + len(batch.refs), total), f"shard {batch.shard}, checkpoint {batch.part}")
        finally:
            manifest = store.finish(total, stored)
    return manifest
