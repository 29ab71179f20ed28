"""Figures for slides: every export format opens and shows what it should; colour bars and shared scales."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

import explainers
import zoo
from dashboard import render


@pytest.fixture(scope="module")
def tiles(shapes):
    x = shapes.preprocess(zoo.sample_images()["shapes: cross"])
    unit = shapes.denormalize(x)[0].permute(1, 2, 0).numpy()
    out = [("Input", render.to_uint8(unit))]
    for m in ("saliency", "integrated_gradients", "gradcam"):
        amap = explainers.explain(m, shapes, x, 3, n_steps=8) if m == "integrated_gradients" else explainers.explain(m, shapes, x, 3)
        spec = explainers.get(m)
        out.append((spec.title, render.render_tile(amap[0].numpy(), unit, signed=spec.signed, cmap="RdBu_r" if spec.signed else "inferno", overlay=True, opacity=0.7, clip_percentile=99)))
    return out


SCALES = [render.Scale("RdBu_r", True, None, "signed maps"), render.Scale("inferno", False, 0.25, "gradient maps (one scale)")]


def test_png_export_lays_tiles_out_as_asked(tiles):
    wide = Image.open(io.BytesIO(render.figure([tiles], SCALES, render.Export(cols=4, dpi=80))))
    square = Image.open(io.BytesIO(render.figure([tiles], SCALES, render.Export(cols=2, dpi=80))))
    assert square.size[1] > 1.5 * wide.size[1] and wide.size[0] / wide.size[1] > 1.5 * square.size[0] / square.size[1]  # 4 x 1 vs 2 x 2
    assert square.size[0] / square.size[1] < 2  # not a strip
    rgb = np.asarray(wide.convert("RGB"))
    assert (rgb.reshape(-1, 3) == 255).all(axis=1).mean() > 0.2  # a white background


def test_svg_parses_and_carries_the_titles_and_the_colour_bar_caption(tiles):
    svg = render.figure([tiles], SCALES, render.Export(fmt="svg", titles=True)).decode()
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert "Saliency" in svg and "colours saturate" in svg
    untitled = render.figure([tiles], SCALES, render.Export(fmt="svg", titles=False)).decode()
    assert "Grad-CAM" not in untitled


def test_pdf_renders_dark_and_transparent_png_is_transparent(tiles):
    import pypdfium2

    pdf = pypdfium2.PdfDocument(render.figure([tiles], SCALES, render.Export(fmt="pdf", dark=True)))
    page = pdf[0].render(scale=0.5).to_pil().convert("RGB")
    assert page.size[0] > 100 and sum(page.getpixel((3, 3))) < 100  # the dark theme's background
    png = Image.open(io.BytesIO(render.figure([tiles], SCALES, render.Export(transparent=True, dpi=60))))
    assert png.mode == "RGBA" and np.asarray(png)[2, 2, 3] == 0


def test_shared_scales_put_maps_of_one_kind_on_one_clip_value():
    a, b = np.full((8, 8), 1.0), np.full((8, 8), 4.0)
    a[0, 0] = b[0, 0] = 0
    clips = render.shared_clips({"a": a, "b": b, "c": a}, {"a": "logit", "b": "logit", "c": ""}, {"a": True, "b": True, "c": True}, 99.0)
    assert clips["a"] == clips["b"] == pytest.approx(4.0) and clips["c"] is None
    assert render.normalize_map(a, True, 99.0, clips["a"]).max() == pytest.approx(0.25)  # a is a quarter of b on the shared scale
    assert render.normalize_map(a, True, 99.0).max() == pytest.approx(1.0)  # on its own scale it saturates


def test_colour_bar_is_an_image_with_both_ends_of_the_map():
    bar = render.colorbar(render.Scale("RdBu_r", True, None, "signed"))
    assert bar.ndim == 3 and bar.shape[2] == 3 and bar.shape[1] >= 400
    assert "±" not in render.Scale("RdBu_r", True, None).caption(99) and "±2.5" in render.Scale("RdBu_r", True, 2.5).caption(99)


def test_figures_drawn_by_many_sessions_at_once_equal_the_ones_drawn_alone(tiles):
    """Each session's script runs in its own thread (a CI run of eight sessions lost a figure's canvas while pyplot's
    global registry was shared): colour bars and exported figures drawn concurrently, from a fresh interpreter so the
    backend is chosen under the race, equal the same figures drawn one at a time."""
    import subprocess
    import sys

    code = """
import hashlib, numpy as np
from concurrent.futures import ThreadPoolExecutor
from dashboard import render
tiles = [("a", np.full((32, 32, 3), 40, np.uint8)), ("b", np.full((32, 32, 3), 200, np.uint8))]
scales = [render.Scale("RdBu_r", True, None, "s"), render.Scale("inferno", False, 0.25, "g")]
def draw(i):
    s = scales[i % 2]
    return hashlib.sha1(render.colorbar(s).tobytes() + render.figure([tiles], [s], render.Export(dpi=50))).hexdigest()
with ThreadPoolExecutor(8) as pool:
    together = list(pool.map(draw, range(48)))
alone = [draw(i) for i in range(2)]
print(together == alone * 24)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "True", out.stderr[-3000:]
