"""Adaptive grid refinement (``--refine``) against full evaluation of the same grid, in the same run.

    python bench/refine.py --ckpt checkpoints/resnet56_digits.pt --grid 41 --tolerance 0.05 --rtol 0.05
    python bench/refine.py --ckpt runs/bigset/resnet20.pt --data-file runs/bigset/data.pt --grid 21 --tolerance 0.1

For one checkpoint and grid: the full surface (every point on all the data), then the refined one (``--refine``
with the given tolerance, which also drives adaptive sampling when given). Reports the points and image-forwards
each evaluated and their wall time; for the in-range points of the full surface (at most its figure's cap), the
share whose refined value lies within ``T + R |L|`` of the full value (and within 2x, 3x that); whether every
off-scale point stayed off-scale; and draws full | refined | |difference| side by side. Prints a ``RESULT`` line
and appends a JSON record with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import landscape  # noqa: E402
from landscape.surface import read_surface  # noqa: E402


def compare(full, refined, tolerance: float, rtol: float) -> dict:
    """The accuracy of ``refined`` against ``full`` (two :class:`~landscape.surface.Surface`)."""
    f, r = full.values["train_loss"], refined.values["train_loss"]
    cap = float(refined.attrs.get("loss_cap") or np.inf)
    inside = np.isfinite(f) & (f <= cap)
    tol = tolerance + rtol * np.abs(f)
    err = np.abs(r - f)
    off = np.isfinite(f) & (f > cap) | ~np.isfinite(f)
    return {"in_range": int(inside.sum()), "off_scale": int(off.sum()),
            "within_1": float(np.mean(err[inside] <= tol[inside])),
            "within_2": float(np.mean(err[inside] <= 2 * tol[inside])),
            "within_3": float(np.mean(err[inside] <= 3 * tol[inside])),
            "worst_over_tol": float(np.max(err[inside] / tol[inside])) if inside.any() else 0.0,
            "off_scale_kept": bool(np.all(~(r[off] <= cap))),
            "brought_in": int(np.sum(r[off] <= cap)), "cap": cap}


def draw(full, refined, path: str, title: str, tolerance: float, rtol: float) -> None:
    """full | refined | |difference| / tolerance (log10 loss; white dots: the evaluated points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f, r = full.values["train_loss"], refined.values["train_loss"]
    cap = float(refined.attrs.get("loss_cap") or np.nanmax(f))
    x, y = full.xcoordinates, full.ycoordinates
    lo = np.log10(max(np.nanmin(f), 1e-12))
    levels = np.linspace(lo, np.log10(cap), 21)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), constrained_layout=True)
    for ax, v, name in ((axes[0], f, "full"), (axes[1], r, "refined")):
        cs = ax.contourf(x, y, np.log10(np.clip(v, 10 ** lo, cap)), levels=levels, cmap="viridis")
        ax.contour(x, y, np.log10(np.clip(v, 10 ** lo, cap)), levels=levels[::2], colors="k", linewidths=0.4)
        ax.set_title(f"{name}: log10 loss")
        ax.set_aspect("equal")
    fig.colorbar(cs, ax=axes[:2], shrink=0.85, label="log10 loss (clipped at the cap)")
    ev = refined.evaluated["train"]
    gx, gy = np.meshgrid(x, y)
    for ax in axes[1:]:  # where the refined surface was evaluated
        ax.scatter(gx[ev], gy[ev], s=2, c="white", linewidths=0)
    inside = np.isfinite(f) & (f <= cap)
    ratio = np.where(inside, np.abs(r - f) / (tolerance + rtol * np.abs(f)), np.nan)
    im = axes[2].imshow(ratio, origin="lower", extent=(x[0], x[-1], y[0], y[-1]), cmap="magma", vmin=0, vmax=3)
    axes[2].set_title("|refined − full| / tolerance (in range)")
    axes[2].set_aspect("equal")
    fig.colorbar(im, ax=axes[2], shrink=0.85, label="error / (T + R·|L|), clipped at 3", extend="max")
    for ax in axes:
        ax.set_xlabel("α")
        ax.set_ylabel("β")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replay(path: str, tolerance: float, rtol: float) -> int:
    """Replay the refinement's variants on a full surface file (no network: its values are the oracle): points
    evaluated, in-range points within the tolerance, off-scale points kept."""
    from landscape.refine import Refinement, Rule
    from landscape.sampling import figure_cap

    s = read_surface(path)
    f = s.values["train_loss"]
    ny, nx = f.shape
    cap = float(s.attrs.get("loss_cap") or figure_cap(float(f[ny // 2, nx // 2])))
    rule = Rule(tolerance, rtol, cap)
    for name, kw in (("default (one check, centre first)", {}), ("two checks", {"checks": 2}),
                     ("every new point of a checked cell", {"spot": False}),
                     ("cap sweep of 1 tolerance", {"cap_sweep": 1.0}),
                     ("no evaluation near the cap", {"cap_edges": False, "cap_sweep": 0.0})):
        ev = np.zeros(f.size, dtype=bool)
        ref = Refinement(f.shape, rule, (ny // 2) * nx + nx // 2, **kw)
        for _, pts in ref.levels(lambda: ({"train_loss": np.where(ev, f.reshape(-1), np.nan)}, ev.copy())):
            ev[pts] = True
        p = ref.values["train_loss"]
        inside = f <= cap
        within = np.mean(np.abs(p - f)[inside] <= tolerance + rtol * np.abs(f[inside]))
        moved = int(np.sum((f > cap) != (p > cap)))
        print(f"REPLAY {os.path.basename(path)} {name}: {ev.sum()} of {f.size} points ({f.size / ev.sum():.2f}x), "
              f"within {within:.4f}, {moved} points across the cap")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", default=None)
    p.add_argument("--data", default="digits")
    p.add_argument("--data-file", default=None, help="a {'x', 'y'} tensor file (bench/bigset.py's data.pt)")
    p.add_argument("--grid", type=int, default=41)
    p.add_argument("--tolerance", type=float, default=None)
    p.add_argument("--rtol", type=float, default=None)
    p.add_argument("--min-samples", type=int, default=None)
    p.add_argument("--out", default="runs/refine")
    p.add_argument("--figure", default=None, help="where to draw full | refined | difference (PNG)")
    p.add_argument("--redraw", action="store_true", help="draw from the files of an earlier run, computing nothing")
    p.add_argument("--json", default=None)
    p.add_argument("--replay", default=None, metavar="FULL.h5", help="instead: replay the refinement's variants on "
                   "a full surface file (tolerance from --tolerance/--rtol)")
    args = p.parse_args(argv)
    if args.replay:
        return replay(args.replay, args.tolerance or 0.0, args.rtol or 0.0)
    import torch

    data = args.data
    if args.data_file:
        blob = torch.load(args.data_file, weights_only=True)
        data = (blob["x"], blob["y"])
    n = args.grid
    common = dict(x=f"-1:1:{n}", y=f"-1:1:{n}", render=False, progress=False, out=args.out)
    stem = os.path.splitext(os.path.basename(args.ckpt))[0]
    tag = f"{stem}_{n}"
    for suffix in ("full", "refined") if not args.redraw else ():
        if os.path.exists(os.path.join(args.out, f"{tag}_{suffix}.h5")):
            os.remove(os.path.join(args.out, f"{tag}_{suffix}.h5"))
    if args.redraw:
        a, b = (read_surface(os.path.join(args.out, f"{tag}_{k}.h5")) for k in ("full", "refined"))
        tol = args.tolerance or 0.0
        rt = args.rtol if args.rtol is not None else (0.02 if args.tolerance is None else 0.0)
        ev = int(b.evaluated["train"].sum())
        draw(a, b, args.figure, f"{stem}, {n}×{n}: {ev} of {n * n} points evaluated ({n * n / ev:.1f}× fewer), "
                                f"tolerance {tol:g} + {rt:g}·|L|", tol, rt)
        return 0
    t = time.perf_counter()
    full = landscape.compute(args.ckpt, data=data, name=f"{tag}_full", **common)
    t_full = time.perf_counter() - t
    t = time.perf_counter()
    refined = landscape.compute(args.ckpt, data=data, name=f"{tag}_refined", refine=True, tolerance=args.tolerance,
                                rtol=args.rtol, min_samples=args.min_samples, **common)
    t_refined = time.perf_counter() - t
    a, b = read_surface(full.path), read_surface(refined.path)
    samples = int(a.attrs["n_samples"])
    forwards_full = int(np.nansum(a.values["train_n"])) if "train_n" in a.values else n * n * samples
    forwards_refined = int(np.nansum(b.values["train_n"]))
    tol = args.tolerance or 0.0
    rt = args.rtol if args.rtol is not None else (0.02 if args.tolerance is None else 0.0)
    rec = {"ckpt": args.ckpt, "grid": n, "samples": samples, "tolerance": args.tolerance, "rtol": args.rtol,
           "points_full": n * n, "points_refined": int(b.evaluated["train"].sum()),
           "forwards_full": forwards_full, "forwards_refined": forwards_refined,
           "seconds_full": round(t_full, 1), "seconds_refined": round(t_refined, 1),
           **compare(a, b, tol, rt), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d")}
    rec["point_ratio"] = rec["points_full"] / rec["points_refined"]
    rec["forward_ratio"] = forwards_full / max(forwards_refined, 1)
    rec["time_ratio"] = t_full / max(t_refined, 1e-9)
    if args.figure:
        draw(a, b, args.figure, f"{stem}, {n}×{n}: {rec['points_refined']} of {n * n} points evaluated "
                                f"({rec['point_ratio']:.1f}× fewer), tolerance {tol:g} + {rt:g}·|L|", tol, rt)
    print(f"RESULT {tag} points {rec['points_full']}->{rec['points_refined']} ({rec['point_ratio']:.2f}x) "
          f"forwards {forwards_full}->{forwards_refined} ({rec['forward_ratio']:.2f}x) "
          f"time {t_full:.1f}->{t_refined:.1f}s ({rec['time_ratio']:.2f}x) within {rec['within_1']:.4f} "
          f"(2x {rec['within_2']:.4f}, 3x {rec['within_3']:.4f}) worst {rec['worst_over_tol']:.2f}T "
          f"off_scale_kept={rec['off_scale_kept']} ({rec['brought_in']} of {rec['off_scale']} brought in)")
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
