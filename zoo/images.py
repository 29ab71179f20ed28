"""Sample images (scikit-image photos, synthetic shapes with masks) and safe image loading."""

from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ImageError

MAX_PIXELS = 40_000_000  # above this a file is refused as a decompression bomb
MAX_SIDE = 2048  # larger images are downscaled on load: the model sees at most 256 px anyway
MIN_SIDE = 8
MAX_ASPECT = 4  # a longer strip is cropped around its centre to 4x its short side (models see the central square anyway)
ALLOWED_FORMATS = {"PNG", "JPEG", "MPO", "WEBP", "BMP", "TIFF", "GIF"}


def load_image(source: bytes | str | Path | IO[bytes]) -> Image.Image:
    """Decode an uploaded image into an RGB ``PIL.Image``.

    Honours EXIF orientation; converts grayscale, RGBA/LA (onto white), palette, CMYK and
    16-bit/float images; takes the first frame of an animation; crops a strip longer than 4:1 around its
    centre (the models see the central square); downsizes images larger than 2048 px on a side.
    Raises ``ImageError`` with a readable message for empty, truncated, non-image or
    decompression-bomb files.
    """
    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = source.read()
    if not data:
        raise ImageError("The file is empty.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            fmt = img.format
            if fmt not in ALLOWED_FORMATS:
                raise ImageError(f"Unsupported image format {fmt}; use PNG, JPEG, WebP, BMP or TIFF.")
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"The image is {w} x {h} pixels, above the {MAX_PIXELS:,} pixel limit.")
            img.seek(0)
            img.load()
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(f"Refused: the image is too large to decode safely ({exc}).") from exc
        except UnidentifiedImageError as exc:
            raise ImageError("This file is not an image that can be read (PNG, JPEG, WebP, BMP, TIFF).") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"The image file is damaged or truncated: {exc}.") from exc
    if min(img.size) < MIN_SIDE:
        raise ImageError(f"The image is {img.size[0]} x {img.size[1]} pixels; it needs at least {MIN_SIDE} on each side.")
    img = ImageOps.exif_transpose(img) or img
    img = to_rgb(img)
    w, h = img.size
    if max(w, h) > MAX_ASPECT * min(w, h):
        keep = MAX_ASPECT * min(w, h)
        left, top = (w - keep) // 2 if w > h else 0, (h - keep) // 2 if h > w else 0
        img = img.crop((left, top, left + (keep if w > h else w), top + (keep if h > w else h)))
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (alpha composited on white, high bit depths rescaled)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        finite = np.isfinite(arr)
        lo, hi = (arr[finite].min(), arr[finite].max()) if finite.any() else (0.0, 1.0)
        arr = np.where(finite, (arr - lo) / (hi - lo) if hi > lo else 0.0, 0.0)
        img = Image.fromarray((arr * 255).round().astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


SKIMAGE_PHOTOS = ["chelsea", "coffee", "rocket", "astronaut", "camera", "stereo_motorcycle"]


@functools.lru_cache(maxsize=1)
def _synthetic_samples() -> dict[str, tuple[Image.Image, np.ndarray]]:
    from zoo.synthetic import CLASSES, make_sample

    rng = np.random.default_rng(2024)
    out = {}
    for label, cls in enumerate(CLASSES):
        s = make_sample(rng, label=label)
        out[f"shapes: {cls}"] = (Image.fromarray(s.image), s.mask)
    return out


@functools.lru_cache(maxsize=1)
def _photos() -> dict[str, Image.Image]:
    import skimage.data

    out = {}
    for name in SKIMAGE_PHOTOS:
        arr = getattr(skimage.data, name)()
        if isinstance(arr, tuple):  # stereo_motorcycle: (left, right, disparity)
            arr = arr[0]
        out[name] = to_rgb(Image.fromarray(arr))
    return out


def sample_images() -> dict[str, Image.Image]:
    """The scikit-image photos (offline) and one synthetic-shapes sample per class."""
    images = dict(_photos())
    images.update({k: img for k, (img, _) in _synthetic_samples().items()})
    return {k: v.copy() for k, v in images.items()}


def sample_masks() -> dict[str, np.ndarray]:
    """Ground-truth masks (bool [H,W]) for the synthetic samples in ``sample_images()``."""
    return {k: m.copy() for k, (_, m) in _synthetic_samples().items()}
