"""Static figures with matplotlib (PNG, PDF, SVG): contour lines, filled contours, heatmap, 3D, 1D curves."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from landscape.render.scale import Scale, make_scale  # noqa: E402
from landscape.surface import Surface  # noqa: E402

KINDS_2D = ("contour", "contourf", "heatmap", "surface3d")
DPI = 150


def _label(scale: Scale, key: str) -> str:
    what = key.replace("_", " ")
    return f"log10 {what}" if scale.log else what


def _centre(ax, s: Surface) -> None:
    ax.plot([0], [0], marker="*", color="white", markeredgecolor="black", markersize=12, zorder=5,
            label=r"$\theta^*$")


def _axes(ax, s: Surface) -> None:
    ax.set_xlabel(r"$\alpha$ (x direction)")
    ax.set_ylabel(r"$\beta$ (y direction)")
    ax.set_aspect("equal" if _square_extent(s) else "auto")


def _square_extent(s: Surface) -> bool:
    xr = s.xcoordinates[-1] - s.xcoordinates[0]
    yr = s.ycoordinates[-1] - s.ycoordinates[0]
    return yr > 0 and 0.5 <= xr / yr <= 2


def _title(s: Surface, key: str) -> str:
    a = s.attrs
    arch = a.get("arch") or os.path.splitext(os.path.basename(s.path))[0]
    bits = [str(arch), key.replace("_", " ")]
    if a.get("dataset"):
        bits.append(str(a["dataset"]).split(":")[0])
    return " · ".join(bits)


def draw_2d(ax, s: Surface, key: str, kind: str, scale: Scale):
    """Draw one 2D view on ``ax``; returns the mappable for a colour bar."""
    X, Y = np.meshgrid(s.xcoordinates, s.ycoordinates)
    Z = scale.transform(s.values[key])
    Zc = np.clip(Z, scale.lo, scale.hi)
    Zc[np.isnan(Z)] = np.nan
    if kind == "contour":
        m = ax.contour(X, Y, Zc, levels=scale.levels, cmap="viridis", linewidths=0.9)
        ax.clabel(m, m.levels[::4], inline=True, fontsize=7, fmt="%.3g")
    elif kind == "contourf":
        m = ax.contourf(X, Y, Zc, levels=scale.levels, cmap="viridis", extend="both")
        ax.contour(X, Y, Zc, levels=scale.levels[::3], colors="k", linewidths=0.3, alpha=0.5)
    elif kind == "heatmap":
        m = ax.pcolormesh(X, Y, np.ma.masked_invalid(Z), cmap="viridis", vmin=scale.lo, vmax=scale.hi,
                          shading="nearest")
    else:
        raise ValueError(kind)
    _centre(ax, s)
    _axes(ax, s)
    _trajectory(ax, s)
    return m


def _trajectory(ax, s: Surface) -> None:
    """The optimizer's path projected on the PCA plane (Li et al. Fig. 9), when the surface has one."""
    t = s.trajectory
    if not t:
        return
    ax.plot(t["x"], t["y"], "-", color="red", lw=1.2, zorder=6)
    ax.plot(t["x"], t["y"], "o", color="red", ms=3, zorder=6)
    if t.get("epochs") is not None and len(t["epochs"]):
        for e, px, py in zip(t["epochs"], t["x"], t["y"]):
            if e == t["epochs"][0] or e % max(1, int(t["epochs"][-1]) // 5 or 1) == 0:
                ax.annotate(str(int(e)), (px, py), textcoords="offset points", xytext=(3, 3), fontsize=7, color="red")
    r = t.get("explained_variance_ratio") or []
    if len(r) >= 2:
        ax.set_xlabel(f"1st PCA component: {100 * r[0]:.1f} %")
        ax.set_ylabel(f"2nd PCA component: {100 * r[1]:.1f} %")


def _save(fig, base: str, formats: list[str]) -> list[str]:
    paths = []
    for ext in formats:
        p = f"{base}.{ext}"
        fig.savefig(p, dpi=DPI, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def render_2d(s: Surface, key: str, base: str, formats: list[str], scale: Scale,
              kinds: tuple = KINDS_2D) -> list[str]:
    """One file per kind and format: ``<base>_<kind>.<ext>``."""
    paths = []
    for kind in kinds:
        if kind == "surface3d":
            paths += _save(_surface3d(s, key, scale), f"{base}_{kind}", formats)
            continue
        fig, ax = plt.subplots(figsize=(5.6, 4.8))
        m = draw_2d(ax, s, key, kind, scale)
        fig.colorbar(m, ax=ax, label=_label(scale, key))
        ax.set_title(_title(s, key))
        paths += _save(fig, f"{base}_{kind}", formats)
    return paths


def _surface3d(s: Surface, key: str, scale: Scale):
    X, Y = np.meshgrid(s.xcoordinates, s.ycoordinates)
    Z = scale.transform(s.values[key])
    Z = np.where(np.isnan(Z), np.nan, np.clip(Z, scale.lo, scale.hi))
    fig = plt.figure(figsize=(6.4, 5.2))
    ax = fig.add_subplot(projection="3d")
    surf = ax.plot_surface(X, Y, np.ma.masked_invalid(Z), cmap="viridis", vmin=scale.lo, vmax=scale.hi,
                           rstride=1, cstride=1, linewidth=0, antialiased=True)
    j, i = int(np.argmin(np.abs(s.xcoordinates))), int(np.argmin(np.abs(s.ycoordinates)))
    if np.isfinite(Z[i, j]):
        ax.scatter([s.xcoordinates[j]], [s.ycoordinates[i]], [Z[i, j]], marker="*", s=120, color="white",
                   edgecolors="black", depthshade=False, zorder=10)
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel(r"$\beta$")
    ax.set_zlabel(_label(scale, key))
    ax.set_zlim(scale.lo, scale.hi)
    ax.view_init(elev=35, azim=-60)
    ax.set_title(_title(s, key))
    fig.colorbar(surf, ax=ax, shrink=0.6, pad=0.1)
    return fig


def render_1d(s: Surface, base: str, formats: list[str], log: bool = False, vmin: float | None = None,
              vmax: float | None = None) -> list[str]:
    """Loss (left axis) and accuracy (right axis) against alpha; train and test when both exist."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax2 = ax.twinx()
    x = s.xcoordinates
    styles = {"train": "-", "test": "--"}
    drew = False
    for split, ls in styles.items():
        loss = s.values.get(f"{split}_loss")
        acc = s.values.get(f"{split}_acc")
        if loss is not None:
            ax.plot(x, np.where(np.isfinite(loss), loss, np.nan), ls, color="tab:blue", lw=1.6,
                    label=f"{split} loss")
            drew = True
        if acc is not None:
            ax2.plot(x, acc, ls, color="tab:red", lw=1.2, label=f"{split} accuracy")
    if not drew:
        plt.close(fig)
        return []
    if log:
        ax.set_yscale("log")
    # The same basin-focused default range as the 2D figures, with a little head-room above it.
    losses = [s.values[k] for k in ("train_loss", "test_loss") if k in s.values]
    sc = make_scale(losses, vmin, vmax, None, log)
    top = sc.vmax if vmax is not None else (sc.vmax * 1.5 if log else sc.vmax + 0.05 * (sc.vmax - sc.vmin))
    ax.set_ylim(bottom=vmin if vmin is not None else (None if log else 0), top=top)
    ax2.set_ylim(0, 100)
    ax.axvline(0, color="grey", lw=0.6, ls=":")
    ax.set_xlabel(r"$\alpha$ (x direction)")
    ax.set_ylabel("loss", color="tab:blue")
    ax2.set_ylabel("accuracy (%)", color="tab:red")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper center", fontsize=8)
    ax.set_title(_title(s, "loss / accuracy"))
    return _save(fig, f"{base}_curve", formats)


def render_compare(surfaces: list[Surface], key: str, base: str, formats: list[str], scale: Scale,
                   kind: str = "contourf") -> list[str]:
    """Several 2D surfaces side by side on one colour scale (e.g. ResNet-56 next to plain-56)."""
    n = len(surfaces)
    fig, axes = plt.subplots(1, n, figsize=(4.8 * n + 0.8, 4.6), squeeze=False, constrained_layout=True)
    m = None
    for ax, s in zip(axes[0], surfaces):
        m = draw_2d(ax, s, key, kind, scale)
        ax.set_title(_title(s, key))
    fig.colorbar(m, ax=list(axes[0]), label=_label(scale, key), shrink=0.9)
    return _save(fig, f"{base}_compare_{kind}", formats)


__all__ = ["render_2d", "render_1d", "render_compare", "make_scale", "KINDS_2D"]
