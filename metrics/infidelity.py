"""Infidelity (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of Explanations", NeurIPS), via captum.

INFD(Phi, f, x) = E_I[(I . Phi(x) - (f(x) - f(x - I)))^2], computed by ``captum.metrics.infidelity`` with
``n_samples`` perturbations. Conventions here:

- f is the target's logit (the quantity the gradient-based maps explain);
- I is Gaussian noise N(0, sigma^2) per pixel, the same on every channel, in the model's input space,
  so ``I . Phi`` is exactly ``sum_p I_p Phi_p`` for a pixel map Phi [H,W] (the map is spread as Phi/C
  over the C channels for captum, which needs attributions shaped like the input);
- ``normalize=True`` (default) applies the authors' optimal rescaling beta = E[I.Phi (f(x)-f(x-I))] / E[(I.Phi)^2]
  first, so maps of any scale compare; captum's own default is False (no rescaling). Lower is better.
"""

from __future__ import annotations

import torch
from captum.metrics import infidelity as captum_infidelity

from core.errors import ParameterError
from core.registry import Param
from metrics.engine import engine
from metrics.registry import MetricContext, metric


@metric(
    title="Infidelity",
    category="faithfulness",
    higher_is_better=False,
    paper="Yeh et al. 2019 (NeurIPS); captum.metrics.infidelity",
    conventions="f = target logit; I ~ N(0, sigma^2) per pixel, shared by the channels, in input space; optimal rescaling beta applied (Yeh et al.; captum's default does not)",
    params=(
        Param("sigma", 0.1, 0.001, 2.0, 0.01, help="std of the perturbation in input space"),
        Param("n_samples", 50, 1, 1000, 1, help="perturbations per image"),
        Param("normalize", True, help="apply the optimal rescaling of the map first (the authors' definition)"),
    ),
    cost=lambda p, h, w: p["n_samples"] + 1,
)
def infidelity(
    ctx: MetricContext, maps: dict[str, torch.Tensor], *, sigma: float = 0.1, n_samples: int = 50, normalize: bool = True
) -> dict[str, torch.Tensor]:
    """Infidelity [B] per method (maps {name: [B,H,W]}), by ``captum.metrics.infidelity``; seeded by ``ctx.seed``:
    every method sees the same perturbations."""
    if not sigma > 0 or n_samples < 1:
        raise ParameterError("infidelity needs sigma > 0 and n_samples >= 1")
    x, c = ctx.x, ctx.x.shape[1]
    ff = engine(ctx.model, x)  # the forwards: the engine's, in its chunks
    out = {}
    for name, m in maps.items():
        gen = torch.Generator().manual_seed(int(ctx.seed))

        def perturb(inputs: torch.Tensor, gen: torch.Generator = gen) -> tuple[torch.Tensor, torch.Tensor]:
            noise = sigma * torch.randn((inputs.shape[0], 1, *inputs.shape[2:]), generator=gen).to(inputs.device)
            noise = noise.expand_as(inputs)
            return noise, inputs - noise

        attr = (m / c).unsqueeze(1).expand_as(x).contiguous()
        with torch.no_grad():
            out[name] = captum_infidelity(ff, perturb, x, attr, target=ctx.target, n_perturb_samples=int(n_samples), normalize=normalize).detach().float().cpu()
    return out
