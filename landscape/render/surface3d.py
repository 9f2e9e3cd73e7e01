"""The 3D surface in matplotlib, shared by the per-surface figure and the paper figure."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.ticker import FuncFormatter, MaxNLocator

from landscape.render.geometry import (centre_index, cut_mesh, height_range, log_heights, pick_camera,
                                       surface_heights, to_height)
from landscape.render.path3d import PATH_STEEPEST, draw_path3d, path_camera
from landscape.render.scale import Scale, fmt_value, pick_ticks
from landscape.surface import Surface

CMAP = "viridis"
# A flatter box than mplot3d's (4, 4, 3): the walls then hide less of the floor.
BOX = (1, 1, 0.6)
# The most cells per axis of a static 3D mesh (after refinement): a 51x51 grid refined 4x. Larger grids are thinned
# to it (every k-th point), so a 1001x1001 surface draws like a 51x51 one, in seconds.
STATIC_CELLS = 200
# The most labels on the height axis seen from 30 degrees up; fewer from higher, where it looks shorter (the
# colour bar beside it has them all).
Z_TICKS = 4


def z_tick_count(elev: float) -> int:
    """How many labels the height axis holds seen from ``elev`` degrees: its length on screen goes with
    cos(elev); at least 2 (a range needs both ends)."""
    return max(2, int(round(Z_TICKS * np.cos(np.radians(elev)) / np.cos(np.radians(30)))))


def bar_ticks(scale: Scale) -> np.ndarray:
    """The 2D colour bar's ticks (raw values), the ones inside the range."""
    return np.array([t for t in scale.ticks if scale.vmin <= t <= scale.vmax], dtype=float)


def height_ticks(scale: Scale, most: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Ticks of the height axis (PNG and page): positions (heights) and labels (values), the 2D colour bar's
    round ticks, thinned to ``most`` when given."""
    vals = bar_ticks(scale)
    if most is not None and len(vals) > most:
        # two on a linear axis: its ends (2 and 10, not 2 and 8); else round ones (1-2-5, then decades)
        vals = vals[[0, -1]] if most <= 2 and not log_heights(scale) else pick_ticks(vals, log_heights(scale), most)
    return to_height(scale, vals), [fmt_value(v) for v in vals]


def theta_star(s: Surface, key: str, scale: Scale) -> np.ndarray:
    """theta* as drawn: (alpha, beta, height) of the grid point nearest the origin, at its own value's height
    (the floor of the basin, never the rim); ``vmin``'s height where the value is missing."""
    i, j = centre_index(s)
    zc = to_height(scale, np.array([s.values[key][i, j]], float))[0]
    lo, hi = height_range(scale)
    zc = float(np.clip(zc, lo, hi)) if np.isfinite(zc) else lo
    return np.array([float(s.xcoordinates[j]), float(s.ycoordinates[i]), zc])


# When no camera shows theta* (a narrow, deep basin), look steeply; the drop line still marks where it is.
DEFAULT_VIEW = (75.0, -60.0)
# Several panels share one camera only up to this elevation: a steeper one, needed to see into the narrowest of
# their basins, flattens them all into contour maps (the panels below already are). Above it, the camera that
# shows the first surface's theta* (the drop line marks the others').
SHARED_STEEPEST = 45.0


def camera(surfaces: list[Surface], key: str | list[str], scale: Scale, factor: int = 4) -> tuple[float, float]:
    """One ``(elev, azim)`` for every panel (shared, so panels compare): on planes with a path, one that shows
    theta* and the path (:func:`~landscape.render.path3d.path_camera`); else the lowest from which theta* is
    visible on every surface, up to :data:`SHARED_STEEPEST`; else the lowest that shows it on the first surface
    that any camera shows it on; else :data:`DEFAULT_VIEW`. ``key``: the dataset drawn, or one per surface."""
    lo, hi = height_range(scale)
    keys = [key] * len(surfaces) if isinstance(key, str) else list(key)
    grids = [(*surface_heights(s, k, scale, factor, STATIC_CELLS), theta_star(s, k, scale))
             for s, k in zip(surfaces, keys)]
    # planes with a path: one that shows it (panels side by side no steeper than they share a camera otherwise)
    view = path_camera(surfaces, keys, scale, grids, BOX, PATH_STEEPEST if len(grids) == 1 else SHARED_STEEPEST)
    if view is not None:
        return view
    if len(grids) > 1:
        view = pick_camera(grids, hi, lo, BOX, SHARED_STEEPEST)
        if view is not None:
            return view
    for g in grids:
        view = pick_camera([g], hi, lo, BOX)
        if view is not None:
            return view
    return DEFAULT_VIEW


def _slab(poly: np.ndarray, lo: float, hi: float) -> np.ndarray | None:
    """The part of a convex planar polygon with ``lo <= z <= hi`` (clipped against both planes), or None."""
    for level, sign in ((lo, 1.0), (hi, -1.0)):  # keep sign * (z - level) >= 0
        out = []
        for k in range(len(poly)):
            a, b = poly[k], poly[(k + 1) % len(poly)]
            ina, inb = sign * (a[2] - level) >= 0, sign * (b[2] - level) >= 0
            if ina:
                out.append(a)
            if ina != inb:
                out.append(a + (level - a[2]) / (b[2] - a[2]) * (b - a))
        if len(out) < 3:
            return None
        poly = np.array(out)
    return poly


def banded(polys: list[np.ndarray], levels: np.ndarray) -> list[np.ndarray]:
    """Faces that cross a height in ``levels`` split there, so each piece lies in one band between levels.

    Why: a face gets one flat colour (matplotlib), that of its mean height; a steep wall's long faces, each from
    the floor to the cap, then streak it with floor and cap colours side by side. Split, a wall shows the
    contour bands of the 2D panels and its colours follow its heights.
    """
    out = []
    for p in polys:
        z0, z1 = p[:, 2].min(), p[:, 2].max()
        inside = levels[(levels > z0) & (levels < z1)]
        if not len(inside):
            out.append(p)
            continue
        edges = np.r_[z0, inside, z1]
        out += [s for s in (_slab(p, a, b) for a, b in zip(edges[:-1], edges[1:])) if s is not None]
    return out


def draw_surface3d(ax, s: Surface, key: str, scale: Scale, factor: int = 4, rasterized: bool = False,
                   zlabel: str | None = None, view: tuple[float, float] | None = None):
    """Draw ``s`` on the 3D axes ``ax`` (made with ``computed_zorder=False``); the surface ends at the cap.

    Args:
        ax: matplotlib 3D axes.
        s, key: the surface and dataset.
        scale: shared scale; heights are log10 where its colour levels are geometric or under ``--log``
            (:func:`~landscape.render.geometry.log_heights`); the surface is cut cleanly at ``scale.vmax``.
        factor: grid refinement, so the cut at the cap is smooth (less on fine grids; see STATIC_CELLS).
        rasterized: draw the mesh as pixels inside vector output (a 21x21 grid refined 4x is 12,800 triangles).
        zlabel: z axis label.
        view: ``(elev, azim)``; default: :func:`camera` for this surface.

    Returns:
        The surface collection (the mappable for a colour bar).
    """
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    lo, hi = height_range(scale)
    x, y, h = surface_heights(s, key, scale, factor, STATIC_CELLS)
    polys = banded(cut_mesh(x, y, h, hi), to_height(scale, scale.levels))
    # Each face the 2D colour of its mean height's value: the same colour means the same loss in every panel.
    mean = np.array([p[:, 2].mean() for p in polys])
    colours = colormaps[CMAP](scale.norm()(10 ** mean if log_heights(scale) else mean)) if polys else None
    # Every face with as many corners (a short one repeats its last corner): matplotlib pads mixed lengths with
    # uninitialised memory, which leaked into the axis limits now and then ("Axis limits cannot be NaN or Inf").
    most = max((len(p) for p in polys), default=4)
    quads = [p if len(p) == most else np.vstack([p] + [p[-1:]] * (most - len(p))) for p in polys]
    surf = Poly3DCollection(quads, facecolors=colours, linewidths=0, antialiased=False, zorder=1)
    ax.add_collection3d(surf, autolim=False)  # the limits are set below, from the grid and the scale
    surf.set_rasterized(rasterized)
    # theta* at its own height on the floor, and a drop line from the cap down to it: the star alone, drawn over
    # the mesh, can look pinned to whatever wall lies behind it on screen; the line says where it sits.
    xc, yc, zc = theta_star(s, key, scale)
    ax.plot([xc, xc], [yc, yc], [hi, zc], color="black", lw=0.8, ls=(0, (3, 2)), zorder=9)
    ax.scatter([xc], [yc], [zc], marker="*", s=160, color="white", edgecolors="black", linewidths=0.8,
               depthshade=False, zorder=10)
    ax.set_xlim(s.xcoordinates[0], s.xcoordinates[-1])
    ax.set_ylim(s.ycoordinates[0], s.ycoordinates[-1])
    ax.set_zlim(lo, hi)
    ax.set_xlabel(r"$\alpha$", labelpad=-4)
    ax.set_ylabel(r"$\beta$", labelpad=-4)
    ax.tick_params(axis="both", labelsize=7, pad=-2)
    ax.tick_params(axis="z", labelsize=7, pad=1)
    elev, azim = view or camera([s], key, scale, factor)
    ax.set_zticks(*height_ticks(scale, z_tick_count(elev)))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
        axis.set_major_formatter(FuncFormatter(lambda v, _: fmt_value(v).replace("-", "\u2212")))
    if zlabel:
        # upright whatever the camera (mplot3d turns it with the axis: upside down seen from some sides)
        ax.zaxis.set_rotate_label(False)
        ax.set_zlabel(zlabel, labelpad=0, rotation=90)
    ax.view_init(elev=elev, azim=azim)
    ax.set_box_aspect(BOX)
    draw_path3d(ax, s, key, scale, STATIC_CELLS, (elev, azim), BOX)  # a plane's path, on the surface as on the map
    # A transparent background: the grey panes of mplot3d make the cut edge hard to see.
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_pane_color((1, 1, 1, 0))
    return _mappable(scale)


def declutter_ticks(fig) -> None:
    """Blank every alpha/beta tick label that a 3D panel of ``fig`` would draw over, or right against, another
    axis's tick label: at the corner two axes share, their end labels (``1`` of alpha by ``-1`` of beta, or beta's
    ``1`` by the height axis's lowest) ran together. The height axis keeps all its (few) labels; beta's go before
    alpha's. Call it once the figure is laid out (sized, colour bar placed): it draws the figure to see where the
    labels land."""
    solids = [a for a in fig.axes if a.name == "3d"]
    if not solids:
        return
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in solids:
        def boxes(axis):
            # each label with a margin of a third of its height: labels of two axes closer than that read as one
            # ('1 −1')
            out = []
            for t in axis.get_major_ticks():
                if t.label1.get_visible() and t.label1.get_text():
                    b = t.label1.get_window_extent(renderer)
                    out.append((t.get_loc(), b.padded(b.height / 3)))
            return out

        kept = [b for _, b in boxes(ax.zaxis)]
        for axis in (ax.xaxis, ax.yaxis):  # alpha's first: beta gives way at the corner they share
            blank = []
            for v, b in boxes(axis):
                if any(b.overlaps(k) for k in kept):
                    blank.append(v)
                else:
                    kept.append(b)
            if blank:
                was = axis.get_major_formatter()
                axis.set_major_formatter(FuncFormatter(
                    lambda v, pos, was=was, blank=tuple(blank): "" if any(abs(v - b) < 1e-9 for b in blank)
                    else was(v, pos)))


def _mappable(scale: Scale):
    """A colour-bar source for the surface: the 2D panels' colours on raw values (the facecolours above carry
    no scalar data), so its colour bar is the 2D one."""
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=scale.norm(), cmap=CMAP)


def height_colourbar(fig, mappable, scale: Scale, label: str, **kw):
    """The 3D figure's colour bar: the 2D figures' bar (same colours, ticks and over-range marks), since the
    surface is coloured as they are; the height axis carries a few of its ticks."""
    from landscape.render.static import colourbar  # static imports this module

    return colourbar(fig, mappable, scale, label, **kw)
