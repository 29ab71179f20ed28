"""The one function both engines call: ``process(refs, settings, model) -> pyarrow.Table``, one row per image
(label, prediction, probabilities, each method's map for the label and for the prediction, runtimes, scores).

Maps and scores are computed image by image through ``metrics.leaderboard.explain_image`` / ``score_image``
(each explainer and metric batches its own forwards: a curve's points, IG's steps, occlusion's windows), so an
image's numbers never depend on the images it was grouped with; only the prediction is one batched forward.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

import explainers
import metrics
from core.errors import InputError, ParameterError
from metrics.leaderboard import explain_image, score_image
from metrics.runs.images import ImageRef, load_ref

THUMB_SIZE = 112  # px: the stored picture of the model's input (JPEG), for galleries without the original files


@dataclass(frozen=True)
class RunSettings:
    """What a run's numbers depend on; a resumed run must have the same. ``shard_size`` images per Parquet part,
    ``checkpoint`` images per pending file inside a shard (what a kill can lose), maps stored at ``map_size`` px."""

    model: str
    images: str
    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    batch_size: int | None = None
    shard_size: int = 64
    checkpoint: int = 8
    map_size: int = 56

    def check(self) -> RunSettings:
        """Every name and parameter checked now (``KeyError`` / ``ParameterError``), not an hour into the run."""
        if not self.methods or not self.metrics:
            raise ParameterError("a run needs at least one method and one metric")
        for m in self.methods:
            explainers.get(m).resolve(self.method_params.get(m, {}))
        for k in self.metrics:
            metrics.get(k)
        for k, p in self.metric_params.items():
            metrics.get(k).resolve(p)
        if not (1 <= self.checkpoint <= self.shard_size and 8 <= self.map_size <= 512):
            raise ParameterError("a run needs 1 <= checkpoint <= shard_size and 8 <= map_size <= 512")
        return self

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunSettings:
        return cls(**{**d, "methods": tuple(d["methods"]), "metrics": tuple(d["metrics"])})


def schema(s: RunSettings) -> pa.Schema:
    """The columns of a part: per image, then per method (map and scale for the label/target and for the
    prediction, seconds, error), then ``score:<metric>:<method>``."""
    fields = [
        ("index", pa.int64()),
        ("image", pa.string()),
        ("label", pa.int32()),
        ("prediction", pa.int32()),
        ("target", pa.int32()),
        ("p_prediction", pa.float32()),
        ("p_target", pa.float32()),
        ("p_label", pa.float32()),
        ("correct", pa.bool_()),
        ("probs", pa.list_(pa.float32())),
        ("seconds", pa.float64()),
        ("error", pa.string()),
        ("thumb", pa.binary()),
    ]
    for m in s.methods:
        fields += [(f"map:{m}", pa.binary()), (f"scale:{m}", pa.float32()), (f"map_pred:{m}", pa.binary()), (f"scale_pred:{m}", pa.float32())]
        fields += [(f"seconds:{m}", pa.float64()), (f"error:{m}", pa.string())]
    fields += [(f"score:{k}:{m}", pa.float64()) for k in s.metrics for m in s.methods]
    return pa.schema(fields)


def encode_map(amap: torch.Tensor, size: int) -> tuple[bytes, float]:
    """A map [1,H,W] or [H,W] -> (float16 bytes of the area-averaged [size,size] map divided by its max |value|,
    that max as the scale): normalized, so float16 keeps the shape of maps whose values are tiny."""
    m = amap.detach().float().cpu().reshape(1, 1, *amap.shape[-2:])
    small = F.adaptive_avg_pool2d(m, size)[0, 0] if tuple(m.shape[-2:]) != (size, size) else m[0, 0]
    scale = float(small.abs().max())
    unit = small / scale if scale > 0 else small
    return unit.numpy().astype("<f2").tobytes(), scale


def decode_map(data: bytes, scale: float, size: int) -> np.ndarray:
    """The inverse of ``encode_map``: float32 [size,size] at the map's own scale."""
    return np.frombuffer(data, dtype="<f2").astype(np.float32).reshape(size, size) * np.float32(scale)


def _thumb(loaded: Any, x: torch.Tensor) -> bytes:
    from PIL import Image

    pixels = (loaded.denormalize(x)[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    img = Image.fromarray(pixels)
    if max(img.size) > THUMB_SIZE:
        img = img.resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _method_columns(s: RunSettings, maps: dict, pred_maps: dict, errors: dict, seconds: dict) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for m in s.methods:
        if m in maps:
            row[f"map:{m}"], row[f"scale:{m}"] = encode_map(maps[m], s.map_size)
        if m in pred_maps:
            row[f"map_pred:{m}"], row[f"scale_pred:{m}"] = encode_map(pred_maps[m], s.map_size)
        row[f"seconds:{m}"] = seconds.get(m)
        row[f"error:{m}"] = errors.get(m)
    return row


def image_row(ref: ImageRef, x: torch.Tensor, mask: torch.Tensor | None, probs: torch.Tensor, s: RunSettings, loaded: Any) -> dict[str, Any]:
    """One image's row: ``x`` [1,C,H,W], ``probs`` [K]. Target = the label, else the top prediction; the
    prediction's maps are computed too when it differs from the target (scores are for the target)."""
    start = time.perf_counter()
    pred = int(probs.argmax())
    target = ref.label if ref.label is not None else pred
    maps, errors, seconds = explain_image(loaded, x, target, s.methods, method_params=s.method_params, seed=s.seed)
    pred_maps = {}
    if pred != target:
        pred_maps, _, _ = explain_image(loaded, x, pred, [m for m in s.methods if m in maps], method_params=s.method_params, seed=s.seed)
    todo = {k: list(s.methods) for k in s.metrics}
    values = score_image(loaded, x, target, maps, todo, mask=mask, metric_params=s.metric_params, seed=s.seed, batch_size=s.batch_size)
    row: dict[str, Any] = {
        "index": ref.index,
        "image": ref.name,
        "label": ref.label,
        "prediction": pred,
        "target": target,
        "p_prediction": float(probs[pred]),
        "p_target": float(probs[target]),
        "p_label": None if ref.label is None else float(probs[ref.label]),
        "correct": None if ref.label is None else pred == ref.label,
        "probs": probs.float().cpu().numpy(),
        "thumb": _thumb(loaded, x),
    }
    row.update(_method_columns(s, maps, pred_maps, errors, seconds))
    row.update({f"score:{k}:{m}": v for (k, m), v in values.items()})
    row["seconds"] = time.perf_counter() - start
    return row


def process(refs: Sequence[ImageRef], settings: RunSettings, loaded: Any, *, on_image: Callable[[str], None] | None = None) -> pa.Table:
    """A batch of refs -> its table (rows in ``refs`` order). An unreadable image gives a row with only its
    name and the reason in ``error``. ``on_image(name)`` after each image (progress)."""
    rows: dict[int, dict[str, Any]] = {}
    ready = []
    for ref in refs:
        try:
            ready.append((ref, *load_ref(ref, loaded)))
        except InputError as exc:
            rows[ref.index] = {"index": ref.index, "image": ref.name, "label": ref.label, "error": f"skipped: {exc}"}
            if on_image:
                on_image(ref.name)
    if ready:
        probs = loaded.predict(torch.cat([x for _, x, _ in ready]))  # one batched forward for the predictions
        for (ref, x, mask), p in zip(ready, probs, strict=True):
            rows[ref.index] = image_row(ref, x, mask, p, settings, loaded)
            if on_image:
                on_image(ref.name)
    return pa.Table.from_pylist([rows[r.index] for r in refs], schema=schema(settings))
