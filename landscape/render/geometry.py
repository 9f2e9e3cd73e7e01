"""Grid geometry shared by the matplotlib and Plotly renderers: the capped 3D surface, contour paths, and where
contour labels go. Pure numpy (plus contourpy, which matplotlib ships), so both renderers draw the same thing."""

from __future__ import annotations

import numpy as np

from landscape.render.scale import Scale
from landscape.surface import Surface


def upsample(x: np.ndarray, y: np.ndarray, z: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear refinement of a grid by ``factor`` per cell; a cell with a NaN corner stays NaN inside.

    Why: cutting the surface at the cap on the coarse grid leaves whole-cell saw teeth; on the refined grid the
    cut follows the cap's contour line to within 1/factor of a cell.
    """
    if factor <= 1 or len(x) < 2 or len(y) < 2:
        return x, y, z
    xf = np.interp(np.linspace(0, len(x) - 1, (len(x) - 1) * factor + 1), np.arange(len(x)), x)
    yf = np.interp(np.linspace(0, len(y) - 1, (len(y) - 1) * factor + 1), np.arange(len(y)), y)
    # Fractional cell index of each fine coordinate, then the four corners' weights.
    fx, fy = np.interp(xf, x, np.arange(len(x))), np.interp(yf, y, np.arange(len(y)))
    jx, iy = np.minimum(fx.astype(int), len(x) - 2), np.minimum(fy.astype(int), len(y) - 2)
    tx, ty = fx - jx, fy - iy
    z00, z01 = z[np.ix_(iy, jx)], z[np.ix_(iy, jx + 1)]
    z10, z11 = z[np.ix_(iy + 1, jx)], z[np.ix_(iy + 1, jx + 1)]
    tx, ty = tx[None, :], ty[:, None]
    with np.errstate(invalid="ignore"):
        zf = (z00 * (1 - tx) + z01 * tx) * (1 - ty) + (z10 * (1 - tx) + z11 * tx) * ty
    return xf, yf, zf


def thin_indices(n: int, most: int) -> np.ndarray:
    """At most ``most`` indices of ``range(n)``, evenly spread, the first and the last always among them (for a
    grid over [-a, a] with n = k * (most - 1) + 1 points, every k-th point, theta* included)."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, most)).astype(int))


def thin(x: np.ndarray, y: np.ndarray, z: np.ndarray, most: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid points of ``z`` (shape (len(y), len(x))) at :func:`thin_indices` of each axis: computed values,
    never averages, so what is drawn passes through the file's values."""
    jx, iy = thin_indices(len(x), most), thin_indices(len(y), most)
    return x[jx], y[iy], z[np.ix_(iy, jx)]


def finite(z: np.ndarray) -> np.ndarray:
    """A float copy with inf (diverged) as NaN."""
    z = np.array(z, dtype=np.float64)
    z[~np.isfinite(z)] = np.nan
    return z


def log_heights(scale: Scale) -> bool:
    """Whether 3D heights are log10 values: under ``--log``, and wherever the 2D colour levels are geometric, so
    the height axis, the 3D colours and the 2D colour bar are one scale (teal means one value everywhere)."""
    return bool(scale.log or scale.geometric)


def to_height(scale: Scale, raw: np.ndarray) -> np.ndarray:
    """Raw values as 3D heights (log10 per :func:`log_heights`), raised to ``vmin`` from below, not capped;
    non-finite and non-positive (under log) values are NaN."""
    z = finite(raw)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.maximum(z, scale.vmin)
        if log_heights(scale):
            z = np.where(z > 0, np.log10(np.where(z > 0, z, 1.0)), np.nan)
    return z


def height_range(scale: Scale) -> tuple[float, float]:
    """``(vmin, vmax)`` as heights: the 3D box's floor and its cap."""
    lo, hi = to_height(scale, np.array([scale.vmin, scale.vmax]))
    return float(lo), float(hi)


def surface_heights(s: Surface, key: str, scale: Scale, factor: int = 4, cells: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refined grid and heights as drawn (:func:`to_height`), not capped.

    Refined in height space: a wall rising from 3 to 300 in one cell then crosses the cap at the same place in
    every neighbouring cell, where refining raw values put the crossing near whichever corner is lower (a torn,
    saw-toothed rim). Bilinear either way, so the refined surface passes through the computed points.

    Args:
        factor: refinement per cell (smooths the cut at the cap on coarse grids).
        cells: the most cells per axis after refinement: a finer grid is refined less, one with more cells than
            this is thinned to every k-th point (:func:`thin`) and not refined. Why: a 3D view cannot show more
            (a 1001 x 1001 grid refined 4x is 32 million triangles, which no renderer draws in useful time).

    Returns:
        ``(x, y, height)``; ``height`` has shape (len(y), len(x)), NaN at gaps.
    """
    x, y, z = np.asarray(s.xcoordinates, float), np.asarray(s.ycoordinates, float), finite(s.values[key])
    if cells is not None:
        x, y, z = thin(x, y, z, cells + 1)
        factor = max(1, min(factor, cells // max(len(x) - 1, len(y) - 1, 1)))
    return upsample(x, y, to_height(scale, z), factor)


def centre_index(s: Surface) -> tuple[int, int]:
    """``(i, j)`` of the grid point nearest theta* (alpha = beta = 0)."""
    return int(np.argmin(np.abs(s.ycoordinates))), int(np.argmin(np.abs(s.xcoordinates)))


def level_paths(x: np.ndarray, y: np.ndarray, z: np.ndarray, levels: np.ndarray) -> list[tuple[float, list]]:
    """Contour lines: ``[(level, [N x 2 arrays]), ...]``; NaN cells are holes."""
    import contourpy

    gen = contourpy.contour_generator(x, y, np.ma.masked_invalid(finite(z)), line_type="Separate")
    return [(float(lv), [np.asarray(p) for p in gen.lines(lv) if len(p) >= 2]) for lv in levels]


def label_spots(paths: list[tuple[float, list]], labelled: np.ndarray, extent: tuple[float, float, float, float],
                avoid: list[tuple[float, float]] = (), spacing: float = 0.14, margin: float = 0.08
                ) -> list[tuple[float, float, float]]:
    """Where to write contour labels: at most one per labelled level, far from each other, from ``avoid``
    (theta*) and from the frame, so they never collide or get cut.

    Args:
        paths: from :func:`level_paths`.
        labelled: the levels that may get a label (round values).
        extent: ``(x0, x1, y0, y1)`` of the plot.
        avoid: points labels must keep clear of.
        spacing: least distance between labels, as a fraction of the plot's size.
        margin: least distance from the frame, same units.

    Returns:
        ``[(x, y, level), ...]``.
    """
    x0, x1, y0, y1 = extent
    w, h = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    taken = [((ax - x0) / w, (ay - y0) / h) for ax, ay in avoid]
    spots = []
    wanted = {round(float(v), 12) for v in labelled}
    for lv, ps in sorted(paths, key=lambda t: -t[0]):  # outer (higher) levels first: they have the most room
        if round(lv, 12) not in wanted or not ps:
            continue
        pts = np.concatenate(ps)
        u = np.stack([(pts[:, 0] - x0) / w, (pts[:, 1] - y0) / h], axis=1)
        ok = (u[:, 0] > margin) & (u[:, 0] < 1 - margin) & (u[:, 1] > margin) & (u[:, 1] < 1 - margin)
        if not ok.any():
            continue
        u, pts = u[ok], pts[ok]
        if taken:
            d = np.min(np.linalg.norm(u[:, None, :] - np.array(taken)[None, :, :], axis=2), axis=1)
            best = int(np.argmax(d))
            if d[best] < spacing:
                continue
        else:
            best = len(u) // 2
        taken.append(tuple(u[best]))
        spots.append((float(pts[best, 0]), float(pts[best, 1]), lv))
    return spots


def _clip_triangle(tri: np.ndarray, cap: float) -> np.ndarray | None:
    """The part of a 3D triangle with z <= cap (Sutherland-Hodgman against one plane): 3 or 4 vertices, or None."""
    out = []
    for k in range(3):
        a, b = tri[k], tri[(k + 1) % 3]
        ina, inb = a[2] <= cap, b[2] <= cap
        if ina:
            out.append(a)
        if ina != inb:
            t = (cap - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out) if len(out) >= 3 else None


def cut_mesh(x: np.ndarray, y: np.ndarray, h: np.ndarray, cap: float) -> list[np.ndarray]:
    """The surface as triangles, each cut exactly at height ``cap``: the mesh ends in a clean rim at the cap
    instead of a flat table top (clipping) or whole-cell saw teeth (masking). Cells with a NaN corner are holes.

    Returns:
        A list of (3 or 4) x 3 vertex arrays.
    """
    X, Y = np.meshgrid(x, y)
    P = np.stack([X, Y, h], axis=-1)
    a, b, c, d = P[:-1, :-1], P[:-1, 1:], P[1:, 1:], P[1:, :-1]
    polys = []
    for t in (np.stack([a, b, c], axis=2), np.stack([a, c, d], axis=2)):
        t = t.reshape(-1, 3, 3)
        t = t[np.isfinite(t[:, :, 2]).all(axis=1)]
        below = (t[:, :, 2] <= cap).all(axis=1)
        polys += list(t[below])
        for tri in t[~below & (t[:, :, 2] <= cap).any(axis=1)]:
            cut = _clip_triangle(tri, cap)
            if cut is not None:
                polys.append(cut)
    return polys


def triangles(x: np.ndarray, y: np.ndarray, h: np.ndarray, cap: float) -> np.ndarray:
    """:func:`cut_mesh` as an ``(N, 3, 3)`` array of triangles (cut quads fanned), what a renderer draws."""
    tris = [p[[0, k, k + 1]] for p in cut_mesh(x, y, h, cap) for k in range(1, len(p) - 1)]
    return np.array(tris) if tris else np.zeros((0, 3, 3))


AZIMUTHS = (-60, -30, -120, 30, 60, 120, 150, -150)
# Lowest first: the lower the camera, the better the depth reads; up to 75 degrees before giving up, since a view
# that shows theta* beats one that hides it.
ELEVATIONS = (30, 35, 40, 45, 50, 55, 60, 65, 70, 75)
# In box units (the box is BOX[0] wide): the star's radius on screen; how far in front of it a face must be to
# hide it; how near theta* a face lies on its own floor, the pit it sits in, which hides nothing (seen from above
# it rises around the star and covers its rim; seen from the side it is the tip of the basin's outline, which is
# where a reader looks for the minimum).
STAR_RADIUS = 0.04
DEPTH_SLACK = 0.005
OWN_FLOOR = 0.1


def _box_frame(elev: float, azim: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors ``(right, up, towards the camera)`` of mplot3d's view at (elev, azim), in box units."""
    e, a = np.radians(elev), np.radians(azim)
    d = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    right = np.array([-np.sin(a), np.cos(a), 0.0])
    return right, np.cross(d, right), d


def hidden(tris: np.ndarray, p: np.ndarray, elev: float, azim: float, origin: np.ndarray, span: np.ndarray,
           box: tuple[float, float, float]) -> bool:
    """Whether a face of ``tris`` lies between the camera at (elev, azim) and the star at ``p`` (or any point of
    its rim on screen): projected along the view (orthographic; mplot3d's far camera is nearly so), a face
    farther than :data:`OWN_FLOOR` from theta* covers the point and is nearer the camera there by more than
    :data:`DEPTH_SLACK`.

    Args:
        tris: ``(N, 3, 3)`` triangles in data units (heights as drawn).
        p: the star, data units.
        origin, span: the box's lowest corner and size in data units (the axes' limits).
        box: the axes' box aspect.
    """
    if not len(tris):
        return False
    scale = np.asarray(box, float) / np.where(span > 0, span, 1.0)
    right, up, towards = _box_frame(elev, azim)
    T = (tris - origin) * scale
    q = (p - origin) * scale
    T = T[np.linalg.norm(T.mean(axis=1) - q, axis=1) > OWN_FLOOR]
    ang = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    pts = np.stack([np.r_[0.0, STAR_RADIUS * np.cos(ang)], np.r_[0.0, STAR_RADIUS * np.sin(ang)]], axis=1)
    pts += [q @ right, q @ up]  # the star's centre and rim on screen, (M, 2)
    return bool(np.any(_covered(T @ right, T @ up, T @ towards, pts, np.full(len(pts), q @ towards))))


def _covered(tu: np.ndarray, tv: np.ndarray, td: np.ndarray, pts: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """``(N, M)``: whether triangle n (screen coordinates ``tu``, ``tv`` and depth ``td``, ``(N, 3)`` each)
    covers point m (``pts[m]`` on screen) and is nearer the camera than ``depth[m]`` by more than
    :data:`DEPTH_SLACK` there."""
    # Barycentric coordinates of every point in every triangle, (N, M).
    x0, y0 = tu[:, :1], tv[:, :1]
    e1u, e1v, e2u, e2v = tu[:, 1:2] - x0, tv[:, 1:2] - y0, tu[:, 2:3] - x0, tv[:, 2:3] - y0
    det = e1u * e2v - e2u * e1v
    ok = np.abs(det) > 1e-12  # a face seen edge-on covers nothing
    det = np.where(ok, det, 1.0)
    pu, pv = pts[None, :, 0] - x0, pts[None, :, 1] - y0
    b1, b2 = (pu * e2v - e2u * pv) / det, (e1u * pv - pu * e1v) / det
    inside = ok & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1)
    d = td[:, :1] + b1 * (td[:, 1:2] - td[:, :1]) + b2 * (td[:, 2:3] - td[:, :1])
    return inside & (d > depth[None, :] + DEPTH_SLACK)


def hidden_points(tris: np.ndarray, pts: np.ndarray, elev: float, azim: float, origin: np.ndarray,
                  span: np.ndarray, box: tuple[float, float, float], own: float) -> np.ndarray:
    """Per point of ``pts`` (``(M, 3)``, data units): whether a face of ``tris`` hides it from the camera at
    (elev, azim), as :func:`hidden` does for theta*, faces within ``own`` (box units) of the point not counted
    (the face it lies on, drawn a little differently from the point's own interpolation). In chunks: N x M
    arrays."""
    out = np.zeros(len(pts), dtype=bool)
    if not len(tris) or not len(pts):
        return out
    scale = np.asarray(box, float) / np.where(span > 0, span, 1.0)
    right, up, towards = _box_frame(elev, azim)
    T, Q = (tris - origin) * scale, (np.asarray(pts, float) - origin) * scale
    tu, tv, td, centres = T @ right, T @ up, T @ towards, T.mean(axis=1)
    step = max(1, 2_000_000 // len(T))
    for a in range(0, len(Q), step):
        q = Q[a:a + step]
        cover = _covered(tu, tv, td, np.stack([q @ right, q @ up], axis=1), q @ towards)
        near = np.linalg.norm(centres[:, None, :] - q[None, :, :], axis=2) <= own
        out[a:a + step] = np.any(cover & ~near, axis=0)
    return out


def _visible(x, y, h, cap, lo, box, elev, azim, p) -> bool:
    """Whether theta* at ``p`` is seen from (elev, azim) over the surface ``h`` cut at ``cap`` (:func:`hidden`)."""
    origin = np.array([x[0], y[0], lo])
    span = np.array([x[-1] - x[0], y[-1] - y[0], (cap - lo) or 1.0])
    return not hidden(triangles(x, y, h, cap), np.asarray(p, float), elev, azim, origin, span, box)


def pick_camera(grids: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], cap: float, lo: float,
                box: tuple[float, float, float], steepest: float = 90.0) -> tuple[float, float] | None:
    """The lowest (most telling) camera elevation, over a few azimuths, from which theta* is seen on every grid.

    Why: a narrow basin hides its floor, and theta* with it, behind the near wall when seen from the usual 30
    degrees; looking steeper only as far as needed keeps the depth readable.

    Args:
        grids: ``(x, y, height, theta* as (x, y, height))`` per surface, heights as drawn.
        cap, lo: the height range.
        box: the axes' box aspect.
        steepest: the highest elevation to try (degrees).

    Returns:
        ``(elev, azim)`` in degrees, or None when no camera in :data:`ELEVATIONS` up to ``steepest`` shows theta*
        on every grid.
    """
    meshes = star_meshes(grids, cap, lo)
    for elev in (e for e in ELEVATIONS if e <= steepest):
        for azim in AZIMUTHS:
            if star_seen(meshes, elev, azim, box):
                return float(elev), float(azim)
    return None


def star_meshes(grids: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], cap: float, lo: float
                ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per grid of :func:`pick_camera`: its triangles cut at ``cap``, theta*, the box's lowest corner and size,
    what :func:`star_seen` tests against."""
    return [(triangles(x, y, h, cap), np.asarray(p, float), np.array([x[0], y[0], lo]),
             np.array([x[-1] - x[0], y[-1] - y[0], (cap - lo) or 1.0])) for x, y, h, p in grids]


def star_seen(meshes: list, elev: float, azim: float, box: tuple[float, float, float]) -> bool:
    """Whether the camera at (elev, azim) sees theta* on every surface of :func:`star_meshes`."""
    return not any(hidden(t, p, elev, azim, o, sp, box) for t, p, o, sp in meshes)
