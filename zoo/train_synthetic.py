"""Train the synthetic-shapes CNN (seeded, a few minutes on CPU).

Usage: ``python -m zoo.train_synthetic [--epochs 8] [--out zoo/weights/shapes_cnn.pt]``.
Writes the state dict and a JSON file beside it with the test accuracy reached.

``--permuted-labels`` trains the same network on randomly permuted labels (Adebayo et al. 2018's data
randomization test): 500 training images, no flips, 150 epochs so that it memorizes them; it writes
``zoo/weights/shapes_cnn_permuted.pt`` and reports the accuracy on the permuted training labels
(memorization) and on the true test labels (chance, 25%).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.synthetic import CLASSES, MEAN, STD, ShapesCNN, make_dataset

WEIGHTS = Path(__file__).parent / "weights" / "shapes_cnn.pt"
PERMUTED_WEIGHTS = Path(__file__).parent / "weights" / "shapes_cnn_permuted.pt"


def train(epochs: int = 8, n_train: int = 12000, n_test: int = 2000, seed: int = 0, out: Path = WEIGHTS, permute_labels: bool = False) -> float:
    """Train, evaluate on a held-out seeded test set, save; returns the test accuracy."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    x, y, _ = make_dataset(n_train, seed=seed)
    if permute_labels:
        y = y[torch.randperm(n_train, generator=torch.Generator().manual_seed(seed + 1))]
    xt, yt, _ = make_dataset(n_test, seed=seed + 10_000)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    x, xt = (x - mean) / std, (xt - mean) / std
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
            flip = (torch.rand(len(idx), generator=gen) < 0.5) & (not permute_labels)
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
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return acc


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)])
    return float((pred == y).float().mean())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--permuted-labels", action="store_true", help="data randomization: train on permuted labels")
    args = ap.parse_args()
    if args.permuted_labels:
        acc = train(epochs=args.epochs if args.epochs != 8 else 150, n_train=500, seed=args.seed, out=args.out or PERMUTED_WEIGHTS, permute_labels=True)
    else:
        acc = train(epochs=args.epochs, seed=args.seed, out=args.out or WEIGHTS)
    print(f"test accuracy: {acc:.4f}")
