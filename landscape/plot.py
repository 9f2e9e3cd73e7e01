"""CLI: ``python -m landscape.plot --ckpt MODEL.pt`` computes a loss surface, then draws it.

Only argument parsing lives here; the work is :func:`landscape.job.compute_landscape` and
:func:`landscape.render.render_surface`.
"""

from __future__ import annotations

import os
import sys

from landscape.cli import Parser, add_scale_args, run
from landscape.job import DEFAULT_X, compute_landscape

EPILOG = """examples:
  python -m landscape.plot --ckpt checkpoints/resnet56_digits.pt                      # 1D curve, 51 points
  python -m landscape.plot --ckpt checkpoints/resnet56_digits.pt --y -1:1:21          # 2D surface
  python -m landscape.plot --ckpt resnet56.t7 --arch resnet56 --data cifar10:~/data/cifar-10-batches-py \\
      --x -1:1:51 --y -1:1:51                                                          # Li et al. Fig. 5
Running the same command again resumes an interrupted surface."""


def build_parser() -> Parser:
    p = Parser(prog="python -m landscape.plot", description="Compute and draw the loss landscape of a checkpoint "
               "along filter-normalized random directions (Li et al. 2018).", epilog=EPILOG,
               formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="trained checkpoint (our format, a state_dict, or the reference's)")
    p.add_argument("--arch", default=None, help="architecture (optional for our checkpoints), e.g. resnet56, "
                   "plain56 / resnet56_noshort, resnet50")
    p.add_argument("--data", default="digits", help="digits (default) | cifar10:DIR | imagefolder:DIR | synthetic[:N]")
    p.add_argument("--split", default="train", choices=["train", "test"], help="data split (default train)")
    p.add_argument("--x", default=None, help=f"alpha grid MIN:MAX:NUM (default {DEFAULT_X}; with --trajectory: "
                   "covering the path)")
    p.add_argument("--y", default=None, help="beta grid MIN:MAX:NUM; omit for a 1D curve (with --trajectory: "
                   "covering the path)")
    g = p.add_argument_group("directions")
    g.add_argument("--norm", default="filter", choices=["filter", "layer", "weight", "none"],
                   help="direction normalization (default filter)")
    g.add_argument("--ignore", default="biasbn", choices=["biasbn", "none"],
                   help="biasbn (default): biases and BN parameters are not perturbed")
    g.add_argument("--dir-type", default="weights", choices=["weights", "states"],
                   help="weights (parameters) or states (also BN running statistics)")
    g.add_argument("--seed", type=int, default=123, help="seed of the random directions (default 123)")
    g.add_argument("--directions", default=None, help="read directions from this HDF5 file (ours or the reference's)")
    g.add_argument("--ckpt2", default=None, help="x direction = ckpt2 - ckpt (1D interpolation)")
    g.add_argument("--ckpt3", default=None, help="y direction = ckpt3 - ckpt (plane through three models)")
    g.add_argument("--trajectory", default=None, metavar="RUN_DIR",
                   help="PCA directions of the run's epoch_*.pt snapshots; the optimizer's path is drawn")
    e = p.add_argument_group("evaluation")
    e.add_argument("--samples", type=int, default=None, help="evaluate on the first N samples (default: all)")
    e.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default by device and "
                   "image size: CPU 512 for 8x8, 128 for 32x32; GPU 1024 for <=32x32, 128 above)")
    e.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"], help="default fp32")
    e.add_argument("--bn", default="eval", choices=["eval", "recompute"],
                   help="eval: BN running statistics (default, as the reference); recompute: per point")
    e.add_argument("--points-per-step", type=int, default=None,
                   help="grid points evaluated together (batched engine, vmap); default 1 on CPU, sized from free "
                   "memory on a GPU")
    e.add_argument("--fold-bn", action="store_true",
                   help="fold eval-mode BatchNorm into the convolutions, per point (fewer bytes moved; same numbers "
                   "to float rounding)")
    e.add_argument("--compile", action="store_true",
                   help="torch.compile the forward pass once (about a minute on 2 CPU cores); pays on large grids")
    e.add_argument("--device", default="auto", help="auto (default) | cpu | cuda | cuda:N")
    e.add_argument("--trust-checkpoint", action="store_true",
                   help="allow checkpoints that need code execution to load (only for files you trust)")
    o = p.add_argument_group("output")
    o.add_argument("--out", default="plots", help="output folder (default plots/)")
    o.add_argument("--name", default=None, help="file stem (default: the checkpoint's, with _1d for 1D)")
    o.add_argument("--formats", default="png,html", help="any of png,pdf,svg,html,vtp (default png,html)")
    o.add_argument("--no-render", action="store_true", help="compute the surface file only")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    add_scale_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    finally:
        from landscape.distributed import teardown

        teardown()


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from landscape.render import parse_formats

    formats = parse_formats(args.formats)  # fail on a typo before computing for an hour
    res = compute_landscape(
        args.ckpt, arch=args.arch, data=args.data, split=args.split, x=args.x, y=args.y, norm=args.norm,
        ignore=args.ignore, dir_type=args.dir_type, seed=args.seed, directions=args.directions, ckpt2=args.ckpt2,
        ckpt3=args.ckpt3, samples=args.samples, batch_size=args.batch_size, precision=args.precision, bn=args.bn,
        device=args.device, out=args.out, name=args.name, trust=args.trust_checkpoint, progress=not args.quiet,
        points_per_step=args.points_per_step, trajectory=args.trajectory, fold_bn=args.fold_bn,
        compile_model=args.compile)
    if not res.is_main:  # ranks > 0 of a torchrun job: rank 0 reports and draws
        return 0
    s = res.summary
    rate = f", {res.computed / res.seconds:.2f} points/s" if res.seconds > 0 and res.computed else ""
    engine = f"; {res.engine}" if res.computed else ""
    print(f"surface: {res.path}  ({s['done']}/{s['total']} points; computed {res.computed} in "
          f"{res.seconds:.1f} s on {res.device}{rate}{engine})")
    acc = f", accuracy {s['centre_acc']:.2f}%" if s.get("centre_acc") is not None else ""
    print(f"centre {s['centre']}: loss {s['centre_loss']:.6g}{acc}")
    if "min_loss" in s:
        print(f"loss range: min {s['min_loss']:.6g}, max {s['max_loss']:.6g}"
              + (f"; {s['diverged']} diverged points" if s["diverged"] else ""))
    if not args.no_render:
        from landscape.render import render_surface

        files = render_surface(res.path, args.out, formats, args.name, None, args.log, args.vmin, args.vmax,
                               args.levels)
        print("figures: " + ", ".join(os.path.relpath(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(run(main, prog="landscape.plot"))
