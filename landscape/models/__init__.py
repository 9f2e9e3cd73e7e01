"""Model registry: ``create_model(name)`` and ``list_models()``.

Two families: the CIFAR ResNets of He et al. (resnet20...resnet110, 16/32/64 channels) and the ImageNet-style
ResNets (resnet18...resnet152). Each has a plain twin with identical layers and no skip connections, named
``plainNN`` or, as in the reference implementation of Li et al., ``resnetNN_noshort``.
"""

from __future__ import annotations

import torch.nn as nn

from landscape.errors import LandscapeError
from landscape.models.cifar import CifarResNet
from landscape.models.imagenet import LAYERS, ImageNetResNet

CIFAR_DEPTHS = (20, 32, 44, 56, 110)
IMAGENET_DEPTHS = tuple(sorted(LAYERS))


def _registry() -> dict[str, tuple[str, int, bool]]:
    reg: dict[str, tuple[str, int, bool]] = {}
    for family, depths in (("cifar", CIFAR_DEPTHS), ("imagenet", IMAGENET_DEPTHS)):
        for d in depths:
            reg[f"resnet{d}"] = (family, d, True)
            reg[f"plain{d}"] = (family, d, False)
            reg[f"resnet{d}_noshort"] = (family, d, False)
    return reg


_REGISTRY = _registry()


def list_models() -> list[str]:
    """Sorted names accepted by :func:`create_model` (aliases ``*_noshort`` included)."""
    return sorted(_REGISTRY)


def canonical_name(name: str) -> str:
    """``resnet56_noshort`` -> ``plain56``; other valid names unchanged."""
    family, depth, shortcut = _lookup(name)
    return f"{'resnet' if shortcut else 'plain'}{depth}"


def model_family(name: str) -> str:
    """``cifar`` (16/32/64 channels, 32x32 inputs) or ``imagenet`` (64-2048 channels, 224x224 inputs)."""
    return _lookup(name)[0]


def _lookup(name: str) -> tuple[str, int, bool]:
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise LandscapeError(f"unknown architecture {name!r}; valid names: {', '.join(list_models())}")
    return _REGISTRY[key]


def create_model(name: str, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """Build an untrained model by name.

    Args:
        name: one of :func:`list_models` (case-insensitive).
        num_classes: size of the final linear layer.
        in_channels: image channels (3 for CIFAR/ImageNet, 1 for the digits demo).

    Returns:
        The model, in training mode, with deterministic default initialization given the torch seed.

    Raises:
        LandscapeError: for an unknown name; the message lists every valid name.
    """
    family, depth, shortcut = _lookup(name)
    if family == "cifar":
        model: nn.Module = CifarResNet(depth, shortcut, num_classes, in_channels)
    else:
        block, layers = LAYERS[depth]
        model = ImageNetResNet(block, layers, shortcut, num_classes, in_channels)
    _he_init(model)
    model.arch = canonical_name(name)  # type: ignore[attr-defined]
    return model


def _he_init(model: nn.Module) -> None:
    """He et al. 2015 initialization (normal, fan_out, ReLU gain) for convolutions, as torchvision does.

    PyTorch's default conv init is ~3x smaller in variance; deep plain nets train markedly worse with it.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


__all__ = ["create_model", "list_models", "canonical_name", "model_family", "CIFAR_DEPTHS", "IMAGENET_DEPTHS"]
