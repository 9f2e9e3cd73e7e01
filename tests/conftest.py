"""Shared fixtures: a small CIFAR-style network with non-trivial weights and BN statistics, real digits data."""

from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from landscape.checkpoints import save_checkpoint  # noqa: E402
from landscape.data import load_data  # noqa: E402
from landscape.models import create_model  # noqa: E402

torch.set_num_threads(2)


def make_model(arch: str = "resnet20", seed: int = 0, in_channels: int = 1) -> torch.nn.Module:
    """A model whose BN layers hold non-default statistics, so eval mode differs from a fresh net."""
    torch.manual_seed(seed)
    m = create_model(arch, num_classes=10, in_channels=in_channels)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
                mod.weight.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
    return m.eval()


@pytest.fixture
def model() -> torch.nn.Module:
    return make_model()


@pytest.fixture(scope="session")
def digits_small():
    return load_data("digits", "train", samples=200)


@pytest.fixture
def ckpt(tmp_path, model) -> str:
    p = str(tmp_path / "r20.pt")
    save_checkpoint(p, model, "resnet20", dataset="digits")
    return p
