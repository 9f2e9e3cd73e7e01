"""Plotly traces of one 2D surface (3D mesh, contour map, theta*), drawn from the same geometry and levels as
the static figures. plotly is passed in (``go``), never imported here: the module stays importable without it."""

from __future__ import annotations

import os

import numpy as np

from landscape.render.geometry import (cut_mesh, finite, height_range, label_spots, level_paths, log_heights,
                                       surface_heights, thin, thin_indices)
from landscape.render.placement import clear_of_path, epoch_label_spots
from landscape.render.scale import Scale, fmt_value
from landscape.render.surface3d import BOX, height_ticks, theta_star, z_tick_count
from landscape.render.text import web
from landscape.surface import Surface

COLORSCALE = "Viridis"
# Refinement of the 3D mesh in the page: half the static figure's, so a 51x51 page stays a few MB.
HTML_FACTOR = 2
# The most cells per axis of the page's 3D mesh (a 51x51 grid refined 2x): larger grids are thinned to every k-th
# point, so a 1001x1001 page is a few MB that a browser opens in seconds, not 100s of MB it may never draw.
HTML_CELLS = 100
# The most points per axis of the page's contour view (colours and hover): beyond the pixels it is drawn on.
# Its contour lines are traced on every point of the grid.
MAP_POINTS = 501


def acc_key(s: Surface, key: str) -> str | None:
    """The accuracy dataset that goes with ``key`` (``train_loss`` -> ``train_acc``), if the file has it;
    regression losses have none."""
    k = key.rsplit("_", 1)[0] + "_acc"
    return k if k in s.values and k != key else None


def hover(s: Surface, key: str) -> str:
    """Hover text: alpha, beta, the value and, when the file has it, accuracy; rounded (no 0.123456 noise); with
    their 95 % intervals and the samples used (``customdata[2..4]``, :func:`precision`) when the file records a
    sampling error."""
    what = key.replace("_", " ")
    err = precision(s, key) is not None
    acc = ("<br>accuracy %{customdata[1]:.1f}" + (" ± %{customdata[3]:.2g}" if err else "") + "%"
           if acc_key(s, key) else "")
    loss = "%{customdata[0]:.3g}" + (" ± %{customdata[2]:.2g} (95 %)" if err else "")
    return f"α %{{x:.2f}}, β %{{y:.2f}}<br>{what} {loss}{acc}{samples_line(s, 4) if err else ''}<extra></extra>"


PREDICTED = "<br>predicted (--refine), not evaluated"


def predicted_text(s: Surface, key: str) -> np.ndarray | None:
    """Per point of a ``--refine`` surface, the hover's note for a predicted point ('' for an evaluated one);
    ``None`` when the file has no such flags."""
    ev = (s.evaluated or {}).get(key.rsplit("_", 1)[0])
    return None if ev is None else np.where(ev, "", PREDICTED)


def samples_line(s: Surface, i: int) -> str:
    """``<br>512 of 1,437 samples`` for a hover template whose ``customdata[i]`` is the count."""
    total = s.attrs.get("n_samples")
    return f"<br>%{{customdata[{i}]:,.0f}}" + (f" of {int(total):,}" if total else "") + " samples"


def precision(s: Surface, key: str) -> dict[str, np.ndarray] | None:
    """The 95 % half-widths of the mean loss (``loss``) and of the accuracy (``acc``, percent) and the samples
    used (``n``) at every point; ``None`` when ``key`` is not a split's loss or the file records no sampling
    error (every point on all the data: the values are exact, nothing to show)."""
    split = key[:-len("_loss")] if key.endswith("_loss") else None
    se = s.values.get(f"{split}_loss_se") if split else None
    if se is None or not np.any(np.nan_to_num(se) > 0):
        return None
    from landscape.sampling import Z95

    nan = np.full(np.shape(se), np.nan)
    acc_se, n = s.values.get(f"{split}_acc_se"), s.values.get(f"{split}_n")
    return {"loss": Z95 * se, "acc": Z95 * acc_se if acc_se is not None else nan, "n": n if n is not None else nan}


def mesh3d(go, s: Surface, key: str, scale: Scale, colorbar: dict | None, scene: str = "scene",
           show_bar: bool = True):
    """The 3D surface as a triangle mesh cut exactly at the cap (no table top), coloured as the contour map
    beside it (the same colour coordinate, range and colour-bar ticks; heights log10 exactly where those colours
    are, see :func:`~landscape.render.geometry.log_heights`)."""
    lo, hi = height_range(scale)
    x, y, h = surface_heights(s, key, scale, HTML_FACTOR, HTML_CELLS)
    polys = cut_mesh(x, y, h, hi)
    verts, tris = [], []
    for p in polys:  # fan-triangulate the cut quads
        base = len(verts)
        verts.extend(p)
        tris.extend((base, base + k, base + k + 1) for k in range(1, len(p) - 1))
    v = np.array(verts) if verts else np.zeros((0, 3))
    t = np.array(tris, dtype=int) if tris else np.zeros((0, 3), dtype=int)
    # Each corner once (neighbouring triangles share it): a sixth of the vertices, and of the page's bytes.
    v, inverse = np.unique(v, axis=0, return_inverse=True)
    t = inverse.reshape(-1)[t].astype(np.int32)
    raw = 10 ** v[:, 2] if log_heights(scale) else v[:, 2]
    ticks, labels = scale.bar_ticks()  # the PNG colour bar's, over-range marks included
    cb = None
    if colorbar is not None:
        cb = {**dict(title=dict(text=web(scale.bar_label(key.replace("_", " "))), side="right"),
                     tickvals=list(scale.colour(ticks)), ticktext=labels, len=0.8, thickness=14), **colorbar}
    return go.Mesh3d(x=v[:, 0], y=v[:, 1], z=v[:, 2], i=t[:, 0], j=t[:, 1], k=t[:, 2],
                     intensity=scale.colour(raw), colorscale=COLORSCALE, cmin=scale.clo, cmax=scale.chi,
                     showscale=cb is not None and show_bar, colorbar=cb, customdata=raw.astype(np.float32),
                     hovertemplate=f"α %{{x:.2f}}, β %{{y:.2f}}<br>{key.replace('_', ' ')} "
                                   "%{customdata:.3g}<extra></extra>",
                     # smooth normals: flat ones light each refined facet apart (dark steps on coarse grids)
                     flatshading=False, lighting=dict(ambient=0.75, diffuse=0.4, specular=0.05),
                     name=web(os.path.basename(s.path)), scene=scene)


def star3d(go, s: Surface, key: str, scale: Scale, scene: str = "scene"):
    """theta* on the floor of the 3D surface at its own height, and a drop line from the cap down to it (one
    trace: the line's top has no marker). The browser hides what the walls hide: the line, sticking out of the
    basin, shows where theta* is from any angle the reader turns to."""
    x, y, z = theta_star(s, key, scale)
    hi = height_range(scale)[1]
    value = 10 ** z if log_heights(scale) else z
    # named at the line's top, above the walls: the marker at its foot sits in the pit and can be small on screen
    return go.Scatter3d(x=[x, x], y=[y, y], z=[hi, z], mode="lines+markers+text", scene=scene,
                        text=["θ*", ""], textposition="top center", textfont=dict(size=14, color="black"),
                        line=dict(color="black", width=4),
                        marker=dict(size=[0, 12], color="white", symbol="diamond",
                                    line=dict(color="black", width=2)),
                        name="θ*", showlegend=False,
                        hovertemplate=f"θ* (α 0, β 0)<br>{key.replace('_', ' ')} {value:.3g}<extra></extra>")


def contour_map(go, s: Surface, key: str, scale: Scale, colorbar: dict | None, xaxis: str = "x",
                yaxis: str = "y", legend_star: bool = False, show_bar: bool = True) -> tuple[list, list[dict]]:
    """The 2D view: colours as in the static figures, the same round contour levels as lines, a few labels (off
    the path drawn over the map); ``legend_star``: theta* in the legend; ``show_bar`` False: the colour bar is
    configured but hidden (a page shows it where the panels stack, :mod:`landscape.render.page`).

    Returns:
        ``(traces, annotations)``; the labels are layout annotations (they have a background, text traces
        do not).
    """
    x, y = np.asarray(s.xcoordinates, float), np.asarray(s.ycoordinates, float)
    raw = finite(s.values[key])
    ak = acc_key(s, key)
    acc = s.values[ak] if ak else np.full_like(raw, np.nan)
    err = precision(s, key)
    ticks, labels = scale.bar_ticks()  # "≥ cap" at the top when values lie above the range, as the PNG
    cb = None
    if colorbar is not None:
        cb = {**dict(title=dict(text=web(scale.bar_label(key.replace("_", " "))), side="right"),
                     tickvals=list(scale.colour(ticks)), ticktext=labels, len=0.8, thickness=14), **colorbar}
    # Typed arrays (numpy in, base64 on the page; NaN is a gap) thinned to MAP_POINTS: a 1001x1001 grid as
    # JSON lists was most of a 100 MB page.
    hx, hy, hz = thin(x, y, raw, MAP_POINTS)
    extra = [err["loss"], err["acc"], err["n"]] if err is not None else []  # the hover's 95 % intervals, samples
    custom = np.dstack([hz] + [thin(x, y, v, MAP_POINTS)[2] for v in [acc] + extra]).astype(np.float32)
    made = predicted_text(s, key)  # --refine: which points were predicted, not evaluated
    heat = go.Heatmap(x=hx, y=hy, z=scale.colour(hz).astype(np.float32), customdata=custom, colorscale=COLORSCALE,
                      zmin=scale.clo, zmax=scale.chi, zsmooth="best", showscale=cb is not None and show_bar,
                      colorbar=cb,
                      text=thin(x, y, made, MAP_POINTS)[2] if made is not None else None,
                      hovertemplate=hover(s, key).replace("<extra>", "%{text}<extra>" if made is not None else
                                                          "<extra>"), xaxis=xaxis, yaxis=yaxis, name="")
    clipped = np.where(np.isnan(raw), np.nan, np.clip(raw, scale.vmin, scale.vmax))
    paths = level_paths(x, y, clipped, scale.levels)  # every point of the grid: the lines are exact
    tol = max(x[-1] - x[0], y[-1] - y[0]) / 2000  # about a pixel's tenth: dropped vertices change nothing seen
    pieces = [np.vstack([simplify(p, tol), [np.nan, np.nan]]) for _, ps in paths for p in ps]
    line = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros((0, 2), np.float32)
    lines = go.Scatter(x=line[:, 0], y=line[:, 1], mode="lines", line=dict(color="rgba(0,0,0,0.55)", width=1),
                       hoverinfo="skip", showlegend=False, xaxis=xaxis, yaxis=yaxis, name="levels")
    star = go.Scatter(x=[0], y=[0], mode="markers", xaxis=xaxis, yaxis=yaxis, showlegend=legend_star, name="θ*",
                      marker=dict(symbol="star", size=15, color="white", line=dict(color="black", width=1)),
                      hovertemplate="θ* (α 0, β 0)<extra></extra>")
    spots = label_spots(clear_of_path(paths, s, scale.labelled), scale.labelled, (x[0], x[-1], y[0], y[-1]),
                        avoid=[(0.0, 0.0)])
    notes = [dict(x=px, y=py, xref=xaxis, yref=yaxis, text=fmt_value(lv), showarrow=False,
                  font=dict(size=10, color="black"), bgcolor="rgba(255,255,255,0.75)", borderpad=1)
             for px, py, lv in spots]
    return [heat, lines, star], notes


def simplify(p: np.ndarray, tol: float) -> np.ndarray:
    """A contour path with every vertex within ``tol`` of the previous kept one dropped (ends kept): a fine grid's
    lines keep their shape with at most a few vertices per pixel."""
    if len(p) <= 2 or tol <= 0:
        return p
    q = np.round(p / tol)
    keep = np.r_[True, np.any(q[1:] != q[:-1], axis=1)]
    keep[-1] = True
    return p[keep]


def thinned_note(s: Surface) -> str:
    """What a page of a large grid draws, for the reader: '' when it draws every point."""
    read = stride_note(s)
    if not s.is_2d:
        return read
    n = max(len(s.xcoordinates), len(s.ycoordinates))
    parts = []
    if n > HTML_CELLS + 1:
        parts.append(f"the 3D view shows {_every(n, HTML_CELLS + 1)}")
    if n > MAP_POINTS:
        parts.append(f"the contour colours {_every(n, MAP_POINTS)} (the contour lines use all points)")
    if not parts:
        return read
    return (read + " " if read else "") + (
        f"Large grid ({len(s.xcoordinates)}×{len(s.ycoordinates)}): " + "; ".join(parts)
        + f". The PNG contour figures show every point{' read' if read else ''}.")


def stride_note(s: Surface) -> str:
    """What was read of a grid larger than the reader's bound (``LANDSCAPE_MAX_POINTS``): '' when all of it."""
    if s.stride <= 1:
        return ""
    shape = "×".join(f"{n:,}" for n in reversed(s.grid))
    drawn = "×".join(f"{len(c):,}" for c in (s.xcoordinates, s.ycoordinates) if c is not None)
    return (f"The file's {shape} grid is drawn from every {_ordinal(s.stride)} point of each axis ({drawn}); "
            "LANDSCAPE_MAX_POINTS sets how many points are read.")


def _ordinal(k: int) -> str:
    """``2nd``, ``3rd``, ``11th``, ``21st``."""
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def _every(n: int, most: int) -> str:
    """``every 10th point`` (or ``about every 3rd point`` when the step is not whole) of :func:`thin_indices`."""
    k = (n - 1) / (len(thin_indices(n, most)) - 1)
    r = round(k)
    ordinal = {1: "", 2: "2nd", 3: "3rd"}.get(r, f"{r}th")
    return f"{'' if k == r else 'about '}every {ordinal} point"


def trajectory(go, s: Surface, xaxis: str = "x", yaxis: str = "y") -> list:
    """The optimizer's path on the PCA plane, or a curve between two models on their plane, when the file has one
    (its traces; none without)."""
    t = s.trajectory
    if not t:
        return []
    if t.get("label"):  # a curve between two models (landscape.connect), its models marked and named
        ts, marks, label = t.get("t"), t.get("marks") or {}, web(t["label"])
        names = list(marks)
        line = ([go.Scatter(x=[marks["A"][0], marks["B"][0]], y=[marks["A"][1], marks["B"][1]], mode="lines",
                            line=dict(color="black", width=1.5, dash="dash"), showlegend=True, xaxis=xaxis,
                            yaxis=yaxis, hoverinfo="skip", name="straight line")]
                if "A" in marks and "B" in marks else [])
        # the models' names are annotations (:func:`model_labels`): boxed, off their markers
        return line + [go.Scatter(x=t["x"], y=t["y"], mode="lines", line=dict(color="red", width=2), name=label,
                           showlegend=True, xaxis=xaxis, yaxis=yaxis,
                           text=[f"{label}, t = {v:.2f}" for v in ts] if ts is not None else None,
                           hovertemplate="%{text}<br>α %{x:.2f}, β %{y:.2f}<extra></extra>"),
                go.Scatter(x=[marks[n][0] for n in names], y=[marks[n][1] for n in names], mode="markers",
                           text=[web(n, 20) for n in names], showlegend=False, xaxis=xaxis, yaxis=yaxis,
                           marker=dict(size=9, color="white", line=dict(color="black", width=1.5)),
                           hovertemplate="%{text} (α %{x:.2f}, β %{y:.2f})<extra></extra>")]
    epochs = t.get("epochs")
    path = go.Scatter(x=t["x"], y=t["y"], mode="lines+markers", line=dict(color="red"), marker=dict(size=5),
                      name="trajectory", showlegend=False, xaxis=xaxis, yaxis=yaxis,
                      text=[f"epoch {int(e)}" for e in epochs] if epochs is not None else None,
                      hovertemplate="%{text}<br>α %{x:.2f}, β %{y:.2f}<extra></extra>")
    if epochs is None or not len(epochs):
        return [path]
    # The epoch numbers as in the PNG, beside their markers and clear of theta*, fitted to the contour panel as a
    # 1280-pixel-wide page draws it (equal aspect; its height follows): pixels, Plotly's text and marker sizes.
    x0, x1 = float(s.xcoordinates[0]), float(s.xcoordinates[-1])
    y0, y1 = float(s.ycoordinates[0]), float(s.ycoordinates[-1])
    a = (x1 - x0) / ((y1 - y0) or 1.0) or 1.0
    w = min(500.0, 620.0 * a)
    spots = epoch_label_spots(t, (x0, x1, y0, y1), w, w / a, 11, 15, 5)
    if not spots:
        return [path]
    HALO = "-1px -1px 1px white, 1px -1px 1px white, -1px 1px 1px white, 1px 1px 1px white"  # on any colour
    # Plotly sets text beside a marker, past its edge: an unseen marker as wide as the gap chosen puts it there
    return [path, go.Scatter(x=[p[1] for p in spots], y=[p[2] for p in spots], mode="markers+text",
                             text=[p[0] for p in spots], name="epochs", showlegend=False, xaxis=xaxis, yaxis=yaxis,
                             textposition=[("top " if p[4] > 0 else "bottom ") + ("right" if p[3] > 0 else "left")
                                           for p in spots],
                             textfont=dict(size=11, color="red", shadow=HALO), hoverinfo="skip",
                             cliponaxis=False,  # a narrower panel than fitted to: a label past the frame shows
                             marker=dict(size=[2 * p[5] for p in spots], color="rgba(0,0,0,0)",
                                         line=dict(width=0)))]


# Where each model's name goes from its marker (pixels), clear of the paths: A's below left (theta*'s star covers
# A, the line leaves it to the right, the curve upwards), B's right (both paths come from the left), the bend's
# above right.
LABEL_SHIFT = {"A": (-9, -9, "right", "top"), "B": (9, 0, "left", "middle"), "bend": (7, 7, "left", "bottom")}


def model_labels(s: Surface, xaxis: str = "x", yaxis: str = "y") -> list[dict]:
    """The names of the models on a plane through them (``landscape.connect``) as boxed annotations off their
    markers, black on white: readable on any colour of the map and never under theta*'s star; none on other
    planes."""
    t = s.trajectory or {}
    if not t.get("label"):
        return []
    out = []
    for name, (x, y) in (t.get("marks") or {}).items():
        dx, dy, xa, ya = LABEL_SHIFT.get(name, (7, 7, "left", "bottom"))
        out.append(dict(x=float(x), y=float(y), xref=xaxis, yref=yaxis, text=f"<b>{web(name, 20)}</b>",
                        showarrow=False, xshift=dx, yshift=dy, xanchor=xa, yanchor=ya,
                        font=dict(size=12, color="black"), bgcolor="rgba(255,255,255,0.85)", bordercolor="black",
                        borderwidth=1, borderpad=2))
    return out


def camera_eye(elev: float, azim: float, distance: float = 2.7) -> dict:
    """Plotly's camera for matplotlib's (elev, azim) (only its direction counts: the projection is
    orthographic)."""
    e, a = np.radians(elev), np.radians(azim)
    return dict(eye=dict(x=float(distance * np.cos(e) * np.cos(a)), y=float(distance * np.cos(e) * np.sin(a)),
                         z=float(distance * np.sin(e))), up=dict(x=0, y=0, z=1),
                center=dict(x=0, y=0, z=-0.1))


def scene_layout(s: Surface, scale: Scale, key: str, view: tuple[float, float], domain: dict) -> dict:
    """One 3D scene: the static figure's box aspect and full alpha/beta extent (the box does not shrink to the
    part under the cap, so panels compare), the height axis from ``vmin`` to the cap with the PNG's height
    ticks (the colour bar's, a few of them), the chosen camera, orthographic."""
    lo, hi = height_range(scale)
    pos, labels = height_ticks(scale, z_tick_count(view[0]))
    if len(pos) > 2 and pos[0] - lo < 0.05 * (hi - lo):
        # a label on the floor sits at the corner where alpha's and beta's end labels are, and ran into them (the
        # colour bar beside it has that value)
        pos, labels = pos[1:], labels[1:]
    axis = dict(showbackground=False, gridcolor="#ddd", tickfont=dict(size=10))
    return dict(domain=domain, aspectmode="manual", aspectratio=dict(x=BOX[0], y=BOX[1], z=BOX[2]),
                # orthographic, as the PNG (mplot3d's far camera) and the check that picked the view: a near,
                # perspective eye looks at theta* more from the side, past the rim nearest to it
                camera={**camera_eye(*view), "projection": {"type": "orthographic"}},
                xaxis=dict(title="α", nticks=5, range=[float(s.xcoordinates[0]), float(s.xcoordinates[-1])], **axis),
                yaxis=dict(title="β", nticks=5, range=[float(s.ycoordinates[0]), float(s.ycoordinates[-1])], **axis),
                zaxis=dict(title=key.replace("_", " "), range=[lo, hi], tickvals=[float(p) for p in pos],
                           ticktext=labels, **axis))
