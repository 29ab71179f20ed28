"""Shared fixtures: tiny models with known answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


class TinyCNN(nn.Module):
    """Conv-ReLU-Conv-ReLU-GAP-Linear with one ReLU module reused twice (like EfficientNet's ReLU6)."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.act = nn.ReLU6()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.bn1(self.conv1(x)))
        h = self.act(self.conv2(h)) + h
        return self.fc(torch.flatten(self.pool(h), 1))


def make_tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = TinyCNN()
    with torch.no_grad():  # non-trivial BatchNorm statistics so folding is exercised
        m.bn1.running_mean.uniform_(-0.2, 0.2)
        m.bn1.running_var.uniform_(0.5, 2.0)
        m.bn1.weight.uniform_(0.5, 1.5)
        m.bn1.bias.uniform_(-0.1, 0.1)
    return m.eval()


@pytest.fixture
def tiny() -> nn.Module:
    return make_tiny()


@pytest.fixture
def tiny_input() -> torch.Tensor:
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="session")
def shapes():
    import zoo

    return zoo.load_model("synthetic_shapes")


@pytest.fixture(scope="session")
def lite0():
    import zoo

    return zoo.load_model("efficientnet_lite0")
