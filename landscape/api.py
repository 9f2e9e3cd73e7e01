"""The front door: one surface from any model, any data, any loss, from Python or the CLI.

Usable from a notebook::

    import landscape
    res = landscape.compute(my_net, data=(x, y), loss="cross_entropy", x="-1:1:21", y="-1:1:21")
    res.path, res.summary, res.figures

``python -m landscape.plot`` is this function behind flags generated from :class:`landscape.settings.Config`.
Everything the CLI does (resume, lock, HDF5 file, figures, torchrun) works the same from here.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from landscape import distributed, signals
from landscape.checkpoints import load_checkpoint
from landscape.data import Data
from landscape.datasource import resolve_data
from landscape.directions import Directions
from landscape.errors import LandscapeError
from landscape.evaluate import PlaneEvaluator, resolve_device
from landscape.losses import is_class_labels, resolve_loss
from landscape.paths import ensure_writable_dir
from landscape.plane import direction_source, plane_directions, plane_grid
from landscape.sampling import DEFAULT_MIN_SAMPLES, figure_cap
from landscape.settings import Config, Provenance, attr_names, make_config, recorded, split_names
from landscape.surface import SurfaceWriter, attr_value, compute_surface, read_surface, stat_keys, summarize
from landscape.surface.h5io import open_h5


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
        model: an ``nn.Module`` (left exactly as it came in: the evaluation runs on a copy) or a checkpoint path.
        data: a spec string (``digits``, ``cifar10:DIR``, ...), a :class:`~landscape.data.Data`, an
            ``(inputs, targets)`` pair of tensors, a ``Dataset`` or a ``DataLoader`` (read once, then resident on
            the device or streamed from pinned host memory), or a dict of those per split, ``{"train": ...,
            "test": ...}`` (both evaluated at every point into one file, as ``split="train,test"`` does for a
            spec string). Default: ``config.data`` (``digits``).
        config: a :class:`~landscape.settings.Config`; ``options`` override its fields.
        render_options: figure scale for :func:`landscape.render.render_surface` (``log``, ``vmin``, ``vmax``,
            ``levels``).
        **options: any :class:`~landscape.settings.Config` field, e.g. ``x="-1:1:21"``, ``loss="mse"`` or a
            callable ``loss=fn(output, target)``, ``precision="bf16"``, ``render=False``, ``one_d=True``.
            ``directions`` also takes a :class:`~landscape.directions.Directions`, ``ckpt2``/``ckpt3`` modules.

    Returns:
        A :class:`LandscapeResult`: the file, a summary (centre loss/accuracy, min/max), the figures written.

    Raises:
        LandscapeError: any bad input, before any long computation starts.
    """
    cfg = make_config(config, **options)
    if data is not None:
        cfg = cfg.replace(data=data)
    if isinstance(cfg.data, dict):
        asked = options.get("split", config.split if config is not None and config.split != "train" else None)
        cfg = cfg.replace(split=_dict_split(cfg.data, asked))
    if model is None:
        raise LandscapeError("compute() needs a model: an nn.Module or a checkpoint path")
    dev = resolve_device(cfg.device)
    net, info = resolve_model(model, cfg)
    xc, yc, traj = plane_grid(cfg, dev, net, info)
    if cfg.ckpt3 and yc is None:
        raise LandscapeError("--ckpt3 sets the y direction, so it needs a 2D surface (drop --1d)")
    ensure_writable_dir(cfg.out)
    path = os.path.join(cfg.out, f"{cfg.name or default_name(info['stem'], yc is not None)}.h5")
    ctx = distributed.setup(dev)  # a torchrun job: this rank's device; otherwise rank 0 of 1
    splits = split_names(cfg.split)
    if len(splits) > 1 and not isinstance(cfg.data, (str, dict)):
        raise LandscapeError(f"split={cfg.split!r} needs a data spec string (e.g. 'cifar10:DIR') to load each "
                             "split from, or data={'train': ..., 'test': ...}")
    datas = [resolve_data(cfg.data[sp] if isinstance(cfg.data, dict) else cfg.data, split=sp,
                          samples=cfg.samples, device=ctx.device, in_channels=info.get("in_channels"),
                          image_size=cfg.image_size,
                          normalization=cfg.normalization, recorded_normalization=info.get("normalization"))
             for sp in splits]
    ds = datas[0]
    for d in datas:
        _check_data(d, info)
    loss = resolve_loss(cfg.loss)
    prov = Provenance(arch=info["arch"], ckpt=info["path"], ckpt_sha256=info["sha256"], dataset=ds.name,
                      n_samples=len(ds), population=ds.population or len(ds),
                      input_normalization=_norm_str(ds),
                      directions=direction_source(cfg, traj), torch_version=torch.__version__,
                      device=str(ctx.device) if ctx.world == 1 else f"{ctx.device.type} x{ctx.world} ranks")
    attrs = recorded(cfg, prov)
    attrs["loss"] = loss.name
    # --min-samples means something only with --tolerance: record what was used, so a resume must match it
    attrs["min_samples"] = (cfg.min_samples or DEFAULT_MIN_SAMPLES) if cfg.adaptive else None
    attrs["identity_attrs"] = attr_names(Provenance, type(cfg), flag="identity")
    attrs["shown_attrs"] = attr_names(Provenance, type(cfg), flag="shown") + ["created"]
    attrs["config"] = cfg.to_json()
    for sp, d in zip(splits[1:], datas[1:]):  # the other splits' sample counts, shown beside n_samples
        attrs[f"{sp}_n_samples"] = len(d)
        attrs["shown_attrs"].insert(attrs["shown_attrs"].index("n_samples") + 1, f"{sp}_n_samples")

    # Rank 0 alone reads or makes the directions and opens (and locks) the file; the other ranks get the
    # directions and the pending points from it, or its error, so a bad file stops every rank with one message.
    dirs: Directions = ctx.on_main(lambda: plane_directions(path, xc, yc, attrs, cfg, net, info, traj, ds, loss))
    evaluators = [PlaneEvaluator(net, d, dirs, batch_size=cfg.batch_size, precision=cfg.precision, bn_mode=cfg.bn,
                                 points_per_step=cfg.points_per_step, fold_bn=cfg.fold_bn,
                                 compile_model=cfg.compile, loss=loss, tolerance=cfg.tolerance,
                                 rtol=cfg.rtol, min_samples=cfg.min_samples, sample_seed=cfg.seed)
                  for d in datas]
    evaluator = evaluators[0]
    if cfg.adaptive:
        # One number for every rank and every resume: the file's, else made now from the loss at theta*.
        cap = ctx.on_main(lambda: _loss_cap(path, evaluator))
        for ev in evaluators:
            ev.sampling.cap = cap
        attrs.update(loss_cap=cap, permutation_seed=cfg.seed)
        attrs["shown_attrs"] = list(attrs["shown_attrs"]) + ["loss_cap"]

    curvature = None
    # every split's loss (the main one's is the writer's own), accuracy and precision
    extras = list(stat_keys(splits[0], evaluator.has_accuracy))
    for sp in splits[1:]:
        extras += [f"{sp}_loss"] + ([f"{sp}_acc"] if evaluator.has_accuracy else [])
        extras += stat_keys(sp, evaluator.has_accuracy)
    if cfg.eigen:
        from landscape.hessian.maps import EIGEN_KEYS, CurvatureMap

        curvature = CurvatureMap(evaluator, seed=cfg.seed, points=cfg.eigen_points or 1)
        extras += EIGEN_KEYS

    def evaluate(coords):
        losses, accs, stats = evaluator.evaluate_points(coords)
        more = {f"{splits[0]}_{k}": v for k, v in stats.items()}
        # the other splits at the same points, with the same weights (each evaluator moves its own model copy)
        for sp, ev in zip(splits[1:], evaluators[1:]):
            l2, a2, st2 = ev.evaluate_points(coords)
            more[f"{sp}_loss"] = l2
            if a2 is not None:
                more[f"{sp}_acc"] = a2
            more.update({f"{sp}_{k}": v for k, v in st2.items()})
        if curvature is not None:
            more.update(curvature.eigenvalues(coords))
        return losses, accs, more

    def open_writer() -> SurfaceWriter:
        x_np, y_np = dirs.arrays()
        return SurfaceWriter(path, xc, yc, attrs, x_np, y_np, dirs.names, trajectory=dirs.trajectory,
                             accuracy=evaluator.has_accuracy, extras=extras)

    writer, todo = None, None
    try:
        opened = ctx.on_main(open_writer, share=lambda w: w.pending())
        writer, todo = (opened, opened.pending()) if ctx.is_main else (None, opened)
        # Every rank cuts the pending points into the same blocks; each evaluator steps through its block with
        # its own K (which an out-of-memory error may lower). A block is also the unit of writing (an HDF5 write
        # and a restore of theta*): noise next to a CPU point (~0.2 s), not next to a GPU point (~60 ms for
        # 10,000 CIFAR images in bf16), so a GPU block holds at least 16 points (a crash loses about a second).
        block = evaluator.points_per_step if ctx.device.type != "cuda" else max(16, evaluator.points_per_step)
        block = ctx.broadcast(block)
        # A stop signal on any rank stops every rank after the same round, which rank 0 has written.
        stop = (lambda: ctx.max(signals.pending())) if ctx.world > 1 else None
        compute_surface(writer, evaluate, block, cfg.progress and ctx.is_main, os.path.basename(path),
                        grid=(xc, yc), todo=todo, rank=ctx.rank, world=ctx.world, gather=ctx.gather, stop=stop)
    finally:
        # Always release the file and its lock (a notebook that hit an error can simply call again).
        if writer is not None:
            writer.close()
    seconds = writer.elapsed if writer is not None else 0.0
    summary = summarize(read_surface(path, probe=False), splits[0]) if ctx.is_main else {}
    figures: list[str] = []
    if cfg.render and ctx.is_main:
        from landscape.render import render_surface

        figures = render_surface(path, cfg.out, cfg.formats, cfg.name, **(render_options or {}))
    return LandscapeResult(path, summary, len(todo), seconds, str(ctx.device), attrs, ctx.is_main,
                           evaluator.describe(), figures, cfg)


def resolve_model(model: Any, cfg: Config) -> tuple[nn.Module, dict]:
    """An ``nn.Module`` or a checkpoint path -> ``(module, info)``; info holds ``arch``, ``path``, ``sha256``,
    ``stem`` (the default file name) and, for checkpoints, ``in_channels``/``num_classes``."""
    if isinstance(model, nn.Module):
        return model, {"arch": str(getattr(model, "arch", type(model).__name__)), "path": "",
                       "sha256": state_sha256(model), "stem": type(model).__name__.lower()}
    if isinstance(model, (str, os.PathLike)):
        net, info = load_checkpoint(os.fspath(model), arch=cfg.arch, trust=cfg.trust_checkpoint,
                                    model=cfg.model_spec)
        info = dict(info, stem=os.path.splitext(os.path.basename(os.fspath(model).rstrip("/")))[0] or "surface")
        return net, info
    raise LandscapeError(f"model must be an nn.Module or a checkpoint path; got {type(model).__name__}")


def state_sha256(model: nn.Module) -> str:
    """SHA-256 of a module's state (names, shapes, dtypes and values): what identifies an in-memory model in the
    surface file, as the checkpoint file's hash does for a checkpoint."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def default_name(stem: str, two_d: bool) -> str:
    """``resnet56`` -> ``resnet56`` (2D) / ``resnet56_1d`` (1D)."""
    return stem if two_d else f"{stem}_1d"


def _loss_cap(path: str, evaluator: PlaneEvaluator) -> float:
    """Above this loss a point only needs to be known as off the scale: the figures' default cap for a surface
    whose minimum is the loss at theta* (on all the data). A resumed surface keeps the cap it was begun with.
    The renderer never draws a recorded cap's surface above it (:func:`landscape.render.scale.make_scale`), so a
    point stopped early above it stays off the scale even where the surface dips below theta*'s loss."""
    if os.path.exists(path):
        with open_h5(path, "r", probe=False) as f:  # checked by check_resume just before
            if "loss_cap" in f.attrs:
                return float(attr_value(f.attrs["loss_cap"]))
    return float(f"{figure_cap(evaluator.centre_loss()):.6g}")  # 6 digits: the settings line shows it


def _check_data(ds: Data, info: dict) -> None:
    in_ch, n_cls = info.get("in_channels"), info.get("num_classes")
    if in_ch is not None and ds.x.dim() == 4 and ds.x.shape[1] != in_ch:
        raise LandscapeError(f"the data has {ds.x.shape[1]} channels but the model expects {in_ch}; use matching "
                             "--data (digits is 1-channel, cifar10/imagefolder are 3-channel)")
    if n_cls is not None and is_class_labels(ds.y) and ((ds.num_classes or 0) > n_cls or int(ds.y.max()) >= n_cls):
        raise LandscapeError(f"the data has {ds.num_classes} classes but the model's classifier has {n_cls}; use "
                             "the data the model was trained on")


def _dict_split(data: dict, asked: str | None) -> str:
    """The split a ``{"train": ..., "test": ...}`` data argument evaluates (its keys, train first)."""
    names = [k for k in ("train", "test") if k in data]
    if not data or len(names) != len(data):
        raise LandscapeError(f"data given per split takes the keys 'train' and/or 'test'; got {sorted(map(str, data))}")
    split = ",".join(names)
    if asked is not None and asked != split:
        raise LandscapeError(f"split={asked!r} but the data is given for {split!r}; drop split= (the data's keys "
                             "say it)")
    return split


def _norm_str(ds: Data) -> str:
    """The normalization applied to the inputs, ``MEAN/STD`` (empty for data passed as tensors)."""
    from landscape.datasets.normalization import describe

    return describe(ds.mean, ds.std) if ds.mean and ds.std else ""
