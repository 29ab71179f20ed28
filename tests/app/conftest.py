"""Shared by the app tests: the app's path for AppTest, empty data caches per test, and the real server for the
browser tests: ``streamlit run dashboard/app.py`` on a free port, its log in
``artifacts/``; Debian chromium driven by playwright."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "dashboard" / "app.py")  # for AppTest
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def open_app(page: str | None = None, *, image: str = "shapes: circle", methods: list[str] | None = None, model: str = "synthetic_shapes", run: bool = True, **state: object):
    """An AppTest of the dashboard on ``page`` (a file under app_pages/, or the Compare page) with the sidebar's model,
    image and methods set, and any other session ``state``; run once unless ``run=False``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["model_name"] = model
    at.session_state["image_name"] = image
    if methods is not None:
        at.session_state["methods"] = methods
    for k, v in state.items():
        at.session_state[k] = v
    if page:
        at.switch_page(f"app_pages/{page}.py")
    return at.run() if run else at


@pytest.fixture(autouse=True)
def _clear_caches() -> Iterator[None]:
    """Each app test starts with empty data caches (the model caches stay: loading is not what is tested)."""
    st.cache_data.clear()
    yield


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make test` installs it (apt-get install chromium)")
        pytest.skip("Debian chromium not installed (make test installs it)")


@contextlib.contextmanager
def start_server(log_name: str = "streamlit-server.log") -> Iterator[str]:
    """A fresh server process (empty caches); yields its URL. Server-side tracebacks land in ``artifacts/<log_name>``."""
    need_chromium()
    port = _free_port()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with (SHOTS.parent / log_name).open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.port", str(port), "--server.address", "127.0.0.1"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(120):
                try:
                    urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.5)
            else:
                pytest.fail("the streamlit server did not start")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with start_server() as url:
        yield url
