"""The Bias page in a real browser (Debian chromium, playwright): the shortcut check's bars, examples and
counterfactual, and the probe with an uploaded mask image."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.app.conftest import SHOTS
from tests.app.test_browser import browser_page


def _choose_methods(page, titles: list[str]) -> None:
    """Empty the shortcut check's methods multiselect, then pick ``titles`` by typing, as a user does."""
    box = page.locator("[data-testid='stMain'] [data-testid='stMultiSelect']").filter(has_text="Methods").first
    box.get_by_role("button", name="Clear all").click()
    for t in titles:
        box.locator("input").press_sequentially(t, delay=20)
        page.get_by_role("option", name=t).first.click()
    page.keyboard.press("Escape")


def _idle(page) -> None:
    """Wait until the script run is over (Streamlit shows its status widget while a run is in progress)."""
    page.wait_for_timeout(500)
    page.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=120_000)


def test_the_bias_page_reveals_the_shortcut_and_probes_a_mask(server):
    with browser_page(server + "/bias?model=synthetic_shapes&methods=saliency", "bias.png") as page:
        page.wait_for_selector("text=Run the shortcut check", timeout=240_000)
        n = page.get_by_label("Test images (N)")
        n.fill("20")
        n.press("Enter")
        page.wait_for_timeout(1500)
        _choose_methods(page, ["Gradient x Input", "Grad-CAM", "Random (control)"])
        page.wait_for_timeout(1000)
        page.get_by_role("button", name="Run the shortcut check").click()
        page.wait_for_selector("text=Counterfactual check", timeout=240_000)
        page.wait_for_selector(".js-plotly-plot .barlayer .trace", timeout=60_000)
        assert page.locator(".js-plotly-plot .barlayer .trace").count() == 2  # marker and shape bars
        page.wait_for_selector("text=Conventions. Model", timeout=60_000)
        page.screenshot(path=str(SHOTS / "bias-shortcut.png"), full_page=True)
        # the probe: a mask image (the left half), uploaded
        page.get_by_role("tab", name="Probe any model").click()
        page.get_by_text("A mask image").click()
        page.wait_for_selector("text=Upload a mask the size of your images", timeout=60_000)
        _idle(page)
        mask = np.zeros((64, 64), np.uint8)
        mask[:, :32] = 255
        buf = io.BytesIO()
        Image.fromarray(mask).save(buf, format="PNG")
        page.locator("[data-testid='stFileUploaderDropzoneInput']").last.set_input_files({"name": "mask.png", "mimeType": "image/png", "buffer": buf.getvalue()})
        page.wait_for_selector("text=with the region outlined", timeout=60_000)
        _idle(page)
        page.get_by_role("button", name="Run the probe").click()
        page.wait_for_selector("text=Download the probe (CSV)", timeout=240_000)
        assert page.get_by_text("the region covers 0.500 of the image").count() == 1
