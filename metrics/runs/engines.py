"""The engines that compute a run's batches, both by calling ``process``: ``local`` (in this process, nothing to
install or start) and ``ray`` (a pool of Ray actors, each loading the model once, on a local cluster of N workers
or on the cluster at an address). Both yield (batch, table) as batches finish; the caller stores them.

Ray: ``ray.util.ActorPool`` over ``ray.remote`` actors (one CPU each, restarted and the batch retried if a worker
dies). Ray Data's ``map_batches`` with an actor pool was the alternative; its output blocks are re-cut by Ray
Data, while a checkpoint must be exactly one batch of one shard, so the pool hands whole batches back. Results
come back to the driver, which alone writes the store: only the driver needs the run folder, and the workers
need the image folder at the same path (a shared filesystem) unless the images travel as bytes (synthetic:N,
samples). The workers import this project from the job's ``working_dir`` (the project folder, sent by Ray), so it
need not be installed on them; its Python packages must be.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from core.errors import ParameterError
from metrics.runs.process import RunSettings, process
from metrics.runs.store import Batch

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("local", "ray")
EXCLUDES = ["/.git", "/.venv", "/.venv-bench", "/artifacts", "/runs", "/docs", "__pycache__", "*.pyc", "/.pytest_cache", "/.ruff_cache"]  # gitignore syntax: / anchors at the root
OBJECT_STORE_BYTES = 256 * 1024**2  # a local cluster's object store: batches are small (maps are 56 x 56 float16)


def local(todo: Sequence[Batch], settings: RunSettings, loaded: Any, on_image: Callable[[str], None] | None = None) -> Iterator[tuple[Batch, pa.Table]]:
    """In this process, batch after batch, on the already loaded model."""
    for batch in todo:
        yield batch, process(batch.refs, settings, loaded, on_image=on_image)


class Worker:
    """A Ray actor's state: the model, loaded once per actor; ``run(batch)`` -> (batch, table)."""

    def __init__(self, settings: RunSettings) -> None:
        import zoo

        warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")  # captum's notice
        self.settings = settings
        self.loaded = zoo.load_model(settings.model)

    def run(self, batch: Batch) -> tuple[Batch, pa.Table]:
        return batch, process(batch.refs, self.settings, self.loaded)


def runtime_env() -> dict[str, Any]:
    """The job's runtime environment for a cluster this process starts or joins: the project folder as Ray's
    working_dir (sent to every node, on the workers' sys.path), so workers import it without an install."""
    return {"working_dir": str(ROOT), "excludes": EXCLUDES}


def _actor_env(ray_: Any) -> dict[str, Any]:
    """Per actor: nothing when the job already ships a working_dir; else (a cluster started by the caller without
    one, on this machine) the project on PYTHONPATH."""
    job = ray_.get_runtime_context().runtime_env or {}
    return {} if job.get("working_dir") else {"env_vars": {"PYTHONPATH": str(ROOT)}}


def ray(todo: Sequence[Batch], settings: RunSettings, *, workers: int, address: str | None = None) -> Iterator[tuple[Batch, pa.Table]]:
    """On ``workers`` Ray actors. Joins the cluster at ``address``, or the one this process is already connected
    to, or starts a local one with ``workers`` CPUs (and shuts it down at the end)."""
    try:
        import ray as ray_
        from ray.util import ActorPool
    except ImportError:
        raise ParameterError("--engine ray needs the ray package (requirements.txt: ray==2.60.0)") from None

    own = not ray_.is_initialized()
    if own:
        local_cluster = {} if address else {"num_cpus": workers, "object_store_memory": OBJECT_STORE_BYTES}
        ray_.init(address=address, include_dashboard=False, configure_logging=False, runtime_env=runtime_env(), **local_cluster)
    try:
        actor = ray_.remote(num_cpus=1, max_restarts=2, max_task_retries=2)(Worker).options(runtime_env=_actor_env(ray_))
        pool = ActorPool([actor.remote(settings) for _ in range(workers)])
        yield from pool.map_unordered(lambda a, b: a.run.remote(b), list(todo))
    finally:
        if own:
            ray_.shutdown()
