"""Batch sizes adapt to the memory budget (core.memory): measured activation sizes, and the batches that follow."""

from __future__ import annotations

import torch
from torch import nn

import explainers
from core import memory
from core.model_state import hook_count
from explainers.context import Context
from metrics.engine import engine


class Counted(nn.Module):
    """Conv(3->8, 3x3, pad 1) -> ReLU -> mean -> Linear(8->3), counting forward calls and batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(8, 3)
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        return self.fc(self.act(self.conv(x)).mean(dim=(2, 3)))


def test_activations_are_measured_from_the_leaf_outputs_and_leave_no_hook() -> None:
    model = Counted().eval()
    acts = memory.activations(model, torch.rand(4, 3, 16, 16))
    conv = 8 * 16 * 16 * 4  # conv and ReLU outputs, float32
    assert acts == memory.Activations(total=2 * conv + 3 * 4, largest=conv)
    assert acts.per_image(grad=True) == 2 * acts.total and acts.per_image(grad=False) == 3 * conv
    assert hook_count(model) == 0 and model.batches == [1]  # one batch-1 forward
    memory.activations(model, torch.rand(2, 3, 16, 16))
    assert model.batches == [1]  # cached per model and shape


def test_fit_batch_keeps_the_budget() -> None:
    assert memory.fit_batch(64, 100, budget_gb=1000 / 1024**3) == 10
    assert memory.fit_batch(8, 100, budget_gb=1.0) == 8
    assert memory.fit_batch(8, 10**12, budget_gb=1.0) == 1  # never below 1


def test_a_method_batch_shrinks_to_fit_a_small_budget_with_the_same_map(monkeypatch) -> None:
    model = Counted().eval()
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    seen: list[int] = []  # the masked batches RISE hands to the forward-only engine
    forward = Context.forward
    monkeypatch.setattr(Context, "forward", lambda ctx, xs: seen.append(xs.shape[0]) or forward(ctx, xs))
    want = explainers.explain("rise", model, x, 0, n_masks=64, batch_size=64)
    assert max(seen) == 64
    per = memory.activations(model, x).per_image(grad=False)
    monkeypatch.setattr(memory, "BUDGET_GB", 5 * per / 1024**3)  # room for 5 images
    seen.clear()
    got = explainers.explain("rise", model, x, 0, n_masks=64, batch_size=64)
    assert max(seen) == 5
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert engine(Counted().eval(), x).batch_size <= 5  # an engine built under this budget runs chunks that fit it


BATCHED = [n for n in explainers.names() if "batch_size" in explainers.get(n).param_map]


def test_every_batched_method_gives_the_same_map_whatever_the_batch(shapes) -> None:
    """Batches shrink under memory pressure: the map must not depend on the batch size (seeded draws made up front)."""
    import zoo

    x = shapes.preprocess(zoo.sample_images()["shapes: cross"])
    for name in BATCHED:
        kw = {"n_samples": 40} if name in ("lime", "kernel_shap") else {}  # their defaults cost 10 s for nothing more here
        kw = {"grid_size": 4, "n_design": 8} if name == "sobol" else kw
        a = explainers.explain(name, shapes, x, 2, batch_size=8, **kw)
        b = explainers.explain(name, shapes, x, 2, batch_size=3, **kw)
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5 * float(a.abs().max()), msg=name)
