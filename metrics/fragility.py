"""The fragility attack (Ghorbani et al. 2019, "Interpretation of Neural Networks is Fragile", AAAI).

Signed-gradient steps on delta (||delta||_inf <= eps, pixel space) that keep the predicted label (checked with the
real model after every step; a step that flips it is refused and the step size halved) and drag the map away:
"topk" lowers the map's mass on the original top-k pixels of |map|, "com" moves the centre of mass of |map|. Second-order gradients
need a smooth model: on a private copy every ReLU becomes softplus(beta=10) and ReLU6 softplus(x) - softplus(x - 6)
with the same beta, for the attack's gradients only; the maps reported are the real method on the real model. A
random-sign perturbation of the same size is the baseline. eps is given in 1/255 units of pixel space.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core import progress
from core.errors import MethodNotApplicable, ParameterError
from core.fx import ACTIVATIONS
from core.model_state import private_copy
from metrics.common import as_module, check_one_image, check_target, maps_in_chunks, n_classes, pixel_domain
from metrics.engine import engine
from metrics.similarity import centre_of_mass, default_k, dissimilarity

SOFTPLUS_BETA = 10.0
DIFFERENTIABLE = ("saliency", "input_x_gradient", "integrated_gradients")


class _SoftReLU6(nn.Module):
    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x, beta=self.beta) - F.softplus(x - 6.0, beta=self.beta)


def smooth_copy(model: nn.Module, beta: float = SOFTPLUS_BETA) -> nn.Module:
    """A private copy with ReLU -> softplus(beta) and ReLU6 -> softplus(x) - softplus(x-6) (for second-order gradients)."""
    private = private_copy(model)
    replaced = 0
    for mod in list(private.modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(mod, child_name, _SoftReLU6(beta))
                replaced += 1
            elif isinstance(child, nn.ReLU):
                setattr(mod, child_name, nn.Softplus(beta=beta))
                replaced += 1
    others = [type(m).__name__ for m in private.modules() if isinstance(m, ACTIVATIONS) and not isinstance(m, (nn.ReLU, nn.ReLU6))]
    if others and not replaced:
        raise MethodNotApplicable(f"the fragility attack smooths ReLU/ReLU6 only; this model uses {', '.join(sorted(set(others)))}")
    for p in private.parameters():
        p.requires_grad_(False)
    return private


def _smooth_map(net: nn.Module, method: str, x: torch.Tensor, target: torch.Tensor, n_steps: int = 16) -> torch.Tensor:
    """A differentiable (create_graph) version of ``method``'s map [B,H,W] on the smoothed model."""
    if method == "integrated_gradients":
        alphas = (torch.arange(n_steps, device=x.device, dtype=x.dtype) + 0.5) / n_steps
        path = alphas.view(-1, 1, 1, 1) * x  # zero baseline, midpoint rule
        out = net(path)[:, target[0]].sum()
        (g,) = torch.autograd.grad(out, path, create_graph=True)
        return (x * g.mean(0, keepdim=True)).sum(1)
    out = net(x).gather(1, target.view(-1, 1)).sum()
    (g,) = torch.autograd.grad(out, x, create_graph=True)
    if method == "saliency":
        return g.abs().amax(1)
    if method == "input_x_gradient":
        return (x * g).sum(1)
    raise MethodNotApplicable(f"the fragility attack needs a map differentiable in its input: {', '.join(DIFFERENTIABLE)}")


@dataclass(frozen=True)
class Fragility:
    """The attack's input ``x_attacked`` and a random-sign one of the same size, both [1,C,H,W]; the maps (clean,
    attacked, random) [H,W]; dissimilarity of each perturbed map to the clean one; whether the label held."""

    x_attacked: torch.Tensor
    x_random: torch.Tensor
    maps: dict[str, torch.Tensor]
    attacked: dict[str, float]
    random: dict[str, float]
    label_kept: bool
    accepted_steps: int
    k: int
    beta: float
    seconds: float


def fragility(
    model: Any,
    x: torch.Tensor,
    target: int | torch.Tensor,
    method: str,
    *,
    attack: str = "topk",
    eps: float = 8.0,
    steps: int = 10,
    k: int | None = None,
    seed: int = 0,
    beta: float = SOFTPLUS_BETA,
    method_params: dict[str, Any] | None = None,
) -> Fragility:
    """Ghorbani et al.'s attack on ``method``'s map for one image ``x`` [1,C,H,W]; eps in 1/255 of pixel space."""
    start = time.perf_counter()
    if method not in DIFFERENTIABLE:
        raise MethodNotApplicable(f"the fragility attack needs a map differentiable in its input: {', '.join(DIFFERENTIABLE)}")
    if attack not in ("topk", "com"):
        raise ParameterError(f"attack must be topk or com; got {attack!r}")
    x = check_one_image(x, "fragility")
    if not eps > 0 or steps < 1:
        raise ParameterError("eps must be > 0 and steps >= 1")
    t = check_target(target, 1, x.device, n_classes(model))
    net = as_module(model)
    k = k or default_k(*x.shape[-2:])
    params = method_params or {}
    to_px, to_in = pixel_domain(model, x)
    u = to_px(x).detach()
    e = eps / 255.0
    smooth = smooth_copy(net, beta)
    label = _label(net, x)
    clean = maps_in_chunks(model, method, x, t, params, 1)[0]
    delta, accepted = _attack(smooth, net, method, u, to_in, t, label, clean, attack=attack, e=e, steps=steps, k=k)
    x_att = to_in(u + delta)
    sign = torch.randint(0, 2, u.shape, generator=torch.Generator().manual_seed(int(seed))) * 2 - 1
    x_rand = to_in((u + e * sign.to(u)).clamp(0, 1))
    att_map = maps_in_chunks(model, method, x_att, t, params, 1)[0]
    rnd_map = maps_in_chunks(model, method, x_rand, t, params, 1)[0]
    kept = _label(net, x_att) == label
    return Fragility(
        x_att,
        x_rand,
        {"clean": clean, "attacked": att_map, "random": rnd_map},
        dissimilarity(clean, att_map, k),
        dissimilarity(clean, rnd_map, k),
        kept,
        accepted,
        k,
        beta,
        time.perf_counter() - start,
    )


def _label(net: nn.Module, x: torch.Tensor) -> int:
    """The shared model's predicted class for one input [1,C,H,W], from the forward-only engine (``metrics.engine``,
    within 1e-4 of eager; built once per model and input size)."""
    return int(engine(net, x)(x).argmax(1))


def _attack(
    smooth: nn.Module,
    net: nn.Module,
    method: str,
    u: torch.Tensor,
    to_in: Callable[[torch.Tensor], torch.Tensor],
    t: torch.Tensor,
    label: int,
    clean: torch.Tensor,
    *,
    attack: str,
    e: float,
    steps: int,
    k: int,
) -> tuple[torch.Tensor, int]:
    """The perturbation delta [1,C,H,W] (pixel units) after ``steps`` signed-gradient steps on the smooth copy's map,
    each kept only if the real model's label holds (else the step size halves); returns (delta, steps accepted)."""
    top = torch.topk(clean.abs().flatten(), k).indices
    com0 = centre_of_mass(clean)
    delta, alpha, accepted = torch.zeros_like(u), e / 4, 0
    with torch.enable_grad(), progress.stage("attack steps", steps) as st:
        for i in range(steps):
            st.at(i, f"attack step {i + 1}/{steps}")
            d = delta.clone().requires_grad_(True)
            m = _smooth_map(smooth, method, to_in(u + d), t)[0].abs()
            m = m / m.sum().clamp(min=1e-12)
            objective = -m.flatten()[top].sum() if attack == "topk" else (centre_of_mass(m) - com0.to(m)).norm()
            (g,) = torch.autograd.grad(objective, d)
            with torch.no_grad():
                cand = (delta + alpha * g.sign()).clamp(-e, e)
                cand = (u + cand).clamp(0, 1) - u
            if _label(net, to_in(u + cand)) == label:  # the label must hold at every step
                delta, accepted = cand, accepted + 1
            else:
                alpha /= 2
    return delta, accepted
