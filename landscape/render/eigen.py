"""The convexity maps of Li et al. (Fig. 8) from a surface computed with ``--eigen``.

Two panels over the plane: |lambda_min / lambda_max| (0: locally convex; near 1: curving down about as strongly
as up), and the signed lambda_min / lambda_max (negative where some direction curves down). Never imports torch.
"""

from __future__ import annotations

import numpy as np

from landscape.surface import Surface


def eigen_ratio(s: Surface) -> np.ndarray:
    """lambda_min / lambda_max at every point (NaN where not computed or lambda_max is 0)."""
    hi, lo = s.values["max_eig"], s.values["min_eig"]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = lo / hi
    r[~np.isfinite(r)] = np.nan
    return r


def render_eigen(s: Surface, base: str, formats: list[str]) -> list[str]:
    """Write ``<base>_eigen.<ext>``: the |ratio| map and the signed ratio, with theta* marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = eigen_ratio(s)
    X, Y = np.meshgrid(s.xcoordinates, s.ycoordinates)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), constrained_layout=True)
    panels = [(np.abs(r), "|λmin / λmax|  (0: convex)", "viridis", 0.0, 1.0),
              (r, "λmin / λmax  (signed)", "RdBu_r", -1.0, 1.0)]
    for ax, (z, title, cmap, lo, hi) in zip(axes, panels):
        m = ax.pcolormesh(X, Y, np.clip(z, lo, hi), cmap=cmap, vmin=lo, vmax=hi, shading="nearest")
        ax.plot([0], [0], marker="*", color="white", markeredgecolor="black", markersize=12, zorder=5)
        ax.set_title(title)
        ax.set_xlabel("α")
        ax.set_ylabel("β")
        ax.set_aspect("equal")
        fig.colorbar(m, ax=ax, shrink=0.85)
    arch = s.attrs.get("arch", "")
    fig.suptitle(f"{arch}: Hessian eigenvalue ratio (largest |ratio| {np.nanmax(np.abs(r)):.2g})"
                 if np.isfinite(r).any() else f"{arch}: Hessian eigenvalue ratio")
    from landscape.render.static import save

    return save(fig, f"{base}_eigen", formats, dpi=150, bbox_inches=None)
