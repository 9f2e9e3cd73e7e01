"""CLI: ``python -m landscape.render SURFACE.h5 [MORE.h5 ...]`` re-draws existing surface files (no compute);
``--animate MOVIE.h5 [MORE.h5 ...]`` draws landscapes recorded through training; a curve file of
``landscape.connect`` (``connect_A_B.h5``) is drawn as its paths figure and page, with its plane's figures when
``connect_A_B_plane.h5`` lies beside it (the plane file alone: its figures)."""

from __future__ import annotations

import os
import sys

from landscape.cli import Parser, add_scale_args, run
from landscape.paths import check_name, shown


def build_parser() -> Parser:
    p = Parser(prog="python -m landscape.render", description="Draw figures from surface files (ours or the "
               "reference implementation's), without computing anything.")
    p.add_argument("files", nargs="+", help="surface .h5 files, or curve files of landscape.connect (with their "
                   "plane's figures when <stem>_plane.h5 lies beside them) or their plane files")
    p.add_argument("--out", default=None, help="output folder (default: beside each file)")
    p.add_argument("--formats", default=None,
                   help="any of png,pdf,svg,html,vtp (default png,html; pdf,png with --figure paper)")
    p.add_argument("--compare", action="store_true", help="all files side by side on one scale")
    p.add_argument("--figure", choices=("paper",), default=None,
                   help="paper: Li et al.'s layout in one PDF/PNG, a column per file (contours above 3D, one scale)")
    p.add_argument("--animate", action="store_true", help="the files are landscapes recorded through training "
                   "(landscape.Recorder, its callbacks, or landscape.train --record-every): draw them side by side as "
                   "an animation, one colour scale for every frame (gif and html; --formats gif,html)")
    p.add_argument("--surface", default=None, help="which dataset to draw, e.g. test_loss (default: the split's "
                   "loss; of a train,test surface both, on one scale); with --shared-scale a comma-separated list, "
                   "e.g. train_loss,test_loss")
    p.add_argument("--shared-scale", action="store_true", help="draw every file (and every --surface) on its own "
                   "figures but on ONE colour scale, so a colour means the same loss in all of them")
    p.add_argument("--name", default=None, help="file stem (default: the surface file's; 'comparison' with "
                   "--compare, 'paper' with --figure paper)")
    add_scale_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from landscape.errors import LandscapeError
    from landscape.render import render_comparison, render_paper, render_surface

    if args.name is not None:
        check_name(args.name)
    written, notes = [], []
    if args.shared_scale and (args.compare or args.figure or args.animate or args.name):
        raise LandscapeError("--shared-scale draws each file on its own figures (named after it); --compare, "
                             "--figure paper and --animate share one scale already; drop one of them (and --name)")
    out = args.out or os.path.dirname(os.path.abspath(args.files[0]))
    scale = (args.surface, args.log, args.vmin, args.vmax, args.levels)
    from landscape.render.connect import file_kind

    kinds = {f: file_kind(f) for f in args.files}
    connect = [f for f, k in kinds.items() if k]
    if connect:
        _check_connect(args, connect, kinds)
    if args.animate:
        from landscape.render.animate import render_animation

        if args.figure or args.compare:
            raise LandscapeError("--animate draws its files side by side already; drop --figure/--compare")
        if args.surface not in (None, "train_loss"):
            raise LandscapeError(f"--animate draws the frames' train_loss; got --surface {args.surface!r}: drop it")
        fmts = tuple(f.strip() for f in (args.formats or "gif,html").split(",") if f.strip())
        bad = [f for f in fmts if f not in ("gif", "html")]
        if bad:
            raise LandscapeError(f"--animate writes gif and html; got --formats {','.join(bad)}")
        written += render_animation(args.files, out, fmts, args.name, bool(args.log), args.vmin, args.vmax,
                                    args.levels)
    elif args.figure == "paper":
        if args.compare:
            raise LandscapeError("--figure paper already puts the files side by side; drop --compare")
        written += render_paper(args.files, out, args.formats or "pdf,png", args.name or "paper", *scale,
                                notes=notes)
    elif args.compare:
        written += render_comparison(args.files, out, args.formats or "png,html", args.name or "comparison", *scale,
                                     notes=notes)
    elif args.shared_scale:
        from landscape.render import render_shared

        keys = [k.strip() for k in args.surface.split(",") if k.strip()] if args.surface else None
        written += render_shared(args.files, args.out, args.formats or "png,html", keys, args.log, args.vmin,
                                 args.vmax, args.levels, notes)
    else:
        if args.surface and "," in args.surface:
            raise LandscapeError(f"--surface {args.surface!r}: several surfaces are drawn with --shared-scale")
        for f in args.files:
            name = args.name if len(args.files) == 1 else None
            if kinds[f]:
                from landscape.render.connect import plane_beside, render_connect, render_plane

                if kinds[f] == "connect":
                    written += render_connect(f, args.out, args.formats or "png,html", plane_beside(f), name,
                                              *scale, notes=notes)
                else:
                    written += render_plane(f, args.out, args.formats or "png,html", name, *scale, notes=notes)
            else:
                written += render_surface(f, args.out, args.formats or "png,html", name, *scale, notes=notes)
    for line in notes:  # a grid drawn from every k-th point says so
        print(f"note: {line}")
    print("figures: " + ", ".join(shown(w) for w in written))
    return 0


def _check_connect(args, files: list[str], kinds: dict) -> None:
    """A curve file of landscape.connect (or its plane) is drawn on its own figures, as png, pdf, svg or html;
    the scale options go to its plane's figures, so there must be one. One line for anything else."""
    from landscape.errors import LandscapeError
    from landscape.render.connect import plane_beside

    what = f"{shown(files[0])} is a curve file of landscape.connect" if kinds[files[0]] == "connect" else \
        f"{shown(files[0])} is the plane of a curve of landscape.connect"
    for flag, on in (("--compare", args.compare), ("--figure", args.figure), ("--animate", args.animate),
                     ("--shared-scale", args.shared_scale)):
        if on:
            raise LandscapeError(f"{what}, drawn on its own figures; drop {flag} (or draw the file alone)")
    fmts = [f.strip().lower() for f in (args.formats or "png,html").split(",") if f.strip()]
    if "vtp" in fmts:
        raise LandscapeError(f"{what}: it is drawn as png, pdf, svg or html; drop vtp from --formats")
    scale = [flag for flag, v in (("--surface", args.surface), ("--log/--no-log", args.log), ("--vmin", args.vmin),
                                  ("--vmax", args.vmax), ("--levels", args.levels)) if v is not None]
    bare = [f for f in files if kinds[f] == "connect" and plane_beside(f) is None]
    if scale and bare:
        raise LandscapeError(f"{', '.join(scale)} apply to the plane's figures, and {shown(bare[0])} has no plane "
                             f"file beside it (<stem>_plane.h5); drop {'them' if len(scale) > 1 else 'it'} (the "
                             "paths figure picks its own scale)")


if __name__ == "__main__":
    sys.exit(run(main, prog="landscape.render"))
