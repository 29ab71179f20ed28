"""The counterfactual check of a region on a toy model whose answer is known: only a 2 x 2 box of channel 0 counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import metrics
from core.errors import ParameterError
from metrics import counterfactual
from metrics.deletion_insertion import substrate_image


class BoxModel(nn.Module):
    """logit 0 = 10 x (mean of channel 0 in the box rows 2-3, cols 2-3); logit 1 = 0. So p(0) = sigmoid(10 m)."""

    def __init__(self) -> None:
        super().__init__()
        box = torch.zeros(1, 1, 8, 8)
        box[..., 2:4, 2:4] = 1.0
        self.register_buffer("box", box)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 10.0 * (x[:, :1] * self.box).sum((1, 2, 3)) / 4.0
        return torch.stack([s, torch.zeros_like(s)], 1)


def _region(rows: slice, cols: slice) -> torch.Tensor:
    r = torch.zeros(8, 8, dtype=torch.bool)
    r[rows, cols] = True
    return r


BOX = _region(slice(2, 4), slice(2, 4))
AROUND = _region(slice(1, 5), slice(1, 5))  # the box and its ring of neighbours
ELSEWHERE = _region(slice(5, 8), slice(5, 8))


def _lit() -> torch.Tensor:
    """Two images: zero everywhere but the box (1 on every channel)."""
    x = torch.zeros(2, 3, 8, 8)
    x[..., 2:4, 2:4] = 1.0
    return x


def test_removing_the_box_takes_the_evidence_away_and_removing_elsewhere_does_nothing():
    model, x = BoxModel().eval(), _lit()
    sig = 1 / (1 + math.exp(-10))
    r = metrics.remove_region(model, x, BOX, 0, substrate="zero")
    torch.testing.assert_close(r.before, torch.full((2,), sig))
    torch.testing.assert_close(r.after, torch.full((2,), 0.5))  # the zero substrate: logit 0 becomes 0
    torch.testing.assert_close(r.delta, torch.full((2,), 0.5 - sig))
    assert r.pred_before.tolist() == [0, 0] and r.pred_after.tolist() in ([0, 0], [1, 1])  # a tie after
    # ROAD's imputation from the box's zero neighbours (no noise): the box becomes 0 as well
    imp = metrics.remove_region(model, x, BOX, 0, substrate="impute", noise=0.0)
    torch.testing.assert_close(imp.after, torch.full((2,), 0.5))
    assert "imputation" in imp.how
    # the region the model does not look at: no change, whatever the substrate
    for substrate in counterfactual.SUBSTRATES:
        torch.testing.assert_close(metrics.remove_region(model, x, ELSEWHERE, 0, substrate=substrate).delta, torch.zeros(2), atol=1e-6, rtol=0)


def test_imputation_keeps_a_smooth_image_and_mean_blur_substrates_are_the_deletion_curves():
    model = BoxModel().eval()
    flat = torch.full((1, 3, 8, 8), 0.3)
    got = metrics.remove_region(model, flat, AROUND, 0, substrate="impute", noise=0.0)
    torch.testing.assert_close(got.after, got.before)  # filled from a constant border: the same constant
    x = _lit()[:1]
    for substrate in ("mean", "blur"):
        want = torch.where(BOX, substrate_image(x, substrate), x)
        torch.testing.assert_close(counterfactual.filled(x, BOX, substrate), want)


def test_pasting_the_box_onto_blank_images_brings_the_evidence():
    model = BoxModel().eval()
    blank = torch.zeros(3, 3, 8, 8)
    r = metrics.paste_region(model, blank, _lit()[:1], BOX, 0)
    torch.testing.assert_close(r.before, torch.full((3,), 0.5))
    torch.testing.assert_close(r.after, torch.full((3,), 1 / (1 + math.exp(-10))))
    # pasting a region the model ignores changes nothing; one source per image works too
    torch.testing.assert_close(metrics.paste_region(model, blank, _lit()[:1].expand(3, -1, -1, -1), ELSEWHERE, 0).delta, torch.zeros(3))


def test_originals_and_changed_images_go_through_one_batched_forward(monkeypatch):
    calls = []
    real = counterfactual.forward_logits

    def spy(net, x):
        calls.append(x.shape[0])
        return real(net, x)

    monkeypatch.setattr(counterfactual, "forward_logits", spy)
    metrics.remove_region(BoxModel().eval(), _lit(), BOX, 0, substrate="zero")
    assert calls == [4]  # 2 originals + 2 changed


def test_bad_input_is_refused_with_a_reason():
    model, x = BoxModel().eval(), _lit()
    with pytest.raises(ParameterError, match="substrate must be one of"):
        metrics.remove_region(model, x, BOX, 0, substrate="paint")
    with pytest.raises(ParameterError, match="region shape"):
        metrics.remove_region(model, x, torch.ones(4, 4, dtype=torch.bool), 0)
    with pytest.raises(ParameterError, match="source"):
        metrics.paste_region(model, x, torch.zeros(3, 3, 8, 8), BOX, 0)
