"""Pure display helpers (numpy at the edge): map normalization, colour maps, overlays, exports."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SIGNED_CMAPS = ["RdBu_r", "bwr", "coolwarm", "seismic", "PiYG"]
ABS_CMAPS = ["inferno", "viridis", "magma", "jet", "hot", "gray", "turbo"]


def normalize_map(m: np.ndarray, signed: bool, clip_percentile: float = 99.0) -> np.ndarray:
    """Scale a map [H,W] to [-1,1] (signed) or [0,1] (absolute).

    The scale is the ``clip_percentile`` of |m| (values beyond it saturate). Constant, zero
    or non-finite maps give zeros instead of dividing by zero.
    """
    m = np.nan_to_num(np.asarray(m, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    v = m if signed else np.abs(m)
    if not signed and np.ptp(v) > 0 and v.min() > 0:
        v = v - v.min()  # all-positive maps (CAM, RISE) use their dynamic range
    scale = float(np.percentile(np.abs(v), clip_percentile)) if v.size else 0.0
    if scale <= 0 or not np.isfinite(scale):
        scale = float(np.abs(v).max()) if v.size else 0.0
    if scale <= 0:
        return np.zeros_like(v)
    return np.clip(v / scale, -1.0 if signed else 0.0, 1.0)


def colorize(norm: np.ndarray, cmap: str, signed: bool) -> np.ndarray:
    """Normalized map -> RGB float [H,W,3] in [0,1] via a matplotlib colour map."""
    values = (norm + 1.0) / 2.0 if signed else norm
    return matplotlib.colormaps[cmap](values)[..., :3]


def render_tile(
    m: np.ndarray,
    image: np.ndarray,
    *,
    signed: bool,
    cmap: str,
    overlay: bool,
    opacity: float,
    clip_percentile: float,
) -> np.ndarray:
    """One tile as uint8 RGB [H,W,3]: the coloured map, alone or blended over ``image`` ([H,W,3] in [0,1])."""
    norm = normalize_map(m, signed, clip_percentile)
    rgb = colorize(norm, cmap, signed)
    if overlay:
        weight = opacity * (np.abs(norm)[..., None] if not signed else np.abs(norm)[..., None] ** 0.5)
        gray = image.mean(axis=2, keepdims=True).repeat(3, axis=2) * 0.8 + image * 0.2
        rgb = (1 - weight) * gray + weight * rgb
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def grid_png(rows: Sequence[tuple[str, np.ndarray, Sequence[tuple[str, np.ndarray]]]], dpi: int = 150) -> bytes:
    """A labelled figure for slides: each row is (image label, image, [(tile label, tile)]).

    Returns PNG bytes; the first column shows the input image.
    """
    n_cols = 1 + max((len(tiles) for _, _, tiles in rows), default=0)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(2.2 * n_cols, 2.4 * len(rows)), squeeze=False)
    for r, (label, image, tiles) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c == 0:
                ax.imshow(image)
                ax.set_title(label, fontsize=8)
            elif c - 1 < len(tiles):
                title, tile = tiles[c - 1]
                ax.imshow(tile)
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def maps_npz(maps: dict[str, np.ndarray], **meta: str) -> bytes:
    """Raw maps as an .npz archive (one array per key, float32), plus string metadata arrays."""
    buf = io.BytesIO()
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in maps.items()}
    arrays.update({f"meta_{k}": np.array(v) for k, v in meta.items()})
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def randomization_figure(
    row_labels: Sequence[str], col_labels: Sequence[str], maps: Sequence[np.ndarray], cmap: str = "inferno", tile: int = 96, per_map: bool = False
) -> np.ndarray:
    """The Adebayo et al. figure as one RGB uint8 image: a row per method (``maps[r]`` [S+1,H,W]), a column per
    step, |map| coloured with one scale per row (its 99th percentile over all the row's steps), or with
    ``per_map`` each map on its own scale (structure visible even where the magnitude collapsed)."""
    from PIL import Image, ImageDraw, ImageFont

    left, top, gap = 170, 34, 4
    n_rows, n_cols = len(maps), len(col_labels)
    canvas = Image.new("RGB", (left + n_cols * (tile + gap), top + n_rows * (tile + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=11)
    for c, label in enumerate(col_labels):
        draw.text((left + c * (tile + gap) + tile // 2, top - 6), label[:16], fill="black", font=small, anchor="ms")
    for r, (label, stack) in enumerate(zip(row_labels, maps, strict=True)):
        a = np.abs(np.nan_to_num(np.asarray(stack, dtype=np.float64)))
        scale = float(np.percentile(a, 99)) or float(a.max()) or 1.0
        y = top + r * (tile + gap)
        draw.text((left - 8, y + tile // 2), label[:24], fill="black", font=font, anchor="rm")
        for c in range(min(n_cols, a.shape[0])):
            own = (float(np.percentile(a[c], 99)) or float(a[c].max()) or 1.0) if per_map else scale
            rgb = (colorize(np.clip(a[c] / own, 0, 1), cmap, signed=False) * 255).astype(np.uint8)
            canvas.paste(Image.fromarray(rgb).resize((tile, tile), Image.BILINEAR), (left + c * (tile + gap), y))
    return np.asarray(canvas)
