"""The front door: one surface from any model, any data, any loss, from Python or the CLI.

Usable from a notebook::

    import landscape
    res = landscape.compute(my_net, data=(x, y), loss="cross_entropy", x="-1:1:21", y="-1:1:21")
    res.path, res.summary, res.figures

``python -m landscape.plot`` is this function behind flags generated from :class:`landscape.settings.Config`.
Everything the CLI does (resume, lock, HDF5 file, figures, torchrun) works the same from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from landscape import distributed
from landscape.directions import save_directions
from landscape.evaluate import resolve_device
from landscape.plane import default_refine, direction_source, plane_grid, surface_directions
from landscape.prepare import (default_name, effective_precision, load_splits, make_settings, objective_for,
                               resolve_model, state_sha256, surface_attributes, surface_path)
from landscape.runner import SplitEvaluation, fill_surface, loss_cap, refine_rule
from landscape.sharded import is_sharded, shard_of
from landscape.settings import Config
from landscape.surface import read_surface, summarize

__all__ = ["compute", "LandscapeResult", "resolve_model", "state_sha256", "default_name"]


@dataclass
class LandscapeResult:
    """Where the surface went and what it holds."""

    path: str
    summary: dict
    computed: int
    seconds: float
    device: str
    settings: dict = field(default_factory=dict)
    is_main: bool = True  # False on the ranks > 0 of a torchrun job (they neither write nor draw)
    engine: str = ""  # how it was evaluated, e.g. "batch 512, 1 point per step" (after any out-of-memory halving)
    figures: list = field(default_factory=list)
    config: Config | None = None

    def surface(self):
        """The surface as numpy arrays (:class:`landscape.surface.Surface`)."""
        return read_surface(self.path, probe=False)


def compute(model: nn.Module | str | os.PathLike | None = None, data: Any = None, *, config: Config | None = None,
            render_options: dict | None = None, **options: Any) -> LandscapeResult:
    """Compute (or resume) the loss surface of ``model`` on ``data`` and write ``<out>/<name>.h5`` (and figures).

    Args:
        model: an ``nn.Module`` (left exactly as it came in: the evaluation runs on a copy), a checkpoint path,
            or a local HuggingFace model folder (also ``model_spec="hf:DIR"``).
        data: a spec string (``digits``, ``cifar10:DIR``, ``text:FILE``, ...), a :class:`~landscape.data.Data`,
            one batch of every sample (inputs alone, ``(inputs, targets)``, ``(x1, x2, targets)``, a dict of
            tensors such as ``{"input_ids", "attention_mask", "labels"}``), a list of such batches, a
            ``Dataset`` or a ``DataLoader`` (read once, then resident on the device or streamed from pinned host
            memory), or a dict of those per split, ``{"train": ..., "test": ...}`` (both evaluated at every
            point into one file, as ``split="train,test"`` does for a spec string). Default: ``config.data``
            (``digits``).
        config: a :class:`~landscape.settings.Config`; ``options`` override its fields.
        render_options: figure scale for :func:`landscape.render.render_surface` (``log``, ``vmin``, ``vmax``,
            ``levels``).
        **options: any :class:`~landscape.settings.Config` field, e.g. ``x="-1:1:21"``, ``loss="mse"`` or a
            callable ``loss=fn(output, target)``, ``objective=fn(model, batch)``, ``precision="bf16"``,
            ``render=False``, ``one_d=True``. ``directions`` also takes a
            :class:`~landscape.directions.Directions`, ``ckpt2``/``ckpt3`` modules, ``trajectory`` a list of
            ``nn.Module`` snapshots.

    Returns:
        A :class:`LandscapeResult`: the file, a summary (centre loss/accuracy, min/max), the figures written.

    Raises:
        LandscapeError: any bad input, before any long computation starts.
    """
    cfg = make_settings(config, data, options)
    net, info = resolve_model(model, cfg)
    ctx = distributed.setup(resolve_device(cfg.device))  # a torchrun job: this rank's device; else rank 0 of 1
    sharded = is_sharded(net)  # FSDP2: every rank moves its shard, all evaluate each point together
    cfg = cfg.replace(refine=default_refine(cfg, ctx.device))
    xc, yc, traj = plane_grid(cfg, ctx.device, net, info)
    path = surface_path(cfg, info, yc is not None)
    datas = load_splits(cfg, info, net, ctx.device)
    objective = objective_for(cfg, net, datas[0])
    attrs = surface_attributes(cfg, info, datas, objective, direction_source(cfg, traj), _device_name(ctx, sharded),
                               effective_precision(cfg.precision, net))
    dirs, lean = surface_directions(path, (xc, yc), attrs, cfg, net, info, traj, datas[0], objective, ctx, sharded)
    if sharded:
        datas = [shard_of(d, ctx.rank, ctx.world) for d in datas]
    evaluation = SplitEvaluation(net, datas, dirs, cfg, objective, lean, ranks=ctx.world if sharded else 1)
    try:  # on the lean path the caller's model is moved in place: always given back, whatever happens
        rule = None
        if cfg.adaptive or cfg.refine:  # one cap for every rank and resume: the file's, else from the loss at θ*
            cap = ctx.on_main(lambda: loss_cap(path, evaluation.main))
            attrs.update(loss_cap=cap)
            attrs["shown_attrs"] = list(attrs["shown_attrs"]) + ["loss_cap"]
            if cfg.adaptive:
                evaluation.set_cap(cap)
                attrs.update(permutation_seed=cfg.seed)
            if cfg.refine:
                rule = refine_rule(cfg, cap)
        computed, seconds = fill_surface(path, (xc, yc), attrs, dirs, evaluation, ctx, cfg.progress, sharded, rule)
    finally:
        evaluation.close()
    if cfg.save_directions and ctx.is_main:
        save_directions(path[:-len(".h5")] + "_directions.h5", dirs, net)
    return _result(path, cfg, ctx, attrs, evaluation, computed, seconds, render_options)


def _device_name(ctx, sharded: bool = False) -> str:
    if ctx.world == 1:
        return str(ctx.device)
    return f"{ctx.device.type} x{ctx.world} ranks" + (", model sharded (FSDP2)" if sharded else "")


def _result(path: str, cfg: Config, ctx, attrs: dict, evaluation: SplitEvaluation, computed: int, seconds: float,
            render_options: dict | None) -> LandscapeResult:
    """The summary and, on rank 0, the figures."""
    summary = summarize(read_surface(path, probe=False), evaluation.splits[0]) if ctx.is_main else {}
    figures: list[str] = []
    if cfg.render and ctx.is_main:
        from landscape.render import render_surface

        figures = render_surface(path, cfg.out, cfg.formats, cfg.name, **(render_options or {}))
    return LandscapeResult(path, summary, computed, seconds, str(ctx.device), attrs, ctx.is_main,
                           evaluation.main.describe(), figures, cfg)
