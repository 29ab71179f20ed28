"""Adversarial examples and how each map follows them: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018:
random start, step 2.5*eps/steps, projection on the eps ball and the valid pixels), untargeted on the cross-entropy
of ``target``. eps is given in 1/255 units of pixel space."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core import progress
from core.errors import ParameterError
from core.model_state import using
from metrics.common import as_module, check_one_image, check_target, maps_in_chunks, n_classes, pixel_domain
from metrics.engine import engine
from metrics.similarity import dissimilarity


@dataclass(frozen=True)
class Adversarial:
    """``x_adv`` [1,C,H,W] (input space), ``delta`` [1,C,H,W] in pixel units, probabilities [K] before/after,
    predicted classes, whether the prediction changed; per method: the maps (clean, adversarial) and their dissimilarity."""

    x_adv: torch.Tensor
    delta: torch.Tensor
    probs_clean: torch.Tensor
    probs_adv: torch.Tensor
    pred_clean: int
    pred_adv: int
    changed: bool
    maps: dict[str, tuple[torch.Tensor, torch.Tensor]]
    scores: dict[str, dict[str, float]]
    attack: str
    eps: float
    seconds: float


def _logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net(x).float()


def pgd(model: Any, x: torch.Tensor, target: torch.Tensor, *, eps: float, steps: int, attack: str = "pgd", seed: int = 0) -> torch.Tensor:
    """The adversarial input [B,C,H,W] (input space) for ``x``: FGSM (one step of eps) or PGD. eps in 1/255 of pixel
    space. Runs inside ``core.model_state.using``."""
    net = as_module(model)
    to_px, to_in = pixel_domain(model, x)
    e = eps / 255.0
    u = to_px(x).detach()
    if attack == "fgsm":
        steps, alpha, delta = 1, e, torch.zeros_like(u)
    elif attack == "pgd":
        gen = torch.Generator().manual_seed(int(seed))
        delta = ((torch.rand(u.shape, generator=gen) * 2 - 1) * e).to(u.device)
        delta = (u + delta).clamp(0, 1) - u
        alpha = 2.5 * e / max(1, steps)
    else:
        raise ParameterError(f"attack must be fgsm or pgd; got {attack!r}")
    with using(net), torch.enable_grad(), progress.stage(f"{attack} steps", steps) as st:
        for i in range(steps):
            st.at(i, f"{attack} step {i + 1}/{steps}")
            delta.requires_grad_(True)
            loss = F.cross_entropy(_logits(net, to_in(u + delta)), target)
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = (delta + alpha * grad.sign()).clamp(-e, e)
                delta = (u + delta).clamp(0, 1) - u
    return to_in(u + delta.detach())


def adversarial(
    model: Any,
    x: torch.Tensor,
    target: int | torch.Tensor,
    *,
    attack: str = "pgd",
    eps: float = 2.0,
    steps: int = 10,
    methods: Sequence[str] = (),
    seed: int = 0,
    method_params: dict[str, dict[str, Any]] | None = None,
    k: int | None = None,
) -> Adversarial:
    """An FGSM/PGD example for one image ``x`` [1,C,H,W] against class ``target``, and each method's map before and after."""
    start = time.perf_counter()
    x = check_one_image(x, "adversarial")
    if not eps > 0 or steps < 1:
        raise ParameterError("eps must be > 0 and steps >= 1")
    t = check_target(target, 1, x.device, n_classes(model))
    net = as_module(model)
    x_adv = pgd(model, x, t, eps=eps, steps=steps, attack=attack, seed=seed)
    probs = engine(net, x)(torch.cat([x, x_adv])).softmax(-1)  # forward-only: the engine (within 1e-4 of eager)
    pc, pa = probs[0], probs[1]
    to_px, _ = pixel_domain(model)
    params = method_params or {}
    maps, scores = {}, {}
    for m in methods:
        a = maps_in_chunks(model, m, x, t, params.get(m, {}), 1)[0]
        b = maps_in_chunks(model, m, x_adv, t, params.get(m, {}), 1)[0]
        maps[m] = (a, b)
        scores[m] = dissimilarity(a, b, k)
    return Adversarial(
        x_adv,
        to_px(x_adv) - to_px(x),
        pc.cpu(),
        pa.cpu(),
        int(pc.argmax()),
        int(pa.argmax()),
        int(pc.argmax()) != int(pa.argmax()),
        maps,
        scores,
        attack,
        float(eps),
        time.perf_counter() - start,
    )
