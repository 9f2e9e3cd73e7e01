"""The rest of the reference implementation's CIFAR model zoo (Li et al. 2018): VGG-9 and the CIFAR DenseNet.

Parameter names follow the reference (``features.{i}``, ``fc.{0,1}``, ``classifier`` for VGG-9; ``conv1``,
``dense{1..4}.{i}.{bn1,conv1,bn2,conv2}``, ``trans{1..3}.{bn,conv}``, ``bn``, ``linear`` for DenseNet) so its
published checkpoints load without any key remapping. The wide ResNets ``wrn56_k`` are
:class:`landscape.models.cifar.CifarResNet` with ``width=k``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

VGG9_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M")


class VGG(nn.Module):
    """The reference's VGG: 3x3 conv + BN + ReLU stacks with max-pooling, one hidden fully connected layer
    (Linear + BatchNorm1d + ReLU) and a linear classifier.

    Args:
        layers: channel counts, ``"M"`` for a 2x2 max-pool (ceil mode, as the reference).
        num_classes: classifier size.
        in_channels: image channels.
        input_size: the input's side in pixels; the hidden layer's width depends on it (32 for CIFAR).
    """

    def __init__(self, layers=VGG9_LAYERS, num_classes: int = 10, in_channels: int = 3, input_size: int = 32):
        super().__init__()
        mods: list[nn.Module] = []
        side, ch = input_size, in_channels
        for v in layers:
            if v == "M":
                mods.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
                side = math.ceil(side / 2)
            else:
                mods += [nn.Conv2d(ch, v, kernel_size=3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                ch = v
        self.features = nn.Sequential(*mods)
        self.n_maps = ch
        self.fc = nn.Sequential(nn.Linear(ch * side * side, ch), nn.BatchNorm1d(ch), nn.ReLU())
        self.classifier = nn.Linear(ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x).flatten(1)
        return self.classifier(self.fc(out))


class DenseBottleneck(nn.Module):
    """BN-ReLU-1x1 conv (4 x growth) - BN-ReLU-3x3 conv (growth), concatenated before the input."""

    def __init__(self, in_planes: int, growth_rate: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth_rate, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth_rate)
        self.conv2 = nn.Conv2d(4 * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class Transition(nn.Module):
    def __init__(self, in_planes: int, out_planes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(nn.Module):
    """The reference's CIFAR DenseNet (Huang et al.): a 3x3 stem, four dense blocks with halving transitions,
    BN-ReLU, global average pooling, linear. ``DenseNet((6, 12, 24, 16), 32)`` is its ``densenet121``."""

    def __init__(self, nblocks=(6, 12, 24, 16), growth_rate: int = 32, reduction: float = 0.5,
                 num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.growth_rate = growth_rate
        planes = 2 * growth_rate
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=3, padding=1, bias=False)
        for i, n in enumerate(nblocks, start=1):
            setattr(self, f"dense{i}", nn.Sequential(*(DenseBottleneck(planes + j * growth_rate, growth_rate)
                                                       for j in range(n))))
            planes += n * growth_rate
            if i < len(nblocks):
                out = int(math.floor(planes * reduction))
                setattr(self, f"trans{i}", Transition(planes, out))
                planes = out
        self.nblocks = len(nblocks)
        self.bn = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        for i in range(1, self.nblocks):
            out = getattr(self, f"trans{i}")(getattr(self, f"dense{i}")(out))
        out = getattr(self, f"dense{self.nblocks}")(out)
        # The reference pools with avg_pool2d(., 4): the whole 4x4 map of a 32x32 input. A mean over the map is
        # the same there and also works on other input sizes.
        out = F.relu(self.bn(out)).mean((2, 3))
        return self.linear(out)
