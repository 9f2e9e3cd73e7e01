"""Eval-mode BatchNorm folded into the convolution before it.

In eval mode BN is an affine map per channel, y = (conv(x) - mean) * s + beta with s = gamma / sqrt(var + eps), so
conv + BN equals one convolution with weights W * s and bias beta + (b - mean) * s. The folded network skips one
full read and write of every activation per BN layer (``landscape.cost`` counts 27% of ResNet-56's eager traffic),
which matters where the evaluation is memory-bound (small convolutions on a GPU: 1.09x on an H100 in bf16,
BENCHMARKS.md, so the evaluator folds by default there). On 2 CPU cores it measured no faster (oneDNN is
compute-bound there), so on the CPU it folds only when asked.

Folding is exact in real arithmetic and differs from the unfolded network by float rounding only (~1e-7 relative
in fp32). It is recomputed for every grid point from that point's weights and BN statistics, so it is valid for
perturbed BN parameters (``--ignore none``) and for recomputed statistics (``--bn recompute``) alike, and works on
stacked parameter sets (a leading K dimension) for the batched engine.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.fx
import torch.nn as nn

from landscape.errors import LandscapeError


def named_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's parameters and buffers by name: the mapping ``functional_call`` and folding work on."""
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


@dataclass
class FoldedNetwork:
    """A traced copy of a network with every conv -> BN pair merged into one biased conv.

    Attributes:
        module: the folded network (a ``torch.fx.GraphModule`` holding its own tensors).
        pairs: ``(conv name, BN name, eps)`` for every folded pair, names as in the original network.
    """
    module: torch.fx.GraphModule
    pairs: list[tuple[str, str, float]]

    def parameters_from(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The folded network's tensors for the original network's ``state`` (parameters and buffers by name).

        Tensors may carry a leading stack dimension (K parameter sets); the results broadcast accordingly.
        """
        out = {n: state[n] for n in self._kept}
        for conv, bn, eps in self.pairs:
            scale = torch.rsqrt(state[f"{bn}.running_var"] + eps)
            gamma, beta = state.get(f"{bn}.weight"), state.get(f"{bn}.bias")
            if gamma is not None:
                scale = scale * gamma
            shift = -state[f"{bn}.running_mean"] * scale
            if beta is not None:
                shift = shift + beta
            bias = state.get(f"{conv}.bias")
            if bias is not None:
                shift = shift + bias * scale
            out[f"{conv}.weight"] = state[f"{conv}.weight"] * scale[..., None, None, None]
            out[f"{conv}.bias"] = shift
        return out

    @torch.no_grad()
    def load_from(self, model: nn.Module) -> None:
        """Copy ``model``'s current (possibly perturbed) weights and BN statistics, folded, into ``module``."""
        own = named_tensors(self.module)
        for name, t in self.parameters_from(named_tensors(model)).items():
            own[name].copy_(t)

    def __post_init__(self) -> None:
        folded = {f"{conv}.{p}" for conv, _, _ in self.pairs for p in ("weight", "bias")}
        names = [n for n, _ in self.module.named_parameters()] + [n for n, _ in self.module.named_buffers()]
        self._kept = [n for n in names if n not in folded]


def fold_batchnorm(model: nn.Module, memory_format: torch.memory_format = torch.channels_last) -> FoldedNetwork:
    """Trace ``model`` and fold each BatchNorm whose only input is a convolution used by nothing else.

    Args:
        model: an ``nn.Module`` traceable by ``torch.fx`` (every model in the registry is); it is not modified.

    Returns:
        A :class:`FoldedNetwork` whose module holds copies of the weights, already folded with ``model``'s
        current BN statistics, in eval mode, on ``model``'s device, in ``memory_format`` (the engine's layout).

    Raises:
        LandscapeError: the model cannot be traced, or it has no conv -> BN pair to fold.
    """
    try:
        gm = torch.fx.symbolic_trace(copy.deepcopy(model))
    except Exception as e:  # fx raises many types (TraceError, TypeError, ...) for untraceable code
        raise LandscapeError(f"cannot fold BatchNorm: {type(model).__name__} is not traceable by torch.fx ({e}); "
                             "evaluate without BN folding") from e
    modules = dict(gm.named_modules())
    pairs = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.modules.batchnorm._BatchNorm):
            continue
        bn, src = modules[node.target], node.args[0]
        if not (isinstance(src, torch.fx.Node) and src.op == "call_module" and len(src.users) == 1
                and isinstance(modules[src.target], nn.Conv2d) and bn.track_running_stats
                and bn.running_mean is not None):
            continue
        conv = modules[src.target]
        merged = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                           conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                           device=conv.weight.device, dtype=conv.weight.dtype)
        parent, _, leaf = src.target.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, leaf, merged)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        pairs.append((src.target, node.target, float(bn.eps)))
    if not pairs:
        raise LandscapeError(f"{type(model).__name__} has no convolution followed by BatchNorm to fold; evaluate "
                             "without BN folding")
    gm.delete_all_unused_submodules()
    gm.graph.lint()
    gm.recompile()
    gm.eval()
    gm = gm.to(memory_format=memory_format)  # type: ignore[assignment]  # the engine's layout
    net = FoldedNetwork(gm, pairs)
    net.load_from(model)
    return net
