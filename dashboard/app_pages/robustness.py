"""Robustness page: how much each map moves when the input moves a little (noise, FGSM, PGD, the fragility attack)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

import explainers
import metrics
from dashboard import cache, charts, maps, render, selection, work
from dashboard import scores as score_panel
from dashboard import state as S
from dashboard.selection import Selection
from metrics.fragility import DIFFERENTIABLE, SOFTPLUS_BETA
from metrics.similarity import default_k

SCOPE = "robust"
KIND = S.key(SCOPE, "kind")
EPS = S.key(SCOPE, "eps")
STEPS = S.key(SCOPE, "steps")
SAMPLES = S.key(SCOPE, "samples")
MEASURE = S.key(SCOPE, "measure")
RUN = S.key(SCOPE, "run")
CURVE = S.key(SCOPE, "curve")
KINDS = {
    "noise": "Random noise (max/avg sensitivity)",
    "fgsm": "FGSM",
    "pgd": "PGD",
    "topk": "Fragility attack: top-k",
    "com": "Fragility attack: centre of mass",
}
FRAGILITY = ("topk", "com")
MEASURES = {"topk_intersection": "top-k intersection", "spearman": "Spearman", "ssim": "SSIM", "com_shift_px": "centre-of-mass shift (px)"}
EPS_GRID = [1, 2, 4, 8, 16]
TILE = render.Scale("inferno", False, None, "|map|")


@dataclass(frozen=True)
class Setting:
    """One perturbation to run: its kind, eps (1/255 of pixel space), attack steps and noise samples."""

    kind: str
    eps: int
    steps: int
    samples: int


def _title(m: str) -> str:
    return explainers.get(m).title


def _tile(m: np.ndarray) -> np.ndarray:
    return render.to_uint8(render.colorize(render.normalize_map(m, signed=False), TILE.cmap, signed=False))


# ---------------------------------------------------------------------------------- settings and cost


def _settings() -> Setting:
    c1, c2, c3 = st.columns([2, 2, 1])
    c1.radio("Perturbation", list(KINDS), key=KIND, format_func=KINDS.get)
    kind = st.session_state[KIND]
    c2.slider("eps (radius) in 1/255 of pixel space", 1, 16, key=EPS, **S.unless_set(EPS, value=2 if kind in ("noise", "fgsm", "pgd") else 8))
    if kind == "noise":
        c3.number_input("Samples", min_value=1, max_value=100, step=1, key=SAMPLES, **S.unless_set(SAMPLES, value=10))
    elif kind != "fgsm":
        c3.number_input("Steps", min_value=1, max_value=100, step=1, key=STEPS, **S.unless_set(STEPS, value=10))
    return Setting(kind, int(st.session_state[EPS]), int(st.session_state.get(STEPS, 10)), int(st.session_state.get(SAMPLES, 10)))


def _methods(sel: Selection, kind: str) -> list[str]:
    """The chosen methods this perturbation applies to (the fragility attack needs a map differentiable in its input)."""
    if kind not in FRAGILITY:
        return list(sel.methods)
    ok = [m for m in sel.methods if m in DIFFERENTIABLE]
    left = [_title(m) for m in sel.methods if m not in DIFFERENTIABLE]
    if left:
        st.caption(f"The fragility attack needs a map differentiable in its input ({', '.join(_title(d) for d in DIFFERENTIABLE)}); left out: {', '.join(left)}.")
    return ok


def _seconds(sel: Selection, s: Setting, methods: list[str]) -> float:
    """Estimated seconds: the maps (clean and perturbed), plus the attack's passes (a fragility step costs about three
    times the map's passes on the smooth copy for the second-order gradient, plus one forward for the label check)."""
    fwd, fb = cache.pass_seconds(sel.model_key, sel.loaded, int(sel.x.shape[-1]))
    per_map = {m: maps.seconds_for(sel, [m]) for m in methods}
    if s.kind == "noise":
        return sum(v * (s.samples + 1) for v in per_map.values())
    if s.kind in ("fgsm", "pgd"):
        return (1 if s.kind == "fgsm" else s.steps) * fb + 2 * sum(per_map.values())
    return sum(3 * v + s.steps * (3 * v + fwd) for v in per_map.values())


# ---------------------------------------------------------------------------------- computation


def _adversarial(sel: Selection, s: Setting, methods: list[str], w: work.Work) -> tuple[dict, dict]:
    w.step(0, len(methods) + 1, f"{KINDS[s.kind]}: the perturbed input")
    adv = cache.adversarial(sel.model_key, sel.image_key, s.kind, float(s.eps), int(s.steps), sel.target, 0, sel.loaded, sel.x)
    if not adv.ok:
        return {m: {"error": adv.error} for m in methods}, {}
    a_key = f"{sel.image_key} | {s.kind} eps={s.eps}/255 steps={s.steps}"
    scores, views = {}, {}
    for i, m in enumerate(methods):
        w.step(i + 1, len(methods) + 1, f"{KINDS[s.kind]}: {_title(m)}")
        a = cache.attribution(sel.model_key, sel.image_key, m, sel.params[m], sel.target, sel.loaded, sel.x)
        b = cache.attribution(sel.model_key, a_key, m, sel.params[m], sel.target, sel.loaded, adv.value.x_adv)
        if not (a.ok and b.ok):
            scores[m] = {"error": a.error or b.error}
            continue
        scores[m] = metrics.dissimilarity(torch.from_numpy(a.value), torch.from_numpy(b.value))
        views[m] = (a.value, b.value, adv.value.x_adv)
    return scores, views


def _per_method(sel: Selection, s: Setting, methods: list[str], w: work.Work) -> tuple[dict, dict]:
    scores, views = {}, {}
    for i, m in enumerate(methods):
        w.step(i, len(methods), f"{KINDS[s.kind]}: {_title(m)}")
        if s.kind == "noise":
            o = cache.sensitivity(sel.model_key, sel.image_key, m, sel.params[m], sel.target, float(s.eps), s.samples, 0, sel.loaded, sel.x)
        else:
            o = cache.fragility(sel.model_key, sel.image_key, m, sel.params[m], sel.target, s.kind, float(s.eps), s.steps, 0, sel.loaded, sel.x)
        if not o.ok:
            scores[m] = {"error": o.error}
            continue
        r = o.value
        if s.kind == "noise":
            clean, worst = r.clean.cpu().numpy(), r.at_worst.cpu().numpy()
            scores[m] = {"max_sensitivity": r.max, "avg_sensitivity": r.mean, **metrics.dissimilarity(r.clean, r.at_worst)}
            views[m] = (clean, worst, r.worst)
        else:
            scores[m] = {**r.attacked, **{f"random: {k}": v for k, v in r.random.items()}, "label kept": float(r.label_kept), "accepted steps": float(r.accepted_steps)}
            views[m] = (r.maps["clean"].cpu().numpy(), r.maps["attacked"].cpu().numpy(), r.x_attacked)
    return scores, views


def _compute(sel: Selection, s: Setting, methods: list[str], w: work.Work) -> tuple[dict, dict]:
    """Scores per method {measure: value} (or {"error": reason}) and what to draw, for one setting (all cached)."""
    return _adversarial(sel, s, methods, w) if s.kind in ("fgsm", "pgd") else _per_method(sel, s, methods, w)


# ---------------------------------------------------------------------------------- results


def _inputs_row(sel: Selection, s: Setting, views: dict) -> None:
    m0, (_, _, perturbed) = next(iter(views.items()))
    clean_px, pert_px = sel.unit.clip(0, 1), selection.unit(sel.loaded, perturbed).clip(0, 1)
    c1, c2, c3, c4 = st.columns(4)
    c1.image(clean_px, caption="clean", width="stretch")
    c2.image(pert_px, caption="perturbed" + ("" if s.kind in ("fgsm", "pgd") else f" (for {_title(m0)})"), width="stretch")
    diff = np.abs(pert_px - clean_px).max(axis=2)
    c3.image(render.to_uint8(np.clip(diff / (s.eps / 255), 0, 1)), caption=f"|difference| magnified ({255 / s.eps:.0f}x: white = eps)", width="stretch")
    after = sel.loaded.predict(perturbed)[0].cpu().numpy()
    top = list(dict.fromkeys([*np.argsort(-sel.probs)[:3].tolist(), *np.argsort(-after)[:3].tolist()]))
    table = pd.DataFrame({"class": [f"{i}: {sel.loaded.classes[i]}" for i in top], "before": [float(sel.probs[i]) for i in top], "after": [float(after[i]) for i in top]})
    c4.dataframe(table, hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("before", "after")})


def _maps_row(methods: list[str], scores: dict, views: dict) -> None:
    st.subheader("Each map before and after")
    errors = [f"{_title(m)}: {scores[m]['error']}" for m in methods if m not in views]
    if errors:
        st.warning("Not available: " + "; ".join(errors))
    shown = [m for m in methods if m in views]
    cols = st.columns(min(5, max(1, len(shown))))
    for i, m in enumerate(shown):
        a, b, _ = views[m]
        with cols[i % len(cols)]:
            st.image(_tile(a), caption=f"{_title(m)}: clean", width="stretch")
            st.image(_tile(b), caption=f"perturbed · top-k {scores[m]['topk_intersection']:.2f} · ρ {scores[m]['spearman']:.2f}", width="stretch")
    if shown:
        st.image(render.colorbar(TILE), caption=TILE.caption(99), width=480)


def _scores(sel: Selection, s: Setting, scores: dict) -> None:
    table = pd.DataFrame([{"method": _title(m), **v} for m, v in scores.items() if "error" not in v])
    if table.empty:
        return
    st.dataframe(table, hide_index=True)
    st.download_button(
        "Download the scores (CSV)", table.assign(perturbation=s.kind, eps=s.eps, image=sel.image_key, target=sel.target).to_csv(index=False).encode(), file_name="robustness.csv", mime="text/csv", on_click="ignore"
    )
    st.caption(
        f"Dissimilarity of the clean and the perturbed map: top-k intersection of |map| (k = {default_k(*sel.x.shape[-2:])}, Ghorbani et al.'s 1000 at 224 px "
        "scaled to the input), Spearman rank correlation, SSIM on |map|/max, and the shift of the centre of mass of |map| in pixels. Sensitivity: "
        "||Φ(y) − Φ(x)||_F / ||Φ(x)||_F over uniform samples in the L-inf ball (pixel space, clipped to [0, 1]), max and mean. Fragility: ReLU → "
        f"softplus (β = {SOFTPLUS_BETA:g}) for the attack's gradients only; the label is checked after every step."
    )


def _curve(sel: Selection, s: Setting, methods: list[str], settings: tuple) -> None:
    st.subheader("Against eps")
    st.selectbox("Measure", list(MEASURES), key=MEASURE, format_func=MEASURES.get)
    est = sum(_seconds(sel, Setting(s.kind, e, s.steps, s.samples), methods) for e in EPS_GRID)
    sig = work.run_button(f"Compute the curve over eps = {', '.join(map(str, EPS_GRID))} /255 (about {work.duration(est)})", settings, key=CURVE, primary=False)
    if sig is None:
        return
    measure = st.session_state[MEASURE]
    curve: dict[str, list[float]] = {m: [] for m in methods}
    with work.Work(sig, "Curve over eps...", key=CURVE) as w:
        for e in EPS_GRID:
            sc, _ = _compute(sel, Setting(s.kind, e, s.steps, s.samples), methods, w)
            for m in methods:
                curve[m].append(float(sc[m].get(measure, np.nan)) if "error" not in sc[m] else np.nan)
    fig = go.Figure([go.Scatter(x=EPS_GRID, y=ys, mode="lines+markers", name=_title(m), line={"color": charts.colour(i)}) for i, (m, ys) in enumerate(curve.items())])
    fig.update_layout(height=380, xaxis_title="eps (1/255)", yaxis_title=MEASURES[measure], margin={"l": 10, "r": 10, "t": 30, "b": 10})
    st.plotly_chart(fig, key="robust_curve")
    rows = [{"method": m, "eps": e, MEASURES[measure]: v} for m, ys in curve.items() for e, v in zip(EPS_GRID, ys, strict=True)]
    st.download_button("Download the curve (CSV)", pd.DataFrame(rows).to_csv(index=False).encode(), file_name="robustness_curve.csv", mime="text/csv", on_click="ignore")


def page() -> None:
    sel = selection.require()
    st.markdown(f"#### Robustness · {sel.loaded.title}")
    st.caption(
        "How much does each map move when the input moves a little? Yeh et al. 2019 (sensitivity), Goodfellow et al. 2015 / Madry et al. 2018 "
        f"(FGSM, PGD), Ghorbani et al. 2019 (fragility). Target {sel.target_label} on {sel.image_key}."
    )
    _perturbations(sel)
    score_panel.panel(sel, ("robustness",), scope="robustness_scores", title="Stability metrics (Alvarez-Melis & Jaakkola 2018; Agarwal et al. 2022)", default=("local_lipschitz_estimate",))


def _perturbations(sel: Selection) -> None:
    """Sensitivity, adversarial examples and fragility for the sidebar's methods (on Run)."""
    s = _settings()
    methods = _methods(sel, s.kind)
    if not methods:
        st.info("Choose at least one method in the sidebar" + (f": the fragility attack applies to {', '.join(_title(d) for d in DIFFERENTIABLE)}." if s.kind in FRAGILITY else "."))
        return
    settings = (sel.model_key, sel.image_key, sel.target, tuple(methods), tuple(sel.params[m] for m in methods), s.kind, s.eps, s.steps, s.samples)  # plain values: a page's classes are new each run
    est = work.duration(_seconds(sel, s, methods))
    sig = work.run_button(f"Run (about {est})", settings, key=RUN, hint=f"Press **Run** to perturb the image and recompute the maps: about {est} on this machine (seeded; cached per model, image, method, attack and eps).")
    if sig is None:
        return
    with work.Work(sig, f"{KINDS[s.kind]}, eps = {s.eps}/255 (about {est})...", key=RUN) as w:
        scores, views = _compute(sel, s, methods, w)
    if views:
        _inputs_row(sel, s, views)
    _maps_row(methods, scores, views)
    _scores(sel, s, scores)
    _curve(sel, s, methods, settings)


page()
