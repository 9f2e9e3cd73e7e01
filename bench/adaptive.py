"""Benchmark: adaptive sampling (``--tolerance T``) against full evaluation of every point, in one run.

    python bench/adaptive.py --ckpt checkpoints/resnet56_digits.pt --grid 21 --tolerance 0.05
    python bench/bigset.py --out runs/bigset && \\
        python bench/adaptive.py --ckpt runs/bigset/resnet20.pt --data runs/bigset/data.pt --grid 11 --tolerance 0.05

Both evaluations use the CLI's defaults (filter-normalized random directions, seed 123, fp32, eval-mode BN, the
device's default batch) and the same grid. They run point by point, rotating which goes first, so that all see
the same machine load (timings on a shared machine drift by tens of percent within minutes); one point per call
is also what a CPU surface does (a block is one point there). The adaptive one
does what ``landscape.compute`` does with ``tolerance=T``: the cap from the loss at theta* on all the data (its
pass is counted), then every point on growing chunks of one permutation of the data.

Prints image-forwards and wall time of each and their ratios, and, against the full values:
  * in range: points whose full value is within the full surface's default figure range (make_scale); the share
    whose adaptive value is within T of the full value (the 95 % interval promises >= 95 %), the largest error;
  * off scale: whether every point above the full figure's range is above the adaptive figure's range too (the
    adaptive figure's range is bounded by its recorded cap), and the reverse;
  * the share of points whose full value lies inside their own stored 95 % interval (the interval's coverage).
Several tolerances (``--tolerance 0.02,0.05,0.1``) share one full evaluation.
One machine-readable line per tolerance: RESULT tolerance=<T> forwards_ratio=<x> wall_ratio=<y> within_t=<z>
offscale_kept=<b>
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from landscape.checkpoints import load_checkpoint  # noqa: E402
from landscape.data import Data, load_data  # noqa: E402
from landscape.directions import make_directions  # noqa: E402
from landscape.evaluate import PlaneEvaluator, resolve_device  # noqa: E402
from landscape.render.scale import make_scale  # noqa: E402
from landscape.sampling import DEFAULT_MIN_SAMPLES, Z95, figure_cap  # noqa: E402
from landscape.surface import grid_coords, parse_grid  # noqa: E402


def load(spec: str, in_channels: int, samples: int | None) -> Data:
    """A spec string of landscape.data, or a ``.pt`` file of ``{"x", "y"}`` tensors (bench/bigset.py's)."""
    if spec.endswith(".pt"):
        d = torch.load(spec, weights_only=True)
        data = Data(d["x"], d["y"], os.path.basename(spec), "train", int(d["y"].max()) + 1)
        return data.head(samples) if samples else data
    return load_data(spec, "train", samples, in_channels=in_channels)


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def save(folder: str, names: list[str], stack, xs: np.ndarray, info: dict, data: Data, cap: float,
         tols: list[float], a) -> None:
    """Each evaluation as a surface file the renderer reads (the adaptive ones with their cap and errors)."""
    os.makedirs(folder, exist_ok=True)
    for name in names:
        with h5py.File(os.path.join(folder, f"{name}.h5"), "w") as fh:
            fh["xcoordinates"], fh["ycoordinates"] = xs, xs
            fh["train_loss"], fh["train_done"] = stack(name), np.ones((len(xs), len(xs)), bool)
            for k in ("loss_se", "n"):
                fh[f"train_{k}"] = stack(name, k)
            fh.attrs.update(format_version=1, split="train", n_samples=len(data), dataset=data.name,
                            arch=f"{info['arch']} {name}")
            if name != "full":
                fh.attrs.update(loss_cap=cap, tolerance=tols[names.index(name) - 1], min_samples=a.min_samples)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", default="digits")
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--grid", type=int, default=21, help="points per axis over [-1, 1]^2 (default 21)")
    p.add_argument("--tolerance", required=True, help="T, or several: T1,T2,... (one full run for all)")
    p.add_argument("--min-samples", type=int, default=DEFAULT_MIN_SAMPLES)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--points-per-step", type=int, default=None)
    p.add_argument("--json", default=None, help="append one JSON record to this file")
    p.add_argument("--save", default=None, help="write the surfaces to DIR/full.h5 and DIR/T=<T>.h5 (draw them "
                   "with python -m landscape.render DIR/full.h5 DIR/T=0.1.h5 --compare)")
    a = p.parse_args(argv)

    device = resolve_device(a.device)
    net, info = load_checkpoint(a.ckpt)
    data = load(a.data, info["in_channels"], a.samples).to(device)
    n_data = len(data)
    xdir, ydir = make_directions(net, seed=a.seed)
    xs = parse_grid(f"-1:1:{a.grid}")
    coords = grid_coords(xs, xs)
    kw = dict(batch_size=a.batch_size, points_per_step=a.points_per_step)
    tols = [float(t) for t in a.tolerance.split(",")]
    full = PlaneEvaluator(net, data, xdir, ydir, **kw)
    adapts = [PlaneEvaluator(net, data, xdir, ydir, tolerance=t, min_samples=a.min_samples, sample_seed=a.seed, **kw)
              for t in tols]
    print(f"{info['arch']} on {n_data:,} samples of {data.name}, {a.grid}x{a.grid} grid, tolerance "
          f"{a.tolerance}, min samples {a.min_samples}, {device}, {full.describe()}", flush=True)

    centre, t_centre = timed(adapts[0].centre_loss, device)
    cap = figure_cap(centre)
    for ev in adapts:
        ev.sampling.cap = cap
    print(f"loss at theta* {centre:.6g} -> cap {cap:.6g} ({t_centre:.1f} s, counted in every adaptive run)")
    names = ["full"] + [f"T={t:g}" for t in tols]
    evs = dict(zip(names, [full] + adapts))
    res = {k: [] for k in names}
    secs = {k: (0.0 if k == "full" else t_centre) for k in names}
    for i, point in enumerate(coords):
        k = i % len(names)
        for which in names[k:] + names[:k]:  # point by point, each point another one first: the same load
            out, t = timed(lambda: evs[which].evaluate_points(point[None]), device)
            res[which].append(out)
            secs[which] += t
        if (i + 1) % a.grid == 0:
            print(f"row {(i + 1) // a.grid}/{a.grid}: " + ", ".join(f"{k} {v:.1f} s" for k, v in secs.items()),
                  flush=True)

    def stack(which: str, key: str | None = None) -> np.ndarray:
        vals = [v for out in res[which] for v in (out[2][key] if key else out[0])]
        return np.asarray(vals, dtype=np.float64).reshape(a.grid, a.grid)

    if a.save:
        save(a.save, names, stack, xs, info, data, cap, tols, a)
    f = stack("full")
    fwd_full = f.size * n_data
    vmax_full = make_scale([f]).vmax
    in_range = np.isfinite(f) & (f <= vmax_full)
    off_full = ~in_range
    print(f"full: {fwd_full:,} image-forwards in {secs['full']:.1f} s; {int(in_range.sum())} points in the figure's "
          f"range (<= {vmax_full:.4g}), {int(off_full.sum())} above it")
    for tol, name in zip(tols, names[1:]):
        ad, n, se = stack(name), stack(name, "n"), stack(name, "loss_se")
        fwd_adapt = int(n.sum()) + n_data  # + the pass at theta* that makes the cap
        vmax_adapt = make_scale([ad], ceiling=cap).vmax
        err = np.abs(ad - f)
        within = float(np.mean(err[in_range] <= tol))
        off_adapt = ~(np.isfinite(ad) & (ad <= vmax_adapt))
        kept = bool(np.all(off_adapt[off_full]))
        covered = float(np.mean(err[np.isfinite(f)] <= Z95 * se[np.isfinite(f)] + 1e-12))
        stopped_off = int(np.sum((n < n_data) & (ad - Z95 * se > cap)))
        rec = {"arch": info["arch"], "data": data.name, "n_data": n_data, "grid": a.grid, "tolerance": tol,
               "min_samples": a.min_samples, "device": str(device), "torch": torch.__version__,
               "forwards_full": fwd_full, "forwards_adaptive": fwd_adapt, "forwards_ratio": fwd_full / fwd_adapt,
               "seconds_full": secs["full"], "seconds_adaptive": secs[name],
               "wall_ratio": secs["full"] / secs[name], "cap": cap, "vmax_full": vmax_full,
               "vmax_adaptive": vmax_adapt, "in_range": int(in_range.sum()), "within_t": within,
               "max_err_in_range": float(err[in_range].max()), "max_err_over_t": float(err[in_range].max() / tol),
               "off_scale": int(off_full.sum()), "offscale_kept": kept,
               "brought_in": int(np.sum(off_full & ~off_adapt)), "pushed_out": int(np.sum(~off_full & off_adapt)),
               "stopped_off_scale": stopped_off, "interval_coverage": covered,
               "n_min": int(n.min()), "n_median": float(np.median(n)), "n_full_points": int(np.sum(n == n_data))}
        print(f"--- tolerance {tol:g}")
        print(f"image-forwards: adaptive {fwd_adapt:,} ({rec['forwards_ratio']:.2f}x fewer than full); wall time "
              f"{secs[name]:.1f} s ({rec['wall_ratio']:.2f}x less than full)")
        print(f"samples per point: min {rec['n_min']}, median {rec['n_median']:.0f}, {rec['n_full_points']} of "
              f"{f.size} points on all {n_data:,}; {stopped_off} stopped as off the scale (above cap {cap:.4g})")
        print(f"in range: {100 * within:.1f} % of {rec['in_range']} points within T of the full value, largest "
              f"error {rec['max_err_in_range']:.4g} ({rec['max_err_over_t']:.2f} T)")
        print(f"off scale: {rec['brought_in']} of {rec['off_scale']} brought into the adaptive figure's range (top "
              f"{vmax_adapt:.4g}); {rec['pushed_out']} in-range points pushed out")
        print(f"the stored 95 % interval holds the full value at {100 * covered:.1f} % of the points")
        if a.json:
            with open(a.json, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
        print(f"RESULT tolerance={tol:g} forwards_ratio={rec['forwards_ratio']:.3f} wall_ratio={rec['wall_ratio']:.3f} "
              f"within_t={within:.4f} offscale_kept={kept}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
