"""Train the synthetic-shapes CNN (seeded, a few minutes on CPU).

Usage: ``python -m zoo.train_synthetic [--epochs 8] [--out zoo/weights/shapes_cnn.pt]``.
Writes the state dict and a JSON file beside it with the test accuracy reached.

``--permuted-labels`` trains the same network on randomly permuted labels (Adebayo et al. 2018's data
randomization test): 500 training images, no flips, 150 epochs so that it memorizes them; it writes
``zoo/weights/shapes_cnn_permuted.pt`` and reports the accuracy on the permuted training labels
(memorization) and on the true test labels (chance, 25%).

``--shortcut`` trains it on ``make_shortcut_dataset(..., marker="train")`` (95% of the images carry their class's
corner marker, 5% none; no flips, which would move the markers; 3 epochs) and writes
``zoo/weights/shapes_cnn_shortcut.pt`` with its accuracy on the three test sets (marker agrees, absent, another
class's), seed ``SHORTCUT_TEST_SEED``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.synthetic import CLASSES, MARKER_MODES, MEAN, SHORTCUT_TEST_SEED, STD, TRAIN_AGREEMENT, ShapesCNN, make_dataset, make_shortcut_dataset

WEIGHTS = Path(__file__).parent / "weights" / "shapes_cnn.pt"
PERMUTED_WEIGHTS = Path(__file__).parent / "weights" / "shapes_cnn_permuted.pt"
SHORTCUT_WEIGHTS = Path(__file__).parent / "weights" / "shapes_cnn_shortcut.pt"
SHORTCUT_EPOCHS = 3


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def train(
    epochs: int = 8, n_train: int = 12000, n_test: int = 2000, seed: int = 0, out: Path = WEIGHTS, permute_labels: bool = False, shortcut: bool = False
) -> float:
    """Train, evaluate on a held-out seeded test set, save; returns the test accuracy (shortcut: marker agreeing)."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    x, y = make_shortcut_dataset(n_train, seed, "train")[:2] if shortcut else make_dataset(n_train, seed=seed)[:2]
    if permute_labels:
        y = y[torch.randperm(n_train, generator=torch.Generator().manual_seed(seed + 1))]
    xt, yt = make_shortcut_dataset(n_test, SHORTCUT_TEST_SEED, "agree")[:2] if shortcut else make_dataset(n_test, seed=seed + 10_000)[:2]
    x, xt = _normalize(x), _normalize(xt)
    model = ShapesCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * (n_train // 64))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n_train, generator=gen)
        for i in range(n_train // 64):
            idx = perm[i * 64 : (i + 1) * 64]
            xb = x[idx]
            flip = (torch.rand(len(idx), generator=gen) < 0.5) & (not permute_labels) & (not shortcut)
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % max(1, epochs // 8) == 0 or epoch + 1 == epochs:  # about 8 reports per run
            acc = evaluate(model, xt, yt)
            print(f"epoch {epoch + 1}/{epochs}  loss {loss.item():.3f}  test acc {acc:.4f}  ({time.time() - t0:.0f} s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    meta = {"classes": CLASSES, "test_accuracy": acc, "n_train": n_train, "n_test": n_test, "epochs": epochs, "seed": seed}
    if permute_labels:
        meta["permuted_labels"] = True
        meta["train_accuracy_on_permuted_labels"] = evaluate(model, x, y)
        print(f"accuracy on the permuted training labels (memorization): {meta['train_accuracy_on_permuted_labels']:.4f}")
    if shortcut:
        meta.update(shortcut_accuracies(model, n_test))
        print("  ".join(f"{k} {v:.4f}" for k, v in meta["shortcut_accuracy"].items()))
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return acc


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)])
    return float((pred == y).float().mean())


def shortcut_accuracies(model: torch.nn.Module, n: int) -> dict:
    """Accuracy on the three test sets of the shortcut model (the same ``n`` images, marker agreeing / absent /
    another class's), as stored in its JSON file."""
    acc = {}
    for mode in MARKER_MODES[1:]:
        xt, yt = make_shortcut_dataset(n, SHORTCUT_TEST_SEED, mode)[:2]
        acc[mode] = evaluate(model, _normalize(xt), yt)
    return {"shortcut_accuracy": acc, "shortcut_test_seed": SHORTCUT_TEST_SEED, "marker_agreement_in_training": TRAIN_AGREEMENT}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--permuted-labels", action="store_true", help="data randomization: train on permuted labels")
    ap.add_argument("--shortcut", action="store_true", help="train on the shortcut variant (class markers in 95%% of the images)")
    args = ap.parse_args()
    if args.shortcut:
        acc = train(epochs=args.epochs if args.epochs != 8 else SHORTCUT_EPOCHS, seed=args.seed, out=args.out or SHORTCUT_WEIGHTS, shortcut=True)
    elif args.permuted_labels:
        acc = train(epochs=args.epochs if args.epochs != 8 else 150, n_train=500, seed=args.seed, out=args.out or PERMUTED_WEIGHTS, permute_labels=True)
    else:
        acc = train(epochs=args.epochs, seed=args.seed, out=args.out or WEIGHTS)
    print(f"test accuracy: {acc:.4f}")
