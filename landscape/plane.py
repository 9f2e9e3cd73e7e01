"""The plane of a surface: its grid, and its two directions, from wherever they come (the file being resumed, a
training run's PCA, the Hessian's eigenvectors, a Directions value, a direction file, target checkpoints, or random
filter-normalized ones). Used by :func:`landscape.compute`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn as nn

from landscape.checkpoints import load_checkpoint
from landscape.data import Data
from landscape.directions import (Directions, load_directions, make_directions, only, perturbed_tensors,
                                  select_params)
from landscape.errors import LandscapeError
from landscape.objectives import Objective
from landscape.seeded import SeededDirections, is_seeded, make_seeded
from landscape.settings import CPU_GRID, GPU_GRID, LEAN_ELEMENTS, ONE_D_GRID, Config
from landscape.sharded import is_sharded
from landscape.surface import check_resume, parse_grid, read_direction
from landscape.surface.h5io import open_h5

HESSIAN = "hessian"  # --directions hessian: the top Hessian eigenvectors at theta*


def plane_grid(cfg: Config, dev: torch.device, net: nn.Module, info: dict):
    """The grid: the user's, else 2D on a grid chosen by device (1D with ``one_d``); PCA: covering the path."""
    traj = None
    if cfg.trajectory:
        if cfg.directions or cfg.ckpt2 or cfg.ckpt3:
            raise LandscapeError("--trajectory sets both directions; drop --directions/--ckpt2/--ckpt3")
        from landscape.trajectory import covering_grid, trajectory_directions

        final = info["path"] if info["path"] and os.path.isfile(info["path"]) else net
        traj = trajectory_directions(final, cfg.trajectory, cfg.arch, cfg.ignore, cfg.trust_checkpoint,
                                     cfg.model_spec)
        num = GPU_GRID if dev.type == "cuda" else "-1:1:21"  # 51x51 is ~10 min for the digits demo on 2 cores
        x = cfg.x or covering_grid([p[0] for p in traj["path"]], num)
        y = None if cfg.one_d else (cfg.y or covering_grid([p[1] for p in traj["path"]], num))
        return parse_grid(x, "x"), (parse_grid(y, "y") if y else None), traj
    default = ONE_D_GRID if cfg.one_d else (GPU_GRID if dev.type == "cuda" else CPU_GRID)
    x = cfg.x or default
    if cfg.one_d:
        if cfg.y:
            raise LandscapeError("--1d draws a curve along x; drop --y (or --1d)")
        return parse_grid(x, "x"), None, None
    return parse_grid(x, "x"), parse_grid(cfg.y or x, "y"), None


def default_refine(cfg: Config, dev: torch.device) -> bool:
    """``--refine`` as asked, else on for the CPU's default 2D grid (:data:`~landscape.settings.CPU_GRID`: a
    finer first figure in the same time) and off otherwise."""
    if cfg.refine is not None:
        return bool(cfg.refine)
    return dev.type != "cuda" and not cfg.one_d and cfg.x is None and cfg.y is None and not cfg.trajectory


def direction_source(cfg: Config, traj: dict | None) -> str:
    if isinstance(cfg.directions, Directions):
        return cfg.directions.source
    if cfg.directions == HESSIAN:
        return HESSIAN
    if cfg.directions:
        return f"file:{os.path.basename(cfg.directions)}"
    if traj:
        if isinstance(cfg.trajectory, (str, os.PathLike)):
            return f"pca:{os.path.basename(os.path.normpath(cfg.trajectory))}"
        return f"pca:{len(cfg.trajectory)} modules"
    if cfg.ckpt2 or cfg.ckpt3:
        return "target:" + " | ".join(_label(p) for p in (cfg.ckpt2, cfg.ckpt3) if p is not None)
    return "random"


def _label(p: Any) -> str:
    """A target model as the file names it: its file with its folder (``r20_s2/final.pt``: runs name their models
    alike), or its class."""
    if isinstance(p, nn.Module):
        return type(p).__name__
    path = os.path.normpath(os.fspath(p))
    return "/".join(x for x in (os.path.basename(os.path.dirname(path)), os.path.basename(path)) if x)


def moving_mask(cfg: Config, net: nn.Module) -> list[bool]:
    """Per perturbed tensor (``cfg.dir_type`` order), whether ``--params`` lets it move."""
    return select_params(perturbed_tensors(net, cfg.dir_type)[0], cfg.params)


def lean_path(cfg: Config, net: nn.Module, moving: list[bool]) -> bool:
    """Whether this surface takes the lean path (:mod:`landscape.evaluate.inplace`): ``--lean``/``--no-lean``, else
    when the moving tensors hold :data:`~landscape.settings.LEAN_ELEMENTS` elements or more; always for a model
    sharded with FSDP2 (:mod:`landscape.sharded`)."""
    if is_sharded(net):
        if cfg.lean is False:
            raise LandscapeError("a model sharded with FSDP2 is moved in place, shard by shard: drop --no-lean")
        return True
    if cfg.lean is not None:
        return bool(cfg.lean)
    _, tensors = perturbed_tensors(net, cfg.dir_type)
    return sum(t.numel() for t, m in zip(tensors, moving) if m and t.is_floating_point()) >= LEAN_ELEMENTS


def surface_directions(path: str, grid: tuple, attrs: dict, cfg: Config, net: nn.Module, info: dict,
                       traj: dict | None, ds: Data, objective: Objective, ctx, sharded: bool = False
                       ) -> tuple[Directions | SeededDirections, bool]:
    """The surface's directions on every rank, and whether it takes the lean path.

    Rank 0 alone reads or makes them (:func:`plane_directions`); the other ranks get them from it, or its error,
    so a bad file stops every rank with one message. New regenerable directions of a model sharded over the ranks
    are made by all of them together (each its rows). A file with regenerable directions always resumes on the
    lean path.
    """
    xc, yc = grid
    dirs = ctx.on_main(lambda: plane_directions(path, xc, yc, attrs, cfg, net, info, traj, ds, objective,
                                                ctx.device, make_seeded_here=not sharded))
    moving = moving_mask(cfg, net)
    if dirs is None:
        dirs = make_seeded(net, yc is not None, cfg.seed, cfg.norm, cfg.ignore, cfg.dir_type, moving, ctx.device)
    return dirs, isinstance(dirs, SeededDirections) or lean_path(cfg, net, moving)


def plane_directions(path: str, xc, yc, attrs: dict, cfg: Config, net: nn.Module, info: dict, traj: dict | None,
                     ds: Data, objective: Objective, device: torch.device | str = "cpu", make_seeded_here: bool = True
                     ) -> Directions | SeededDirections | None:
    """The file's directions when resuming (after checking its settings), else new ones for these settings
    (``attrs`` gains ``direction_eigenvalues`` for Hessian directions). Random directions on the lean path are
    regenerable (:class:`~landscape.seeded.SeededDirections`, made on ``device``; with ``make_seeded_here=False``
    ``None`` says to make them, which every rank of a sharded model does together); the tensors that ``--params``
    keeps still get zero."""
    moving = moving_mask(cfg, net)
    if os.path.exists(path):
        check_resume(path, xc, yc, attrs)
        with open_h5(path, "r", probe=False) as f:
            if is_seeded(f):
                d = SeededDirections.read(f, cfg.dir_type, attrs["directions"])
                d.check(net, repr(path))
                return d
            x, _ = read_direction(f, "xdirection")
            y = read_direction(f, "ydirection")[0] if "ydirection" in f else None
        return Directions.of(net, x, y, cfg.dir_type, attrs["directions"])
    if traj is None and not cfg.directions and not (cfg.ckpt2 or cfg.ckpt3) and lean_path(cfg, net, moving):
        if not make_seeded_here:
            return None
        return make_seeded(net, yc is not None, cfg.seed, cfg.norm, cfg.ignore, cfg.dir_type, moving, device)
    d = _dense_directions(xc, yc, attrs, cfg, net, info, traj, ds, objective)
    if all(moving):
        return d
    return Directions(d.names, only(d.x, moving), only(d.y, moving), d.dir_type, d.source, d.trajectory)


def _dense_directions(xc, yc, attrs: dict, cfg: Config, net: nn.Module, info: dict, traj: dict | None, ds: Data,
                      objective: Objective) -> Directions:
    if traj is not None:
        if cfg.dir_type != "weights":
            raise LandscapeError("--trajectory directions are over the parameters; use --dir-type weights")
        return Directions.of(net, traj["x"], traj["y"] if yc is not None else None, "weights",
                             attrs["directions"], traj)
    if cfg.directions == HESSIAN:
        from landscape.hessian.directions import hessian_directions

        d, eig = hessian_directions(net, ds, objective.plain_loss(ds, "--directions hessian"), yc is not None,
                                    cfg.norm, cfg.seed)
        attrs["direction_eigenvalues"] = eig
        attrs["shown_attrs"] = list(attrs["shown_attrs"]) + ["direction_eigenvalues"]
        return d
    if isinstance(cfg.directions, Directions):
        d = cfg.directions
        d.check(net, "directions=")
        if yc is not None and d.y is None:
            raise LandscapeError("the directions hold only an x direction but the surface is 2D; pass one_d=True")
        return Directions(d.names, d.x, d.y if yc is not None else None, d.dir_type, d.source, d.trajectory)
    if cfg.directions:
        xdir, ydir = load_directions(cfg.directions, net, cfg.dir_type)
        if yc is not None and ydir is None:
            raise LandscapeError(f"{cfg.directions!r} holds only an x direction but the surface is 2D; add --1d")
        return Directions.of(net, xdir, ydir if yc is not None else None, cfg.dir_type, attrs["directions"])
    m2, m3 = (_target(t, info, cfg) for t in (cfg.ckpt2, cfg.ckpt3))
    xdir, ydir = make_directions(net, yc is not None, cfg.seed, cfg.norm, cfg.ignore, cfg.dir_type, m2, m3)
    return Directions.of(net, xdir, ydir, cfg.dir_type, attrs["directions"])


def _target(t: Any, info: dict, cfg: Config) -> nn.Module | None:
    if t is None or isinstance(t, nn.Module):
        return t
    return load_checkpoint(os.fspath(t), arch=None if cfg.model_spec else info["arch"], trust=cfg.trust_checkpoint,
                           model=cfg.model_spec)[0]
