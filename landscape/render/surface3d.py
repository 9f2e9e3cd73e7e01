"""The 3D surface in matplotlib, shared by the per-surface figure and the paper figure."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.ticker import FuncFormatter, MaxNLocator

from landscape.render.geometry import centre_index, cut_mesh, pick_camera, surface_heights
from landscape.render.scale import Scale, fmt_value, linear_levels
from landscape.surface import Surface

CMAP = "viridis"
# Looking down on the basin from above one corner: high enough that the walls do not hide the floor, low enough
# that the depth reads (Li et al.'s figures are taken from about here).
# A flatter box than mplot3d's (4, 4, 3): the walls then hide less of the floor.
BOX = (1, 1, 0.6)
# The most cells per axis of a static 3D mesh (after refinement): a 51x51 grid refined 4x. Larger grids are thinned
# to it (every k-th point), so a 1001x1001 surface draws like a 51x51 one, in seconds.
STATIC_CELLS = 200


def height_norm(scale: Scale) -> Normalize:
    """Colours of the 3D surface follow its heights (log10 values under ``--log``): with log colours on a
    linear height axis every wall above 1 would be one yellow."""
    return Normalize(scale.lo, scale.hi)


def height_ticks(scale: Scale) -> tuple[np.ndarray, list[str]]:
    """Round ticks of the height axis and the 3D colour bar: positions (heights) and labels (values)."""
    if scale.log:
        vals = np.array([t for t in scale.ticks if scale.vmin <= t <= scale.vmax])
        return np.log10(vals), [fmt_value(v) for v in vals]
    vals = linear_levels(scale.vmin, scale.vmax, 5)
    return vals, [fmt_value(v) for v in vals]


def theta_star(s: Surface, key: str, scale: Scale) -> np.ndarray:
    """theta* as drawn: (alpha, beta, height) of the grid point nearest the origin, height within the range."""
    i, j = centre_index(s)
    zc = scale.transform(np.maximum(np.array([s.values[key][i, j]], float), scale.vmin))[0]
    zc = float(np.clip(zc, scale.lo, scale.hi)) if np.isfinite(zc) else scale.lo
    return np.array([float(s.xcoordinates[j]), float(s.ycoordinates[i]), zc])


# When no camera up to 60 degrees shows theta* (a narrow, deep basin), look steeply; the star is drawn on top.
DEFAULT_VIEW = (60.0, -60.0)


def camera(surfaces: list[Surface], key: str, scale: Scale, factor: int = 4) -> tuple[float, float]:
    """One ``(elev, azim)`` for every panel (shared, so panels compare): from which theta* is visible on every
    surface, else on the first one, else :data:`DEFAULT_VIEW`."""
    grids = [(*surface_heights(s, key, scale, factor, STATIC_CELLS), theta_star(s, key, scale)) for s in surfaces]
    return (pick_camera(grids, scale.hi, scale.lo, BOX) or pick_camera(grids[:1], scale.hi, scale.lo, BOX)
            or DEFAULT_VIEW)


def draw_surface3d(ax, s: Surface, key: str, scale: Scale, factor: int = 4, rasterized: bool = False,
                   zlabel: str | None = None, view: tuple[float, float] | None = None):
    """Draw ``s`` on the 3D axes ``ax`` (made with ``computed_zorder=False``); the surface ends at the cap.

    Args:
        ax: matplotlib 3D axes.
        s, key: the surface and dataset.
        scale: shared scale; values above ``scale.vmax`` are masked, not flattened.
        factor: grid refinement, so the cut at the cap is smooth (less on fine grids; see STATIC_CELLS).
        rasterized: draw the mesh as pixels inside vector output (a 21x21 grid refined 4x is 12,800 triangles).
        zlabel: z axis label.
        view: ``(elev, azim)``; default: :func:`camera` for this surface.

    Returns:
        The surface collection (the mappable for a colour bar).
    """
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    x, y, h = surface_heights(s, key, scale, factor, STATIC_CELLS)
    polys = cut_mesh(x, y, h, scale.hi)
    norm = height_norm(scale)
    colours = colormaps[CMAP](norm(np.array([p[:, 2].mean() for p in polys]))) if polys else None
    # Every face as a quad (a triangle repeats its last corner): matplotlib pads mixed lengths with uninitialised
    # memory, which leaked into the axis limits now and then ("Axis limits cannot be NaN or Inf").
    quads = [p if len(p) == 4 else np.vstack([p, p[-1:]]) for p in polys]
    surf = Poly3DCollection(quads, facecolors=colours, linewidths=0, antialiased=False, zorder=1)
    ax.add_collection3d(surf, autolim=False)  # the limits are set below, from the grid and the scale
    surf.set_rasterized(rasterized)
    # theta*: drawn last and above the mesh (computed_zorder=False), so the walls can never hide it.
    xc, yc, zc = theta_star(s, key, scale)
    ax.scatter([xc], [yc], [zc], marker="*", s=160, color="white", edgecolors="black", linewidths=0.8,
               depthshade=False, zorder=10)
    ax.set_xlim(s.xcoordinates[0], s.xcoordinates[-1])
    ax.set_ylim(s.ycoordinates[0], s.ycoordinates[-1])
    ax.set_zlim(scale.lo, scale.hi)
    ax.set_xlabel(r"$\alpha$", labelpad=-4)
    ax.set_ylabel(r"$\beta$", labelpad=-4)
    ax.tick_params(axis="both", labelsize=7, pad=-2)
    ax.tick_params(axis="z", labelsize=7, pad=1)
    ax.set_zticks(*height_ticks(scale))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
        axis.set_major_formatter(FuncFormatter(lambda v, _: fmt_value(v).replace("-", "\u2212")))
    if zlabel:
        ax.set_zlabel(zlabel, labelpad=0)
    elev, azim = view or camera([s], key, scale, factor)
    ax.view_init(elev=elev, azim=azim)
    ax.set_box_aspect(BOX)
    # A transparent background: the grey panes of mplot3d make the cut edge hard to see.
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_pane_color((1, 1, 1, 0))
    return _mappable(scale)


def _mappable(scale: Scale):
    """A colour-bar source for the heights (the facecolours above carry no scalar data)."""
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=height_norm(scale), cmap=CMAP)


def height_colourbar(fig, mappable, scale: Scale, label: str, **kw):
    """The 3D figure's colour bar: height colours, the z axis's round ticks."""
    cb = fig.colorbar(mappable, label=label, **kw)
    pos, labels = height_ticks(scale)
    cb.set_ticks(pos, labels=labels)
    cb.minorticks_off()
    return cb
