"""Plot directions along the Hessian's top eigenvectors (``--directions hessian``).

The 1D curve along the top eigenvector is the sharpest slice through theta*: no direction of the same length
curves the loss more at theta*. The eigenvectors span the reference's parameters (``dim() > 1``: conv and linear
weights); biases and BN parameters get zero, as ``--ignore biasbn`` gives them in random directions.
"""

from __future__ import annotations

import copy

import torch.nn as nn

from landscape.data import Data
from landscape.directions import Directions, normalize_direction
from landscape.hessian.hvp import HessianOperator
from landscape.hessian.lanczos import top_eigenpairs
from landscape.losses import Loss


def hessian_directions(model: nn.Module, data: Data, loss: Loss, two_d: bool = True, norm: str = "filter",
                       seed: int = 0, batch_size: int = 512) -> tuple[Directions, list[float]]:
    """The top one or two Hessian eigenvectors at theta* as directions, and their eigenvalues.

    Args:
        model: the network (copied; left as it came in).
        data: the evaluation data (the Hessian is that of the mean loss over all of it, eval-mode BN).
        loss: the surface's loss.
        two_d: two eigenvectors (x: the top one, y: the second) or one.
        norm: ``none`` keeps the unit eigenvectors; ``filter``/``layer``/``weight`` rescale them like random
            directions (Li et al.), so alpha is comparable with random-direction plots.
        seed: the Lanczos start vector's seed.

    Returns:
        ``(directions, eigenvalues)``, eigenvalues descending.
    """
    net = copy.deepcopy(model).to(data.device).eval()
    op = HessianOperator(net, data.x, data.y, loss=loss.fn, params="weights",
                         batch_size=batch_size)
    pairs = top_eigenpairs(op, k=2 if two_d else 1, seed=seed)
    dirs = []
    for i in range(pairs.eigenvectors.shape[0]):
        names, tensors = op.full_direction(pairs.eigenvectors[i], net)
        d = [t.detach().float().cpu().clone() for t in tensors]
        if norm != "none":
            for t, (_, w) in zip(d, net.named_parameters()):
                if t.dim() > 1:
                    normalize_direction(t, w.detach().float().cpu(), norm)
        dirs.append(d)
    eig = [float(v) for v in pairs.eigenvalues]
    source = "hessian:" + ",".join(f"{v:.6g}" for v in eig)
    return Directions(names, dirs[0], dirs[1] if two_d else None, "weights", source), eig


__all__ = ["hessian_directions"]
