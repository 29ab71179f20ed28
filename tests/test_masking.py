"""Sobol attribution and Extremal Perturbations: oracles on hand-built models where the answer is known, the
estimator against its closed form, seeded determinism, and maps independent of their batch neighbours."""

from __future__ import annotations

import torch
from torch import nn

import explainers
from explainers.masking import area_penalty, jansen_total_order, sobol_design


class CellSum(nn.Module):
    """Class 0's logit = sum_cells w_cell * (sum of the pixels of that cell of a 2 x 2 grid); class 1 = 0."""

    def __init__(self, weights: list[float], size: int = 16) -> None:
        super().__init__()
        w = torch.zeros(1, 1, size, size)
        half = size // 2
        for i, value in enumerate(weights):
            r, c = divmod(i, 2)
            w[..., r * half : (r + 1) * half, c * half : (c + 1) * half] = value
        self.register_buffer("w", w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x * self.w).sum(dim=(1, 2, 3))
        return torch.stack([y, torch.zeros_like(y)], 1)


def test_sobol_design_is_xpliques_replicated_design():
    masks = sobol_design(2, 8, seed=0).flatten(1)  # d = 4
    a, b, c = masks[:8], masks[8:16], masks[16:].view(4, 8, 4)
    assert masks.shape == (8 * 6, 4) and 0 <= float(masks.min()) and float(masks.max()) <= 1
    for i in range(4):
        others = [j for j in range(4) if j != i]
        assert torch.equal(c[i][:, i], b[:, i]) and torch.equal(c[i][:, others], a[:, others])
    assert torch.equal(masks, sobol_design(2, 8, seed=0).flatten(1))
    assert not torch.equal(masks, sobol_design(2, 8, seed=1).flatten(1))


def test_jansen_estimator_on_a_linear_function_gives_its_closed_form():
    """f = sum_i w_i u_i with independent uniform u: ST_i = w_i^2 / sum_j w_j^2."""
    w = torch.tensor([1.0, 2.0, 0.0, 3.0])
    n = 1024
    design = sobol_design(2, n, seed=3).flatten(1)
    st = jansen_total_order(design @ w, n, 4)
    torch.testing.assert_close(st, (w**2 / (w**2).sum()).double(), atol=0.02, rtol=0)
    assert st[2] == 0, "a cell the model ignores has an index of exactly 0"


def test_sobol_map_ranks_the_cells_as_the_model_weighs_them():
    model = CellSum([1.0, 2.0, 0.0, 0.0]).eval()
    x = torch.ones(1, 1, 16, 16)
    m = explainers.explain("sobol", model, x, 0, grid_size=2, n_design=64)[0]
    cells = [m[:8, :8].mean(), m[:8, 8:].mean(), m[8:, :8].mean(), m[8:, 8:].mean()]
    assert cells[1] > cells[0] > cells[2] + 0.05 and cells[0] > cells[3] + 0.05
    ratio = float(cells[1] / cells[0])
    assert 2.5 < ratio < 6.0, f"ST ratio {ratio:.2f} should be near 4 (bicubic upsampling mixes the cells a little)"


def test_sobol_is_seeded_and_each_map_ignores_its_batch_neighbours(shapes):
    import zoo

    imgs = zoo.sample_images()
    x = torch.cat([shapes.preprocess(imgs["shapes: circle"]), shapes.preprocess(imgs["shapes: cross"])])
    p = {"grid_size": 4, "n_design": 8}
    both = explainers.explain("sobol", shapes, x, 0, seed=5, **p)
    alone = explainers.explain("sobol", shapes, x[1:], 0, seed=5, **p)
    small_batches = explainers.explain("sobol", shapes, x, 0, seed=5, batch_size=7, **p)
    torch.testing.assert_close(alone[0], both[1], rtol=1e-4, atol=1e-4 * float(both.abs().max()))
    torch.testing.assert_close(small_batches, both, rtol=1e-4, atol=1e-4 * float(both.abs().max()))
    assert torch.equal(both, explainers.explain("sobol", shapes, x, 0, seed=5, **p))
    assert not torch.equal(both, explainers.explain("sobol", shapes, x, 0, seed=6, **p))


def test_area_penalty_is_zero_exactly_for_a_binary_mask_of_that_area():
    mask = torch.zeros(1, 1, 10, 10)
    mask[..., :2, :5] = 1  # 10 % of the pixels
    assert float(area_penalty(mask, 0.1)[0]) == 0
    assert float(area_penalty(mask, 0.3)[0]) > 0


def test_extremal_perturbation_keeps_the_only_region_the_model_rewards():
    """The logit is the match of the bottom-right quarter with a fine +-1 texture that blurring erases."""
    texture = torch.randint(0, 2, (2, 1, 32, 32), generator=torch.Generator().manual_seed(0)).float() * 2 - 1
    model = CellSum([0.0, 0.0, 0.0, 1.0], size=32).eval()
    model.w = model.w * texture[:1]
    x = texture[:1].repeat(2, 1, 1, 1)
    m = explainers.explain("extremal_perturbation", model, x, 0, area=0.25, steps=60, cell=4, sigma=1.0, blur=4.0)
    inside, outside = m[:, 16:, 16:].mean(dim=(1, 2)), (m.sum(dim=(1, 2)) - m[:, 16:, 16:].sum(dim=(1, 2))) / (32 * 32 - 256)
    assert (inside > 0.7).all() and (outside < 0.3).all(), (inside, outside)


def test_extremal_perturbation_is_seeded_and_independent_of_batch_neighbours(shapes):
    import zoo

    imgs = zoo.sample_images()
    x = torch.cat([shapes.preprocess(imgs["shapes: circle"]), shapes.preprocess(imgs["shapes: cross"])])
    both = explainers.explain("extremal_perturbation", shapes, x, 0, steps=15)
    alone = explainers.explain("extremal_perturbation", shapes, x[1:], 0, steps=15)
    assert torch.equal(both, explainers.explain("extremal_perturbation", shapes, x, 0, steps=15))
    torch.testing.assert_close(alone[0], both[1], rtol=1e-3, atol=1e-3)
    assert not torch.equal(both, explainers.explain("extremal_perturbation", shapes, x, 0, steps=15, seed=1))
