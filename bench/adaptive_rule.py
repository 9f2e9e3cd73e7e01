"""Which stopping rule keeps its promise: --tolerance's rule replayed on per-sample losses, over many permutations.

    python bench/adaptive_rule.py --ckpt checkpoints/resnet56_digits.pt --grid 21 --seeds 10

One full pass per grid point stores every sample's loss (the CLI's directions: seed 123, filter-normalized); then
the stopping rule is replayed offline, exactly as landscape.sampling applies it (the same chunks, the same
standard error with its finite-population correction, the same cap from the loss at theta*), for permutation
seeds 0..S-1 and for two variants: the tolerance met at one check, or at two consecutive checks (what
landscape.sampling does). Prints, per tolerance and variant, the image-forwards saved and the share of in-range
points within T of the full value (mean and worst over the seeds). Seed 123 of the two-check variant is what
bench/adaptive.py measures with the engine.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from landscape.checkpoints import load_checkpoint  # noqa: E402
from landscape.directions import make_directions  # noqa: E402
from landscape.render.scale import make_scale  # noqa: E402
from landscape.sampling import DEFAULT_MIN_SAMPLES, Z95, chunk_ends, figure_cap  # noqa: E402
from landscape.surface import grid_coords, parse_grid  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from adaptive import load  # noqa: E402


def per_sample_losses(net, x, y, coords, xdir, ydir, batch: int = 512) -> np.ndarray:
    params = [p.detach().clone() for p in net.parameters()]
    out = np.zeros((len(coords), len(y)))
    with torch.no_grad():
        for k, (a, b) in enumerate(coords):
            for p, p0, dx, dy in zip(net.parameters(), params, xdir, ydir):
                p.copy_(p0 + float(a) * dx + float(b) * dy)
            for i in range(0, len(y), batch):
                out[k, i:i + batch] = F.cross_entropy(net(x[i:i + batch]), y[i:i + batch], reduction="none")
    return out


def replay(L: np.ndarray, tol: float, min_samples: int, seed: int, checks: int, centre: int) -> dict:
    """The stopping rule on per-sample losses ``L`` (points x samples; the population is all of them)."""
    P, N = L.shape
    Lp = L[:, np.random.RandomState(seed).permutation(N)]
    s1, s2 = np.cumsum(Lp, 1), np.cumsum(Lp ** 2, 1)
    full = L.mean(1)
    cap = figure_cap(full[centre])
    n_used, est = np.full(P, N), full.copy()
    for p in range(P):
        streak = 0
        for n in chunk_ends(N, min_samples)[:-1]:
            m = s1[p, n - 1] / n
            half = Z95 * math.sqrt(max(s2[p, n - 1] - n * m * m, 0) / (n - 1) / n * (1 - n / N))
            streak = streak + 1 if half <= tol else 0
            if m - half > cap or streak >= checks:
                n_used[p], est[p] = n, m
                break
    in_range = full <= make_scale([full]).vmax
    return {"ratio": P * N / (n_used.sum() + N), "within": float(np.mean(np.abs(est - full)[in_range] <= tol))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", default="digits")
    p.add_argument("--grid", type=int, default=21)
    p.add_argument("--tolerance", default="0.02,0.05,0.1")
    p.add_argument("--min-samples", type=int, default=DEFAULT_MIN_SAMPLES)
    p.add_argument("--seeds", type=int, default=10)
    a = p.parse_args(argv)
    net, info = load_checkpoint(a.ckpt)
    data = load(a.data, info["in_channels"], None)
    xdir, ydir = make_directions(net, seed=123)
    xs = parse_grid(f"-1:1:{a.grid}")
    coords = grid_coords(xs, xs)
    L = per_sample_losses(net.eval(), data.x, data.y, coords, xdir, ydir)
    centre = len(coords) // 2
    for tol in (float(t) for t in a.tolerance.split(",")):
        for checks in (1, 2):
            rs = [replay(L, tol, a.min_samples, s, checks, centre) for s in range(a.seeds)]
            seed123 = replay(L, tol, a.min_samples, 123, checks, centre)
            w = [r["within"] for r in rs]
            print(f"T={tol:g}, tolerance met at {checks} check{'s' if checks > 1 else ''}: "
                  f"{np.mean([r['ratio'] for r in rs]):.2f}x fewer image-forwards; within T: mean "
                  f"{100 * np.mean(w):.1f} %, worst {100 * np.min(w):.1f} % over seeds 0-{a.seeds - 1}; seed 123: "
                  f"{seed123['ratio']:.2f}x, {100 * seed123['within']:.1f} %", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
