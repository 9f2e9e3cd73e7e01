"""A path on a plane (an optimizer's trajectory, a curve between two models and the straight line beside it)
drawn on the plane's 3D surface, in the PNG (matplotlib) and on the page (plotly, passed in as ``go``).

The 2D views draw the path over the map; the 3D views drew the surface and theta* alone, so the path a reader
follows on the map vanished beside it. Here it lies on the surface as drawn: its height at each point is the
surface's there (bilinear between the grid points the mesh is made from), on a polyline made fine enough to
follow the surface across each cell rather than cut through hills between the path's points. Numpy only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from landscape.render.geometry import finite, height_range, surface_heights, thin
from landscape.render.scale import Scale
from landscape.render.text import mpl, web
from landscape.surface import Surface

# Points per grid cell along the path: each cell's bilinear surface is curved along a line across it.
PER_CELL = 4
# The most points of a lifted path (a trajectory of 10,000 epochs over a 1001x1001 grid would be millions), and
# the most of its points a 3D view marks with a dot (10,000 of them are one red band).
MOST = 4000
MOST_DOTS = 100
# Lifted this fraction of the box's height above the surface: exactly on it, the browser's depth test hides
# half of the line in the mesh's triangles.
LIFT = 0.012


def bilinear(x: np.ndarray, y: np.ndarray, grid: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """``grid`` (shape (len(y), len(x)), increasing axes) at the points ``(px, py)``: bilinear in the cell around
    each; NaN outside the grid and where a corner with a weight is NaN (a point on a grid line takes nothing from
    the corners off it: a computed point beside a gap is its value, not NaN)."""
    px, py = np.asarray(px, float), np.asarray(py, float)
    out = np.full(px.shape, np.nan)
    inside = (px >= x[0]) & (px <= x[-1]) & (py >= y[0]) & (py <= y[-1])
    if len(x) < 2 or len(y) < 2 or not inside.any():
        return out
    fx, fy = np.interp(px[inside], x, np.arange(len(x))), np.interp(py[inside], y, np.arange(len(y)))
    j, i = np.minimum(fx.astype(int), len(x) - 2), np.minimum(fy.astype(int), len(y) - 2)
    tx, ty = fx - j, fy - i
    total = np.zeros(len(j))
    for di, dj, w in ((0, 0, (1 - tx) * (1 - ty)), (0, 1, tx * (1 - ty)), (1, 0, (1 - tx) * ty), (1, 1, tx * ty)):
        with np.errstate(invalid="ignore"):
            total += np.where(w == 0, 0.0, w * grid[i + di, j + dj])
    out[inside] = total
    return out


def heights_at(s: Surface, key: str, scale: Scale, px: np.ndarray, py: np.ndarray, cells: int) -> np.ndarray:
    """The surface's height (as drawn: :func:`~landscape.render.geometry.to_height`) at points of the plane:
    bilinear between the grid points the mesh is made from (``cells``: its most cells per axis, so a thinned
    grid is interpolated as drawn); NaN at gaps and outside the grid; not capped."""
    x, y, h = surface_heights(s, key, scale, 1, cells)
    return bilinear(x, y, h, px, py)


def values_at(s: Surface, key: str, px: np.ndarray, py: np.ndarray, cells: int) -> np.ndarray:
    """The file's values (not raised to the scale's floor, not log) at points of the plane, bilinear between the
    same grid points as :func:`heights_at`: what the page's hover says is under the path."""
    x, y, z = thin(np.asarray(s.xcoordinates, float), np.asarray(s.ycoordinates, float), finite(s.values[key]),
                   cells + 1)
    return bilinear(x, y, z, px, py)


def densify(px: np.ndarray, py: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """The polyline through ``(px, py)`` with each segment cut into pieces of about ``cell / PER_CELL``: at most
    :data:`MOST` points in all (a longer path is first thinned to every k-th point, its ends kept); the points
    kept are on it."""
    px, py = np.asarray(px, float), np.asarray(py, float)
    if len(px) > MOST // 2:
        keep = np.unique(np.round(np.linspace(0, len(px) - 1, MOST // 2)).astype(int))
        px, py = px[keep], py[keep]
    if len(px) < 2:
        return px, py
    seg = np.hypot(np.diff(px), np.diff(py))
    # pieces of one length, so that the total stays within MOST (each segment gets at least one)
    step = max(cell / PER_CELL, float(seg.sum()) / (MOST - len(px)), 1e-300)
    pieces = np.maximum(1, np.ceil(seg / step).astype(int))
    xs, ys = [], []
    for k, n in enumerate(pieces):
        t = np.arange(n) / n
        xs.append(px[k] + t * (px[k + 1] - px[k]))
        ys.append(py[k] + t * (py[k + 1] - py[k]))
    return np.concatenate(xs + [px[-1:]]), np.concatenate(ys + [py[-1:]])


def lifted(s: Surface, key: str, scale: Scale, px, py, cells: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The path on the surface: ``(x, y, height, value)``, densified (:func:`densify`); the height raised by
    :data:`LIFT` of the box, held at the cap where the surface is above it (cut away there, as the map's colours
    stop at the cap), NaN (a gap) where the surface has none; the value the file's there (:func:`values_at`)."""
    xs, ys = np.asarray(s.xcoordinates, float), np.asarray(s.ycoordinates, float)
    cell = min((xs[-1] - xs[0]) / max(len(xs) - 1, 1), (ys[-1] - ys[0]) / max(len(ys) - 1, 1))
    cell = max(cell, (xs[-1] - xs[0]) / cells, (ys[-1] - ys[0]) / cells)  # a thinned grid's cell
    x, y = densify(px, py, cell)
    return (x, y, *on_surface(s, key, scale, x, y, cells))


def on_surface(s: Surface, key: str, scale: Scale, x: np.ndarray, y: np.ndarray, cells: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Points on the surface: their heights as drawn (lifted, held at the cap) and the file's values there."""
    lo, hi = height_range(scale)
    h = heights_at(s, key, scale, x, y, cells)
    return np.clip(h + LIFT * (hi - lo), lo, hi), values_at(s, key, x, y, cells)


def parts(s: Surface) -> list[dict]:
    """What a plane's path is made of, for both renderers: ``kind`` ("line": the straight line between two
    models, "curve": a curve between them, "trajectory": an optimizer's path), its points ``x``, ``y``, its
    ``label``, and ``marks`` (named points: the models, or the epochs as ``epoch N``). Empty without a path."""
    t = s.trajectory
    if not t:
        return []
    if t.get("label"):
        marks = t.get("marks") or {}
        out = []
        if "A" in marks and "B" in marks:
            out.append(dict(kind="line", x=[marks["A"][0], marks["B"][0]], y=[marks["A"][1], marks["B"][1]],
                            label="straight line", marks={}))
        out.append(dict(kind="curve", x=t["x"], y=t["y"], label=str(t["label"]), marks=dict(marks)))
        return out
    epochs = t.get("epochs")
    names = [f"epoch {int(e)}" for e in epochs] if epochs is not None and len(epochs) == len(t["x"]) else \
        [f"point {k}" for k in range(len(t["x"]))]
    keep = np.unique(np.round(np.linspace(0, len(names) - 1, min(len(names), MOST_DOTS))).astype(int))
    return [dict(kind="trajectory", x=t["x"], y=t["y"], label="trajectory",
                 marks={names[k]: (float(t["x"][k]), float(t["y"][k])) for k in keep})]


# The visibility test's mesh: at most this many cells per axis (the drawn one has up to 200: a path hidden by a
# wall is hidden by the wall's coarse outline too, and the test costs faces x points).
VIS_CELLS = 60


class VisMesh(NamedTuple):
    """A surface as the visibility test sees it: its triangles (cut at the cap) and box, in data units."""
    tris: np.ndarray
    origin: np.ndarray
    span: np.ndarray
    own: float  # faces within this (box units) of a point are its own: not counted as hiding it


def vis_mesh(s: Surface, key: str, scale: Scale, box: tuple[float, float, float]) -> VisMesh:
    """The mesh :func:`seen` tests against (at most :data:`VIS_CELLS` cells per axis)."""
    from landscape.render.geometry import triangles

    lo, hi = height_range(scale)
    gx, gy, gh = surface_heights(s, key, scale, 1, VIS_CELLS)
    cx, cy = box[0] / max(len(gx) - 1, 1), box[1] / max(len(gy) - 1, 1)
    # a cell and a half: the face a point lies on is drawn finer than this mesh, a little off it
    return VisMesh(triangles(gx, gy, gh, hi), np.array([gx[0], gy[0], lo]),
                   np.array([gx[-1] - gx[0], gy[-1] - gy[0], (hi - lo) or 1.0]), 1.5 * float(np.hypot(cx, cy)))


def seen(mesh: VisMesh, x: np.ndarray, y: np.ndarray, z: np.ndarray, view: tuple[float, float],
         box: tuple[float, float, float]) -> np.ndarray:
    """Per point of a lifted path: whether the camera at ``view`` sees it over the surface (False at gaps)."""
    from landscape.render.geometry import hidden_points

    ok = np.isfinite(z)
    out = np.zeros(len(z), dtype=bool)
    pts = np.stack([x[ok], y[ok], z[ok]], axis=1)
    out[ok] = ~hidden_points(mesh.tris, pts, *view, mesh.origin, mesh.span, box, mesh.own)
    return out


# Cameras a path's figure may take: up to this elevation (steeper flattens the hills a path crosses), and the
# share of each surface's path they must show to be taken at once (else the one showing most).
PATH_STEEPEST = 60.0
PATH_SEEN = 0.95
PATH_SAMPLES = 300  # points of each surface's path the camera test looks at


def path_camera(surfaces: list[Surface], keys: list[str], scale: Scale,
                grids: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                box: tuple[float, float, float], steepest: float = PATH_STEEPEST) -> tuple[float, float] | None:
    """A camera for surfaces with a path, among those (up to ``steepest``) that show theta* on every surface:
    the lowest that shows at least :data:`PATH_SEEN` of each surface's path, else the one whose least-seen path
    is seen most; None without paths or when no camera shows theta*.

    Why: the camera chosen for theta* alone looked at a plane through three models from wherever theta* showed,
    and a ridge between the models then hid the curve the figure is about.

    Args:
        grids: ``(x, y, height, theta*)`` per surface, as :func:`~landscape.render.geometry.pick_camera` takes.
    """
    from landscape.render.geometry import AZIMUTHS, ELEVATIONS, star_meshes, star_seen

    paths = []
    for s, k in zip(surfaces, keys):
        pieces = [lifted(s, k, scale, p["x"], p["y"], VIS_CELLS)[:3] for p in parts(s)]
        if not pieces:
            continue
        # every part at the same spacing (densified by length), then thinned evenly: a part counts by its length
        x, y, z = (np.concatenate([q[c] for q in pieces]) for c in range(3))
        keep = np.unique(np.round(np.linspace(0, len(x) - 1, min(len(x), PATH_SAMPLES))).astype(int))
        paths.append((vis_mesh(s, k, scale, box), x[keep], y[keep], z[keep]))
    if not paths:
        return None
    lo, hi = height_range(scale)
    meshes = star_meshes(grids, hi, lo)
    best, most = None, -1.0
    for elev in (e for e in ELEVATIONS if e <= steepest):
        for azim in AZIMUTHS:
            if not star_seen(meshes, elev, azim, box):
                continue
            least = min(float(seen(m, x, y, z, (elev, azim), box).mean()) for m, x, y, z in paths)
            if least >= PATH_SEEN:
                return float(elev), float(azim)
            if least > most:
                best, most = (float(elev), float(azim)), least
    return best


# Where the models' names go from their dots (points): A's below left (theta*'s star covers A), B's right, the
# bend's above right; as on the map.
NAME_SHIFT = {"A": (-7, -7, "right", "top"), "B": (7, 0, "left", "center"), "bend": (6, 6, "left", "bottom")}
HIDDEN_ALPHA = 0.4  # a dot a wall hides from the PNG's camera: faded, as the hidden part of the line is dotted


def draw_path3d(ax, s: Surface, key: str, scale: Scale, cells: int, view: tuple[float, float],
                box: tuple[float, float, float]) -> None:
    """The plane's path on the matplotlib 3D axes (their view and limits set): red as on the map (a straight line
    dashed black), the models as white dots named beside them, an optimizer's epochs as red dots (their numbers
    are on the map; at most :data:`MOST_DOTS`). Drawn over the mesh (``computed_zorder=False``, which draws in
    order, not by depth), so the parts a wall hides from this camera are drawn dotted and thin, and hidden dots
    faded: seen through the wall, and said to be."""
    from matplotlib import patheffects
    from mpl_toolkits.mplot3d import proj3d

    pieces = parts(s)
    if not pieces:
        return
    halo = [patheffects.withStroke(linewidth=2.4, foreground="white")]
    mesh = vis_mesh(s, key, scale, box)
    for p in pieces:
        x, y, z, _ = lifted(s, key, scale, p["x"], p["y"], cells)
        vis = seen(mesh, x, y, z, view, box)
        near_hidden = ~vis | np.r_[~vis[1:], False] | np.r_[False, ~vis[:-1]]  # the dotted part meets the solid
        colour, ls = ("black", "--") if p["kind"] == "line" else ("red", "-")
        ax.plot(x, y, np.where(vis, z, np.nan), ls=ls, color=colour, lw=1.3, zorder=7, path_effects=halo)
        ax.plot(x, y, np.where(near_hidden, z, np.nan), ls=":", color=colour, lw=0.9, zorder=7)
        names = list(p["marks"])
        if not names:
            continue
        mx, my = np.array([p["marks"][n][0] for n in names]), np.array([p["marks"][n][1] for n in names])
        mz = on_surface(s, key, scale, mx, my, cells)[0]
        alpha = np.where(seen(mesh, mx, my, mz, view, box), 1.0, HIDDEN_ALPHA)
        if p["kind"] == "trajectory":
            ax.scatter(mx, my, mz, s=9, color="red", alpha=alpha, depthshade=False, zorder=8)
            continue
        ax.scatter(mx, my, mz, s=30, color="white", edgecolors="black", linewidths=0.8, alpha=alpha,
                   depthshade=False, zorder=8)
        for n, a, b, c in zip(names, mx, my, mz):
            if not np.isfinite(c):
                continue
            u, v, _ = proj3d.proj_transform(a, b, c, ax.get_proj())
            dx, dy, ha, va = NAME_SHIFT.get(n, (6, 6, "left", "bottom"))
            ax.annotate(mpl(n, 20), (u, v), xycoords="data", textcoords="offset points", xytext=(dx, dy),
                        fontsize=8, ha=ha, va=va, zorder=11,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))


def path_traces(go, s: Surface, key: str, scale: Scale, cells: int, scene: str = "scene") -> list:
    """The plane's path on the page's 3D scene (plotly ``Scatter3d`` traces, as :func:`draw_path3d`; the
    browser hides what the surface hides); hover names each point and gives the file's value under it
    (bilinear between the grid points the 3D view is drawn from)."""
    out = []
    what = f"{key.replace('_', ' ')} %{{customdata:.3g}} on this plane"
    for p in parts(s):
        x, y, z, raw = lifted(s, key, scale, p["x"], p["y"], cells)
        common = dict(scene=scene, showlegend=False, customdata=raw.astype(np.float32),
                      hovertemplate=f"{web(p['label'])}<br>α %{{x:.2f}}, β %{{y:.2f}}<br>{what}<extra></extra>")
        if p["kind"] == "line":
            out.append(go.Scatter3d(x=x, y=y, z=z, mode="lines", line=dict(color="black", width=4, dash="dash"),
                                    name="straight line (3D)", **common))
            continue
        out.append(go.Scatter3d(x=x, y=y, z=z, mode="lines", line=dict(color="red", width=5),
                                name=web(p["label"]) + " (3D)", **common))
        names = list(p["marks"])
        if not names:
            continue
        mx, my = np.array([p["marks"][n][0] for n in names]), np.array([p["marks"][n][1] for n in names])
        mz, raw = on_surface(s, key, scale, mx, my, cells)
        traj = p["kind"] == "trajectory"
        # A model at theta* (A, usually) sits under theta*'s marker and drop line: its name beside them, set off
        # as far as that marker is wide (plotly offsets text by the dot's own size; below or beside a dot, the
        # surface in front hides the name: it is depth-tested like the dot)
        at_star = (np.abs(mx) < 1e-12) & (np.abs(my) < 1e-12)
        out.append(go.Scatter3d(
            x=mx, y=my, z=mz, mode="markers" if traj else "markers+text", scene=scene, showlegend=False,
            text=[web(n, 20) for n in names], textfont=dict(size=12, color="black"),
            textposition=["top right" if c else "top center" for c in at_star],
            marker=dict(size=3 if traj else np.where(at_star, 13, 5).tolist(), color="red" if traj else "white",
                        line=dict(color="red" if traj else "black", width=1)),
            customdata=raw.astype(np.float32), name="epochs (3D)" if traj else "models (3D)",
            hovertemplate=f"%{{text}}<br>α %{{x:.2f}}, β %{{y:.2f}}<br>{what}<extra></extra>"))
    return out
