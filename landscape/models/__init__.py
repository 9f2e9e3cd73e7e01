"""Model registry: ``create_model(name)``, ``list_models()``, ``register_model(name, factory)`` and the
detection of a built-in architecture from a state_dict's keys and shapes.

Built in: the CIFAR ResNets of He et al. (resnet20...resnet110, 16/32/64 channels), the ImageNet-style ResNets
(resnet18...resnet152, torchvision's names), each with a plain twin with identical layers and no skip
connections (``plainNN``, or as in the reference implementation of Li et al. ``resnetNN_noshort``), and the rest
of the reference's CIFAR zoo: ``vgg9``, ``densenet121``, the wide ResNets ``wrn56_{2,4,8}`` and their
``_noshort`` twins. Any other network: :func:`register_model` from Python, or ``--model`` on the CLI
(:mod:`landscape.models.external`).
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from landscape.errors import LandscapeError
from landscape.models.cifar import CifarResNet
from landscape.models.imagenet import LAYERS, ImageNetResNet
from landscape.models.zoo import VGG, DenseNet

CIFAR_DEPTHS = (20, 32, 44, 56, 110)
IMAGENET_DEPTHS = tuple(sorted(LAYERS))
WRN_WIDTHS = (2, 4, 8)


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture.

    Attributes:
        factory: builds the untrained model; called with those of ``num_classes``, ``in_channels`` and other
            shape hints (``input_size``) that its signature accepts.
        family: ``cifar`` (32x32 inputs), ``imagenet`` (224x224) or ``user``.
        canonical: the name a checkpoint and a surface file record (``resnet56_noshort`` -> ``plain56``).
        builtin: shipped with landscape (the candidates of :func:`detect_arch`; aliases are not).
        he_init: re-initialize convolutions as He et al. (ours, for training from scratch; never a user's).
    """

    factory: Callable[..., nn.Module]
    family: str
    canonical: str
    builtin: bool = False
    he_init: bool = False


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str | Callable | None = None, factory: Callable[..., nn.Module] | None = None, *,
                   family: str = "user", overwrite: bool = False, _canonical: str | None = None,
                   _builtin: bool = False):  # the _ arguments: the built-ins' own registration
    """Register an architecture so ``create_model(name)``, ``--arch name`` and checkpoints recording ``arch:
    name`` can build it (timm-style; also usable as a decorator: ``@register_model`` or
    ``@register_model("name")``).

    Args:
        name: the registry name (case-insensitive; default: the factory's ``__name__``).
        factory: a callable returning an ``nn.Module``; it is passed ``num_classes`` / ``in_channels`` when its
            signature takes them (the checkpoint's values).
        family: ``cifar``, ``imagenet`` or ``user`` (sets default input sizes; informational otherwise).
        overwrite: replace an existing entry (otherwise re-registering a name is an error).

    Returns:
        The factory (so the decorator form leaves the function usable).

    Raises:
        LandscapeError: a name already taken (without ``overwrite``) or a factory that is not callable.
    """
    if callable(name) and factory is None:  # bare @register_model
        return register_model(name.__name__, name, family=family, overwrite=overwrite)
    if factory is None:
        return lambda fn: register_model(name or fn.__name__, fn, family=family, overwrite=overwrite)
    if not callable(factory):
        raise LandscapeError(f"register_model({name!r}, ...) needs a callable factory; got {type(factory).__name__}")
    key = str(name).strip().lower()
    if key in _REGISTRY and not overwrite:
        raise LandscapeError(f"model name {key!r} is already registered; pick another name or pass "
                             "overwrite=True")
    _REGISTRY[key] = ModelEntry(factory, family, _canonical or key, _builtin, he_init=_canonical is not None)
    return factory


def _register_builtins() -> None:
    for d in CIFAR_DEPTHS:
        for shortcut in (True, False):
            canon = f"{'resnet' if shortcut else 'plain'}{d}"
            fn = (lambda d=d, s=shortcut, **kw: CifarResNet(d, s, **kw))
            for alias in ((canon,) if shortcut else (canon, f"resnet{d}_noshort")):
                register_model(alias, fn, family="cifar", _canonical=canon, _builtin=alias == canon)
    for d in IMAGENET_DEPTHS:
        block, layers = LAYERS[d]
        for shortcut in (True, False):
            canon = f"{'resnet' if shortcut else 'plain'}{d}"
            fn = (lambda b=block, ly=layers, s=shortcut, **kw: ImageNetResNet(b, ly, s, **kw))
            for alias in ((canon,) if shortcut else (canon, f"resnet{d}_noshort")):
                register_model(alias, fn, family="imagenet", _canonical=canon, _builtin=alias == canon)
    for k in WRN_WIDTHS:
        for shortcut in (True, False):
            name = f"wrn56_{k}{'' if shortcut else '_noshort'}"
            register_model(name, lambda k=k, s=shortcut, **kw: CifarResNet(56, s, width=k, **kw), family="cifar",
                           _canonical=name, _builtin=True)
    register_model("vgg9", lambda **kw: VGG(**kw), family="cifar", _canonical="vgg9", _builtin=True)
    register_model("densenet121", lambda **kw: DenseNet((6, 12, 24, 16), 32, **kw), family="cifar",
                   _canonical="densenet121", _builtin=True)


_register_builtins()


def list_models() -> list[str]:
    """Sorted names accepted by :func:`create_model` (aliases ``*_noshort`` and registered models included)."""
    return sorted(_REGISTRY)


def canonical_name(name: str) -> str:
    """``resnet56_noshort`` -> ``plain56``; other valid names unchanged (lower case)."""
    return _lookup(name).canonical


def model_family(name: str) -> str:
    """``cifar`` (32x32 inputs), ``imagenet`` (224x224 inputs) or ``user``."""
    return _lookup(name).family


def _lookup(name: str) -> ModelEntry:
    key = str(name).strip().lower()
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise LandscapeError(f"unknown architecture {name!r}; {hint}valid names: {', '.join(list_models())}; "
                             "any other network: --model MODULE:FACTORY, torchvision:NAME or timm:NAME")
    return _REGISTRY[key]


def call_factory(factory: Callable[..., nn.Module], **hints: Any) -> Any:
    """``factory(**hints)`` with only the hints its signature accepts (all of them for ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return factory()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return factory(**hints)
    return factory(**{k: v for k, v in hints.items() if k in params})


def create_model(name: str, num_classes: int = 10, in_channels: int = 3, **hints: Any) -> nn.Module:
    """Build an untrained model by name.

    Args:
        name: one of :func:`list_models` (case-insensitive).
        num_classes: size of the final linear layer.
        in_channels: image channels (3 for CIFAR/ImageNet, 1 for the digits demo).
        **hints: other shape arguments a factory may take (``input_size`` for ``vgg9``).

    Returns:
        The model, in training mode, with deterministic default initialization given the torch seed.

    Raises:
        LandscapeError: for an unknown name (the message names the closest ones) or a factory that does not
            return an ``nn.Module``.
    """
    entry = _lookup(name)
    model = call_factory(entry.factory, num_classes=num_classes, in_channels=in_channels, **hints)
    if not isinstance(model, nn.Module):
        raise LandscapeError(f"the factory registered as {name!r} returned a {type(model).__name__}, not an "
                             "nn.Module")
    if entry.he_init:
        _he_init(model)
    model.arch = entry.canonical  # type: ignore[attr-defined]
    return model


def shape_hints(sd: dict) -> dict[str, int]:
    """``num_classes``, ``in_channels`` (and ``input_size`` for VGG) read from a state_dict's tensors."""
    # The classifier is the last matrix of the state_dict in every family we know (linear, fc, classifier.6,
    # head.fc, heads.head): its rows are the classes.
    head = next((v for k, v in reversed(list(sd.items())) if k.endswith("weight") and v.dim() == 2), None)
    stem = next((v for k, v in sd.items() if k.endswith("weight") and v.dim() == 4), None)
    hints = {"num_classes": int(head.shape[0]) if head is not None else 10,
             "in_channels": int(stem.shape[1]) if stem is not None else 3}
    fc0, convs = sd.get("fc.0.weight"), [v for k, v in sd.items() if k.startswith("features.") and v.dim() == 4]
    if fc0 is not None and fc0.dim() == 2 and convs and convs[-1].shape[0]:  # VGG: the hidden layer's input
        side2 = fc0.shape[1] // convs[-1].shape[0]  # is last-conv channels x side^2 (no channels: not a VGG)
        hints["input_size"] = round(side2 ** 0.5) * 8  # VGG9's three 2x2 max-pools
    return hints


def _signature(model: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def common_prefixes(keys) -> list[str]:
    """The dotted prefixes every key shares (``model.``, ``model.net.``, ...), longest first, then ``""``."""
    parts = [k.split(".")[:-1] for k in keys]
    common: list[str] = []
    for level in zip(*parts) if parts else ():
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return [".".join(common[:i]) + "." for i in range(len(common), 0, -1)] + [""]


def detect_arch(sd: dict) -> tuple[str | None, list[str]]:
    """The built-in architecture whose parameter names and shapes equal ``sd``'s (after removing a prefix all
    its keys share, e.g. a Lightning module's ``model.``), and the closest names.

    Returns:
        ``(name, closest)``: ``name`` is the first exact match (``None`` when none is), ``closest`` up to three
        built-in names ranked by the share of keys (with equal shapes) they have in common with ``sd``.
    """
    best: dict[str, float] = {}
    for prefix in common_prefixes(list(sd)):
        want = {k[len(prefix):]: tuple(v.shape) for k, v in sd.items() if not k.endswith("num_batches_tracked")}
        hints = shape_hints({k[len(prefix):]: v for k, v in sd.items()})
        for name, entry in _REGISTRY.items():
            if not entry.builtin:
                continue
            with torch.device("meta"):  # shapes only: no memory, no initialization cost
                try:
                    have = _signature(call_factory(entry.factory, **hints))
                except Exception:  # noqa: BLE001 - shape hints this architecture cannot take: not a candidate
                    continue
            if have == want:
                return name, [name]
            shared = sum(1 for k, s in want.items() if have.get(k) == s) / max(len(want), len(have))
            best[name] = max(best.get(name, 0.0), shared)
    ranked = sorted(best, key=lambda n: -best[n])
    return None, [n for n in ranked[:3] if best[n] > 0]


def _he_init(model: nn.Module) -> None:
    """He et al. 2015 initialization (normal, fan_out, ReLU gain) for convolutions, as torchvision does.

    PyTorch's default conv init is ~3x smaller in variance; deep plain nets train markedly worse with it.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


__all__ = ["create_model", "list_models", "canonical_name", "model_family", "register_model", "detect_arch",
           "shape_hints", "call_factory", "CIFAR_DEPTHS", "IMAGENET_DEPTHS"]
