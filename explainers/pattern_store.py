"""Where patterns come from and where they are kept: the data sources (a synthetic model's own generator, a folder of
images, the built-in photos with random crops and flips) and the files on disk, keyed by the weights' fingerprint.

- Shipped with the project: ``zoo/patterns/`` (the synthetic-shapes models' patterns, learned from their generator).
- Learned here: ``$XAI_PATTERNS_DIR``, by default ``~/.cache/attribution-dashboard/patterns/`` (outside the checkout,
  so nothing to ignore in git).
A file is ``<fingerprint>--<source>--<estimator>.safetensors``. ``stored(model, estimator)`` returns the most recently
learned patterns of these exact weights, whatever their data source; ``fit_and_store`` is the one call that learns
them (once per weights and data source), ticking ``core.progress`` per batch.

Command line: ``python -m explainers.pattern_store --model efficientnet_lite0 [--data photos|synthetic|FOLDER] [--n N]``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core import progress
from core.checks import as_module
from core.errors import ParameterError
from core.model_state import WaitingLock, fingerprint
from explainers.patterns import ESTIMATORS, Patterns, fit_estimators

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "zoo" / "patterns"
SYNTHETIC_IMAGES = 2000  # the first training images of the generator (seed 0)
PHOTO_CROPS = 256
FOLDER_MAX = 5000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
SYNTHETIC_BATCH, IMAGE_BATCH = 64, 16
_FIT_LOCK = WaitingLock("another session learning patterns")  # one fit at a time per process (minutes each)


def cache_dir() -> Path:
    """The folder where patterns learned on this machine go (``$XAI_PATTERNS_DIR`` or ``~/.cache/...``)."""
    return Path(os.environ.get("XAI_PATTERNS_DIR") or Path.home() / ".cache" / "attribution-dashboard" / "patterns")


@dataclass(frozen=True)
class Source:
    """A data source: ``batches()`` yields model inputs [B,C,H,W]; ``slug`` names it in file names."""

    slug: str
    description: str
    n_images: int
    batch_size: int
    batches: Callable[[], Iterator[torch.Tensor]]


def is_synthetic(model: Any) -> bool:
    """Whether ``model`` (a ``zoo.LoadedModel``) is one of the synthetic-shapes models (it has its own generator)."""
    from zoo.synthetic import CLASSES, SIZE

    return list(getattr(model, "classes", [])) == CLASSES and getattr(model, "input_size", None) == SIZE


def source(model: Any, data: str | None = None, *, n: int | None = None) -> Source:
    """The data source ``data`` for a ``zoo.LoadedModel``: "synthetic" (its generator; synthetic models only),
    "photos" (random crops and flips of the built-in photos), a folder of images, or None: "synthetic" for the
    synthetic models, else "photos". ``n``: how many images (defaults: 2000 / 256 / every image up to 5000)."""
    data = data or ("synthetic" if is_synthetic(model) else "photos")
    if n is not None and not 1 <= int(n) <= 100_000:
        raise ParameterError(f"n must lie in [1, 100000]; got {n!r}")
    if data == "synthetic":
        if not is_synthetic(model):
            raise ParameterError("the synthetic generator only fits the synthetic-shapes models; use photos or a folder")
        return _synthetic(model, n or SYNTHETIC_IMAGES)
    if data == "photos":
        return _photos(model, n or PHOTO_CROPS)
    return _folder(model, Path(data).expanduser(), n or FOLDER_MAX)


def _chunks(x: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    for i in range(0, x.shape[0], size):
        yield x[i : i + size]


def _synthetic(model: Any, n: int) -> Source:
    def batches() -> Iterator[torch.Tensor]:
        from zoo.synthetic import make_dataset

        yield from _chunks(model.normalize(make_dataset(n, seed=0)[0]), SYNTHETIC_BATCH)

    text = f"the synthetic-shapes generator: the first {n} training images (zoo.synthetic.make_dataset(n, seed=0))"
    return Source("synthetic", text, n, SYNTHETIC_BATCH, batches)


def random_crop(image: Any, size: int, rng: np.random.Generator) -> torch.Tensor:
    """One random crop of a PIL image (10-100% of its area, aspect 3:4 to 4:3), resized to ``size``, flipped
    horizontally with probability 1/2 -> pixels [3,size,size] in [0,1]."""
    import torchvision.transforms.functional as TF

    w, h = image.size
    area = w * h * rng.uniform(0.1, 1.0)
    ratio = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    cw, ch = min(w, round((area * ratio) ** 0.5)), min(h, round((area / ratio) ** 0.5))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = TF.resized_crop(image, top, left, ch, cw, [size, size], antialias=True)
    if rng.random() < 0.5:
        crop = TF.hflip(crop)
    return TF.to_tensor(crop)


def _photos(model: Any, n: int) -> Source:
    def batches() -> Iterator[torch.Tensor]:
        from zoo.images import SKIMAGE_PHOTOS, sample_images

        images = sample_images()
        photos = [images[name] for name in SKIMAGE_PHOTOS]
        rng = np.random.default_rng(0)
        for start in range(0, n, IMAGE_BATCH):
            pixels = torch.stack([random_crop(photos[i % len(photos)], model.input_size, rng) for i in range(start, min(n, start + IMAGE_BATCH))])
            yield model.normalize(pixels)

    text = (
        f"{n} random crops (10-100% of the area, aspect 3:4 to 4:3, resized to {model.input_size} px, flipped at random) "
        "of the 6 scikit-image photos (seed 0)"
    )
    return Source("photos", text, n, IMAGE_BATCH, batches)


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted; hidden files and ``*.mask.png`` masks left out)."""
    if not folder.is_dir():
        raise ParameterError(f"{folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and not p.name.lower().endswith(".mask.png"))
    if not files:
        raise ParameterError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _folder(model: Any, folder: Path, n: int) -> Source:
    files = image_files(folder)[:n]
    digest = hashlib.sha256("\n".join(str(p.resolve()) for p in files).encode()).hexdigest()[:10]

    def batches() -> Iterator[torch.Tensor]:
        from zoo.images import load_image

        for start in range(0, len(files), IMAGE_BATCH):
            yield torch.cat([model.preprocess(load_image(p)) for p in files[start : start + IMAGE_BATCH]])

    text = f"{len(files)} images of {folder.resolve()} (resized to {model.resize} px, centre crop {model.input_size} px)"
    return Source(f"folder-{digest}", text, len(files), IMAGE_BATCH, batches)


def data_note(model: Any, data: str | None = None, *, n: int | None = None) -> str:
    """What the data source is and what it is worth, in plain words, for the page next to the Learn button."""
    src = source(model, data, n=n)
    if src.slug == "synthetic":
        return f"Patterns learned from {src.description}: the data the model was trained on, as the paper asks."
    worth = (
        "The early layers see millions of patch samples, but all from a few scenes; the last layers see one sample per "
        "image (the classifier's input has 1280 dimensions for EfficientNet-Lite0), so their patterns are rough "
        "estimates. For patterns you can trust, learn them from a folder of a few thousand images of the model's "
        "domain (e.g. ImageNet validation images)."
    )
    if src.slug == "photos":
        return f"Patterns learned from {src.description}. {worth}"
    return f"Patterns learned from {src.description}." + (f" {worth}" if src.n_images < 2000 else "")


def file_for(fp: str, slug: str, estimator: str, directory: Path | None = None) -> Path:
    return (directory or cache_dir()) / f"{fp}--{slug}--{estimator}.safetensors"


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> Patterns:
    return Patterns.load(path)


def load(path: Path) -> Patterns:
    """``Patterns.load`` with an in-memory cache keyed by the file's path, modification time and size."""
    st = path.stat()
    return _load_cached(str(path), st.st_mtime_ns, st.st_size)


def stored_files(model: nn.Module | str, estimator: str = "*", directories: Sequence[Path] | None = None) -> list[Path]:
    """The pattern files of ``model``'s exact weights (a module, or its fingerprint), all estimators by default, in
    the cache folder and the shipped ones. Their names and modification times can key a cache of maps (maps change
    when patterns are learned)."""
    fp = model if isinstance(model, str) else fingerprint(as_module(model))
    dirs = directories if directories is not None else (cache_dir(), SHIPPED_DIR)
    return [p for d in dirs if d.is_dir() for p in sorted(d.glob(f"{fp}--*--{estimator}.safetensors"))]


def stored(model: nn.Module | str, estimator: str, directories: Sequence[Path] | None = None) -> Patterns | None:
    """The most recently learned patterns of ``model``'s exact weights (a module, or its fingerprint) for
    ``estimator`` (any data source), from the cache folder or the shipped ones; None when there are none."""
    return max((load(p) for p in stored_files(model, estimator, directories)), key=lambda p: p.created, default=None)


def fit_and_store(model: Any, data: str | None = None, *, n: int | None = None, refit: bool = False, directory: Path | None = None) -> dict[str, Path]:
    """Learn both estimators' patterns of a ``zoo.LoadedModel`` from ``data`` (see ``source``) in one pass and save
    them under ``directory`` (default ``cache_dir()``); returns estimator -> file. Already there (same weights, same
    source): nothing is learned again unless ``refit``. Progress: a ``core.progress`` stage with one job per batch
    (a reporter may cancel; nothing is written then)."""
    src = source(model, data, n=n)
    fp = fingerprint(as_module(model))
    paths = {e: file_for(fp, src.slug, e, directory) for e in ESTIMATORS}
    with _FIT_LOCK:
        if not refit and all(p.is_file() for p in paths.values()):
            return paths
        n_batches = -(-src.n_images // src.batch_size)
        with progress.stage("Learning patterns", n_batches) as st:

            def counted() -> Iterator[torch.Tensor]:
                for i, x in enumerate(src.batches()):
                    st.at(i, f"batch {i + 1} of {n_batches}")
                    yield x

            fitted = fit_estimators(model, counted(), ESTIMATORS, data=src.description)
        for e, patterns in fitted.items():
            patterns.save(paths[e])
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Learn PatternNet / PatternAttribution patterns for a zoo model and keep them on disk.")
    ap.add_argument("--model", required=True, help="a zoo model name, e.g. efficientnet_lite0 or synthetic_shapes")
    ap.add_argument("--data", default=None, help="synthetic, photos, or a folder of images (default: the model's own default)")
    ap.add_argument("--n", type=int, default=None, help="number of images (default: 2000 synthetic, 256 photo crops, a folder's images up to 5000)")
    ap.add_argument("--out", type=Path, default=None, help=f"folder for the files (default {cache_dir()})")
    ap.add_argument("--refit", action="store_true", help="learn again even when files for these weights and data exist")
    args = ap.parse_args(argv)
    import zoo

    loaded = zoo.load_model(args.model)
    for estimator, path in fit_and_store(loaded, args.data, n=args.n, refit=args.refit, directory=args.out).items():
        p = Patterns.load(path)
        degenerate = sum(v["degenerate"] for v in p.layers.values())
        print(f"{estimator}: {path} ({len(p.tensors)} layers, {degenerate} degenerate neurons; data: {p.data})")


if __name__ == "__main__":
    main()
