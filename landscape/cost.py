"""What one forward pass of a model costs: multiply-adds and the bytes it moves, layer by layer.

The GPU-engine issue asks to "know the limit before tuning": ResNet-56's 16-64-channel convolutions are
memory-bound on an H100, so the images/s a device can reach is set by the bytes each layer reads and writes, not by
its FLOP rate. This module counts both from a traced graph (``torch.fx`` + shape propagation, on the CPU, one
image), under three execution models:

* ``eager``: what PyTorch eager mode does: every op reads its tensor inputs and writes its output
  (conv, BN, ReLU and the residual addition each make a full pass over the activation).
* ``folded``: eager with eval-mode BatchNorm folded into the preceding convolution (BN passes disappear).
* ``fused``: the ideal: only convolutions, linears and pooling move activations; BN, ReLU and additions run in
  their producer's epilogue, reading only their extra operands (the residual of an addition).

Weights are counted once per pass of a batch, so they are reported per image at a given batch size.
``bench/roofline.py`` turns these counts into images/s bounds for a device from its datasheet bandwidth and FLOP
rate; those bounds are analysis, not measurements.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.passes.shape_prop import ShapeProp

from landscape.errors import LandscapeError

MODES = ("eager", "folded", "fused")

# Ops that read and write a whole activation and could run in a producer's epilogue.
_POINTWISE_FUNCS = {F.relu, torch.relu, operator.add, torch.add, operator.iadd, operator.mul, torch.mul}
_POINTWISE_METHODS = {"relu", "relu_", "add", "add_", "mul", "mul_"}
_POINTWISE_MODULES = (nn.ReLU, nn.modules.batchnorm._BatchNorm)
# Ops that only re-label a tensor (no data movement).
_VIEW_FUNCS = {torch.flatten, operator.getitem}
_VIEW_METHODS = {"flatten", "view", "reshape", "contiguous", "size"}


@dataclass
class LayerCost:
    """One graph node: its name, kind, multiply-adds and activation elements read/written per image."""
    name: str
    kind: str
    macs: int
    read: int
    written: int
    weights: int = 0
    extra_read: int = 0  # activation inputs other than the first (the residual of an addition)


@dataclass
class ModelCost:
    """Per-image totals over a traced model; see the module docstring for the three execution models."""
    layers: list[LayerCost] = field(default_factory=list)

    @property
    def macs(self) -> int:
        """Multiply-adds per image (one MAC = 2 FLOPs)."""
        return sum(layer.macs for layer in self.layers)

    @property
    def weights(self) -> int:
        """Weight elements of the layers that compute (conv/linear/BN), read once per batch."""
        return sum(layer.weights for layer in self.layers)

    def activation_elements(self, mode: str = "eager") -> int:
        """Activation elements read + written per image under ``mode`` (``eager``, ``folded`` or ``fused``)."""
        if mode not in MODES:
            raise LandscapeError(f"unknown execution model {mode!r}; valid: {', '.join(MODES)}")
        total = 0
        for layer in self.layers:
            if layer.kind == "view":
                continue
            if mode == "folded" and layer.kind == "bn":
                continue
            if mode == "fused" and layer.kind in ("bn", "pointwise"):
                total += layer.extra_read
                continue
            total += layer.read + layer.written
        return total

    def bytes_per_image(self, mode: str = "eager", bytes_per_element: int = 4, batch_size: int = 1024) -> float:
        """Bytes moved per image: activations under ``mode`` plus the weights once per batch of ``batch_size``."""
        return (self.activation_elements(mode) + self.weights / batch_size) * bytes_per_element


def _numel(meta) -> int:
    shape = getattr(meta, "shape", None)
    return int(torch.Size(shape).numel()) if shape is not None else 0


def model_cost(model: nn.Module, input_shape: Sequence[int]) -> ModelCost:
    """Count multiply-adds and activation traffic of one image through ``model``.

    Args:
        model: any ``torch.fx``-traceable network (all of the registry's are); it is not modified.
        input_shape: one image's shape, e.g. ``(3, 32, 32)``.

    Returns:
        A :class:`ModelCost` with one entry per graph node that touches data.

    Raises:
        LandscapeError: the model cannot be traced.
    """
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # fx raises many types (TraceError, TypeError, ...) for untraceable code
        raise LandscapeError(f"cannot trace {type(model).__name__} with torch.fx ({e}); costs need a traceable "
                             "model") from e
    was_training = model.training
    gm.eval()
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    model.train(was_training)
    modules = dict(gm.named_modules())
    cost = ModelCost()
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        out = _numel(node.meta.get("tensor_meta"))
        ins = [_numel(a.meta.get("tensor_meta")) for a in node.all_input_nodes]
        read = sum(ins)
        macs, weights, kind = 0, 0, "other"
        if node.op == "call_module":
            m = modules[node.target]
            if isinstance(m, nn.Conv2d):
                kind = "conv"
                k = m.weight[0].numel()  # in_channels/groups * kh * kw
                macs, weights = out * k, m.weight.numel()
            elif isinstance(m, nn.Linear):
                kind, macs, weights = "linear", out * m.in_features, m.weight.numel()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                kind, weights = "bn", 4 * m.num_features
            elif isinstance(m, _POINTWISE_MODULES):
                kind = "pointwise"
            elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
                kind = "pool"
            elif isinstance(m, nn.Identity):
                kind = "view"
        elif node.op == "call_function":
            if node.target in _POINTWISE_FUNCS:
                kind = "pointwise"
            elif node.target in _VIEW_FUNCS:
                kind = "view"
            elif node.target in (F.adaptive_avg_pool2d, F.avg_pool2d, F.max_pool2d):
                kind = "pool"
        elif node.op == "call_method":
            if node.target in _POINTWISE_METHODS:
                kind = "pointwise"
            elif node.target in _VIEW_METHODS:
                kind = "view"
            elif node.target == "mean":  # global average pooling written as x.mean((2, 3))
                kind = "pool"
        if kind == "other":
            raise LandscapeError(f"cannot cost graph node {node.name!r} ({node.op} {node.target}); known: conv, "
                                 "linear, BN, ReLU, add/mul, pooling, views")
        cost.layers.append(LayerCost(node.name, kind, macs, read, out, weights, sum(ins[1:])))
    return cost
