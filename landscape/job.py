"""One surface from a checkpoint: the library function behind ``python -m landscape.plot``.

Usable from a notebook::

    from landscape.job import compute_landscape
    result = compute_landscape("checkpoints/resnet56_digits.pt", y="-1:1:21")
    result.path, result.summary
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from landscape import distributed
from landscape.checkpoints import load_checkpoint
from landscape.data import load_data
from landscape.directions import load_directions, make_directions, pca_directions, perturbed_tensors
from landscape.errors import LandscapeError
from landscape.evaluate import PlaneEvaluator, resolve_device
from landscape.paths import ensure_writable_dir, list_snapshots
from landscape.surface import SurfaceWriter, compute_surface, parse_grid, read_surface, summarize

DEFAULT_X = "-1:1:51"


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


def default_name(ckpt: str, two_d: bool) -> str:
    """``resnet56.pt`` -> ``resnet56`` (2D) / ``resnet56_1d`` (1D)."""
    stem = os.path.splitext(os.path.basename(ckpt.rstrip("/")))[0] or "surface"
    return stem if two_d else f"{stem}_1d"


def compute_landscape(ckpt: str, *, arch: str | None = None, data: str = "digits", split: str = "train",
                      x: str | None = None, y: str | None = None, norm: str = "filter", ignore: str = "biasbn",
                      dir_type: str = "weights", seed: int = 123, directions: str | None = None,
                      ckpt2: str | None = None, ckpt3: str | None = None, samples: int | None = None,
                      batch_size: int | None = None, precision: str = "fp32", bn: str = "eval",
                      device: str = "auto", out: str = "plots", name: str | None = None, trust: bool = False,
                      progress: bool = True, points_per_step: int | None = None,
                      trajectory: str | None = None, fold_bn: bool = False,
                      compile_model: bool = False) -> LandscapeResult:
    """Compute (or resume) the loss surface of a checkpoint and write ``<out>/<name>.h5``.

    Arguments mirror the CLI flags of ``python -m landscape.plot`` (DESIGN section 7). Running the same call
    again resumes: only points not yet done are computed, with the directions stored in the file.
    ``trajectory=RUN_DIR`` uses the PCA directions of the run's ``epoch_*.pt`` snapshots (Li et al. Sec. 7),
    stores the projected path in the file, and by default sizes the grid to cover the path.

    Returns:
        A :class:`LandscapeResult` with the file path and a summary (centre loss/accuracy, min/max).

    Raises:
        LandscapeError: any bad input, before any long computation starts.
    """
    dev = resolve_device(device)
    traj = None
    if trajectory:
        if directions or ckpt2 or ckpt3:
            raise LandscapeError("--trajectory sets both directions; drop --directions/--ckpt2/--ckpt3")
        traj = trajectory_directions(ckpt, trajectory, arch, ignore, trust)
        num = DEFAULT_X if dev.type == "cuda" else "-1:1:21"  # 51x51 is ~10 min for the digits demo on 2 cores
        x = x or _covering_grid([p[0] for p in traj["path"]], num)
        y = y or _covering_grid([p[1] for p in traj["path"]], num)
    xc = parse_grid(x or DEFAULT_X, "x")
    yc = parse_grid(y, "y") if y else None
    if ckpt3 and yc is None:
        raise LandscapeError("--ckpt3 sets the y direction, so it needs --y MIN:MAX:NUM")
    if batch_size is not None and batch_size <= 0:
        raise LandscapeError(f"--batch-size must be a positive integer; got {batch_size}")
    ensure_writable_dir(out)
    path = os.path.join(out, f"{name or default_name(ckpt, yc is not None)}.h5")
    ctx = distributed.setup(dev)  # a torchrun job: this rank's device; otherwise rank 0 of 1
    dev = ctx.device

    model, info = load_checkpoint(ckpt, arch=arch, trust=trust)
    ds = load_data(data, split, samples, dev, in_channels=info["in_channels"])
    if tuple(ds.x.shape[1:2]) != (info["in_channels"],):
        raise LandscapeError(f"the data has {ds.x.shape[1]} channels but the model expects {info['in_channels']}; "
                             "use matching --data (digits is 1-channel, cifar10/imagefolder are 3-channel)")
    if ds.num_classes > info["num_classes"] or int(ds.y.max()) >= info["num_classes"]:
        raise LandscapeError(f"the data has {ds.num_classes} classes but the model's classifier has "
                             f"{info['num_classes']}; use the data the model was trained on")

    if directions:
        dir_source = f"file:{os.path.basename(directions)}"
    elif traj:
        dir_source = f"pca:{os.path.basename(os.path.normpath(trajectory))}"
    elif ckpt2 or ckpt3:
        dir_source = "target:" + "/".join(os.path.basename(p) for p in (ckpt2, ckpt3) if p)
    else:
        dir_source = "random"
    settings = {"arch": info["arch"], "ckpt": info["path"], "ckpt_sha256": info["sha256"], "dataset": ds.name,
                "split": split, "n_samples": len(ds), "norm": norm, "ignore": ignore, "dir_type": dir_type,
                "seed": int(seed), "directions": dir_source, "precision": precision, "bn_mode": bn,
                "loss": "cross_entropy", "torch_version": torch.__version__,
                "device": str(dev) if ctx.world == 1 else f"{dev.type} x{ctx.world} ranks"}

    # Rank 0 alone opens (and locks) the file; the other ranks get the directions and the pending points from
    # it, or its error, so that a bad file stops every rank with the same message instead of a hang.
    writer, msg = None, None
    if ctx.is_main:
        try:
            writer, xdir, ydir = _open_surface(path, xc, yc, settings, model, info, directions, ckpt2, ckpt3, seed,
                                               norm, ignore, dir_type, trust, traj)
            msg = ("ok", [d.numpy() for d in xdir], None if ydir is None else [d.numpy() for d in ydir],
                   writer.pending())
        except LandscapeError as e:
            ctx.broadcast(("error", str(e)))
            raise
    msg = ctx.broadcast(msg)
    if msg[0] == "error":
        raise LandscapeError(msg[1])
    _, xs, ys, todo = msg
    xdir = [torch.from_numpy(a) for a in xs]
    ydir = [torch.from_numpy(a) for a in ys] if ys is not None else None

    try:
        evaluator = PlaneEvaluator(model, ds, xdir, ydir, dir_type, batch_size, precision, bn, points_per_step,
                                   fold_bn, compile_model)
        # Every rank must cut the pending points into the same blocks; each evaluator still steps through its
        # block with its own K (which an out-of-memory error may lower). A block is also the unit of writing:
        # each costs an HDF5 write (0.6 ms measured for 51x51) and a restore of theta* (one small copy per
        # tensor), noise next to a CPU point (~0.2 s) but not next to a GPU point (~50 ms for 10,000 CIFAR
        # images at the 220k images/s target), so a GPU block holds at least 16 points (a crash loses < 1 s).
        block = evaluator.points_per_step if dev.type != "cuda" else max(16, evaluator.points_per_step)
        block = ctx.broadcast(block)
        compute_surface(writer, evaluator.evaluate, block, progress and ctx.is_main, os.path.basename(path),
                        grid=(xc, yc), todo=todo, rank=ctx.rank, world=ctx.world, gather=ctx.gather)
    finally:
        # Always release the file and its lock (a notebook that hit an error can simply call again).
        if writer is not None:
            writer.close()
    seconds = writer.elapsed if writer is not None else 0.0
    summary = summarize(read_surface(path, probe=False), split) if ctx.is_main else {}
    k = evaluator.points_per_step
    engine = (f"batch {evaluator.batch_size}, {k} point{'s' if k > 1 else ''} per step"
              + (", BN folded" if fold_bn else "") + (", compiled" if compile_model else ""))
    return LandscapeResult(path, summary, len(todo), seconds, str(dev), settings, ctx.is_main, engine)


def _open_surface(path, xc, yc, settings, model, info, directions, ckpt2, ckpt3, seed, norm, ignore, dir_type,
                  trust, traj=None):
    """Create the surface file with new directions, or re-open it (settings checked) with its stored ones."""
    names, _ = perturbed_tensors(model, dir_type)
    if os.path.exists(path):
        writer = SurfaceWriter(path, xc, yc, settings)  # validates the settings against the file's
        xs, ys = writer.read_directions()
        return writer, [torch.from_numpy(a) for a in xs], ([torch.from_numpy(a) for a in ys] if ys else None)
    if traj is not None:
        if dir_type != "weights":
            raise LandscapeError("--trajectory directions are over the parameters; use --dir-type weights")
        return SurfaceWriter(path, xc, yc, settings, traj["x"], traj["y"], names, trajectory=traj), traj["x"], \
            traj["y"]
    if directions:
        xdir, ydir = load_directions(directions, model, dir_type)
        if yc is not None and ydir is None:
            raise LandscapeError(f"{directions!r} holds only an x direction but --y was given; drop --y")
        ydir = ydir if yc is not None else None
    else:
        m2 = load_checkpoint(ckpt2, arch=info["arch"], trust=trust)[0] if ckpt2 else None
        m3 = load_checkpoint(ckpt3, arch=info["arch"], trust=trust)[0] if ckpt3 else None
        xdir, ydir = make_directions(model, yc is not None, seed, norm, ignore, dir_type, m2, m3)
    return SurfaceWriter(path, xc, yc, settings, xdir, ydir, names), xdir, ydir


def trajectory_directions(ckpt: str, run_dir: str, arch: str | None = None, ignore: str = "biasbn",
                          trust: bool = False) -> dict:
    """PCA directions of a training run's snapshots around ``ckpt`` (see :func:`pca_directions`).

    Returns:
        ``{"x", "y", "explained_variance_ratio", "path", "epochs"}``.
    """
    if not os.path.isdir(run_dir):
        raise LandscapeError(f"--trajectory {run_dir!r} is not a folder; pass a run folder of landscape.train "
                             "(with epoch_NNN.pt snapshots)")
    snaps = list_snapshots(run_dir)
    final, info = load_checkpoint(ckpt, arch=arch, trust=trust)
    models = [load_checkpoint(p, arch=info["arch"], trust=trust)[0] for _, p in snaps]
    x, y, ratio, path = pca_directions(final, models, ignore)
    return {"x": x, "y": y, "explained_variance_ratio": ratio, "path": path, "epochs": [e for e, _ in snaps]}


def _covering_grid(values: list[float], default: str) -> str:
    """A grid spec covering ``values`` (and 0, the final model) with a 15 % margin; NUM from ``default``."""
    lo, hi = min(min(values), 0.0), max(max(values), 0.0)
    pad = 0.15 * (hi - lo) or 1.0
    return f"{lo - pad:.6g}:{hi + pad:.6g}:{default.split(':')[2]}"
