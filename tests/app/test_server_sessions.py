"""The real server, many people at once: 8 browser sessions computing different methods and metrics on the same
cached model at the same time get exactly what each gets alone; no hook is left and the weights are bit-identical
afterwards (read on the Server page); a long computation stops with the Stop button and the session goes on."""

from __future__ import annotations

import io
import time
from urllib.parse import quote

import numpy as np
import pandas as pd

import zoo
from core.model_state import fingerprint
from tests.app.conftest import CHROMIUM, FLAGS, SHOTS, start_server

MODEL = "synthetic_shapes"
SESSIONS = [  # (page, methods, image): every method of the grid's families, on one cached model
    ("", ["saliency", "gradcam"], "shapes: circle"),
    ("", ["integrated_gradients", "guided_backprop"], "shapes: square"),
    ("", ["lrp_epsilon_plus", "deeplift"], "shapes: triangle"),
    ("", ["smoothgrad", "cam", "scorecam"], "shapes: cross"),
    ("faithfulness", ["gradcam_plus_plus", "input_x_gradient"], "shapes: square"),
    ("faithfulness", ["occlusion", "saliency"], "shapes: circle"),
    ("faithfulness", ["guided_gradcam", "vargrad"], "shapes: cross"),
    ("faithfulness", ["lrp_alpha_beta", "rise"], "shapes: triangle"),
]
BUTTON = {"": "Download the raw maps (.npz)", "faithfulness": "Download the scores (CSV)"}
WAIT_MS = 600_000
ALONE, TOGETHER = "streamlit-server-alone.log", "streamlit-server-concurrent.log"


def _url(base: str, page: str, methods: list[str], image: str) -> str:
    return f"{base}/{page}?model={MODEL}&image={quote(image)}&methods={','.join(methods)}"


def _download(page, label: str, log: str) -> bytes:
    """The file behind the page's download button, once the page has no warning or exception (else the
    assertion quotes them and the server log's tail)."""
    button = page.get_by_role("button", name=label)
    error = page.locator("[data-testid='stException']")
    button.or_(error).first.wait_for(timeout=WAIT_MS)
    problems = [page.locator(f"[data-testid='{t}']").all_inner_texts() for t in ("stException", "stAlertContentWarning", "stAlertContentError")]
    assert not any(problems), (problems, (SHOTS.parent / log).read_text()[-4000:])
    with page.expect_download(timeout=120_000) as info:
        button.click()
    return info.value.path().read_bytes()


def _result(kind: str, data: bytes) -> dict[str, np.ndarray]:
    if kind == "":
        with np.load(io.BytesIO(data)) as z:
            return {k: z[k] for k in z.files if z[k].dtype.kind == "f"}  # the maps (the rest is metadata)
    table = pd.read_csv(io.BytesIO(data))
    return {row["method"]: row[[c for c in table.columns if "AUC" in c]].to_numpy(float) for _, row in table.iterrows()}


def _server_row(browser, base: str, model: str) -> list[str]:
    page = browser.new_page()
    page.goto(base + "/server")
    page.get_by_text("Weights fingerprint").first.wait_for(timeout=60_000)
    row = page.locator("table tbody tr").filter(has_text=model).first.inner_text().split("\t")
    page.close()
    return [c.strip() for c in row]


def test_eight_browser_sessions_at_once_match_their_single_session_results():
    from playwright.sync_api import sync_playwright

    alone: list[dict[str, np.ndarray]] = []
    together: list[dict[str, np.ndarray]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            with start_server(ALONE) as base:  # one session at a time, on a fresh server
                for kind, methods, image in SESSIONS:
                    ctx = browser.new_context(viewport={"width": 1400, "height": 1600})
                    page = ctx.new_page()
                    page.goto(_url(base, kind, methods, image))
                    alone.append(_result(kind, _download(page, BUTTON[kind], ALONE)))
                    ctx.close()
            with start_server(TOGETHER) as base:  # all at once, on another fresh server
                contexts = [browser.new_context(viewport={"width": 1400, "height": 1600}) for _ in SESSIONS]
                pages = [c.new_page() for c in contexts]
                for page, (kind, methods, image) in zip(pages, SESSIONS, strict=True):
                    page.goto(_url(base, kind, methods, image), wait_until="commit")
                for page, (kind, _, _) in zip(pages, SESSIONS, strict=True):
                    together.append(_result(kind, _download(page, BUTTON[kind], TOGETHER)))
                pages[0].screenshot(path=str(SHOTS / "concurrent-session.png"), full_page=True)
                row = _server_row(browser, base, MODEL)
                for c in contexts:
                    c.close()
        finally:
            browser.close()
    for session, want, got in zip(SESSIONS, alone, together, strict=True):
        assert want.keys() == got.keys() and want, session
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6, err_msg=f"{session} {key}")
    # the Server page of the concurrent server: the shared model's weights bit-identical, no hook, idle
    model, _title, _params, weights, hooks, state = row
    assert model == MODEL and weights == fingerprint(zoo.load_model(MODEL).model) and hooks == "0" and state == "idle", row


def test_stop_interrupts_a_long_computation_and_the_session_goes_on(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            # minutes of work on EfficientNet-Lite0 at the defaults
            page.goto(server + "/?methods=rise,lime,kernel_shap,scorecam")
            stop = page.locator("[data-testid='stMain']").get_by_role("button", name="Stop", exact=True)  # ours, not the toolbar's
            stop.wait_for(timeout=240_000)
            page.wait_for_timeout(3000)
            page.screenshot(path=str(SHOTS / "progress-and-stop.png"))
            start = time.perf_counter()
            stop.click()
            page.get_by_text("Stopped.").wait_for(timeout=60_000)
            stopped_in = time.perf_counter() - start
            assert page.get_by_role("button", name="Resume").count() == 1
            assert page.locator("[data-testid='stException']").count() == 0
            page.screenshot(path=str(SHOTS / "stopped.png"))
            # the stopped work left the shared model as it was (the old run stops at its next progress tick)
            for _ in range(40):
                row = _server_row(browser, server, "efficientnet_lite0")
                if row[-1] == "idle":
                    break
                time.sleep(1)
            assert row[-2] == "0" and row[-1] == "idle", row
            assert row[-3] == fingerprint(zoo.load_model("efficientnet_lite0").model), row
            # the same session goes on: another page renders
            page.get_by_role("link", name="Methods").click()
            page.get_by_text("Every metric in the registry").wait_for(timeout=60_000)
            assert page.locator("[data-testid='stException']").count() == 0
            print(f"\nstopped in {stopped_in:.1f} s; screenshots in {SHOTS}")
        finally:
            browser.close()
