"""Robustness page: how much each map moves when the input moves a little (noise, FGSM, PGD, the fragility attack)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

import explainers
import metrics
import zoo
from dashboard import cache, inputs, render, work
from dashboard import state as S
from metrics.fragility import DIFFERENTIABLE, SOFTPLUS_BETA
from metrics.similarity import default_k

KIND = "robust::kind"
EPS = "robust::eps"
STEPS = "robust::steps"
SAMPLES = "robust::samples"
MEASURE = "robust::measure"
RUN = "robust::run"
CURVE = "robust::curve"
KINDS = {
    "noise": "Random noise (max/avg sensitivity)",
    "fgsm": "FGSM",
    "pgd": "PGD",
    "topk": "Fragility attack: top-k",
    "com": "Fragility attack: centre of mass",
}
MEASURES = {"topk_intersection": "top-k intersection", "spearman": "Spearman", "ssim": "SSIM", "com_shift_px": "centre-of-mass shift (px)"}
EPS_GRID = [1, 2, 4, 8, 16]


def _title(m: str) -> str:
    return explainers.get(m).title


def _tile(m: np.ndarray) -> np.ndarray:
    return (render.colorize(render.normalize_map(m, signed=False), "inferno", signed=False) * 255).astype(np.uint8)


def _unit(loaded: zoo.LoadedModel, x) -> np.ndarray:
    return inputs.unit(loaded, x).clip(0, 1)


def _probs_table(loaded: zoo.LoadedModel, before: np.ndarray, after: np.ndarray) -> pd.DataFrame:
    top = list(dict.fromkeys([*np.argsort(-before)[:3].tolist(), *np.argsort(-after)[:3].tolist()]))
    return pd.DataFrame(
        {"class": [f"{i}: {loaded.classes[i]}" for i in top], "before": [float(before[i]) for i in top], "after": [float(after[i]) for i in top]}
    )


def _one(
    kind: str,
    eps: float,
    steps: int,
    n_samples: int,
    model_key: str,
    image_key: str,
    loaded: zoo.LoadedModel,
    x,
    target: int,
    methods: list[str],
    params: dict,
    w: work.Work,
) -> tuple[dict, dict]:
    """Scores per method {measure: value} and what to draw, for one attack and eps (everything cached)."""
    scores: dict[str, dict[str, float | str]] = {}
    views: dict[str, tuple[np.ndarray, np.ndarray, object]] = {}
    label = f"{KINDS[kind]}, eps = {eps:g}/255"
    if kind in ("fgsm", "pgd"):
        w.step(0, len(methods) + 1, f"{label}: the perturbed input")
        adv = cache.adversarial_input(model_key, image_key, kind, float(eps), int(steps), target, 0, loaded, x)
        for i, m in enumerate(methods):
            w.step(i + 1, len(methods) + 1, f"{label}: {_title(m)}")
            a = cache.attribution(model_key, image_key, m, params[m], target, loaded, x)
            b = cache.attribution(model_key, adv.key, m, params[m], target, loaded, adv.x)
            if a.error or b.error:
                scores[m] = {"error": a.error or b.error}
                continue
            scores[m] = metrics.dissimilarity(torch.from_numpy(a.map), torch.from_numpy(b.map))
            views[m] = (a.map, b.map, adv)
    elif kind == "noise":
        for i, m in enumerate(methods):
            w.step(i, len(methods), f"{label}: {_title(m)}")
            r = cache.sensitivity(model_key, image_key, m, params[m], target, float(eps), int(n_samples), 0, loaded, x)
            if isinstance(r, str):
                scores[m] = {"error": r}
                continue
            scores[m] = {
                "max_sensitivity": r["max"],
                "avg_sensitivity": r["mean"],
                **metrics.dissimilarity(torch.from_numpy(r["clean"]), torch.from_numpy(r["worst_map"])),
            }
            views[m] = (r["clean"], r["worst_map"], r["worst"])
    else:
        for i, m in enumerate(methods):
            w.step(i, len(methods), f"{label}: {_title(m)}")
            if m not in DIFFERENTIABLE:
                scores[m] = {"error": f"the fragility attack needs a map differentiable in its input ({', '.join(_title(d) for d in DIFFERENTIABLE)})"}
                continue
            r = cache.fragility(model_key, image_key, m, params[m], target, kind, float(eps), int(steps), 0, loaded, x)
            if isinstance(r, str):
                scores[m] = {"error": r}
                continue
            scores[m] = {
                **r.attacked,
                **{f"random: {k}": v for k, v in r.random.items()},
                "label kept": float(r.label_kept),
                "accepted steps": float(r.accepted_steps),
            }
            views[m] = (r.maps["clean"].cpu().numpy(), r.maps["attacked"].cpu().numpy(), r.x_attacked)
    return scores, views


def page() -> None:
    chosen = inputs.page_start(
        "Robustness",
        "How much does each map move when the input moves a little? Yeh et al. 2019 (sensitivity), Goodfellow et al. 2015 / Madry et al. 2018 (FGSM, PGD), Ghorbani et al. 2019 (fragility).",
    )
    if chosen is None:
        return
    model_key, loaded, images = chosen
    image_key, x, probs, target, methods, params = inputs.image_header(model_key, loaded, images)
    if not methods:
        st.info("Choose at least one method.")
        return
    c1, c2, c3 = st.columns([2, 2, 1])
    with c1:
        st.radio("Perturbation", list(KINDS), key=KIND, format_func=KINDS.get)
    kind = st.session_state[KIND]
    with c2:
        st.slider("eps (radius) in 1/255 of pixel space", 1, 16, key=EPS, **S.unless_set(EPS, value=2 if kind in ("noise", "fgsm", "pgd") else 8))
    with c3:
        if kind == "noise":
            st.number_input("Samples", min_value=1, max_value=100, step=1, key=SAMPLES, **S.unless_set(SAMPLES, value=10))
        elif kind != "fgsm":
            st.number_input("Steps", min_value=1, max_value=100, step=1, key=STEPS, **S.unless_set(STEPS, value=10))
    eps = int(st.session_state[EPS])
    steps = int(st.session_state.get(STEPS, 10))
    n_samples = int(st.session_state.get(SAMPLES, 10))
    settings = (model_key, image_key, target, tuple(methods), tuple(params[m] for m in methods), kind, eps, steps, n_samples)
    hint = "Press **Run** to perturb the image and recompute the maps (seeded; results are cached per model, image, method, attack and eps)."
    sig = work.run_button("Run", settings, key=RUN, hint=hint)
    if sig is None:
        return
    with work.Work(sig, f"{KINDS[kind]}, eps = {eps}/255...", key=RUN) as w:
        scores, views = _one(kind, eps, steps, n_samples, model_key, image_key, loaded, x, target, methods, params, w)

    first = next(iter(views.values()), None)
    if first is not None:
        perturbed = first[2].x if hasattr(first[2], "x") else first[2]
        c1, c2, c3, c4 = st.columns(4)
        clean_px, pert_px = _unit(loaded, x), _unit(loaded, perturbed)
        with c1:
            st.image(clean_px, caption="clean", width="stretch")
        with c2:
            st.image(pert_px, caption="perturbed" + ("" if kind in ("fgsm", "pgd") else f" (for {_title(next(iter(views)))})"), width="stretch")
        with c3:
            diff = np.abs(pert_px - clean_px).max(axis=2)
            st.image(
                (np.clip(diff / (eps / 255), 0, 1) * 255).astype(np.uint8), caption=f"|difference| magnified ({255 / eps:.0f}x: white = eps)", width="stretch"
            )
        with c4:
            after = loaded.predict(perturbed)[0].cpu().numpy()
            st.dataframe(
                _probs_table(loaded, probs, after),
                hide_index=True,
                column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("before", "after")},
            )
            if hasattr(first[2], "note"):
                st.caption(first[2].note)

    st.subheader("Each map before and after")
    cols = st.columns(min(5, max(1, len(methods))))
    for i, m in enumerate(methods):
        with cols[i % len(cols)]:
            if m not in views:
                st.warning(f"**{_title(m)}**: {scores[m].get('error', 'not available')}")
                continue
            a, b, _ = views[m]
            s = scores[m]
            st.image(_tile(a), caption=f"{_title(m)}: clean", width="stretch")
            st.image(_tile(b), caption=f"perturbed · top-k {s['topk_intersection']:.2f} · ρ {s['spearman']:.2f}", width="stretch")
    table = pd.DataFrame([{"method": _title(m), **{k: v for k, v in s.items()}} for m, s in scores.items()])
    st.dataframe(table, hide_index=True)
    st.download_button(
        "Download the scores (CSV)",
        table.assign(perturbation=kind, eps=eps, image=image_key, target=target).to_csv(index=False).encode(),
        file_name="robustness.csv",
        mime="text/csv",
        on_click="ignore",
    )
    k = default_k(*x.shape[-2:])
    st.caption(
        f"Dissimilarity of the clean and the perturbed map: top-k intersection of |map| (k = {k}, Ghorbani et al.'s 1000 at 224 px scaled to the input), "
        "Spearman rank correlation, SSIM on |map|/max, and the shift of the centre of mass of |map| in pixels. "
        "Sensitivity: ||Φ(y) − Φ(x)||_F / ||Φ(x)||_F over uniform samples in the L-inf ball (pixel space, clipped to [0, 1]), max and mean. "
        f"Fragility: ReLU → softplus (β = {SOFTPLUS_BETA:g}) for the attack's gradients only; the label is checked after every step."
    )

    st.subheader("Against eps")
    st.selectbox("Measure", list(MEASURES), key=MEASURE, format_func=MEASURES.get)
    curve_sig = work.run_button(f"Compute the curve over eps = {', '.join(map(str, EPS_GRID))} /255", settings, key=CURVE, primary=False)
    if curve_sig is not None:
        curve: dict[str, list[float]] = {m: [] for m in methods}
        with work.Work(curve_sig, "Curve over eps...", key=CURVE) as w:
            for e in EPS_GRID:
                sc, _ = _one(kind, e, steps, n_samples, model_key, image_key, loaded, x, target, methods, params, w)
                for m in methods:
                    curve[m].append(float(sc[m].get(st.session_state[MEASURE], np.nan)) if "error" not in sc[m] else np.nan)
        fig = go.Figure()
        for m, ys in curve.items():
            fig.add_trace(
                go.Scatter(x=EPS_GRID, y=ys, mode="lines+markers", name=_title(m), hovertemplate=f"{_title(m)}<br>eps %{{x}}/255: %{{y:.3f}}<extra></extra>")
            )
        fig.update_layout(height=380, xaxis_title="eps (1/255)", yaxis_title=MEASURES[st.session_state[MEASURE]], margin={"l": 10, "r": 10, "t": 30, "b": 10})
        st.plotly_chart(fig, key="robust_curve")
        st.download_button(
            "Download the curve (CSV)",
            pd.DataFrame(
                [{"method": m, "eps": e, MEASURES[st.session_state[MEASURE]]: v} for m, ys in curve.items() for e, v in zip(EPS_GRID, ys, strict=True)]
            )
            .to_csv(index=False)
            .encode(),
            file_name="robustness_curve.csv",
            mime="text/csv",
            on_click="ignore",
        )


page()
