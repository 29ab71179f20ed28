"""Real-browser tests: Debian chromium driven by playwright against the running server, at 1600 x 1000 like a
presenter's screen. Each page's first screen must show its result (a map or a plot above the fold); a screenshot of
the first screen and one of the whole page are saved under artifacts/screenshots/."""

from __future__ import annotations

import contextlib
import re
import shutil

from tests.app.conftest import CHROMIUM, FLAGS, SHOTS

IMAGES_DECODED = "() => [...document.querySelectorAll(\"[data-testid='stImage'] img\")].every(i => i.complete && i.naturalWidth > 0)"
VIEW = {"width": 1600, "height": 1000}
RESULT = "[data-testid='stImage'] img, .js-plotly-plot"


@contextlib.contextmanager
def browser_page(url: str, shot: str, *, first_screen: bool = True):
    """A chromium page at ``url``; on leaving: no exception box, every image decoded, a map or plot visible in the
    first 1600 x 1000 screen (``first_screen``), screenshots ``<shot>`` (whole page) and ``<shot>-first-screen``."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport=VIEW)
            page.goto(url)
            yield page
            page.wait_for_timeout(800)
            errors = page.locator("[data-testid='stException']")
            assert errors.count() == 0, errors.first.inner_text()
            assert page.evaluate(IMAGES_DECODED)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.wait_for_timeout(300)
            page.screenshot(path=str(SHOTS / shot.replace(".png", "-first-screen.png")))
            if first_screen:
                assert _visible_result(page), f"no map or plot in the first screen of {url}"
            page.screenshot(path=str(SHOTS / shot), full_page=True)
            print(f"\nscreenshots saved to {SHOTS / shot} and its -first-screen")
        finally:
            browser.close()


def _visible_result(page) -> bool:
    """Whether a map (an image at least 120 px wide) or a plot lies within the first screen."""
    for el in page.locator(RESULT).all():
        box = el.bounding_box()
        if box and box["y"] < VIEW["height"] - 80 and box["width"] >= 120 and box["x"] > 300:  # right of the sidebar
            return True
    return False


def _pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the sidebar selectbox labelled ``label``, as a user does (click, then click the option)."""
    box = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").filter(has_text=label).first
    box.click()
    page.get_by_role("option", name=option).first.click()


def test_the_compare_page_shows_the_grid_on_its_first_screen(server):
    with browser_page(server, "compare.png") as page:
        page.wait_for_selector("text=Download the raw maps", timeout=240_000)
        assert page.locator("[data-testid='stImage'] img").count() >= 10
        assert page.get_by_text("Saliency ·").count() >= 1
        assert page.get_by_text("colours saturate").count() >= 1  # the colour bars say what the colours mean
    shutil.copy(SHOTS / "compare.png", SHOTS / "latest.png")


def test_the_faithfulness_page_renders_curves_and_scrubber(server):
    # a shareable link opens the page on the synthetic model
    with browser_page(server + "/faithfulness?model=synthetic_shapes&image=shapes:%20square", "faithfulness.png") as page:
        page.wait_for_selector("text=Download the scores (CSV)", timeout=240_000)
        page.wait_for_selector(".js-plotly-plot .scatterlayer .trace", timeout=60_000)
        assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 2 * 2  # one line per method and curve
        assert page.get_by_text("Deletion (lower AUC is better)").count() >= 1
        assert page.get_by_text("What the model sees at each step").count() == 1


def test_the_leaderboard_page_runs_and_draws_its_panels(server):
    with browser_page(server + "/leaderboard?model=synthetic_shapes&image=shapes:%20square&methods=saliency,gradcam,edge_sobel", "leaderboard.png") as page:
        page.get_by_role("button", name="Run the leaderboard").click(timeout=240_000)
        page.wait_for_selector("text=Download the summary (CSV)", timeout=240_000)
        page.wait_for_timeout(1500)  # let plotly draw the bars and the heat map
        assert page.locator(".js-plotly-plot").count() == 2


def test_the_sanity_page_draws_the_adebayo_figure_and_curves(server):
    with browser_page(server + "/sanity?model=synthetic_shapes&image=shapes:%20triangle", "sanity.png") as page:
        page.get_by_role("button", name="Run the sanity check").click(timeout=240_000)
        page.wait_for_selector("text=Download the similarities (CSV)", timeout=240_000)
        page.wait_for_selector(".js-plotly-plot .scatterlayer .trace", timeout=60_000)
        assert page.get_by_text("Maps as the model is randomized").count() == 1
        assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 4 * 4  # one curve per method and measure


def test_the_robustness_page_shows_the_attack_side_by_side(server):
    with browser_page(server + "/robustness?model=synthetic_shapes&image=shapes:%20circle", "robustness.png") as page:
        page.wait_for_selector("text=Perturbation", timeout=240_000)
        page.get_by_text("PGD", exact=True).click()
        page.wait_for_timeout(500)
        page.get_by_role("button", name=re.compile(r"^Run \(about")).click()
        page.wait_for_selector("text=Download the scores (CSV)", timeout=240_000)
        page.get_by_role("button", name=re.compile("Compute the curve")).first.click()
        page.wait_for_selector(".js-plotly-plot .scatterlayer .trace", timeout=240_000)
        assert page.get_by_text("Each map before and after").count() == 1
        assert page.locator("[data-testid='stImage'] img").count() >= 3 + 2


def test_the_anatomy_page_optimizes_an_image_live(server):
    with browser_page(server + "/anatomy?model=synthetic_shapes&image=shapes:%20triangle", "anatomy.png") as page:
        page.wait_for_selector("text=Feature maps", timeout=240_000)
        page.get_by_role("button", name="Optimize").click()
        page.wait_for_selector("text=Download the image (PNG)", timeout=240_000)
        page.wait_for_selector("text=What the model sees in it", timeout=60_000)
        assert page.locator("[data-testid='stImage'] img").count() >= 1 + 16 + 1


def test_the_methods_page_lists_the_registry(server):
    with browser_page(server + "/methods", "methods.png", first_screen=False) as page:
        page.wait_for_selector("text=Metrics", timeout=120_000)
        page.wait_for_timeout(1000)
        # methods and metrics, and the compatibility report of the chosen model (its structure and the verdicts)
        assert page.locator("[data-testid='stDataFrame']").count() == 4
        assert page.get_by_text("Compatibility with").count() >= 1


def test_the_server_page_lists_the_loaded_models(server):
    with browser_page(server + "/?model=synthetic_shapes&image=shapes:%20cross&methods=saliency", "compare-shapes.png") as page:
        page.wait_for_selector("text=Download the raw maps", timeout=240_000)
    with browser_page(server + "/server", "server.png", first_screen=False) as page:
        page.wait_for_selector("text=Weights fingerprint", timeout=60_000)
        row = page.locator("table tbody tr").filter(has_text="synthetic_shapes").first.inner_text()
        assert "idle" in row


def test_the_dataset_page_filters_by_a_clicked_confusion_cell(server, tmp_path):
    from pathlib import Path

    from metrics.runs import RunSettings, analysis, load_run, run_dataset
    from zoo.synthetic import CLASSES, write_folder

    data, runs = tmp_path / "data", tmp_path / "runs"
    paths = [p.relative_to(data).as_posix() for p in write_folder(data, 8, seed=7)]
    wrong = CLASSES[(CLASSES.index(paths[1].split("/")[0]) + 1) % len(CLASSES)]  # one label written wrong: a misclassified image
    (data / "labels.csv").write_text("path,label\n" + "".join(f"{p},{wrong if i == 1 else p.split('/')[0]}\n" for i, p in enumerate(paths)))
    settings = RunSettings(model="synthetic_shapes", images=str(data), methods=("saliency", "gradcam"), metrics=("deletion", "pointing_game", "sparseness"), batch_size=64)
    run_dataset(settings, runs / "shapes")
    cm = analysis.confusion(load_run(runs / "shapes").predictions)
    row, col = next((i, j) for i in range(cm.shape[0]) for j in range(cm.shape[1]) if cm.index[i] != cm.columns[j] and cm.iat[i, j])
    with browser_page(server + "/dataset", "dataset.png", first_screen=False) as page:
        box = page.get_by_role("textbox", name="Runs folder", exact=True)
        box.fill(str(runs))
        box.press("Enter")
        page.wait_for_selector("text=Download the per-class summary (CSV)", timeout=240_000)
        page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=60_000)
        # the confusion matrix: one invisible marker per cell, in row-major order; a click filters the page to that cell
        page.locator(".js-plotly-plot").first.locator(".scatterlayer .point").nth(row * cm.shape[1] + col).click(force=True)
        page.wait_for_selector(f"text=Showing the images labelled {cm.index[row]} and predicted {cm.columns[col]}", timeout=60_000)
        page.wait_for_timeout(1500)
        assert page.locator("[data-testid='stImage'] img").count() >= 1 + 2 * 2
        with page.expect_download() as download:
            page.get_by_role("button", name="Download this gallery (PNG)").first.click()
        assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
