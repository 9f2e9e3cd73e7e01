"""Compare eigen-ratio maps (``--eigen`` surface files): how much of the plane is locally convex.

    python -m landscape.plot --ckpt checkpoints/resnet56_digits.pt --eigen --samples 256 --x -1:1:11 --y -1:1:11
    python -m landscape.plot --ckpt checkpoints/plain56_digits.pt --eigen --samples 256 --x -1:1:11 --y -1:1:11
    python bench/eigen_maps.py plots/resnet56_digits.h5 plots/plain56_digits.h5

For each file: the number of grid points whose |lambda_min / lambda_max| is under 0.05, 0.1 and 0.2 (Li et al.
read values near 0 as locally convex), the mean and median ratio, and lambda_max / lambda_min at the centre.
"""

from __future__ import annotations

import argparse
import os

import h5py
import numpy as np

THRESHOLDS = (0.05, 0.1, 0.2)


def summary(path: str) -> dict:
    """The map's statistics (see the module docstring)."""
    with h5py.File(path, "r") as f:
        hi, lo = f["max_eig"][()], f["min_eig"][()]
        x, y = f["xcoordinates"][()], f["ycoordinates"][()]
    r = np.abs(lo / hi)
    iy, ix = int(np.argmin(np.abs(y))), int(np.argmin(np.abs(x)))  # maps are (len(y), len(x)), as the loss
    return {"file": os.path.basename(path), "points": int(r.size),
            **{f"under_{t}": int((r < t).sum()) for t in THRESHOLDS},
            "mean": float(r.mean()), "median": float(np.median(r)),
            "centre_max_eig": float(hi[iy, ix]), "centre_min_eig": float(lo[iy, ix])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", help="surface files computed with --eigen")
    for s in map(summary, p.parse_args(argv).files):
        under = ", ".join(f"< {t}: {s[f'under_{t}']}" for t in THRESHOLDS)
        print(f"{s['file']}: {s['points']} points; |lmin/lmax| {under}; mean {s['mean']:.3f}, median "
              f"{s['median']:.3f}; centre lmax {s['centre_max_eig']:.6g}, lmin {s['centre_min_eig']:.6g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
