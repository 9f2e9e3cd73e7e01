"""CIFAR-style ResNets and their plain (no skip connection) twins.

Parameter names deliberately match the public reference implementation of Li et al. 2018
(``conv1, bn1, layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2}, layer{2,3}.0.shortcut.{0,1}, linear``) so its
checkpoints load without any key remapping.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; ``shortcut=True`` adds the identity/projection of He et al. 2015."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.has_shortcut = shortcut
        if shortcut:
            # Option B of He et al.: a 1x1 projection only where the shape changes. An empty Sequential
            # is the identity and owns no parameters, so the state_dict keys match the reference.
            self.shortcut = nn.Sequential()
            if stride != 1 or in_planes != planes:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                )

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): the block's output after its last BN, before the addition (He et al. Fig. 7)."""
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual(x)
        if self.has_shortcut:
            out = out + self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    """3 stages of 16/32/64 channels (times ``width``: the reference's wide ResNets ``wrn56_k``) with n
    BasicBlocks each (depth = 6n + 2), GAP, linear."""

    def __init__(self, depth: int, shortcut: bool = True, num_classes: int = 10, in_channels: int = 3,
                 width: int = 1):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...); got {depth}")
        n = (depth - 2) // 6
        self.depth, self.shortcut, self.width = depth, shortcut, width
        self.conv1 = nn.Conv2d(in_channels, 16 * width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16 * width)
        planes_in = 16 * width
        for stage, (planes, stride) in enumerate([(16 * width, 1), (32 * width, 2), (64 * width, 2)], start=1):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(planes_in, planes, stride if i == 0 else 1, shortcut))
                planes_in = planes
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        # Global average pooling rather than the reference's fixed avg_pool2d(8): identical on 32x32
        # inputs, and it also works on the 8x8 digits and any other input size. Written as a mean (what
        # adaptive_avg_pool2d(., 1) computes, bit for bit) because vmap has no batching rule for the as_strided_
        # that adaptive_avg_pool2d applies to channels_last tensors, and falls back to a slow per-sample loop.
        out = out.mean((2, 3))
        return self.linear(out)
