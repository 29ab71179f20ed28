"""Pure display helpers (numpy at the edge): map normalization and shared scales, colour maps with colour bars,
overlays, and figures exported for slides (PNG, SVG, PDF; layout, titles, fonts, background, light or dark)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

SIGNED_CMAPS = ["RdBu_r", "bwr", "coolwarm", "seismic", "PiYG"]
ABS_CMAPS = ["inferno", "viridis", "magma", "jet", "hot", "gray", "turbo"]
FORMATS = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}


@dataclass(frozen=True)
class Scale:
    """What a tile's colours mean: the colour map, signed (diverging, 0 in the middle) or not, and the map value at
    which colours saturate (``clip``; None: each map on its own scale, colours in units of its own clip value)."""

    cmap: str
    signed: bool
    clip: float | None = None
    name: str = ""

    def caption(self, pct: float) -> str:
        """One line for under the figure: what the colours mean and where they saturate."""
        where = f"±{self.clip:.3g}" if self.clip is not None and self.signed else f"{self.clip:.3g}" if self.clip is not None else f"its own {pct:g}th percentile of |map|"
        if self.signed:
            return f"{self.name + ': ' if self.name else ''}red = evidence for the target, blue = against it, white = 0; colours saturate at {where}"
        return f"{self.name + ': ' if self.name else ''}bright = more relevant; colours saturate at {where}"


def clip_value(m: np.ndarray, signed: bool, clip_percentile: float = 99.0) -> float:
    """The map value at which colours saturate: the ``clip_percentile`` of |m| (of m - min for an all-positive
    absolute map, which then uses its dynamic range); 0 for a constant or empty map."""
    v = _values(m, signed)
    scale = float(np.percentile(np.abs(v), clip_percentile)) if v.size else 0.0
    if scale <= 0 or not np.isfinite(scale):
        scale = float(np.abs(v).max()) if v.size else 0.0
    return scale


def _values(m: np.ndarray, signed: bool) -> np.ndarray:
    m = np.nan_to_num(np.asarray(m, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    v = m if signed else np.abs(m)
    if not signed and np.ptp(v) > 0 and v.min() > 0:
        v = v - v.min()  # all-positive maps (CAM, RISE) use their dynamic range
    return v


def normalize_map(m: np.ndarray, signed: bool, clip_percentile: float = 99.0, clip: float | None = None) -> np.ndarray:
    """Scale a map [H,W] to [-1,1] (signed) or [0,1] (absolute), saturating at ``clip`` (default: its own
    ``clip_value``). Constant, zero or non-finite maps give zeros instead of dividing by zero."""
    v = _values(m, signed)
    scale = clip_value(m, signed, clip_percentile) if clip is None else float(clip)
    if scale <= 0 or not np.isfinite(scale):
        return np.zeros_like(v)
    return np.clip(v / scale, -1.0 if signed else 0.0, 1.0)


def shared_clips(maps: dict[str, np.ndarray], kinds: dict[str, str], signed: dict[str, bool], clip_percentile: float) -> dict[str, float | None]:
    """One saturation value per kind of map (maps of one kind are on one scale: the largest of their own clip
    values), None for maps of no kind (each on its own scale)."""
    out: dict[str, float | None] = {}
    for kind in {k for k in kinds.values() if k}:
        members = [n for n in maps if kinds.get(n) == kind]
        top = max((clip_value(maps[n], signed[n], clip_percentile) for n in members), default=0.0)
        out.update(dict.fromkeys(members, top))
    return {n: out.get(n) for n in maps}


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
    clip: float | None = None,
) -> np.ndarray:
    """One tile as uint8 RGB [H,W,3]: the coloured map, alone or blended over ``image`` ([H,W,3] in [0,1])."""
    norm = normalize_map(m, signed, clip_percentile, clip)
    rgb = colorize(norm, cmap, signed)
    if overlay:
        weight = opacity * (np.abs(norm)[..., None] if not signed else np.abs(norm)[..., None] ** 0.5)
        gray = image.mean(axis=2, keepdims=True).repeat(3, axis=2) * 0.8 + image * 0.2
        rgb = (1 - weight) * gray + weight * rgb
    return to_uint8(rgb)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def colorbar(scale: Scale, width: int = 480, height: int = 56, dark: bool = False) -> np.ndarray:
    """A horizontal colour bar as uint8 RGB [height, width, 3], labelled with the values at its ends and middle."""
    fig = _figure((width / 100, height / 100), dpi=100)
    ax = fig.add_axes((0.04, 0.55, 0.92, 0.35))
    _bar(fig, ax, scale, 8)
    _theme(fig, [ax], dark, transparent=False)
    return _rgb(fig)


def _bar(fig: Figure, ax: Axes, scale: Scale, fontsize: int) -> None:
    """A horizontal colour bar in ``ax``: in map units when the scale has a clip value, else in units of each map's own."""
    unit = scale.clip if scale.clip is not None else 1.0
    lo, hi = (-unit if scale.signed else 0.0), unit
    fig.colorbar(ScalarMappable(Normalize(lo, hi), scale.cmap), cax=ax, orientation="horizontal")
    ax.tick_params(labelsize=fontsize)
    if scale.clip is None:
        labels = ["−clip", "0", "+clip"] if scale.signed else ["0", "clip/2", "clip"]
        ax.set_xticks([lo, (lo + hi) / 2, hi], labels)


def _theme(fig: Figure, axes: Sequence[Axes], dark: bool, transparent: bool) -> None:
    fg, bg = ("#e8e8e8", "#0e1117") if dark else ("#1f2430", "#ffffff")
    fig.patch.set_facecolor("none" if transparent else bg)
    for ax in axes:
        ax.tick_params(colors=fg)
        ax.title.set_color(fg)
        for spine in ax.spines.values():
            spine.set_edgecolor(fg)


def _figure(size: tuple[float, float], dpi: float = 100.0) -> Figure:
    """A figure with its own Agg canvas, outside pyplot: pyplot's figure registry is global state shared by every
    session's thread (concurrent sessions closed each other's figures and lost their canvases)."""
    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _rgb(fig: Figure) -> np.ndarray:
    fig.canvas.draw()
    out = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    return out


@dataclass(frozen=True)
class Export:
    """How a figure is exported: ``cols`` tiles per row (0: one row per image as on screen), titles on or off,
    font size, format (png, svg, pdf), PNG dpi, transparent background, dark theme."""

    cols: int = 0
    titles: bool = True
    font: int = 10
    fmt: str = "png"
    dpi: int = 200
    transparent: bool = False
    dark: bool = False


Tile = tuple[str, np.ndarray]  # (title, uint8 RGB [H,W,3])


def figure(rows: Sequence[Sequence[Tile]], scales: Sequence[Scale], opts: Export, note: str = "") -> bytes:
    """A figure for slides: tiles laid out as ``rows`` (or re-flowed into ``opts.cols`` columns), one colour bar per
    scale under them, an optional note; returns the bytes of ``opts.fmt``."""
    tiles = [t for row in rows for t in row]
    grid = [list(r) for r in rows] if opts.cols <= 0 else [tiles[i : i + opts.cols] for i in range(0, len(tiles), opts.cols)]
    n_rows, n_cols = len(grid), max((len(r) for r in grid), default=1)
    tiles_h, bar_h, note_h = 2.3 * n_rows, 0.85, 0.3 if note else 0.0
    total_h = tiles_h + bar_h * len(scales) + note_h
    fig = _figure((max(2.3 * n_cols, 6.0), total_h))
    low = (bar_h * len(scales) + note_h) / total_h
    spec = fig.add_gridspec(n_rows, n_cols, top=0.98, bottom=low + 0.01, hspace=0.3 if opts.titles else 0.06, wspace=0.06)
    axes = []
    for r, row in enumerate(grid):
        for c, (title, rgb) in enumerate(row):
            ax = fig.add_subplot(spec[r, c])
            ax.imshow(rgb)
            ax.set_axis_off()
            if opts.titles:
                ax.set_title(title, fontsize=opts.font)
            axes.append(ax)
    for i, scale in enumerate(scales):  # each bar block: the caption, the bar, its tick labels
        bottom = (note_h + bar_h * (len(scales) - 1 - i) + 0.38) / total_h
        cax = fig.add_axes((0.2, bottom, 0.6, 0.14 / total_h))
        _bar(fig, cax, scale, max(6, opts.font - 2))
        cax.set_title(scale.caption(99.0), fontsize=max(6, opts.font - 2))
        axes.append(cax)
    if note:
        fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=max(6, opts.font - 2), color="#e8e8e8" if opts.dark else "#1f2430")
    _theme(fig, axes, opts.dark, opts.transparent)
    buf = io.BytesIO()
    fig.savefig(buf, format=opts.fmt, dpi=opts.dpi, bbox_inches="tight", transparent=opts.transparent, facecolor=fig.get_facecolor())
    return buf.getvalue()


def maps_npz(maps: dict[str, np.ndarray], **meta: str) -> bytes:
    """Raw maps as an .npz archive (one array per key, float32), plus string metadata arrays."""
    buf = io.BytesIO()
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in maps.items()}
    arrays.update({f"meta_{k}": np.array(v) for k, v in meta.items()})
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def randomization_figure(
    row_labels: Sequence[str], col_labels: Sequence[str], maps: Sequence[np.ndarray], cmap: str = "inferno", tile: int = 96, per_map: bool = True
) -> np.ndarray:
    """The Adebayo et al. figure as one RGB uint8 image: a row per method (``maps[r]`` [S+1,H,W]), a column per
    step, |map| coloured with each map on its own scale (``per_map``: its 99th percentile; structure visible even
    where the magnitude collapsed) or one scale per row (its 99th percentile over all the row's steps), and a colour
    bar saying which."""
    from PIL import Image, ImageDraw, ImageFont

    left, top, gap, bottom = 170, 34, 4, 64
    n_rows, n_cols = len(maps), len(col_labels)
    width = left + n_cols * (tile + gap)
    canvas = Image.new("RGB", (width, top + n_rows * (tile + gap) + bottom), "white")
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
    bar = colorbar(Scale(cmap, False, None, "each map on its own scale" if per_map else "one scale per row"), width=min(width - 20, 520), height=bottom - 6)
    canvas.paste(Image.fromarray(bar), (max(0, (width - bar.shape[1]) // 2), top + n_rows * (tile + gap) + 2))
    return np.asarray(canvas)
