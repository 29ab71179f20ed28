"""A grid of maps on a page: display options, tiles with captions, colour bars that say what the colours mean, and
the export panel for slides. Used by the Compare page's three modes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

import explainers
from dashboard import cache, render, selection
from dashboard import state as S

SCOPE = "display"
MAX_COLS = 5
SCALES = {"own": "each map on its own scale", "kind": "one scale per kind of map"}


@dataclass(frozen=True)
class Display:
    """The display options (sidebar): overlay or heatmap, sign handling, colour maps, opacity, clip percentile,
    and whether maps of the same kind share one colour scale."""

    overlay: bool
    sign: str
    cmap_signed: str
    cmap_abs: str
    opacity: float
    clip: float
    shared: bool

    def signed(self, method: str) -> bool:
        return {"Auto": explainers.get(method).signed, "Absolute": False, "Signed": True}[self.sign]

    def cmap(self, method: str) -> str:
        return self.cmap_signed if self.signed(method) else self.cmap_abs


def stored_display() -> Display:
    """The display options as last set (defaults where never set), without drawing the widgets: for pages that show
    maps with the Compare page's settings."""
    get = lambda name, default: st.session_state.get(S.key(SCOPE, name), default)  # noqa: E731
    return Display(
        get("view", "Overlay") == "Overlay",
        get("sign", "Auto"),
        get("cmap_signed", render.SIGNED_CMAPS[0]),
        get("cmap_abs", render.ABS_CMAPS[0]),
        float(get("opacity", 0.7)),
        float(get("clip", 99.0)),
        get("scale", "own") == "kind",
    )


def display_options() -> Display:
    """The sidebar's Display expander."""
    k = lambda name: S.key(SCOPE, name)  # noqa: E731
    with st.sidebar.expander("Display"):
        st.radio("View", ["Overlay", "Heatmap"], key=k("view"), horizontal=True)
        st.radio("Sign", ["Auto", "Absolute", "Signed"], key=k("sign"), horizontal=True, help="Auto: diverging colours for signed methods, absolute for the rest")
        st.radio("Colour scale", list(SCALES), key=k("scale"), format_func=SCALES.get, help="one scale per kind: maps in the same units (logit shares; gradient magnitudes) can be compared by eye")
        st.selectbox("Colour map (signed)", render.SIGNED_CMAPS, key=k("cmap_signed"))
        st.selectbox("Colour map (absolute)", render.ABS_CMAPS, key=k("cmap_abs"))
        st.slider("Overlay opacity", 0.0, 1.0, key=k("opacity"), step=0.05, **S.unless_set(k("opacity"), value=0.7))
        st.slider("Clip at percentile", 50.0, 100.0, key=k("clip"), step=0.5, help="values above this percentile of |map| saturate", **S.unless_set(k("clip"), value=99.0))
    v = lambda name: st.session_state[k(name)]  # noqa: E731
    return Display(v("view") == "Overlay", v("sign"), v("cmap_signed"), v("cmap_abs"), float(v("opacity")), float(v("clip")), v("scale") == "kind")


@dataclass(frozen=True)
class Cell:
    """One tile of a row: the method, its outcome (map or reason), and a title (defaults to the method's)."""

    method: str
    outcome: cache.Outcome
    title: str = ""
    note: str = ""


def _scales(rows: list[tuple[str, np.ndarray, list[Cell]]], opts: Display) -> tuple[dict[int, render.Scale], dict[str, render.Scale]]:
    """The colour scale of every tile (by id of its cell) and the distinct scales for the colour bars (by name)."""
    maps = {f"{r}|{i}": c.outcome.value for r, row in enumerate(rows) for i, c in enumerate(row[2]) if c.outcome.ok}
    cells = {f"{r}|{i}": c for r, row in enumerate(rows) for i, c in enumerate(row[2]) if c.outcome.ok}
    signed = {n: opts.signed(c.method) for n, c in cells.items()}
    kinds = {n: (f"{explainers.get(c.method).units}|{signed[n]}" if opts.shared and explainers.get(c.method).units else "") for n, c in cells.items()}
    clips = render.shared_clips(maps, kinds, signed, opts.clip)
    per_cell, bars = {}, {}
    for n, c in cells.items():
        units = explainers.get(c.method).units if kinds[n] else ""
        name = (f"{units} maps (one scale)" if units else "signed maps" if signed[n] else "absolute maps")
        scale = render.Scale(opts.cmap(c.method), signed[n], clips[n], name)
        per_cell[id(c)] = scale
        bars.setdefault(name, scale)
    return per_cell, bars


def draw(rows: list[tuple[str, np.ndarray, list[Cell]]], opts: Display, *, show_input: bool = True) -> tuple[list[list[render.Tile]], list[render.Scale]]:
    """Draw the grid (a row per image: label, image [H,W,3] in [0,1], cells) and the colour bars under it; returns the
    tiles (for the export) and the scales of the colour bars."""
    per_cell, bars = _scales(rows, opts)
    fig_rows = []
    for label, image, cells in rows:
        if len(rows) > 1:
            st.markdown(f"**{label}**")
        fig_rows.append(_row(image, cells, opts, per_cell, show_input))
    for col, scale in zip(st.columns(max(2, len(bars))), bars.values(), strict=False):
        col.image(render.colorbar(scale), caption=scale.caption(opts.clip), width="stretch")
    return fig_rows, list(bars.values())


def _row(image: np.ndarray, cells: list[Cell], opts: Display, per_cell: dict[int, render.Scale], show_input: bool) -> list[render.Tile]:
    items: list[Cell | None] = ([None] if show_input else []) + cells
    tiles: list[render.Tile] = [("Input", render.to_uint8(image))] if show_input else []
    for start in range(0, len(items), MAX_COLS):
        for col, cell in zip(st.columns(MAX_COLS), items[start : start + MAX_COLS], strict=False):
            with col:
                if cell is None:
                    st.image(render.to_uint8(image), caption="Input (as the model sees it)", width="stretch")
                    continue
                title = cell.title or explainers.get(cell.method).title
                if not cell.outcome.ok:
                    st.warning(f"**{title}** — not available: {cell.outcome.error}")
                    continue
                scale = per_cell[id(cell)]
                tile = render.render_tile(
                    cell.outcome.value, image, signed=scale.signed, cmap=scale.cmap, overlay=opts.overlay, opacity=opts.opacity, clip_percentile=opts.clip, clip=scale.clip
                )
                caption = (title, f"{cell.outcome.seconds:.2f} s", cell.note, *cell.outcome.notes, _badge(cell.method))
                st.image(tile, caption=" · ".join(t for t in caption if t), width="stretch")
                tiles.append((title, tile))
    return tiles


def _badge(method: str) -> str:
    """"approximate: <reason>" when the chosen model's compatibility verdict for ``method`` is not exact ("" else)."""
    sel = selection.current()
    if sel is None or method not in explainers.names():
        return ""
    v = cache.compatibility(sel.model_key, sel.loaded).verdict(method)
    return "" if v.verdict == "exact" else f"{v.verdict}: {v.reason}"


def export_panel(tiles: list[list[render.Tile]], scales: list[render.Scale], note: str, *, key: str, file: str = "attribution_grid") -> None:
    """The "Export for slides" expander: layout, titles, font, format, dpi, background, theme; one download button."""
    k = lambda name: S.key(f"export|{key}", name)  # noqa: E731
    with st.expander("Export for slides"):
        c1, c2, c3, c4 = st.columns(4)
        n = max((len(r) for r in tiles), default=1)
        total = sum(len(r) for r in tiles)
        default_cols = n if len(tiles) > 1 else min(n, max(3, int(np.ceil(np.sqrt(total * 1.6)))))
        c1.number_input("Tiles per row", 1, max(total, 1), key=k("cols"), **S.unless_set(k("cols"), value=default_cols))
        c1.checkbox("Titles", key=k("titles"), **S.unless_set(k("titles"), value=True))
        c2.slider("Font size", 6, 24, key=k("font"), **S.unless_set(k("font"), value=11))
        c2.selectbox("Format", list(render.FORMATS), key=k("fmt"), format_func=str.upper)
        c3.select_slider("PNG resolution (dpi)", [100, 150, 200, 300, 600], key=k("dpi"), **S.unless_set(k("dpi"), value=200))
        c3.radio("Background", ["white", "transparent"], key=k("bg"), horizontal=True)
        c4.radio("Theme", ["light", "dark"], key=k("theme"), horizontal=True)
        v = lambda name: st.session_state[k(name)]  # noqa: E731
        opts = render.Export(int(v("cols")), bool(v("titles")), int(v("font")), v("fmt"), int(v("dpi")), v("bg") == "transparent", v("theme") == "dark")
        st.download_button(
            f"Download the figure ({opts.fmt.upper()})",
            lambda: render.figure(tiles, scales, opts, note),
            file_name=f"{file}.{opts.fmt}",
            mime=render.FORMATS[opts.fmt],
            on_click="ignore",
            key=f"download|{key}",
        )
