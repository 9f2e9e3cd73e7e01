"""Where labels go on a plane so that nothing hides anything: contour labels off the path drawn over the map,
epoch numbers beside their markers. Plain geometry (numpy), shared by the PNG (matplotlib) and the page (Plotly)."""

from __future__ import annotations

import numpy as np

from landscape.surface import Surface

def path_lines(s: Surface) -> list[np.ndarray]:
    """What a plane draws over its contours, as polylines (``(n, 2)`` arrays; one point for a mark): the
    trajectory or curve, the straight line between its models and the models themselves; none without one."""
    t = s.trajectory
    if not t:
        return []
    out = [np.column_stack([np.asarray(t["x"], float), np.asarray(t["y"], float)])]
    marks = t.get("marks") or {}
    if t.get("label") and "A" in marks and "B" in marks:
        out.append(np.array([marks["A"], marks["B"]], float))
    out += [np.array([p], float) for p in marks.values()]
    return [p for p in out if len(p)]


def distance_to_lines(pts: np.ndarray, lines: list[np.ndarray], chunk: int = 20000) -> np.ndarray:
    """Each point's least distance to any of the polylines (points count as lines of one vertex)."""
    pts = np.asarray(pts, float).reshape(-1, 2)
    best = np.full(len(pts), np.inf)
    segs = [np.stack([ln[:-1], ln[1:]], axis=1) if len(ln) > 1 else np.stack([ln, ln], axis=1) for ln in lines]
    if not segs or not len(pts):
        return best
    seg = np.concatenate(segs)  # (m, 2, 2)
    a, d = seg[:, 0], seg[:, 1] - seg[:, 0]
    dd = np.maximum((d ** 2).sum(axis=1), 1e-300)
    for i in range(0, len(pts), max(1, chunk // max(1, len(seg)))):
        p = pts[i:i + max(1, chunk // max(1, len(seg)))]
        rel = p[:, None, :] - a[None]
        u = np.clip((rel * d[None]).sum(axis=2) / dd[None], 0.0, 1.0)
        best[i:i + len(p)] = np.sqrt(((rel - u[..., None] * d[None]) ** 2).sum(axis=2)).min(axis=1)
    return best


def clear_of_path(paths: list, s: Surface, labelled: np.ndarray | None = None, gap: float = 0.05) -> list:
    """Contour paths (:func:`~landscape.render.geometry.level_paths`) without the vertices within ``gap`` (a
    fraction of the plane's longer side: one unit is as long on both axes) of what is drawn over the contours
    (:func:`path_lines`): labels placed on what is left (:func:`~landscape.render.geometry.label_spots`) never sit
    on the red path or a named model. Only the ``labelled`` levels (all when ``None``) are thinned: the others
    get no label."""
    lines = path_lines(s)
    if not lines:
        return paths
    span = max(float(s.xcoordinates[-1] - s.xcoordinates[0]), float(s.ycoordinates[-1] - s.ycoordinates[0])) or 1.0
    wanted = None if labelled is None else {round(float(v), 12) for v in labelled}
    out = []
    for lv, ps in paths:
        if wanted is not None and round(float(lv), 12) not in wanted:
            out.append((lv, ps))
            continue
        kept = [p[distance_to_lines(p, lines) >= gap * span] for p in ps]
        out.append((lv, [p for p in kept if len(p)]))
    return out


_CORNERS = ((1, 1), (1, -1), (-1, 1), (-1, -1))  # label beside its marker: up right first


def label_epochs(epochs, most: int = 12) -> list[int]:
    """Which epochs may be labelled: all when there are ``most`` or fewer; else the first, the last and round
    ones (every 5th, 10th, 20th, 25th, 50th, ...), ``most`` at most."""
    e = [int(v) for v in epochs]
    n = len(e)
    if n <= most:
        return list(range(n))
    span = max(e[-1] - e[0], 1)
    step = next(k * 10 ** p for p in range(0, 12) for k in (1, 2, 2.5, 5) if span / (k * 10 ** p) <= most - 2)
    idx = [0] + [i for i in range(1, n - 1) if (e[i] - e[0]) % step == 0] + [n - 1]
    return idx[:most - 1] + [n - 1] if len(idx) > most else idx


def epoch_label_spots(t: dict, extent: tuple, width: float, height: float, font: float, star: float,
                      marker: float) -> list[tuple[str, float, float, int, int, float]]:
    """Where to write the trajectory's epoch numbers: next to their markers, inside the frame, never over theta*
    (the star at 0, 0), another marker or another label; a label with no such place is left out (only then are
    epochs thinned), and one that can only go over the red path goes there last.

    Args:
        t: the surface's trajectory (``x``, ``y``, ``epochs``).
        extent: ``(x0, x1, y0, y1)`` of the plot; ``width``, ``height``: its size as drawn, in points (or pixels,
            with ``font``, ``star`` and ``marker`` in the same unit): one unit of alpha is as long as one of beta.
        font: the labels' size; star, marker: the sizes of theta*'s and the epochs' markers.

    Returns:
        ``[(text, x, y, sx, sy, d), ...]``: the label goes ``d`` from the point ``(x, y)`` towards ``(sx, sy)``
        (each +-1), its corner nearest the point there.
    """
    ep = t.get("epochs")
    if ep is None or not len(ep):
        return []
    x0, x1, y0, y1 = (float(v) for v in extent)
    kx, ky = width / ((x1 - x0) or 1.0), height / ((y1 - y0) or 1.0)
    px = (np.asarray(t["x"], float) - x0) * kx
    py = (np.asarray(t["y"], float) - y0) * ky
    sx0, sy0 = -x0 * kx, -y0 * ky  # theta*
    pad = 1.0
    blocked = [(sx0 - star / 2 - pad, sy0 - star / 2 - pad, sx0 + star / 2 + pad, sy0 + star / 2 + pad)]
    blocked += [(a - marker / 2, b - marker / 2, a + marker / 2, b + marker / 2) for a, b in zip(px, py)]
    # the red path, as points every few units: a label goes over it only when it fits nowhere else
    line = []
    for a, b, c, d in zip(px[:-1], py[:-1], px[1:], py[1:]):
        k = max(2, int(np.hypot(c - a, d - b) / 2) + 1)
        line.append(np.column_stack([np.linspace(a, c, k), np.linspace(b, d, k)]))
    line = np.concatenate(line) if line else np.zeros((0, 2))

    def hits(r, boxes):
        return any(r[0] < q[2] and q[0] < r[2] and r[1] < q[3] and q[1] < r[3] for q in boxes)

    def on_line(r):
        return bool(len(line) and np.any((line[:, 0] > r[0]) & (line[:, 0] < r[2]) & (line[:, 1] > r[1])
                                         & (line[:, 1] < r[3])))

    idx = label_epochs(ep)
    order = idx[:1] + idx[-1:] + idx[1:-1] if len(idx) > 1 else idx  # the first and last epochs first
    near, far = marker / 2 + 2, star / 2 + 3  # beside the marker; or beyond the star, for points on theta*
    kept, out = [], []
    for i in order:
        text = str(int(ep[i]))
        w, h = 0.62 * font * len(text) + 1, font
        best, rank = None, None
        for d in (near, far):
            for cx, cy in _CORNERS:
                ox, oy = px[i] + cx * d, py[i] + cy * d
                r = (min(ox, ox + cx * w), min(oy, oy + cy * h), max(ox, ox + cx * w), max(oy, oy + cy * h))
                if r[0] < 0 or r[1] < 0 or r[2] > width or r[3] > height or hits(r, blocked + kept):
                    continue
                # read as another point's: a marker nearer the label than its own (not theta*: that is the end)
                mx, my = (r[0] + r[2]) / 2, (r[1] + r[3]) / 2
                own = np.hypot(mx - px[i], my - py[i])
                other = np.hypot(px - mx, py - my)
                other[np.hypot(px - px[i], py - py[i]) <= marker] = np.inf  # the point itself, or one on it
                k = (on_line(r), bool(np.any(other < own)), d)
                if rank is None or k < rank:
                    best, rank = (r, cx, cy, d), k
        if best is not None:
            kept.append(best[0])
            out.append((i, (text, float(t["x"][i]), float(t["y"][i]), best[1], best[2], float(best[3]))))
    return [o for _, o in sorted(out, key=lambda q: q[0])]
