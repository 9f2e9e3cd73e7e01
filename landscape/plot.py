"""CLI: ``python -m landscape.plot --ckpt MODEL.pt`` computes a loss surface, then draws it.

Only argument parsing lives here: the flags are generated from :class:`landscape.settings.Config` and the work
is :func:`landscape.compute` (which also draws the figures).
"""

from __future__ import annotations

import argparse
import sys

from landscape.cli import Parser, add_scale_args, run
from landscape.paths import shown
from landscape.settings import CPU_GRID, GPU_GRID, Config, add_arguments, from_namespace

EPILOG = f"""examples:
  python -m landscape.plot --ckpt checkpoints/resnet56_digits.pt                 # 2D surface ({GPU_GRID} on a GPU, {CPU_GRID} on the CPU)
  python -m landscape.plot --ckpt checkpoints/resnet56_digits.pt --1d            # 1D curve, 51 points
  python -m landscape.plot --ckpt resnet56.t7 --arch resnet56 --data cifar10:~/data/cifar-10-batches-py \\
      --x -1:1:51 --y -1:1:51                                                     # Li et al. Fig. 5
  python -m landscape.plot --model hf:my_gpt2 --data text:valid.txt --seq-len 128  # a language model's own loss
Running the same command again resumes an interrupted surface."""


def build_parser() -> Parser:
    p = Parser(prog="python -m landscape.plot", description="Compute and draw the loss landscape of a checkpoint "
               "along filter-normalized random directions (Li et al. 2018).", epilog=EPILOG,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default=None, help="trained checkpoint (our format, a state_dict, or the reference's), or "
                   "a HuggingFace model folder; required unless --model hf:DIR")
    add_arguments(p, Config)
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar (= --no-progress)")
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
    from landscape.api import compute
    from landscape.render import parse_formats

    parse_formats(args.formats)  # fail on a typo before computing for an hour
    cfg = from_namespace(args, Config)
    if args.ckpt is None and not str(cfg.model_spec or "").startswith("hf:"):
        build_parser().error("the following arguments are required: --ckpt (or --model hf:DIR)")
    res = compute(args.ckpt, config=cfg, render_options=dict(log=args.log, vmin=args.vmin, vmax=args.vmax,
                                                             levels=args.levels))
    if not res.is_main:  # ranks > 0 of a torchrun job: rank 0 reports and draws
        return 0
    s = res.summary
    rate = f", {res.computed / res.seconds:.2f} points/s" if res.seconds > 0 and res.computed else ""
    engine = f"; {res.engine}" if res.computed else ""
    print(f"surface: {res.path}  ({s['done']}/{s['total']} points; computed {res.computed} in "
          f"{res.seconds:.1f} s on {res.device}{rate}{engine})")
    if "evaluated" in s:  # --refine
        print(f"refined: {s['evaluated']:,} of {s['total']:,} points evaluated ({s['total'] / max(s['evaluated'], 1):.1f}x "
              f"fewer), the other {s['total'] - s['evaluated']:,} predicted")
    acc = f", accuracy {s['centre_acc']:.2f}%" if s.get("centre_acc") is not None else ""
    print(f"centre {s['centre']}: loss {s['centre_loss']:.6g}{acc}")
    if "min_loss" in s:
        print(f"loss range: min {s['min_loss']:.6g}, max {s['max_loss']:.6g}"
              + (f"; {s['diverged']} diverged points" if s["diverged"] else ""))
    if "max_loss_se" in s:
        acc_se = f", accuracy {s['max_acc_se']:.3g}%" if "max_acc_se" in s else ""
        used = ""
        if s.get("samples_full") and s["samples_used"] < s["samples_full"]:
            used = (f"; {s['samples_used']:,} of {s['samples_full']:,} image-forwards "
                    f"({s['samples_full'] / max(s['samples_used'], 1):.1f}x fewer than all the data)")
        print(f"largest standard error: loss {s['max_loss_se']:.3g}{acc_se}{used}")
    if res.figures:
        print("figures: " + ", ".join(shown(f) for f in res.figures))
    return 0


if __name__ == "__main__":
    sys.exit(run(main, prog="landscape.plot"))
