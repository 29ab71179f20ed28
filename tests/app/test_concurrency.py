"""Eight sessions at once on the same cached model: every session's numbers equal its single-session run,
no hook is left on the shared model, and its parameters are bit-identical afterwards."""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

import zoo
from explainers.context import hook_count

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
SESSIONS = [
    (["saliency", "gradcam"], 256, "shapes: circle"),
    (["integrated_gradients", "guided_backprop"], 512, "shapes: square"),
    (["smoothgrad", "lrp_epsilon_plus"], 256, "shapes: triangle"),
    (["deeplift", "cam"], 1024, "shapes: cross"),
    (["guided_gradcam", "input_x_gradient"], 256, "shapes: square"),
    (["occlusion", "saliency"], 512, "shapes: circle"),
    (["gradcam_plus_plus", "vargrad"], 256, "shapes: cross"),
    (["lrp_alpha_beta", "edge_sobel"], 1024, "shapes: triangle"),
]


def _session(methods: list[str], step: int, image: str) -> dict:
    at = AppTest.from_file(APP, default_timeout=600)
    at.session_state["model_name"] = "synthetic_shapes"
    at.session_state["image_name"] = image
    at.session_state["methods"] = methods
    at.session_state["faith::step"] = step
    at.switch_page("app_pages/faithfulness.py")
    at.run()
    assert not at.exception, [(e.message, "".join(e.stack_trace)[-1500:]) for e in at.exception]
    table = at.dataframe[0].value
    return {row["method"]: (row["deletion AUC ↓"], row["insertion AUC ↑"]) for _, row in table.iterrows()}


def test_eight_concurrent_sessions_match_their_single_session_results():
    shared = zoo.load_model("synthetic_shapes").model
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    hooks = hook_count(shared)
    st.cache_data.clear()
    alone = [_session(*s) for s in SESSIONS]
    st.cache_data.clear()  # the concurrent sessions compute everything again, at the same time
    results: list[dict | BaseException | None] = [None] * len(SESSIONS)

    def run(i: int) -> None:
        try:
            results[i] = _session(*SESSIONS[i])
        except BaseException as exc:  # reported below with its session
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(SESSIONS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    for i, (want, got) in enumerate(zip(alone, results, strict=True)):
        assert not isinstance(got, BaseException), (SESSIONS[i], got)
        assert got is not None and got.keys() == want.keys(), SESSIONS[i]
        for method, (d, ins) in want.items():
            assert abs(got[method][0] - d) <= 1e-6 and abs(got[method][1] - ins) <= 1e-6, (SESSIONS[i], method, got[method], (d, ins))
    assert hook_count(shared) == hooks
    for k, v in shared.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(not p.requires_grad for p in shared.parameters()) and not shared.training
