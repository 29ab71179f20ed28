"""Image sets for dataset runs: a labelled folder (ImageFolder layout or ``labels.csv``), an unlabelled folder,
synthetic shapes or sample photos, listed as ``ImageRef``s that any worker can load.

Layouts (``list_images``):

- ``DIR/labels.csv`` with the columns ``path,label`` (paths relative to DIR);
- else ``DIR/<class>/<file>`` (ImageFolder; files anywhere under the class folder);
- else the images directly in DIR, unlabelled (target = the top prediction).

A label is a model class name, matched ignoring case, spaces and underscores, or a class index. A mask beside
an image (``a.png`` -> ``a.mask.png``, white = the object) enables the localization metrics. Unknown labels and
empty folders are a ``DatasetError``; unreadable files are found when a worker loads them (``load_ref``) and
reported by the run, not fatal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import DatasetError, InputError, ParameterError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
MASK_SUFFIX = ".mask.png"
SYNTHETIC_SEED = 31_337  # held out: training used seeds 0 and 10 000
MAX_LISTED = 20  # names quoted in an error message


@dataclass(frozen=True)
class ImageRef:
    """One image of a run: ``name`` (unique: the path relative to the folder, or the sample's name), where its
    pixels are (``path`` on a filesystem every worker sees, or encoded ``data``), its ``label`` (class index or
    None) and its optional mask (a PNG path or PNG bytes)."""

    index: int
    name: str
    path: str | None = None
    data: bytes | None = None
    label: int | None = None
    mask: str | bytes | None = None


@dataclass(frozen=True)
class ImageList:
    """What ``list_images`` found: the refs in run order, where they came from, the layout, and warnings."""

    refs: list[ImageRef]
    source: str
    layout: str
    warnings: list[str] = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        return any(r.label is not None for r in self.refs)

    def digest(self) -> str:
        """SHA-256 (16 hex digits) of the names and labels: a resumed run must list the same images."""
        h = hashlib.sha256()
        for r in self.refs:
            h.update(f"{r.name}\0{r.label}\n".encode())
        return h.hexdigest()[:16]


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "", name).lower()


def _quote(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def match_labels(names: Sequence[str], classes: Sequence[str]) -> dict[str, int]:
    """Each label text -> class index: a class name (case, spaces and underscores ignored) or an index.
    Raises ``DatasetError`` listing every label that is unknown or matches several classes."""
    index: dict[str, list[int]] = {}
    for i, c in enumerate(classes):
        index.setdefault(_norm(c), []).append(i)
    out, unknown, ambiguous = {}, [], []
    for name in dict.fromkeys(names):
        hits = index.get(_norm(name), [])
        if len(hits) == 1:
            out[name] = hits[0]
        elif len(hits) > 1:
            ambiguous.append(f"{name!r} (classes {', '.join(map(str, hits))})")
        elif name.strip().isdigit() and int(name) < len(classes):
            out[name] = int(name)
        else:
            unknown.append(name)
    if unknown:
        raise DatasetError(
            f"{len(unknown)} label(s) are not classes of this model: {_quote(unknown)}. Use class names (case, spaces and "
            f"underscores ignored, e.g. {classes[0]!r}) or class indices 0-{len(classes) - 1}."
        )
    if ambiguous:
        raise DatasetError(f"label(s) matching several classes: {', '.join(ambiguous[:MAX_LISTED])}; use the class index instead.")
    return out


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.lower().endswith(MASK_SUFFIX) and not p.name.startswith(".")


def _mask_of(p: Path) -> str | None:
    m = p.with_name(p.name[: -len(p.suffix)] + MASK_SUFFIX)
    return str(m) if m.is_file() else None


def _ref(i: int, root: Path, p: Path, label: int | None) -> ImageRef:
    return ImageRef(i, p.relative_to(root).as_posix(), path=str(p), label=label, mask=_mask_of(p))


def _from_csv(root: Path, classes: Sequence[str]) -> ImageList:
    with (root / "labels.csv").open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "label"} <= {c.strip() for c in reader.fieldnames}:
            raise DatasetError(f"{root / 'labels.csv'} needs a header with the columns path,label; it has {reader.fieldnames}")
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in reader]
    rows = [r for r in rows if r.get("path")]
    if not rows:
        raise DatasetError(f"{root / 'labels.csv'} lists no images")
    outside = [r["path"] for r in rows if not (root / r["path"]).resolve().is_relative_to(root.resolve())]
    if outside:
        raise DatasetError(f"labels.csv paths must lie inside {root}: {_quote(outside)}")
    labels = match_labels([r["label"] for r in rows], classes)
    refs = [ImageRef(i, r["path"], path=str(root / r["path"]), label=labels[r["label"]], mask=_mask_of(root / r["path"])) for i, r in enumerate(rows)]
    return ImageList(refs, str(root), "labels.csv")


def list_folder(folder: str | Path, classes: Sequence[str]) -> ImageList:
    """List a folder in one of the three layouts of the module docstring, sorted by path."""
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{folder} is not a folder")
    if (root / "labels.csv").is_file():
        return _from_csv(root, classes)
    loose = sorted(p for p in root.iterdir() if _is_image(p))
    class_dirs = {d: sorted(p for p in d.rglob("*") if _is_image(p)) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    class_dirs = {d: files for d, files in class_dirs.items() if files}
    if class_dirs:
        labels = match_labels([d.name for d in class_dirs], classes)
        files = [(p, labels[d.name]) for d, ps in class_dirs.items() for p in ps]
        warnings = [f"{len(loose)} image(s) directly in {root} are not in a class folder and were left out"] if loose else []
        return ImageList([_ref(i, root, p, y) for i, (p, y) in enumerate(files)], str(root), "imagefolder", warnings)
    if not loose:
        raise DatasetError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}), neither directly nor in class folders")
    return ImageList([_ref(i, root, p, None) for i, p in enumerate(loose)], str(root), "unlabelled")


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _synthetic(spec: str, classes: Sequence[str]) -> ImageList:
    from zoo.synthetic import CLASSES, make_sample

    try:
        n = int(spec.split(":", 1)[1])
    except ValueError:
        raise ParameterError(f"synthetic:N needs a whole number; got {spec!r}") from None
    if not 1 <= n <= 10_000:
        raise ParameterError("synthetic:N takes 1 <= N <= 10000")
    same = list(classes) == CLASSES
    rng = np.random.default_rng(SYNTHETIC_SEED)
    samples = [make_sample(rng) for _ in range(n)]
    refs = [
        ImageRef(i, f"synthetic #{i}", data=_png(s.image), label=s.label if same else None, mask=_png(s.mask.astype(np.uint8) * 255))
        for i, s in enumerate(samples)
    ]
    warnings = [] if same else ["this model's classes are not the shapes': the images are unlabelled (target = the top prediction)"]
    return ImageList(refs, spec, "synthetic", warnings)


def _samples(names: list[str], classes: Sequence[str]) -> ImageList:
    import zoo

    images, masks = zoo.sample_images(), zoo.sample_masks()
    unknown = [n for n in names if n not in images]
    if unknown or not names:
        raise ParameterError(f"unknown image(s) {', '.join(unknown) or '(none given)'}; samples: {', '.join(images)}, a folder, or synthetic:N")
    refs = []
    for i, n in enumerate(names):
        label = list(classes).index(n[8:]) if n.startswith("shapes: ") and n[8:] in classes else None
        mask = _png(masks[n].astype(np.uint8) * 255) if n in masks else None
        refs.append(ImageRef(i, n, data=_png(np.asarray(images[n])), label=label, mask=mask))
    return ImageList(refs, ",".join(names), "samples")


def list_images(spec: str | Sequence[str], classes: Sequence[str]) -> ImageList:
    """The images of ``spec``: a folder (see the module docstring), ``synthetic:N`` (held-out seed, labels and
    masks) or sample names (a list, or comma-separated)."""
    if isinstance(spec, str) and spec.startswith("synthetic:"):
        return _synthetic(spec, classes)
    if isinstance(spec, str) and (Path(spec).expanduser().is_dir() or "/" in spec or spec.startswith(".")):
        return list_folder(spec, classes)
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    return _samples(names, classes)


def _read_mask(mask: str | bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(mask) if isinstance(mask, bytes) else mask) as img:
        return np.asarray(img.convert("L")) > 127


def load_ref(ref: ImageRef, loaded: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The image as the model's input ``x`` [1,3,S,S] and its mask [1,S,S] bool (or None). Raises ``InputError``
    with the reason when the file cannot be read or its mask does not fit it."""
    import zoo

    try:
        img = zoo.load_image(ref.data if ref.data is not None else Path(ref.path or ""))
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror or exc}") from exc
    mask = None
    if ref.mask is not None:
        try:
            arr = _read_mask(ref.mask)
        except OSError as exc:
            raise InputError(f"its mask cannot be read: {exc}") from exc
        if arr.shape != (img.height, img.width):
            raise InputError(f"its mask is {arr.shape[1]} x {arr.shape[0]} px but the image is {img.width} x {img.height}")
        mask = loaded.preprocess_mask(arr)
    return loaded.preprocess(img), mask
