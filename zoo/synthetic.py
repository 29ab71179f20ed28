"""Synthetic shapes: a procedurally generated image set with a known answer.

Each 64 x 64 image holds exactly one *target* shape (a filled circle, square, triangle or
cross: the class) among distractors (thin lines, hollow rings, small dots) on a textured
background, with a ground-truth mask of the target's pixels. A small CNN trained on it
(``scripts``: ``python -m zoo.train_synthetic``) gives the metrics a known answer: the
evidence for the class lies inside the mask.

``python -m zoo.synthetic --write DIR --n 200 --seed 1`` writes a labelled folder (``DIR/<class>/<i>.png``
with its mask beside it as ``<i>.mask.png``): a dataset for ``python -m metrics --images DIR`` without the internet.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from skimage import draw
from torch import nn

from core.errors import ParameterError

CLASSES: list[str] = ["circle", "square", "triangle", "cross"]
SIZE: int = 64


@dataclass(frozen=True)
class ShapeSample:
    """One image (uint8 [H,W,3]), its label (index in CLASSES) and mask (bool [H,W])."""

    image: np.ndarray
    label: int
    mask: np.ndarray


def _background(rng: np.random.Generator) -> np.ndarray:
    """A low-contrast texture: two random sinusoidal gratings plus pixel noise, [H,W,3]."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    base = rng.uniform(0.25, 0.6, size=3).astype(np.float32)
    img = np.broadcast_to(base, (SIZE, SIZE, 3)).copy()
    for _ in range(2):
        theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.1, 0.5), rng.uniform(0, 6.3)
        wave = np.sin(freq * (xx * np.cos(theta) + yy * np.sin(theta)) + phase)
        img += 0.08 * wave[..., None] * rng.uniform(-1, 1, size=3).astype(np.float32)
    img += rng.normal(0, 0.04, size=img.shape).astype(np.float32)
    return img


def _target_mask(label: int, cy: float, cx: float, r: float, angle: float) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    shape = (SIZE, SIZE)
    if label == 0:  # circle
        rr, cc = draw.disk((cy, cx), r, shape=shape)
    elif label == 1:  # square, rotated
        corners = [(np.cos(angle + k * np.pi / 2), np.sin(angle + k * np.pi / 2)) for k in range(4)]
        ys = [cy + r * 1.2 * s for c, s in corners]
        xs = [cx + r * 1.2 * c for c, s in corners]
        rr, cc = draw.polygon(ys, xs, shape=shape)
    elif label == 2:  # triangle, rotated
        ang = [angle + k * 2 * np.pi / 3 for k in range(3)]
        rr, cc = draw.polygon([cy + r * 1.3 * np.sin(a) for a in ang], [cx + r * 1.3 * np.cos(a) for a in ang], shape=shape)
    else:  # cross (plus sign), arm width r/2.5
        w = max(r / 2.5, 1.5)
        r1, c1 = draw.rectangle((cy - w, cx - r), (cy + w, cx + r), shape=shape)
        r2, c2 = draw.rectangle((cy - r, cx - w), (cy + r, cx + w), shape=shape)
        rr, cc = np.concatenate([r1.ravel(), r2.ravel()]), np.concatenate([c1.ravel(), c2.ravel()])
    mask[rr.astype(int), cc.astype(int)] = True
    return mask


def _distractors(img: np.ndarray, rng: np.random.Generator, keep_out: np.ndarray) -> None:
    """Draw 2-4 thin lines, hollow rings and dots, never over the target (in place)."""
    for _ in range(int(rng.integers(2, 5))):
        kind = rng.integers(3)
        colour = rng.uniform(0, 1, size=3).astype(np.float32)
        if kind == 0:
            y0, x0, y1, x1 = rng.integers(0, SIZE, size=4)
            rr, cc = draw.line(int(y0), int(x0), int(y1), int(x1))
        elif kind == 1:
            cy, cx = rng.uniform(6, SIZE - 6, size=2)
            rr, cc = draw.circle_perimeter(int(cy), int(cx), int(rng.integers(3, 7)), shape=(SIZE, SIZE))
        else:
            cy, cx = rng.uniform(3, SIZE - 3, size=2)
            rr, cc = draw.disk((cy, cx), 1.5, shape=(SIZE, SIZE))
        ok = ~keep_out[rr, cc]
        img[rr[ok], cc[ok]] = colour


def make_sample(rng: np.random.Generator, label: int | None = None) -> ShapeSample:
    """Draw one sample; ``label`` None picks a class uniformly."""
    if label is None:
        label = int(rng.integers(len(CLASSES)))
    img = _background(rng)
    r = float(rng.uniform(7, 12))
    cy, cx = rng.uniform(r + 3, SIZE - r - 3, size=2)
    mask = _target_mask(label, float(cy), float(cx), r, float(rng.uniform(0, np.pi)))
    # the target's colour contrasts with the local background
    colour = rng.uniform(0, 1, size=3).astype(np.float32)
    if np.abs(colour - img[mask].mean(0)).max() < 0.35:
        colour = 1.0 - colour
    _distractors(img, rng, keep_out=mask)
    img[mask] = colour
    image = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    return ShapeSample(image=image, label=label, mask=mask)


def make_dataset(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` samples as tensors: images float [n,3,64,64] in [0,1], labels [n], masks bool [n,64,64]."""
    rng = np.random.default_rng(seed)
    samples = [make_sample(rng) for _ in range(n)]
    x = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).float() / 255.0
    y = torch.tensor([s.label for s in samples])
    m = torch.from_numpy(np.stack([s.mask for s in samples]))
    return x, y, m


# ---------------------------------------------------------------------------------------
# The shortcut variant: a class-specific marker that the model can use instead of the shape.

MARKER_MODES: tuple[str, ...] = ("train", "agree", "absent", "other")
MARKER_SIZE: int = 5  # px per side
MARKER_MARGIN: int = 2  # px from the image's edges
# one pure colour and one corner per class (circle, square, triangle, cross)
MARKER_COLOURS: tuple[tuple[int, int, int], ...] = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0))
MARKER_CORNERS: tuple[tuple[str, str], ...] = (("top", "left"), ("top", "right"), ("bottom", "left"), ("bottom", "right"))
TRAIN_AGREEMENT: float = 0.95  # share of training images that carry their class's marker (the others: none)
SHORTCUT_TEST_SEED: int = 10_000  # the test sets of the shortcut model (training uses seed 0)


def marker_mask(cls: int) -> np.ndarray:
    """The pixels of class ``cls``'s marker: a MARKER_SIZE square MARKER_MARGIN px from its corner, bool [64,64]."""
    vertical, horizontal = MARKER_CORNERS[cls]
    top = MARKER_MARGIN if vertical == "top" else SIZE - MARKER_MARGIN - MARKER_SIZE
    left = MARKER_MARGIN if horizontal == "left" else SIZE - MARKER_MARGIN - MARKER_SIZE
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[top : top + MARKER_SIZE, left : left + MARKER_SIZE] = True
    return mask


def _marker_classes(labels: np.ndarray, marker: str, seed: int) -> np.ndarray:
    """Which class's marker each image carries (-1: none); drawn from its own stream, one draw pair per image, so
    the n first images of a set are the same for every n and every mode."""
    rng = np.random.default_rng([seed, 17])
    draws = [(rng.random(), int(rng.integers(1, len(CLASSES)))) for _ in labels]
    u = np.array([d[0] for d in draws])
    shift = np.array([d[1] for d in draws], dtype=np.int64)
    if marker == "agree":
        return labels.copy()
    if marker == "absent":
        return np.full_like(labels, -1)
    if marker == "other":
        return (labels + shift) % len(CLASSES)
    return np.where(u < TRAIN_AGREEMENT, labels, -1)


def make_shortcut_dataset(n: int, seed: int, marker: str = "train") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The shapes set with a shortcut: each class has its marker (a 5 x 5 square of a pure colour in a corner of its
    own, ``MARKER_COLOURS`` / ``MARKER_CORNERS``), drawn over everything else.

    ``marker``: "train" (95% of the images carry their class's marker, 5% none), "agree" (every image its class's
    marker), "absent" (none), "other" (every image the marker of another class, uniformly). The shapes, backgrounds
    and distractors depend on ``seed`` only, so the four modes of one seed differ in the marker alone.
    Returns images float [n,3,64,64] in [0,1], labels [n], shape masks and marker masks bool [n,64,64]; a shape
    mask holds the shape's visible pixels (a marker over a shape's tip hides it), so the two masks never overlap.
    """
    if marker not in MARKER_MODES:
        raise ParameterError(f"marker must be one of {', '.join(MARKER_MODES)}; got {marker!r}")
    if n < 0:
        raise ParameterError(f"n must be >= 0; got {n}")
    rng = np.random.default_rng(seed)
    samples = [make_sample(rng) for _ in range(n)]
    labels = np.array([s.label for s in samples], dtype=np.int64)
    images = np.stack([s.image for s in samples]) if n else np.zeros((0, SIZE, SIZE, 3), np.uint8)
    shapes = np.stack([s.mask for s in samples]) if n else np.zeros((0, SIZE, SIZE), bool)
    markers = np.zeros_like(shapes)
    for i, cls in enumerate(_marker_classes(labels, marker, seed)):
        if cls >= 0:
            markers[i] = marker_mask(int(cls))
            images[i][markers[i]] = MARKER_COLOURS[cls]
            shapes[i] &= ~markers[i]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.from_numpy(labels), torch.from_numpy(shapes), torch.from_numpy(markers)


def marker_class(markers: torch.Tensor) -> torch.Tensor:
    """Which class's marker each mask [n,64,64] shows (read from its corner) -> long [n], -1 where there is none."""
    out = torch.full((markers.shape[0],), -1, dtype=torch.long)
    for cls in range(len(CLASSES)):
        out[(markers & torch.from_numpy(marker_mask(cls))).flatten(1).any(1)] = cls
    return out


class ShapesCNN(nn.Module):
    """A small CNN ending in global average pooling + one linear layer (so CAM applies)."""

    def __init__(self, num_classes: int = len(CLASSES)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def write_folder(folder: str | Path, n: int, seed: int) -> list[Path]:
    """Write ``n`` seeded samples as an ImageFolder layout: ``folder/<class>/<i:05d>.png`` and its mask
    ``<i:05d>.mask.png`` (white = the target shape). Returns the image paths."""
    from PIL import Image

    if n < 1:
        raise ParameterError("n must be >= 1")
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        s = make_sample(rng)
        d = folder / CLASSES[s.label]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(s.image).save(d / f"{i:05d}.png")
        Image.fromarray(s.mask.astype(np.uint8) * 255).save(d / f"{i:05d}.mask.png")
        paths.append(d / f"{i:05d}.png")
    return paths


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m zoo.synthetic", description="Write synthetic shapes as a labelled image folder with masks.")
    ap.add_argument("--write", required=True, metavar="DIR", help="the folder to write (one sub-folder per class)")
    ap.add_argument("--n", type=int, default=200, help="how many images")
    ap.add_argument("--seed", type=int, default=1, help="the random seed (training used 0 and 10000)")
    args = ap.parse_args()
    written = write_folder(args.write, args.n, args.seed)
    print(f"wrote {len(written)} images and their masks under {args.write}")
