"""Are two solutions connected? A curve of low loss between them (Garipov et al. 2018), against the straight line.

From Python::

    res = landscape.connect(model_a, model_b, data="digits", split="train,test")
    res.barriers   # {"curve_train": 0.01, "line_train": 2.3, ...}

``python -m landscape.connect --ckpt A.pt --ckpt2 B.pt`` is this function behind flags. Steps, each resumable:

1. the curve's bend is trained on the training data (:mod:`landscape.connect.training`; its state saved every
   epoch in ``<out>/<name>_curve.pt``);
2. loss and accuracy are evaluated along the curve and along the straight line at the same ``t`` (``points`` of
   them), on every split, with the BatchNorm statistics re-estimated on the training data at every point (both
   paths), into ``<out>/<name>.h5`` (the file: :mod:`landscape.connect.pathfile`);
3. the plane through A, B and the bend (the three-model surface, ``--ckpt2 B --ckpt3 bend``) with the curve drawn
   on it, into ``<out>/<name>_plane.h5``;
4. the figures: loss and accuracy against ``t``, curve and line together, and the plane (PNG and pages).
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch.nn as nn

from landscape.connect.curves import CURVES, line_coords, plane_coords
from landscape.connect.pathfile import PathFile
from landscape.connect.training import CurveSettings, bend_module, curve_names, train_bend
from landscape.errors import LandscapeError
from landscape.settings import Config, check_seed, make_config, setting, split_names

# The settings of a surface that a curve takes too (the same flags, written down once in Config).
SHARED = ("arch", "model_spec", "trust_checkpoint", "data", "split", "samples", "normalization", "image_size",
          "seq_len", "text_key", "loss", "objective", "precision", "batch_size", "device", "out", "name", "formats",
          "render", "progress")


@dataclass
class ConnectSettings:
    """What a curve between two solutions adds to a surface's settings."""

    curve: str = setting("bezier", "the curve: bezier (quadratic Bézier, one bend) or polychain (A -> bend -> B)",
                         choices=CURVES, group="curve")
    epochs: int = setting(20, "epochs of training the bend", group="curve")
    lr: float = setting(0.05, "SGD learning rate of the bend (held for half the epochs, then down to 1 %)",
                        group="curve")
    momentum: float = setting(0.9, "SGD momentum", group="curve")
    weight_decay: float = setting(5e-4, "weight decay on the bend", group="curve")
    train_batch: int = setting(128, "minibatch size of training the bend", group="curve")
    seed: int = setting(0, "seed of the minibatch order and of t", group="curve")
    points: int = setting(61, "points along each path (t from 0 to 1)", group="curve")
    plane: str | None = setting("-0.25:1.25:25", "grid of the plane through A, B and the bend (both axes; A is "
                                "(0, 0), B (1, 0), the bend (0, 1)); none: no plane", group="curve",
                                metavar="MIN:MAX:NUM|none")

    def training(self) -> CurveSettings:
        return CurveSettings(self.curve, self.epochs, self.lr, self.momentum, self.weight_decay, self.train_batch,
                             self.seed)


@dataclass
class ConnectResult:
    """Where the curve went and what it found."""

    path: str
    barriers: dict
    plane: str | None = None
    figures: list = field(default_factory=list)
    history: list = field(default_factory=list)


def connect(model_a: nn.Module | str, model_b: nn.Module | str, data: Any = None, *, config: Config | None = None,
            settings: ConnectSettings | None = None, **options: Any) -> ConnectResult:
    """Train a curve between two solutions and evaluate it against the straight line (see the module docstring).

    Args:
        model_a, model_b: the two solutions: ``nn.Module`` objects (left as they are) or checkpoint paths.
        data: anything :func:`landscape.compute` takes (default ``digits``); a spec string gives both splits
            with ``split="train,test"`` (the default here), a dict ``{"train": ..., "test": ...}`` too.
        config: a :class:`~landscape.settings.Config` for the shared settings (:data:`SHARED`).
        settings: a :class:`ConnectSettings`.
        **options: fields of either.

    Returns:
        A :class:`ConnectResult`: the file, the barrier heights (``curve_train``, ``line_train``, ...), the plane's
        file and the figures.
    """
    cfg, conn = _settings(config, settings, data, options)
    from landscape.distributed import setup
    from landscape.evaluate import resolve_device
    from landscape.prepare import load_splits, objective_for, resolve_model, surface_path

    ctx = setup(resolve_device(cfg.device))
    if ctx.world > 1:
        raise LandscapeError("landscape.connect runs in one process; start it without torchrun")
    net_a, info = resolve_model(model_a, cfg)
    net_b, info_b = resolve_model(model_b, cfg)
    datas = load_splits(cfg, info, net_a, ctx.device)
    objective = objective_for(cfg, net_a, datas[0])
    path = surface_path(cfg if cfg.name else cfg.replace(name=default_name(model_a, model_b, info, info_b)), info, True)
    base = path[:-len(".h5")]
    pf = PathFile(path, conn, cfg, (info, info_b), datas, objective.name)
    try:
        bend = pf.bend()
        if bend is None:
            bend, history = train_bend(net_a, net_b, datas[0], objective, conn.training(), base + "_curve.pt",
                                       cfg.progress)
            pf.record_bend(bend, history)
        _evaluate(pf, net_a, net_b, bend, datas, cfg, conn, objective)
        barriers, history = pf.barriers(), pf.history
    finally:
        pf.close()
    plane = _plane(base, net_a, net_b, bend, datas[0], cfg, conn) if conn.plane else None
    figures: list[str] = []
    if cfg.render:
        from landscape.render.connect import render_connect

        figures = render_connect(path, cfg.out, cfg.formats, plane)
    return ConnectResult(path, barriers, plane, figures, history)


def default_name(model_a: Any, model_b: Any, info_a: dict, info_b: dict) -> str:
    """``connect_<A>_<B>`` from the checkpoints' names (their folders' when the files share a name, as two runs'
    ``final.pt`` do), or the models' class names."""
    def stem(m: Any, info: dict, other: Any) -> str:
        if not isinstance(m, (str, os.PathLike)):
            return info["stem"]
        path = os.path.abspath(os.fspath(m))
        same = isinstance(other, (str, os.PathLike)) and \
            os.path.basename(os.fspath(other)) == os.path.basename(path)
        return os.path.basename(os.path.dirname(path)) if same else os.path.splitext(os.path.basename(path))[0]

    a, b = stem(model_a, info_a, model_b), stem(model_b, info_b, model_a)
    return f"connect_{a}_{b}" if a != b else f"connect_{a}"


def _settings(config: Config | None, settings: ConnectSettings | None, data: Any, options: dict
              ) -> tuple[Config, ConnectSettings]:
    own = {f.name for f in fields(ConnectSettings)}
    bad = sorted(set(options) - own - set(SHARED))
    if bad:
        raise LandscapeError(f"unknown setting(s) {', '.join(bad)}; valid: {', '.join(sorted(own | set(SHARED)))}")
    conn = settings or ConnectSettings()
    conn = ConnectSettings(**{**asdict(conn), **{k: v for k, v in options.items() if k in own}})
    if conn.curve not in CURVES:
        raise LandscapeError(f"unknown curve {conn.curve!r}; valid: {', '.join(CURVES)}")
    for name in ("epochs", "train_batch", "points"):
        v = getattr(conn, name)
        if not isinstance(v, int) or v < (2 if name == "points" else 1):
            raise LandscapeError(f"{name} must be a positive integer{' (at least 2)' if name == 'points' else ''}; "
                                 f"got {v!r}")
    if not (conn.lr > 0):
        raise LandscapeError(f"lr must be positive; got {conn.lr!r}")
    check_seed(conn.seed)
    if conn.plane is not None and str(conn.plane).lower() == "none":
        conn.plane = None
    shared = {k: v for k, v in options.items() if k in SHARED}
    shared.setdefault("split", config.split if config is not None and config.split != "train" else "train,test")
    if data is not None:
        shared["data"] = data
    from landscape.prepare import is_split_dict

    cfg = make_config(config, **shared)
    if is_split_dict(cfg.data):
        cfg = cfg.replace(split=",".join(k for k in ("train", "test") if k in cfg.data))
    elif not isinstance(cfg.data, str) and cfg.split == "train,test" and "split" not in options:
        cfg = cfg.replace(split="train")  # data given as one batch: that is the training data
    return cfg, conn


def _evaluate(pf: PathFile, net_a: nn.Module, net_b: nn.Module, bend: dict, datas: list, cfg: Config,
              conn: ConnectSettings, objective) -> None:
    """Loss and accuracy along both paths on every split, the BN statistics re-estimated on the training data at
    every point; only the points not yet in the file."""
    from landscape.directions import Directions
    from landscape.evaluate import PlaneEvaluator

    names = curve_names(net_a)
    pa, pb = dict(net_a.named_parameters()), dict(net_b.named_parameters())
    dx = [(pb[n].detach().float().cpu() - pa[n].detach().float().cpu()) for n in names]
    dy = [(bend[n].float() - pa[n].detach().float().cpu()) for n in names]
    dirs = Directions.of(net_a, dx, dy, "weights", "curve")
    ts = pf.t
    coords = {"curve": plane_coords(conn.curve, ts), "line": line_coords(ts)}
    for sp, data in zip(split_names(cfg.split), datas):
        ev = PlaneEvaluator(net_a, data, dirs, batch_size=cfg.batch_size, precision=cfg.precision,
                            bn_mode="recompute", objective=objective, bn_data=datas[0])
        for kind in ("curve", "line"):
            todo = np.flatnonzero(~pf.done(kind, sp))
            for start in range(0, len(todo), 8):  # a few points per write: a crash loses little
                idx = todo[start:start + 8]
                losses, accs = ev.evaluate(coords[kind][idx])
                pf.record(kind, sp, idx, losses, accs)


def _plane(base: str, net_a: nn.Module, net_b: nn.Module, bend: dict, data, cfg: Config, conn: ConnectSettings
           ) -> str:
    """The train loss over the plane through A, B and the bend, with the curve's path recorded on it."""
    import landscape

    path = base + "_plane.h5"
    try:
        res = landscape.compute(net_a, data=data, ckpt2=net_b, ckpt3=bend_module(net_a, bend), x=conn.plane,
                                y=conn.plane, bn="recompute", name=os.path.basename(base) + "_plane",
                                out=os.path.dirname(base) or ".", render=False, progress=cfg.progress,
                                batch_size=cfg.batch_size, precision=cfg.precision, loss=cfg.loss,
                                objective=cfg.objective, device=cfg.device, refine=False)
    except LandscapeError as e:
        text = str(e)
        if not text.startswith(f"cannot resume {path!r}"):
            raise
        # The surface's advice (the original settings, another --name) does not fit here: this run's plane
        # settings are its own, and another --name would train another curve.
        raise LandscapeError(text.split("; use the original settings")[0] + ": the plane through A, B and the bend "
                             "was made by another version of landscape or with other settings; delete "
                             "that file to compute it again (the curve and its paths are kept), or pass --out "
                             "elsewhere, or --plane none") from None
    fine = np.linspace(0, 1, 101)
    xy = plane_coords(conn.curve, fine)
    from landscape.connect.pathfile import record_overlay

    record_overlay(res.path, xy, fine, "Bézier curve" if conn.curve == "bezier" else "polygonal chain",
                   {"A": (0.0, 0.0), "B": (1.0, 0.0), "bend": (0.0, 1.0)})
    return res.path


__all__ = ["connect", "ConnectSettings", "ConnectResult", "SHARED"]


class _CallableModule(types.ModuleType):
    """``landscape.connect(...)`` calls :func:`connect` whether ``landscape.connect`` is this package (once any of
    its modules has been imported) or the function (looked up lazily before)."""

    def __call__(self, *args, **kwargs) -> ConnectResult:
        return connect(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
