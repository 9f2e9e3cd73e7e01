"""Training the bend of a curve between two solutions (Garipov et al. 2018): the endpoints fixed, the bend's weights
trained by SGD on the expected loss over ``t ~ U[0, 1]`` (a fresh ``t`` for every minibatch), BatchNorm in training
mode (batch statistics; the running statistics are re-estimated per point when the curve is evaluated).

Deterministic for a seed (the minibatch order and each ``t`` come from seeded generators), and resumable: the bend,
the optimizer's state and the history are saved after every epoch (temporary file + rename), so a run killed
mid-training continues from its last epoch and ends with the curve of an uninterrupted one.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
from torch.func import functional_call

from landscape.connect.curves import coefficients
from landscape.data import Data
from landscape.errors import LandscapeError
from landscape.objectives import Objective
from landscape.paths import atomic_open


@dataclass
class CurveSettings:
    """How the bend is trained (recorded with the curve: resuming with other settings is an error)."""

    curve: str = "bezier"
    epochs: int = 20
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    seed: int = 0


def lr_at(epoch: int, epochs: int, lr: float) -> float:
    """Garipov et al.'s schedule: ``lr`` for the first half, then down linearly to ``lr / 100`` at 90 %."""
    f = epoch / max(epochs, 1)
    if f <= 0.5:
        return lr
    if f <= 0.9:
        return lr * (1.0 - (f - 0.5) / 0.4 * 0.99)
    return lr * 0.01


class _Cost(nn.Module):
    """The objective of one minibatch as a module, so that ``functional_call`` can run it at any weights and the
    objective still sees the real network (its attributes, its submodules)."""

    def __init__(self, net: nn.Module, objective: Objective, layout: str):
        super().__init__()
        self.net, self.objective, self.layout = net, objective, layout

    def forward(self, x, y):
        return self.objective.mean(self.net, x, y, self.layout)


def curve_names(model: nn.Module) -> list[str]:
    """The tensors the curve moves: every floating parameter (BN statistics are re-estimated instead)."""
    return [n for n, p in model.named_parameters() if p.is_floating_point()]


def train_bend(model_a: nn.Module, model_b: nn.Module, data: Data, objective: Objective, settings: CurveSettings,
               state_path: str | None = None, progress: bool = True) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """The trained bend (``{name: tensor}`` on the CPU) and the per-epoch history.

    Args:
        model_a, model_b: the two solutions (not modified).
        data: the training data (resident on its device).
        objective: what a minibatch costs (probed).
        settings: see :class:`CurveSettings`.
        state_path: where the state is saved after every epoch and resumed from.

    Raises:
        LandscapeError: models that differ, a saved state made with other settings or models.
    """
    names = curve_names(model_a)
    pa, pb = dict(model_a.named_parameters()), dict(model_b.named_parameters())
    if names != curve_names(model_b) or any(pa[n].shape != pb[n].shape for n in names):
        raise LandscapeError("--ckpt and --ckpt2 must have the same architecture (parameter names and shapes differ)")
    device = data.device
    a = {n: pa[n].detach().to(device, torch.float32) for n in names}
    b = {n: pb[n].detach().to(device, torch.float32) for n in names}
    bend = {n: ((a[n] + b[n]) / 2).clone().requires_grad_(True) for n in names}  # the line's midpoint
    opt = torch.optim.SGD(list(bend.values()), lr=settings.lr, momentum=settings.momentum,
                          weight_decay=settings.weight_decay)
    history: list[dict] = []
    start = 0
    if state_path and os.path.exists(state_path):
        start, history = _resume(state_path, settings, bend, opt, names)
    net = copy.deepcopy(model_a).to(device).train()
    cost = _Cost(net, objective, data.layout)
    from landscape.surface import progress_bar

    bar = progress_bar(settings.epochs, start, "curve", progress)
    try:
        for epoch in range(start, settings.epochs):
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch, settings.epochs, settings.lr)
            gen = torch.Generator().manual_seed(settings.seed * 100_003 + epoch)
            order = torch.randperm(len(data), generator=gen)
            total, count = 0.0, 0
            for x, y in data.in_order(order).batches(settings.batch_size):
                t = float(torch.rand((), generator=gen))
                ca, cb, cc = coefficients(settings.curve, t)
                params = {f"net.{n}": ca * a[n] + cb * bend[n] + cc * b[n] for n in names}
                loss = functional_call(cost, params, (x, y))
                if not torch.isfinite(loss):
                    raise LandscapeError(f"the curve's loss diverged in epoch {epoch + 1} (t = {t:.3f}); lower --lr "
                                         f"(now {settings.lr:g})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach())
                count += 1
            history.append({"epoch": epoch + 1, "loss": total / max(count, 1),
                            "lr": lr_at(epoch, settings.epochs, settings.lr)})
            if state_path:
                _save(state_path, settings, bend, opt, history, names)
            bar.update(1)
    finally:
        bar.close()
    return {n: t.detach().cpu() for n, t in bend.items()}, history


def _save(path: str, settings: CurveSettings, bend: dict, opt, history: list, names: list) -> None:
    state = {"settings": asdict(settings), "names": names, "bend": {n: t.detach().cpu() for n, t in bend.items()},
             "optimizer": opt.state_dict(), "history": history}
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def _resume(path: str, settings: CurveSettings, bend: dict, opt, names: list) -> tuple[int, list]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged state file: say so, never train from a wrong start
        raise LandscapeError(f"cannot read the curve's training state {path!r} ({type(e).__name__}); delete it to "
                             "train the curve again")
    saved = state.get("settings", {})
    if saved != asdict(settings) or state.get("names") != names:
        diff = [f"{k}: saved {saved.get(k)!r}, now {v!r}" for k, v in asdict(settings).items() if saved.get(k) != v]
        raise LandscapeError(f"the curve's training state {path!r} was made with other settings "
                             f"({'; '.join(diff) or 'other models'}); use them, another --name, or delete the file")
    with torch.no_grad():
        for n, t in bend.items():
            t.copy_(state["bend"][n].to(t.device))
    opt.load_state_dict(state["optimizer"])
    history = list(state.get("history", []))
    return len(history), history


def bend_module(model_a: nn.Module, bend: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model_a`` holding the bend's weights (the third model of the plane)."""
    m = copy.deepcopy(model_a).cpu()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n in bend:
                p.copy_(bend[n].to(p.dtype))
    return m.eval()


__all__ = ["CurveSettings", "train_bend", "bend_module", "curve_names", "lr_at"]
