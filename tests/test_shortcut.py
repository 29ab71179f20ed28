"""The shortcut variant of the synthetic shapes: exact masks, the marker as the only difference between the test
sets, and a committed model that provably relies on the marker."""

from __future__ import annotations

import json

import pytest
import torch

import zoo
from core.errors import ParameterError
from metrics import shortcut
from zoo.synthetic import (
    CLASSES,
    MARKER_COLOURS,
    MARKER_SIZE,
    SHORTCUT_TEST_SEED,
    TRAIN_AGREEMENT,
    make_dataset,
    make_shortcut_dataset,
    marker_class,
    marker_mask,
)

SEED = 4242


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """Images [n,3,H,W] in [0,1] -> uint8 values [n,H,W,3]."""
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def test_each_class_has_its_own_marker_square_in_its_own_corner():
    want = {0: (slice(2, 7), slice(2, 7)), 1: (slice(2, 7), slice(57, 62)), 2: (slice(57, 62), slice(2, 7)), 3: (slice(57, 62), slice(57, 62))}
    for cls, (rows, cols) in want.items():
        m = torch.zeros(64, 64, dtype=torch.bool)
        m[rows, cols] = True
        assert torch.equal(torch.from_numpy(marker_mask(cls)), m)
        assert int(m.sum()) == MARKER_SIZE**2
    assert len(set(MARKER_COLOURS)) == len(CLASSES)


def test_the_marker_masks_and_colours_are_pixel_exact_and_change_nothing_else():
    x0, y0, shape0 = make_dataset(40, seed=SEED)  # the same draws: the shortcut set is this set plus markers
    for mode in ("agree", "other", "train"):
        x, y, shape, marker = make_shortcut_dataset(40, SEED, mode)
        assert torch.equal(y, y0)
        px, px0 = _pixels(x), _pixels(x0)
        cls = marker_class(marker)
        for i in range(40):
            if cls[i] < 0:
                assert not marker[i].any()
                continue
            assert torch.equal(marker[i], torch.from_numpy(marker_mask(int(cls[i]))))
            assert (px[i][marker[i]] == torch.tensor(MARKER_COLOURS[int(cls[i])], dtype=torch.uint8)).all()  # exactly the class colour
        assert torch.equal(px[~marker], px0[~marker])  # every other pixel is the plain set's
        assert torch.equal(shape, shape0 & ~marker)  # the shape's visible pixels, never under the marker
        assert not (shape & marker).any()
    # inside a shape mask every pixel has the shape's one colour (the mask is exactly the drawn shape)
    for i in range(40):
        vals = px0[i][shape0[i]]
        assert (vals == vals[0]).all()


def test_modes_agree_absent_other_and_train():
    _, y, _, m_agree = make_shortcut_dataset(200, SEED, "agree")
    assert torch.equal(marker_class(m_agree), y)
    x_absent, _, _, m_absent = make_shortcut_dataset(200, SEED, "absent")
    assert not m_absent.any() and torch.equal(x_absent, make_dataset(200, seed=SEED)[0])
    other = marker_class(make_shortcut_dataset(200, SEED, "other")[3])
    assert (other != y).all() and (other >= 0).all()
    assert {int(((other - y) % 4 == k).sum() > 40) for k in (1, 2, 3)} == {1}  # the three other classes, about evenly
    train = marker_class(make_shortcut_dataset(200, SEED, "train")[3])
    carried = train >= 0
    assert torch.equal(train[carried], y[carried])  # in training a marker is always its class's
    assert abs(float(carried.float().mean()) - TRAIN_AGREEMENT) < 0.05  # 95% +- 3 binomial sd at n = 200


def test_seeded_and_the_first_n_images_do_not_depend_on_n():
    a = make_shortcut_dataset(6, SEED, "train")
    b = make_shortcut_dataset(6, SEED, "train")
    c = make_shortcut_dataset(12, SEED, "train")
    for u, v, w in zip(a, b, c, strict=True):
        assert torch.equal(u, v) and torch.equal(u, w[:6])
    with pytest.raises(ParameterError, match="marker must be one of"):
        make_shortcut_dataset(2, 0, "sometimes")


def test_the_committed_model_relies_on_the_marker():
    meta = json.loads((zoo.catalog.WEIGHTS_DIR / "shapes_cnn_shortcut.json").read_text())
    stored = meta["shortcut_accuracy"]
    assert stored["agree"] - stored["other"] >= 0.30
    loaded = zoo.load_model("synthetic_shapes_shortcut")
    acc = shortcut.accuracies(loaded, 150)  # the same 150 images in each set, seed SHORTCUT_TEST_SEED
    assert meta["shortcut_test_seed"] == SHORTCUT_TEST_SEED
    assert acc["agree"] >= 0.95
    assert acc["agree"] - acc["other"] >= 0.30
    for mode, value in acc.items():
        assert value == pytest.approx(stored[mode], abs=0.1)  # 150 of the 2000 images it was measured on
