"""Maps for a page: every (image, method) map computed through the cache with a progress bar, a Stop button and an
estimate of the time before it starts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import explainers
from core.timing import estimate
from dashboard import cache, work
from dashboard.selection import Selection


@dataclass(frozen=True)
class Job:
    """One image to explain: its key, the label a row shows, the input [1,C,H,W] and the target class."""

    image_key: str
    label: str
    x: torch.Tensor
    target: int


def seconds_for(sel: Selection, methods: list[str] | tuple[str, ...], images: int = 1) -> float:
    """Estimated seconds to compute ``methods`` on ``images`` images with ``sel``'s model, from the measured time of
    one pass on this machine and each method's cost in passes (its spec's ``cost``)."""
    h, w = sel.x.shape[-2:]
    per_pass = cache.pass_seconds(sel.model_key, sel.loaded, int(h))
    k = cache.cam_channels(sel.model_key, sel.loaded)
    total = 0.0
    for m in methods:
        spec = explainers.get(m)
        total += estimate(spec.cost({**spec.defaults(), **dict(sel.params.get(m, ()))}, h, w, k), per_pass)
    return total * images


def compute(sel: Selection, jobs: list[Job], methods: list[str], *, key: str) -> dict[tuple[int, str], cache.Outcome] | None:
    """Every (job index, method) map, cached, with progress, an estimate and a Stop button (``key``: the page's). None
    when the user stopped this computation (a message with a Resume button is shown instead)."""
    sig = work.signature("maps", sel.model_key, [(j.image_key, j.target) for j in jobs], methods, [sel.params[m] for m in methods])
    if work.stopped(sig, key=key):
        return None
    todo = len(jobs) * len(methods)
    label = f"Computing {todo} map{'s' * (todo != 1)} (about {work.duration(seconds_for(sel, methods, len(jobs)))} on this machine)"
    results = {}
    with work.Work(sig, label, key=key) as w:
        for i, (n, job, m) in enumerate((n, j, m) for n, j in enumerate(jobs) for m in methods):
            w.step(i, todo, f"{explainers.get(m).title} ({i + 1}/{todo})")
            results[(n, m)] = cache.attribution(sel.model_key, job.image_key, m, sel.params[m], job.target, sel.loaded, job.x)
    return results


def image_job(sel: Selection, image_key: str, target: int | None = None) -> Job:
    """A job for one of the selection's images: its predicted class unless ``target`` is given."""
    x = sel.loaded.preprocess(sel.images[image_key])
    probs = cache.predictions(sel.model_key, image_key, sel.loaded, x)
    t = int(np.argmax(probs)) if target is None else int(target)
    return Job(image_key, f"{image_key} → {t}: {sel.loaded.classes[t]} ({probs[t]:.2f})", x, t)
