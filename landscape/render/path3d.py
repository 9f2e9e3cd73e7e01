"""A path on a plane (an optimizer's trajectory, a curve between two models and the straight line beside it)
drawn on the plane's 3D surface, in the PNG (matplotlib) and on the page (plotly, passed in as ``go``).

The 2D views draw the path over the map; the 3D views drew the surface and theta* alone, so the path a reader
follows on the map vanished beside it. Here it lies on the surface as drawn: its height at each point is the
surface's there (bilinear in the height field the mesh is made from), on a polyline made fine enough to follow
the surface across each cell rather than cut through hills between the path's points. Numpy only.
"""

from __future__ import annotations

import numpy as np

from landscape.render.geometry import height_range, log_heights, surface_heights
from landscape.render.scale import Scale
from landscape.render.text import mpl, web
from landscape.surface import Surface

# Points per grid cell along the path: each cell's bilinear surface is curved along a line across it.
PER_CELL = 4
# The most points of a lifted path (a path of 10,000 epochs over a 1001x1001 grid would be millions).
MOST = 4000
# Lifted this fraction of the box's height above the surface: exactly on it, the browser's depth test hides
# half of the line in the mesh's triangles.
LIFT = 0.012


def heights_at(s: Surface, key: str, scale: Scale, px: np.ndarray, py: np.ndarray, cells: int) -> np.ndarray:
    """The surface's height (as drawn: :func:`~landscape.render.geometry.to_height`) at points of the plane:
    bilinear between the grid points the mesh is made from (``cells``: its most cells per axis, so a thinned
    grid is interpolated as drawn); NaN at gaps and outside the grid; not capped."""
    x, y, h = surface_heights(s, key, scale, 1, cells)
    if x[0] > x[-1]:
        x, h = x[::-1], h[:, ::-1]
    if y[0] > y[-1]:
        y, h = y[::-1], h[::-1]
    px, py = np.asarray(px, float), np.asarray(py, float)
    out = np.full(px.shape, np.nan)
    inside = (px >= x[0]) & (px <= x[-1]) & (py >= y[0]) & (py <= y[-1])
    if len(x) < 2 or len(y) < 2 or not inside.any():
        return out
    fx, fy = np.interp(px[inside], x, np.arange(len(x))), np.interp(py[inside], y, np.arange(len(y)))
    j, i = np.minimum(fx.astype(int), len(x) - 2), np.minimum(fy.astype(int), len(y) - 2)
    tx, ty = fx - j, fy - i
    with np.errstate(invalid="ignore"):
        out[inside] = ((h[i, j] * (1 - tx) + h[i, j + 1] * tx) * (1 - ty)
                       + (h[i + 1, j] * (1 - tx) + h[i + 1, j + 1] * tx) * ty)
    return out


def densify(px: np.ndarray, py: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """The polyline through ``(px, py)`` with each segment cut into pieces of about ``cell / PER_CELL`` (at most
    :data:`MOST` points in all); the given points are kept."""
    px, py = np.asarray(px, float), np.asarray(py, float)
    if len(px) < 2:
        return px, py
    seg = np.hypot(np.diff(px), np.diff(py))
    step = max(cell / PER_CELL, float(seg.sum()) / MOST, 1e-300)
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
    stop at the cap), NaN (a gap) where the surface has none; the value the surface's there, not capped."""
    xs, ys = np.asarray(s.xcoordinates, float), np.asarray(s.ycoordinates, float)
    cell = min(abs(xs[-1] - xs[0]) / max(len(xs) - 1, 1), abs(ys[-1] - ys[0]) / max(len(ys) - 1, 1))
    cell = max(cell, abs(xs[-1] - xs[0]) / cells, abs(ys[-1] - ys[0]) / cells)  # a thinned grid's cell
    x, y = densify(px, py, cell)
    return (x, y, *_on(s, key, scale, x, y, cells))


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
    return [dict(kind="trajectory", x=t["x"], y=t["y"], label="trajectory",
                 marks={n: (float(a), float(b)) for n, a, b in zip(names, t["x"], t["y"])})]


# The visibility test's mesh: at most this many cells per axis (the drawn one has up to 200: a path hidden by a
# wall is hidden by the wall's coarse outline too, and the test costs faces x points).
VIS_CELLS = 60
# Where the models' names go from their dots (points): A's below left (theta*'s star covers A), B's right, the
# bend's above right; as on the map.
NAME_SHIFT = {"A": (-7, -7, "right", "top"), "B": (7, 0, "left", "center"), "bend": (6, 6, "left", "bottom")}


def seen(s: Surface, key: str, scale: Scale, x: np.ndarray, y: np.ndarray, z: np.ndarray,
         view: tuple[float, float], box: tuple[float, float, float]) -> np.ndarray:
    """Per point of the lifted path: whether the camera at ``view`` sees it over the surface (the faces within a
    cell and a half of it not counted: the one it lies on is drawn finer than this test's mesh)."""
    from landscape.render.geometry import hidden_points, triangles

    lo, hi = height_range(scale)
    gx, gy, gh = surface_heights(s, key, scale, 1, VIS_CELLS)
    origin = np.array([gx[0], gy[0], lo])
    span = np.array([gx[-1] - gx[0], gy[-1] - gy[0], (hi - lo) or 1.0])
    cx, cy = box[0] / max(len(gx) - 1, 1), box[1] / max(len(gy) - 1, 1)
    ok = np.isfinite(z)
    out = np.zeros(len(z), dtype=bool)
    pts = np.stack([x[ok], y[ok], z[ok]], axis=1)
    out[ok] = ~hidden_points(triangles(gx, gy, gh, hi), pts, *view, origin, span, box, 1.5 * np.hypot(cx, cy))
    return out


# Cameras a path's figure may take: up to this elevation (steeper flattens the hills a path crosses), and the
# share of the path they must show to be taken at once (else the one showing most).
PATH_STEEPEST = 60.0
PATH_SEEN = 0.95
PATH_SAMPLES = 150  # points of each path the camera test looks at


def path_camera(surfaces: list[Surface], keys: list[str], scale: Scale,
                grids: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                box: tuple[float, float, float]) -> tuple[float, float] | None:
    """A camera for surfaces with a path: the lowest (up to :data:`PATH_STEEPEST`) that shows theta* on every
    surface and at least :data:`PATH_SEEN` of their paths, else the one of those showing theta* that shows most
    of the paths; None without paths or when no such camera shows theta*.

    Why: the camera chosen for theta* alone looked at a plane through three models from wherever theta* showed,
    and a ridge between the models then hid the curve the figure is about.
    """
    from landscape.render.geometry import AZIMUTHS, ELEVATIONS, hidden, triangles

    paths = []
    for s, k in zip(surfaces, keys):
        for p in parts(s):
            x, y, z, _ = lifted(s, k, scale, p["x"], p["y"], VIS_CELLS)
            keep = np.unique(np.round(np.linspace(0, len(x) - 1, min(len(x), PATH_SAMPLES))).astype(int))
            paths.append((s, k, x[keep], y[keep], z[keep]))
    if not paths:
        return None
    lo, hi = height_range(scale)
    meshes = [(triangles(x, y, h, hi), np.asarray(p, float), np.array([x[0], y[0], lo]),
               np.array([x[-1] - x[0], y[-1] - y[0], (hi - lo) or 1.0])) for x, y, h, p in grids]
    total = sum(len(x) for _, _, x, _, _ in paths)
    best, most = None, -1.0
    for elev in (e for e in ELEVATIONS if e <= PATH_STEEPEST):
        for azim in AZIMUTHS:
            if any(hidden(t, p, elev, azim, o, sp, box) for t, p, o, sp in meshes):
                continue
            share = sum(int(seen(s, k, scale, x, y, z, (elev, azim), box).sum()) for s, k, x, y, z in paths) / total
            if share >= PATH_SEEN:
                return float(elev), float(azim)
            if share > most:
                best, most = (float(elev), float(azim)), share
    return best


def draw_path3d(ax, s: Surface, key: str, scale: Scale, cells: int, view: tuple[float, float],
                box: tuple[float, float, float]) -> None:
    """The plane's path on the matplotlib 3D axes (their view and limits set): red as on the map (a straight line
    dashed black), the models as white dots named beside them, an optimizer's epochs as red dots (their numbers
    are on the map). Drawn over the mesh (``computed_zorder=False``, which draws in order, not by depth), so the
    parts a wall hides from this camera are drawn dotted and thin: seen through the wall, and said to be."""
    from matplotlib import patheffects
    from mpl_toolkits.mplot3d import proj3d

    halo = [patheffects.withStroke(linewidth=2.4, foreground="white")]
    for p in parts(s):
        x, y, z, _ = lifted(s, key, scale, p["x"], p["y"], cells)
        vis = seen(s, key, scale, x, y, z, view, box)
        near_hidden = ~vis | np.r_[~vis[1:], False] | np.r_[False, ~vis[:-1]]  # the dotted part meets the solid
        colour, ls = ("black", "--") if p["kind"] == "line" else ("red", "-")
        ax.plot(x, y, np.where(vis, z, np.nan), ls=ls, color=colour, lw=1.3, zorder=7, path_effects=halo)
        ax.plot(x, y, np.where(near_hidden, z, np.nan), ls=":", color=colour, lw=0.9, zorder=7)
        names = list(p["marks"])
        if not names:
            continue
        mx, my = np.array([p["marks"][n][0] for n in names]), np.array([p["marks"][n][1] for n in names])
        mz = _on(s, key, scale, mx, my, cells)[0]
        shown = seen(s, key, scale, mx, my, mz, view, box)
        if p["kind"] == "trajectory":
            ax.scatter(mx, my, mz, s=9, color="red", alpha=np.where(shown, 1.0, 0.4), depthshade=False, zorder=8)
            continue
        ax.scatter(mx, my, mz, s=30, color="white", edgecolors="black", linewidths=0.8, depthshade=False, zorder=8)
        for n, a, b, c in zip(names, mx, my, mz):
            if not np.isfinite(c):
                continue
            u, v, _ = proj3d.proj_transform(a, b, c, ax.get_proj())
            dx, dy, ha, va = NAME_SHIFT.get(n, (6, 6, "left", "bottom"))
            ax.annotate(mpl(n, 20), (u, v), xycoords="data", textcoords="offset points", xytext=(dx, dy),
                        fontsize=8, ha=ha, va=va, zorder=11,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))


def _on(s: Surface, key: str, scale: Scale, x: np.ndarray, y: np.ndarray, cells: int
        ) -> tuple[np.ndarray, np.ndarray]:
    """Points on the surface: their heights as drawn (lifted, held at the cap) and the surface's values there."""
    lo, hi = height_range(scale)
    h = heights_at(s, key, scale, x, y, cells)
    with np.errstate(invalid="ignore"):
        raw = 10 ** h if log_heights(scale) else h
    return np.clip(h + LIFT * (hi - lo), lo, hi), raw


def path_traces(go, s: Surface, key: str, scale: Scale, cells: int, scene: str = "scene") -> list:
    """The plane's path on the page's 3D scene (plotly ``Scatter3d`` traces, as :func:`draw_path3d`); hover
    names each point and gives the surface's value under it."""
    out = []
    for p in parts(s):
        x, y, z, raw = lifted(s, key, scale, p["x"], p["y"], cells)
        common = dict(scene=scene, showlegend=False, customdata=raw.astype(np.float32),
                      hovertemplate=f"{web(p['label'])}<br>α %{{x:.2f}}, β %{{y:.2f}}<br>"
                                    f"{key.replace('_', ' ')} %{{customdata:.3g}} (on this plane)<extra></extra>")
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
        mz, raw = _on(s, key, scale, mx, my, cells)
        traj = p["kind"] == "trajectory"
        out.append(go.Scatter3d(
            x=mx, y=my, z=mz, mode="markers" if traj else "markers+text", scene=scene, showlegend=False,
            text=[web(n, 20) for n in names], textposition="top center", textfont=dict(size=12, color="black"),
            marker=dict(size=3 if traj else 5, color="red" if traj else "white",
                        line=dict(color="red" if traj else "black", width=1)),
            customdata=raw.astype(np.float32), name="epochs (3D)" if traj else "models (3D)",
            hovertemplate=f"%{{text}}<br>α %{{x:.2f}}, β %{{y:.2f}}<br>{key.replace('_', ' ')} "
                          "%{customdata:.3g} (on this plane)<extra></extra>"))
    return out

