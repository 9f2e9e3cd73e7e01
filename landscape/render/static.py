"""Static 2D figures with matplotlib (PNG, PDF, SVG): contour lines, filled contours, heatmap, 3D, comparisons."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import patheffects  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator  # noqa: E402
from matplotlib.transforms import offset_copy  # noqa: E402

from landscape.paths import atomic_open  # noqa: E402
from landscape.render.geometry import finite, label_spots, level_paths  # noqa: E402
from landscape.render.placement import clear_of_path, epoch_label_spots  # noqa: E402
from landscape.render.scale import Scale, fmt_value, make_scale  # noqa: E402
from landscape.render.surface3d import CMAP, declutter_ticks, draw_surface3d, height_colourbar  # noqa: E402
from landscape.render.text import mpl  # noqa: E402
from landscape.surface import Surface  # noqa: E402

KINDS_2D = ("contour", "contourf", "heatmap", "surface3d")
DPI = 150
RASTER_CELLS = 101 * 101  # a heatmap with more cells is drawn as pixels inside vector formats


def value_label(key: str) -> str:
    """Colour-bar / axis label of a dataset: ``train_loss`` -> ``train loss``."""
    return key.replace("_", " ")


def centre(ax) -> None:
    """theta* (alpha = beta = 0) as a white star."""
    ax.plot([0], [0], marker="*", color="white", markeredgecolor="black", markersize=12, zorder=5,
            label=r"$\theta^*$", linestyle="none")


class GridTicks(MaxNLocator):
    """Round ticks chosen on the grid's extent ``(lo, hi)`` while the view is the grid (a heatmap's reaches half a
    cell further, and got -1, 0, 1 where the contour figures had steps of 0.5); on a wider view (a trajectory
    beyond the grid) on the view, as MaxNLocator."""

    def __init__(self, lo: float, hi: float):
        super().__init__(nbins=4, steps=[1, 2, 2.5, 5, 10])
        self.lo, self.hi = lo, hi

    def __call__(self):
        a, b = sorted(self.axis.get_view_interval())
        cell = (self.hi - self.lo) or 1.0
        if a >= self.lo - cell and b <= self.hi + cell:
            eps = 1e-9 * cell
            return [v for v in self.tick_values(self.lo, self.hi) if self.lo - eps <= v <= self.hi + eps]
        return super().__call__()


def round_ticks(ax, s: Surface | None = None) -> None:
    """Few, round alpha/beta ticks: -1, -0.5, 0, 0.5, 1, never '-1.00-0.75-0.50' running together; with ``s``,
    the same ticks on every kind of figure of it (:class:`GridTicks`)."""
    fmt = FuncFormatter(lambda v, _: fmt_value(v).replace("-", "\u2212"))
    for axis, c in ((ax.xaxis, None if s is None else s.xcoordinates),
                    (ax.yaxis, None if s is None else s.ycoordinates)):
        if c is not None and len(c) > 1:
            axis.set_major_locator(GridTicks(float(c[0]), float(c[-1])))
        else:
            axis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
        axis.set_major_formatter(fmt)


def _axes(ax, s: Surface) -> None:
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel(r"$\beta$")
    # alpha and beta are in the same units (multiples of equally long directions): one unit is as long on both
    # axes, as on the page, so a 2:1 plane is drawn 2:1, never stretched square
    ax.set_aspect("equal", adjustable="box")
    round_ticks(ax, s)


def arch_name(s: Surface) -> str:
    """The file's ``arch`` attribute, else its name, as matplotlib text (one line, cut, ``$`` escaped)."""
    return mpl(s.attrs.get("arch") or os.path.splitext(os.path.basename(s.path))[0])


def _title(s: Surface, key: str) -> str:
    bits = [arch_name(s), value_label(key)]
    if s.attrs.get("dataset"):
        bits.append(mpl(str(s.attrs["dataset"]).split(":")[0]))
    return " · ".join(bits)


def colourbar(fig, mappable, scale: Scale, key: str, **kw):
    """A colour bar with the scale's round ticks (never 0.008, 1.043, 2.077); values beyond the range get a
    triangle at that end, a ``≥ cap`` label and the true maximum in the title (:meth:`Scale.bar_ticks`)."""
    from matplotlib.contour import ContourSet

    lines = mappable if isinstance(mappable, ContourSet) and not mappable.filled else None
    if lines is not None:
        # Line contours: matplotlib's own bar runs from the lowest to the highest level only, so the cap (and its
        # "≥ cap" label, the over-range triangle's) lay beyond its end and were never drawn. A white bar over the
        # scale's whole range, as the filled figures' (same tick positions), with the levels drawn on it as lines.
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import ListedColormap

        white = ListedColormap(["white"]).with_extremes(over="white", under="white")
        mappable = ScalarMappable(norm=scale.norm(), cmap=white)
        kw.setdefault("extend", scale.extend)
    elif not isinstance(mappable, ContourSet):  # a filled contour set carries its own extend (see draw_2d)
        kw.setdefault("extend", scale.extend)
    cb = fig.colorbar(mappable, label=scale.bar_label(value_label(key)), **kw)
    if lines is not None:
        # the levels at their values on the bar's own axis (log on a geometric scale): Colorbar.add_lines places
        # them by interpolating between the colour map's boundaries, two for a one-colour map: off on a log bar
        from matplotlib.collections import LineCollection
        from matplotlib.transforms import blended_transform_factory

        lv = np.asarray(lines.levels, float)
        keep = (lv >= scale.vmin) & (lv <= scale.vmax)
        col = LineCollection([[(0.0, v), (1.0, v)] for v in lv[keep]],
                             colors=np.asarray(lines.to_rgba(lines.cvalues, lines.alpha))[keep],
                             linewidths=np.broadcast_to(lines.get_linewidths(), lv.shape)[keep],
                             transform=blended_transform_factory(cb.ax.transAxes, cb.ax.transData))
        cb.ax.add_collection(col, autolim=False)
        cb.lines.append(col)
    cb.ax.set_label("<colorbar>")  # as matplotlib names a bar it places itself, also in a given cax
    ticks, labels = scale.bar_ticks()
    cb.ax.yaxis.set_major_locator(FixedLocator(ticks))
    cb.ax.yaxis.set_minor_locator(FixedLocator([]))
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: dict(zip(ticks, labels)).get(v, fmt_value(v))))
    return cb


def contour_labels(ax, m, s: Surface, key: str, scale: Scale, Z: np.ndarray) -> None:
    """A few round labels on the lines, spread apart and clear of theta* and the frame."""
    x, y = np.asarray(s.xcoordinates, float), np.asarray(s.ycoordinates, float)
    paths = clear_of_path(level_paths(x, y, Z, scale.levels), s, scale.labelled)
    spots = label_spots(paths, scale.labelled, (x[0], x[-1], y[0], y[-1]), avoid=[(0.0, 0.0)])
    if spots:
        # black, not the line's colour: the top colours (yellow) are unreadable on a white background
        ax.clabel(m, [lv for _, _, lv in spots], inline=True, fontsize=7, inline_spacing=3, colors="black",
                  fmt=lambda v: fmt_value(v), manual=[(px, py) for px, py, _ in spots])


def draw_2d(ax, s: Surface, key: str, kind: str, scale: Scale, labels: bool = True):
    """Draw one 2D view on ``ax``; returns the mappable for a colour bar."""
    X, Y = np.meshgrid(s.xcoordinates, s.ycoordinates)
    Z = finite(s.values[key])
    # Above the cap the walls are one colour: clip there, but keep gaps (NaN) as gaps.
    Zc = np.where(np.isnan(Z), np.nan, np.clip(Z, scale.vmin, scale.vmax))
    norm = scale.norm()
    if kind == "contour":
        m = ax.contour(X, Y, Zc, levels=scale.levels, cmap=CMAP, norm=norm, linewidths=0.9, extend=scale.extend)
        if labels:
            contour_labels(ax, m, s, key, scale, Zc)
    elif kind == "contourf":
        bounds = np.unique(np.concatenate([[scale.vmin], scale.levels, [scale.vmax]]))
        m = ax.contourf(X, Y, Zc, levels=bounds, cmap=CMAP, norm=norm, extend=scale.extend)
        seamless(m)
        ax.contour(X, Y, Zc, levels=scale.levels, colors="k", linewidths=0.3, alpha=0.5)
    elif kind == "heatmap":
        # Every cell is a coloured quad; in PDF/SVG a large grid as vectors is 100s of MB and minutes to write
        # (1001x1001: 190 MB of SVG), as pixels at the figure's resolution (as in the PNG) well under a MB.
        m = ax.pcolormesh(X, Y, np.ma.masked_invalid(Zc), cmap=CMAP, norm=norm, shading="nearest",
                          rasterized=Zc.size > RASTER_CELLS)
        seamless(m)
    else:
        raise ValueError(kind)
    centre(ax)
    _axes(ax, s)
    _trajectory(ax, s)
    return m


def seamless(m) -> None:
    """Filled polygons edged in their own colour: PDF and SVG viewers antialias each polygon on its own, which
    leaves white hairlines between neighbours; a thin edge of the same colour covers them."""
    m.set_edgecolor("face")
    m.set_linewidth(0.2)


def _trajectory(ax, s: Surface) -> None:
    """The optimizer's path projected on the PCA plane (Li et al. Fig. 9), when the surface has one."""
    t = s.trajectory
    if not t:
        return
    if t.get("label"):  # a curve between two models (landscape.connect), its models marked
        marks = t.get("marks") or {}
        if "A" in marks and "B" in marks:  # and the straight line it is compared with
            ax.plot([marks["A"][0], marks["B"][0]], [marks["A"][1], marks["B"][1]], "--", color="black", lw=1.2,
                    zorder=6, label="straight line",
                    path_effects=[patheffects.withStroke(linewidth=2.6, foreground="white")])
        ax.plot(t["x"], t["y"], "-", color="red", lw=1.6, zorder=6, label=mpl(t["label"]))
        for name, (px, py) in (t.get("marks") or {}).items():
            ax.plot([px], [py], "o", color="white", mec="black", ms=6, zorder=7)
            ax.annotate(mpl(name, 20), (px, py), textcoords="offset points", xytext=(5, 5), fontsize=8, zorder=7,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
        ax.legend(loc="upper right", fontsize=8)
        return
    ax.plot(t["x"], t["y"], "-", color="red", lw=1.2, zorder=6)
    ax.plot(t["x"], t["y"], "o", color="red", ms=MARKER_PT, zorder=6)
    if t.get("epochs") is not None and len(t["epochs"]):
        ax.apply_aspect()  # the box as drawn (equal aspect), which the labels are fitted to
        box = ax.get_position()
        w, h = ax.figure.get_size_inches()
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        for text, px, py, sx, sy, d in epoch_label_spots(t, (x0, x1, y0, y1), box.width * w * 72,
                                                         box.height * h * 72, EPOCH_FONT_PT, STAR_PT, MARKER_PT):
            ax.annotate(text, (px, py), textcoords="offset points", xytext=(sx * d, sy * d), fontsize=EPOCH_FONT_PT,
                        color="red", ha="left" if sx > 0 else "right", va="bottom" if sy > 0 else "top", zorder=7,
                        path_effects=[patheffects.withStroke(linewidth=2, foreground="white")])  # on any colour
    r = t.get("explained_variance_ratio") or []
    if len(r) >= 2:
        ax.set_xlabel(f"1st PCA component: {100 * r[0]:.1f} %")
        ax.set_ylabel(f"2nd PCA component: {100 * r[1]:.1f} %")


EPOCH_FONT_PT = 7  # the epoch labels' size, and the markers' and theta*'s, in points (see centre)
MARKER_PT = 3
STAR_PT = 12


def save(fig, base: str, formats: list[str], dpi: int = DPI, **kw) -> list[str]:
    """Write ``<base>.<ext>`` for each format (each whole or not at all: see :func:`atomic_open`) and close the
    figure; ``kw`` go to ``savefig``."""
    paths = []
    try:
        declutter_ticks(fig)  # laid out now: no 3D tick label over another
        for ext in formats:
            p = f"{base}.{ext}"
            with atomic_open(p, "wb") as f:
                fig.savefig(f, format=ext, dpi=dpi, **{"bbox_inches": "tight", **kw})
            paths.append(p)
    finally:
        plt.close(fig)
    return paths


_save = save  # the old private name, used by analysis.py


def figure_2d(s: Surface, key: str, kind: str, scale: Scale, view: tuple[float, float] | None = None):
    """One 2D figure (contour, contourf, heatmap or surface3d), not yet saved; ``view``: the 3D camera (default:
    this surface's, :func:`~landscape.render.surface3d.camera`)."""
    if kind == "surface3d":
        fig = plt.figure(figsize=(6.4, 5.4))
        ax = fig.add_subplot(projection="3d", computed_zorder=False)
        m = draw_surface3d(ax, s, key, scale, zlabel=value_label(key), view=view)
        ax.set_title(_title(s, key))
        height_colourbar(fig, m, scale, value_label(key), ax=ax, shrink=0.6, pad=0.12)
        return fig
    x, y = np.asarray(s.xcoordinates, float), np.asarray(s.ycoordinates, float)
    size, box, bar = plane_layout(x[-1] - x[0], y[-1] - y[0])
    fig = plt.figure(figsize=size)
    ax = fig.add_axes(box)  # placed before drawing: the epoch labels are fitted to the plot's size
    m = draw_2d(ax, s, key, kind, scale)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()  # a heatmap's cells reach half a cell beyond the grid
    size, box, bar = plane_layout(x1 - x0, y1 - y0)
    fig.set_size_inches(size)
    ax.set_position(box)
    colourbar(fig, m, scale, key, cax=fig.add_axes(bar))
    ax.set_title(_title(s, key))
    if ax.get_legend() is not None:  # below the axes, as the 1D figure's: inside, it hid contour labels
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, frameon=False,
                  bbox_to_anchor=(0.5, 0.0), bbox_transform=offset_copy(ax.transAxes, fig=fig, y=-34, units="points"))
    return fig


# The plot's side at 1:1 and the most it may grow to, in inches; the colour bar's least height; the margins.
PLOT_IN, PLOT_MAX_W, PLOT_MAX_H, BAR_MIN_H = 3.8, 7.5, 6.0, 1.9
_LEFT, _BOTTOM, _TOP, _PAD, _BAR_W, _RIGHT = 0.85, 0.65, 0.45, 0.15, 0.17, 1.0


def plane_layout(xspan: float, yspan: float) -> tuple[tuple[float, float], list[float], list[float]]:
    """The figure size (inches) and the plot's and colour bar's boxes (figure fractions) for a plane of that
    width and height drawn at equal aspect: the plot keeps about a 1:1 plane's area, so a 13 x 4 PCA plane is
    a wide strip in a wide figure, not a strip in a square one, within PLOT_MAX_W x PLOT_MAX_H; the colour bar is
    as tall as the plot (never taller, unless the plot is lower than BAR_MIN_H: a bar's labels need that much).
    """
    a = float(xspan) / float(yspan) if yspan and xspan and np.isfinite(xspan / yspan) else 1.0
    w, h = PLOT_IN * np.sqrt(a), PLOT_IN / np.sqrt(a)
    if w > PLOT_MAX_W:
        w, h = PLOT_MAX_W, PLOT_MAX_W / a
    if h > PLOT_MAX_H:
        w, h = PLOT_MAX_H * a, PLOT_MAX_H
    hb = max(h, BAR_MIN_H)
    tall = max(h, hb)
    fw, fh = _LEFT + w + _PAD + _BAR_W + _RIGHT, _BOTTOM + tall + _TOP
    box = [_LEFT / fw, (_BOTTOM + (tall - h) / 2) / fh, w / fw, h / fh]
    bar = [(_LEFT + w + _PAD) / fw, (_BOTTOM + (tall - hb) / 2) / fh, _BAR_W / fw, hb / fh]
    return (float(fw), float(fh)), box, bar


def render_2d(s: Surface, key: str, base: str, formats: list[str], scale: Scale,
              kinds: tuple = KINDS_2D, view: tuple[float, float] | None = None) -> list[str]:
    """One file per kind and format: ``<base>_<kind>.<ext>`` (``view``: the 3D camera, see :func:`figure_2d`)."""
    paths = []
    for kind in kinds:
        paths += save(figure_2d(s, key, kind, scale, view), f"{base}_{kind}", formats)
    return paths


def render_compare(surfaces: list[Surface], key: str, base: str, formats: list[str], scale: Scale,
                   kind: str = "contourf") -> list[str]:
    """Several 2D surfaces side by side on one colour scale (e.g. ResNet-56 next to plain-56):
    ``<base>_<kind>.<ext>``."""
    n = len(surfaces)
    # as high as the planes drawn at equal aspect need: a flat PCA plane in a square figure was a strip between
    # blank bands beside a colour bar three times its height (at least the bar's labels' height)
    wide = max(float(np.ptp(s.xcoordinates)) / (float(np.ptp(s.ycoordinates)) or 1.0) for s in surfaces)
    high = min(4.6, max(BAR_MIN_H + 0.7, 3.6 / max(wide, 1e-9) + 1.3))
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n + 0.9, high), squeeze=False, constrained_layout=True)
    m = None
    for ax, s in zip(axes[0], surfaces):
        m = draw_2d(ax, s, key, kind, scale)
        ax.set_title(_title(s, key))
    colourbar(fig, m, scale, key, ax=list(axes[0]), shrink=0.9)
    return save(fig, f"{base}_{kind}", formats)


__all__ = ["render_2d", "render_compare", "figure_2d", "draw_2d", "make_scale", "KINDS_2D", "save",
           "colourbar", "round_ticks", "arch_name", "value_label"]
