"""CLI: ``python -m landscape.render SURFACE.h5 [MORE.h5 ...]`` re-draws existing surface files (no compute)."""

from __future__ import annotations

import os
import sys

from landscape.cli import Parser, add_scale_args, run


def build_parser() -> Parser:
    p = Parser(prog="python -m landscape.render", description="Draw figures from surface files (ours or the "
               "reference implementation's), without computing anything.")
    p.add_argument("files", nargs="+", help="surface .h5 files")
    p.add_argument("--out", default=None, help="output folder (default: beside each file)")
    p.add_argument("--formats", default="png,html", help="any of png,pdf,svg,html,vtp (default png,html)")
    p.add_argument("--compare", action="store_true", help="all files side by side on one scale")
    p.add_argument("--surface", default=None, help="which dataset to draw, e.g. test_loss (default: the split's loss)")
    p.add_argument("--name", default=None, help="file stem (default: the surface file's; 'comparison' with --compare)")
    add_scale_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from landscape.render import render_comparison, render_surface

    written = []
    if args.compare:
        out = args.out or os.path.dirname(os.path.abspath(args.files[0]))
        written += render_comparison(args.files, out, args.formats, args.name or "comparison", args.surface,
                                     args.log, args.vmin, args.vmax, args.levels)
    else:
        for f in args.files:
            written += render_surface(f, args.out, args.formats, args.name if len(args.files) == 1 else None,
                                      args.surface, args.log, args.vmin, args.vmax, args.levels)
    print("figures: " + ", ".join(os.path.relpath(w) for w in written))
    return 0


if __name__ == "__main__":
    sys.exit(run(main, prog="landscape.render"))
