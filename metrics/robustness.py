"""How much a map moves when the input moves a little.

- Sensitivity (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of Explanations"): samples y uniform in the
  L-inf ball of radius r around x *in pixel space [0,1]* (clipped to valid pixels, then mapped through the
  model's normalization); ||Phi(y) - Phi(x)||_F / ||Phi(x)||_F (a zero ||Phi(x)|| counts as 1, as in captum),
  max and mean over the samples. Same numbers as ``captum.metrics.sensitivity_max`` on identical samples.
- Adversarial examples: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018: random start, step
  2.5*eps/steps, projection on the eps ball and the valid pixels), untargeted on the cross-entropy of ``target``.
- Fragility (Ghorbani et al. 2019, "Interpretation of Neural Networks is Fragile"): signed-gradient steps on
  delta (||delta||_inf <= eps) that keep the predicted label (checked with the real model after every step; a
  step that flips it is refused and the step size halved) and drag the map away: "topk" lowers the map's mass
  on the original top-k pixels, "com" moves its centre of mass. Second-order gradients need a smooth model:
  on a private copy every ReLU becomes softplus(beta=10) and ReLU6 softplus(x) - softplus(x - 6) with the same
  beta, for the attack's gradients only; the maps reported are the real method on the real model. A
  random-sign perturbation of the same size is the baseline.
- Dissimilarity everywhere (``dissimilarity``): top-k intersection of |map| (k = 1000 at 224 px, scaled to the
  input's area), Spearman rank correlation, SSIM, and the centre-of-mass shift of |map| in pixels.

eps and radius are given in 1/255 units of pixel space.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import explainers
from core import progress as ticks
from core.errors import MethodNotApplicable, ParameterError
from explainers.context import ACTIVATIONS, RNG_LOCK, model_lock, private_copy
from metrics.common import as_module, check_one_image, check_target, n_classes
from metrics.randomization import map_similarity

SOFTPLUS_BETA = 10.0
DIFFERENTIABLE = ("saliency", "input_x_gradient", "integrated_gradients")


def _to_pixels(model: Any) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """(input -> pixels in [0,1], pixels -> input) for a LoadedModel; identity for a bare module (its input is taken as pixels)."""
    if hasattr(model, "normalize") and hasattr(model, "mean"):
        mean = torch.tensor(model.mean).view(1, -1, 1, 1)
        std = torch.tensor(model.std).view(1, -1, 1, 1)
        return (lambda x: x * std.to(x.device) + mean.to(x.device)), (lambda u: (u - mean.to(u.device)) / std.to(u.device))
    return (lambda x: x), (lambda u: u)


def default_k(h: int, w: int) -> int:
    """Ghorbani et al.'s k = 1000 at 224 x 224, scaled to the map's area."""
    return max(1, round(1000 * h * w / (224 * 224)))


def centre_of_mass(m: torch.Tensor) -> torch.Tensor:
    """Centre of mass (row, col) of |map| [..., H, W] -> [..., 2] (differentiable; the centre for an all-zero map)."""
    a = m.abs()
    h, w = a.shape[-2:]
    total = a.sum((-2, -1)).clamp(min=1e-12)
    rows = torch.arange(h, device=a.device, dtype=a.dtype)
    cols = torch.arange(w, device=a.device, dtype=a.dtype)
    r = (a.sum(-1) * rows).sum(-1) / total
    c = (a.sum(-2) * cols).sum(-1) / total
    return torch.stack([r, c], dim=-1)


def topk_intersection(a: torch.Tensor, b: torch.Tensor, k: int) -> float:
    """Share of the k largest |a| pixels that are also among the k largest |b| pixels (maps [H,W])."""
    ia = torch.topk(a.abs().flatten(), k).indices
    ib = torch.topk(b.abs().flatten(), k).indices
    return float(torch.isin(ia, ib).float().mean())


def dissimilarity(a: torch.Tensor, b: torch.Tensor, k: int | None = None) -> dict[str, float]:
    """Clean map a vs perturbed map b ([H,W]): top-k intersection, Spearman, SSIM (|map|/max), centre-of-mass shift (px)."""
    k = k or default_k(*a.shape)
    return {
        "topk_intersection": topk_intersection(a, b, k),
        "spearman": map_similarity(a, b, "spearman"),
        "ssim": map_similarity(a, b, "ssim"),
        "com_shift_px": float((centre_of_mass(a) - centre_of_mass(b)).norm()),
    }


def _explain(model: Any, method: str, x: torch.Tensor, target: torch.Tensor, params: dict[str, Any], chunk: int) -> torch.Tensor:
    """Maps [N,H,W] for a batch, ``chunk`` images per call (bounded memory for costly methods)."""
    spec = explainers.get(method)
    kw = {**({"seed": 0} if spec.stochastic else {}), **params}
    return torch.cat([explainers.explain(method, model, x[i : i + chunk], target[i : i + chunk], **kw) for i in range(0, x.shape[0], chunk)])


def _chunk_for(method: str, params: dict[str, Any], h: int, w: int, budget: int = 64) -> int:
    """Images per explain call so that one call runs at most ``budget`` passes (IG at 32 steps: 2 images).
    A seeded stochastic method runs one image per call, so every sample sees the same noise as the clean
    image (common random numbers: the difference measures the input, not the sampler)."""
    spec = explainers.get(method)
    if spec.stochastic:
        return 1
    f, fb = spec.cost({**spec.defaults(), **params}, h, w, 1)
    return max(1, budget // max(1, f + fb))


# ---------------------------------------------------------------------------------- sensitivity


@dataclass(frozen=True)
class Sensitivity:
    """``values`` [n_samples]: ||Phi(y)-Phi(x)|| / ||Phi(x)|| per sample; ``max``/``mean``; the worst sample ``worst`` [1,C,H,W]
    (model input space), and the maps ``clean`` and ``at_worst`` [H,W]."""

    values: torch.Tensor
    max: float
    mean: float
    worst: torch.Tensor
    clean: torch.Tensor
    at_worst: torch.Tensor
    samples: torch.Tensor
    seconds: float


def sensitivity_samples(model: Any, x: torch.Tensor, radius: float, n_samples: int, seed: int) -> torch.Tensor:
    """``n_samples`` inputs [n,C,H,W]: uniform noise in the L-inf ball of ``radius``/255 in pixel space, clipped to [0,1], normalized."""
    to_px, to_in = _to_pixels(model)
    u = to_px(x)
    gen = torch.Generator().manual_seed(int(seed))
    noise = (torch.rand((n_samples, *x.shape[1:]), generator=gen) * 2 - 1).to(x.device) * (radius / 255.0)
    return to_in((u + noise).clamp(0, 1))


def sensitivity(
    model: Any,
    x: torch.Tensor,
    target: int | torch.Tensor,
    method: str,
    *,
    radius: float = 2.0,
    n_samples: int = 10,
    seed: int = 0,
    method_params: dict[str, Any] | None = None,
    chunk: int | None = None,
) -> Sensitivity:
    """Max- and avg-sensitivity of ``method`` for one image ``x`` [1,C,H,W] (radius in 1/255 of pixel space)."""
    start = time.perf_counter()
    x = check_one_image(x, "sensitivity")
    if not radius > 0 or n_samples < 1:
        raise ParameterError("sensitivity needs radius > 0 and n_samples >= 1")
    t = check_target(target, 1, x.device, n_classes(model))
    params = method_params or {}
    chunk = chunk or _chunk_for(method, params, *x.shape[-2:])
    ys = sensitivity_samples(model, x, radius, n_samples, seed)
    both = _explain(model, method, torch.cat([x, ys]), t.expand(n_samples + 1), params, chunk)  # the clean map rides in the first chunk
    clean, maps = both[0], both[1:]
    norm = clean.norm()
    denom = norm if norm > 0 else torch.ones_like(norm)
    values = (maps - clean).flatten(1).norm(dim=1) / denom
    i = int(values.argmax())
    return Sensitivity(values.cpu(), float(values.max()), float(values.mean()), ys[i : i + 1], clean, maps[i], ys, time.perf_counter() - start)


# ---------------------------------------------------------------------------------- adversarial examples


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
    """The adversarial input [B,C,H,W] (input space) for ``x``: FGSM (one step of eps) or PGD. eps in 1/255 of pixel space."""
    net = as_module(model)
    to_px, to_in = _to_pixels(model)
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
    for i in range(steps):
        ticks.tick(f"{attack} step {i + 1}/{steps}")
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
    with model_lock(net), torch.enable_grad():
        flags = [(p, p.requires_grad) for p in net.parameters()]
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            x_adv = pgd(model, x, t, eps=eps, steps=steps, attack=attack, seed=seed)
        finally:
            for p, f in flags:
                p.requires_grad_(f)
        with torch.no_grad():
            pc, pa = _logits(net, x).softmax(-1)[0], _logits(net, x_adv).softmax(-1)[0]
    to_px, _ = _to_pixels(model)
    params = method_params or {}
    maps, scores = {}, {}
    for m in methods:
        a = _explain(model, m, x, t, params.get(m, {}), 1)[0]
        b = _explain(model, m, x_adv, t, params.get(m, {}), 1)[0]
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


# ---------------------------------------------------------------------------------- fragility


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
    to_px, to_in = _to_pixels(model)
    u = to_px(x).detach()
    e = eps / 255.0
    with model_lock(net):
        smooth = smooth_copy(net, beta)
        with torch.no_grad():
            label = int(net(x).argmax(1))
    clean = _explain(model, method, x, t, params, 1)[0]
    top = torch.topk(clean.abs().flatten(), k).indices
    com0 = centre_of_mass(clean)
    delta = torch.zeros_like(u)
    alpha = e / 4
    accepted = 0
    with torch.enable_grad():
        for i in range(steps):
            ticks.tick(f"attack step {i + 1}/{steps}")
            d = delta.clone().requires_grad_(True)
            xi = to_in(u + d)
            m = _smooth_map(smooth, method, xi, t)[0].abs()
            m = m / m.sum().clamp(min=1e-12)
            objective = -m.flatten()[top].sum() if attack == "topk" else (centre_of_mass(m) - com0.to(m)).norm()
            (g,) = torch.autograd.grad(objective, d)
            with torch.no_grad():
                cand = (delta + alpha * g.sign()).clamp(-e, e)
                cand = (u + cand).clamp(0, 1) - u
                with model_lock(net):  # a forward of the shared model: never through another session's hooks
                    same = int(net(to_in(u + cand)).argmax(1)) == label
                if same:  # the label must hold at every step
                    delta, accepted = cand, accepted + 1
                else:
                    alpha /= 2
    x_att = to_in(u + delta)
    with RNG_LOCK:
        gen = torch.Generator().manual_seed(int(seed))
        sign = (torch.randint(0, 2, u.shape, generator=gen) * 2 - 1).to(u)
    x_rand = to_in((u + e * sign).clamp(0, 1))
    att_map = _explain(model, method, x_att, t, params, 1)[0]
    rnd_map = _explain(model, method, x_rand, t, params, 1)[0]
    with torch.no_grad(), model_lock(net):
        kept = int(net(x_att).argmax(1)) == label
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
