"""Interactive, self-contained HTML pages (Plotly; plotly.js embedded so the page works offline).

plotly is imported lazily, inside the functions: the compute path (and the GPU machine, which lacks plotly)
never needs it.
"""

from __future__ import annotations

import html
import json
import os

import numpy as np

from landscape.errors import LandscapeError
from landscape.render.scale import Scale
from landscape.render.text import shown, web
from landscape.surface import Surface

def _plotly():
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise LandscapeError("HTML output needs plotly (pip install plotly); or drop 'html' from --formats")
    return go, make_subplots


def _settings_items(s: Surface) -> list[tuple[str, object]]:
    """The run's settings as ``(key, value)`` pairs: the file, its grid, then the options that are on."""
    grid = f"x {s.xcoordinates[0]:g}..{s.xcoordinates[-1]:g} ({len(s.xcoordinates)})"
    if s.is_2d:
        grid += f", y {s.ycoordinates[0]:g}..{s.ycoordinates[-1]:g} ({len(s.ycoordinates)})"
    # every direction towards another checkpoint (an interpolation, a plane through three models): the random
    # directions' settings played no part
    d = str(s.attrs.get("directions", ""))
    unused = ("norm", "ignore", "seed") if d.startswith("target:") and (not s.is_2d or " | " in d) else ()
    return [("file", os.path.basename(s.path)), ("grid", grid)] + \
        [(k, s.attrs[k]) for k in s.shown_attrs
         if k in s.attrs and k not in unused and shown(s.attrs[k]) not in ("", "False")]  # an option off says nothing


def _settings_block(items: list[tuple[str, str]], notes: list[str]) -> str:
    """``(key, HTML value)`` pairs as one compact wrapped line above the figure, then the notes."""
    return "<div class='settings'>" + "".join(f"<span><b>{web(k, 60)}</b> {v}</span>" for k, v in items) + \
        "</div>" + "".join(f"<div class='note'>{html.escape(n)}</div>" for n in notes if n)


def _settings_html(s: Surface) -> str:
    """The run's settings as a compact wrapped line of ``key: value`` items above the figure (for the plane
    through three models of ``landscape.connect``, those models by name: :func:`~landscape.render.connect.
    plane_settings`)."""
    from landscape.render.html_traces import thinned_note

    if (s.trajectory or {}).get("label"):
        from landscape.render.connect import curve_beside, plane_settings

        return plane_settings(s, curve_beside(s.path))

    # a file's names and values, each one line and cut (a 1 MB attribute is not a 1 MB page)
    return _settings_block([(k, web(v)) for k, v in _settings_items(s)], [thinned_note(s)])


def _settings_compare(surfaces: list[Surface]) -> str:
    """One settings line for several surfaces: a setting they share once, one that differs as its values in the
    order of the panels (``a / b``), one that only some have with ``–`` for the others."""
    from landscape.render.html_traces import thinned_note

    per = [dict(_settings_items(s)) for s in surfaces]
    keys = list(dict.fromkeys(k for d in per for k in d))
    items = []
    for k in keys:
        vals = [web(d[k]) if k in d else "–" for d in per]
        items.append((k, vals[0] if len(set(vals)) == 1 else " / ".join(vals)))
    notes = [thinned_note(s) for s in surfaces]
    notes = [f"{_arch(s)}: {n}" if len(set(notes)) > 1 else n for s, n in zip(surfaces, notes) if n]
    return _settings_block(items, list(dict.fromkeys(notes)))


def _page(fig, title: str, settings: str, path: str, script: str = "", columns: int = 2, tall: bool = False) -> str:
    """Write a self-contained page whose figure fills the window below the title and settings (``tall``: whose
    panels are as wide as their columns, the page scrolling down); on a narrow window its panels stack
    (:mod:`landscape.render.page`)."""
    from landscape.render.page import write_page

    return write_page(fig, title, settings, path, columns, script, tall=tall)


def _arch(s: Surface) -> str:
    """The file's ``arch`` (else its name), one line and cut; escape it for where it goes (:func:`web`)."""
    return shown(s.attrs.get("arch") or os.path.splitext(os.path.basename(s.path))[0])


def extent(s: Surface) -> tuple[list[float], list[float]]:
    """The x and y ranges of the grid's cells (half a step beyond the end points), as a heatmap draws them."""
    def cells(c) -> list[float]:
        c = np.asarray(c, float)
        half = (c[-1] - c[0]) / (len(c) - 1) / 2 if len(c) > 1 else 0.5
        return [float(c[0] - half), float(c[-1] + half)]

    return cells(s.xcoordinates), cells(s.ycoordinates)


def _xy_axes(fig, n: int, row_domain: list[float], col_domains: list[list[float]], first: int = 1,
             surfaces: list[Surface] | None = None) -> None:
    """Square (1:1) alpha/beta axes with titles on every panel, numbered from ``first``; with ``surfaces`` (one
    per panel) each axis spans its grid's cells exactly (left to autorange, a contour line along an edge padded one
    map's range, and that map came out smaller than its neighbour)."""
    for c in range(n):
        k = first + c
        sx, sy = ("" if k == 1 else str(k)), ("" if k == 1 else str(k))
        xr, yr = extent(surfaces[c]) if surfaces else (None, None)
        fig.layout[f"xaxis{sx}"] = dict(domain=col_domains[c], anchor=f"y{sy}", title=dict(text="α", standoff=4),
                                        nticks=5, zeroline=False, showgrid=False, constrain="domain", range=xr)
        fig.layout[f"yaxis{sy}"] = dict(domain=row_domain, anchor=f"x{sx}", title=dict(text="β", standoff=4),
                                        nticks=5, zeroline=False, showgrid=False, scaleanchor=f"x{sx}",
                                        scaleratio=1, constrain="domain", range=yr)


def render_html_2d(s: Surface, key: str, path: str, scale: Scale, view: tuple[float, float] | None = None) -> str:
    """The 3D surface (cut at the cap, theta* marked) beside the contour map on the static figures' levels;
    hover gives alpha, beta, the value and accuracy (when the file has it). ``view``: the 3D camera (default:
    this surface's)."""
    from landscape.render import html_traces as T
    from landscape.render.path3d import path_traces
    from landscape.render.surface3d import camera

    go, _ = _plotly()
    fig = go.Figure()
    fig.add_trace(T.mesh3d(go, s, key, scale, colorbar=dict(x=0.455, xanchor="left")))
    fig.add_traces(path_traces(go, s, key, scale, T.HTML_CELLS))  # a plane's path, on the surface as on the map
    fig.add_trace(T.star3d(go, s, key, scale))
    plane = bool((s.trajectory or {}).get("label"))  # through three models: theta*, line and curve named
    traces, notes = T.contour_map(go, s, key, scale, colorbar=dict(x=1.0, xanchor="left"), legend_star=plane)
    fig.add_traces(traces + T.trajectory(go, s))
    view = view or camera([s], key, scale)
    # the top margin holds the toolbar above the panels' titles (at 30 px they ran under it)
    fig.update_layout(scene=T.scene_layout(s, scale, key, view, dict(x=[0.0, 0.44], y=[0.0, 1.0])),
                      annotations=notes + T.model_labels(s), margin=dict(l=10, r=70, t=56, b=64 if plane else 40),
                      showlegend=plane)
    if plane:  # the legend below the contour map, clear of it and of its axis title
        fig.update_layout(legend=dict(orientation="h", x=0.56, xanchor="left", y=0, yanchor="bottom",
                                      yref="container", bgcolor="rgba(255,255,255,0)"))
    _xy_axes(fig, 1, [0.0, 1.0], [[0.56, 0.99]], surfaces=[s])
    pca = (s.trajectory or {}).get("explained_variance_ratio") or []
    if len(pca) >= 2:  # a PCA plane (--trajectory): its axes are the components, as in the PNG
        fig.layout.xaxis.title.text = f"1st PCA component: {100 * pca[0]:.1f} %"
        fig.layout.yaxis.title.text = f"2nd PCA component: {100 * pca[1]:.1f} %"
    fig.layout.annotations = list(fig.layout.annotations) + [
        dict(text="3D surface (cut at the cap)", x=0.22, y=1.0, xref="paper", yref="paper", yanchor="bottom",
             showarrow=False, font=dict(size=13)),
        dict(text="contours", x=0.775, y=1.0, xref="paper", yref="paper", yanchor="bottom", showarrow=False,
             font=dict(size=13))]
    title = f"{_arch(s)} — {key.replace('_', ' ')}"
    return _page(fig, title, _settings_html(s), path)


def render_html_1d(s: Surface, path: str, log: bool = False, vmin: float | None = None,
                   vmax: float | None = None) -> str:
    """Loss, and accuracy on a twin axis when the file has it, against alpha; train and test when both exist.

    The loss axis starts on the PNG's range (the basin); a button switches to the full range. As in the PNG, the
    named points of the α axis (θ*, or an interpolation's A and B) are dashed lines named above the plot, and
    diverged points (NaN/inf loss) are '×' on its top edge ("diverged" in the legend).
    """
    from landscape.render.curve import (ACC_TICKS, ACC_TOP, diverged, endpoints, interval, loss_keys, loss_range,
                                        marks)
    from landscape.render.html_traces import precision, predicted_text, samples_line
    from landscape.render.scale import fmt_value

    go, make_subplots = _plotly()
    has_acc = any(f"{sp}_acc" in s.values for sp in ("train", "test"))
    fig = make_subplots(specs=[[{"secondary_y": has_acc}]])
    for split, dash in (("train", "solid"), ("test", "dash")):
        err = precision(s, f"{split}_loss") if f"{split}_loss" in s.values else None
        if f"{split}_loss" in s.values:
            loss = s.values[f"{split}_loss"]
            made = predicted_text(s, f"{split}_loss")
            fig.add_trace(go.Scatter(x=s.xcoordinates, y=[float(v) if np.isfinite(v) else None for v in loss],
                                     name=f"{split} loss", line=dict(color="#1f77b4", dash=dash),
                                     customdata=_columns(err, "loss", "n"), text=made,
                                     hovertemplate="α %{x:.2f}<br>loss %{y:.3g}"
                                                   + (" ± %{customdata[0]:.2g} (95 %)" + samples_line(s, 1)
                                                      if err is not None else "")
                                                   + ("%{text}" if made is not None else "") + "<extra></extra>"),
                          secondary_y=False)
            half = interval(s, split)
            if half is not None:  # the 95 % band: its upper edge, then its lower edge filled up to it
                for edge, fill in ((loss + half, None), (loss - half, "tonexty")):
                    fig.add_trace(go.Scatter(x=s.xcoordinates, y=[float(v) if np.isfinite(v) else None
                                                                  for v in edge],
                                             mode="lines", line=dict(width=0, color="#1f77b4"), fill=fill,
                                             fillcolor="rgba(31,119,180,0.25)", hoverinfo="skip",
                                             showlegend=fill is not None, name=f"{split} loss, 95 % interval"),
                                  secondary_y=False)
        if has_acc and f"{split}_acc" in s.values:
            acc = s.values[f"{split}_acc"]
            fig.add_trace(go.Scatter(x=s.xcoordinates, y=[float(v) if np.isfinite(v) else None for v in acc],
                                     name=f"{split} accuracy", line=dict(color="#d62728", dash=dash),
                                     customdata=_columns(err, "acc"),
                                     hovertemplate="α %{x:.2f}<br>accuracy %{y:.1f}"
                                                   + (" ± %{customdata[0]:.2g}" if err is not None else "")
                                                   + "%<extra></extra>"),
                          secondary_y=True)
    x = np.asarray(s.xcoordinates, dtype=np.float64)
    bad = diverged(s)
    if bad.any():
        # on the top edge, whatever the loss axis's range (a hidden axis of 0..1 over the plot): markers only
        fig.add_trace(go.Scatter(x=[float(v) for v in x[bad]], y=[1.0] * int(bad.sum()), yaxis="y3", mode="markers",
                                 name="diverged", cliponaxis=False,
                                 marker=dict(symbol="x-thin", size=10, color="black", line=dict(width=2, color="black")),
                                 hovertemplate="α %{x:.2f}<br>diverged (loss NaN/inf)<extra></extra>"))
        fig.update_layout(yaxis3=dict(overlaying="y", range=[0, 1], visible=False, fixedrange=True))
    ends = endpoints(s)
    title_x = "α  (0: A, 1: B; θ = A + α (B − A))" if ends is not None else "α  (θ = θ* + α δ)"
    # The α axis a little beyond the first and last points: at the very ends, its end tick labels sat on the
    # "0" of the loss and accuracy axes at the plot's corners.
    pad = 0.02 * (x[-1] - x[0]) if len(x) > 1 and x[-1] > x[0] else 0.5
    fig.update_xaxes(title_text=title_x, gridcolor="#e8e8e8", zeroline=False, range=[x[0] - pad, x[-1] + pad],
                     ticklabelstandoff=4)
    rows = _html_1d_marks(fig, s, marks(s))
    fig.update_yaxes(gridcolor="#e8e8e8", zeroline=False)
    if loss_keys(s):
        bottom, top, big, clipped = loss_range(s, log, vmin, vmax)
        lo = bottom if bottom is not None else float(np.nanmin([np.nanmin(np.where(np.asarray(s.values[k]) > 0,
                                                                                    s.values[k], np.nan))
                                                                for k in loss_keys(s)]))
        full_lo = 0.0 if not log else lo
        basin = [np.log10(lo), np.log10(top)] if log else [lo, top]
        full = [np.log10(max(full_lo, 1e-300)), np.log10(big * 1.05)] if log else [full_lo, big * 1.05]
        fig.update_yaxes(title_text="loss", type="log" if log else "linear", range=basin, secondary_y=False)
        if clipped:
            fig.update_layout(updatemenus=[dict(
                type="buttons", direction="left", x=0.0, y=1.0, xanchor="left", yanchor="bottom",
                showactive=True, active=0, pad=dict(t=0, b=MARK_ROW * rows + 6),  # above the marks' names
                buttons=[dict(label=f"basin (loss ≤ {fmt_value(top)})", method="relayout",
                              args=[{"yaxis.range": basin}]),
                         dict(label=f"full range (max {fmt_value(big)})", method="relayout",
                              args=[{"yaxis.range": full}])])])
    if has_acc:
        fig.update_yaxes(title_text="accuracy (%)", range=[0, ACC_TOP], tickvals=list(ACC_TICKS), secondary_y=True,
                         showgrid=False)
    # The legend at the foot of the page (at the top it ran under the toolbar and off a narrow window); the top
    # margin holds the toolbar above the range buttons, above the names of the marks.
    top_margin = 34 + MARK_ROW * rows + (30 if fig.layout.updatemenus else 0)
    fig.update_layout(margin=dict(l=10, r=10, t=top_margin, b=10),
                      legend=dict(orientation="h", x=0.0, xanchor="left", y=0.0, yanchor="bottom", yref="container"))
    what = "loss and accuracy" if has_acc else "loss"
    title = f"{_arch(s)}{': A → B' if ends is not None else ''} — 1D {what}"
    return _page(fig, title, _settings_html(s), path, columns=1)


MARK_ROW = 18  # px: a row of names above the 1D page's plot (the first 7 px up: clear of a diverged point's x)


def _html_1d_marks(fig, s: Surface, named: list) -> int:
    """The 1D page's named points (:func:`landscape.render.curve.marks`): a dashed line across the plot at each and
    its name above the plot (where no curve passes), placed on the plot's own domain (``y domain``) so that a
    narrow window's re-laid panel keeps them; returns how many rows of names there are."""
    rows = 0
    for a, text, anchor, row in named:
        fig.add_shape(type="line", xref="x", yref="y domain", x0=a, x1=a, y0=0, y1=1,
                      line=dict(color="rgba(0,0,0,0.7)", width=1, dash="dash"), layer="above")
        fig.add_annotation(text=web(text, 40), x=a, xref="x", y=1, yref="y domain", yanchor="bottom",
                           xanchor=anchor, xshift={"left": 3, "right": -3}.get(anchor, 0), yshift=7 + MARK_ROW * row,
                           showarrow=False, font=dict(size=12))
        rows = max(rows, row + 1)
    return rows


def _columns(err: dict | None, *names: str) -> list | None:
    """Per point, the ``err`` values named (hover data of a 1D trace; NaN as None), or None without errors."""
    if err is None:
        return None
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in zip(*(err[k] for k in names))]


# Rotating one 3D view rotates the others: copy the camera on every relayout.
SYNC_CAMERAS = """
(function(){var gd=document.getElementById('landscape-figure');if(!gd||!gd.on)return;var busy=false;
gd.on('plotly_relayout',function(ev){if(busy)return;var cam=null;for(var k in ev){
 var m=k.match(/^(scene\\d*)\\.camera$/);if(m){cam=ev[k];break;}}if(!cam)return;var upd={};
 Object.keys(gd._fullLayout).forEach(function(k){if(/^scene\\d*$/.test(k))upd[k+'.camera']=cam;});
 busy=true;Plotly.relayout(gd,upd).then(function(){busy=false;});});})();
"""


def render_html_compare(surfaces: list[Surface], key: str, path: str, scale: Scale) -> str:
    """Several surfaces side by side on one scale: 3D views on top (rotating together), square contour maps
    below with alpha/beta on every panel."""
    from landscape.render import html_traces as T
    from landscape.render.path3d import path_traces
    from landscape.render.surface3d import camera

    go, _ = _plotly()
    n = len(surfaces)
    fig = go.Figure()
    gap = 0.06
    width = (0.94 - gap * (n - 1)) / n
    cols = [[c * (width + gap), c * (width + gap) + width] for c in range(n)]
    view = camera(surfaces, key, scale)
    notes = []
    for c, s in enumerate(surfaces):
        k = c + 1
        scene = "scene" if k == 1 else f"scene{k}"
        xa, ya = ("x", "y") if k == 1 else (f"x{k}", f"y{k}")
        # one colour bar per row beside the last column; the others' configured but hidden, shown where the
        # panels stack (a phone), so every panel there has its bar beside it
        fig.add_trace(T.mesh3d(go, s, key, scale, colorbar=dict(x=0.955, xanchor="left", y=0.79, len=0.38),
                               scene=scene, show_bar=k == n))
        fig.add_traces(path_traces(go, s, key, scale, T.HTML_CELLS, scene=scene))  # as on the single pages
        fig.add_trace(T.star3d(go, s, key, scale, scene=scene))
        traces, ann = T.contour_map(go, s, key, scale, colorbar=dict(x=0.955, xanchor="left", y=0.26, len=0.48),
                                    xaxis=xa, yaxis=ya, show_bar=k == n)
        fig.add_traces(traces + T.trajectory(go, s, xaxis=xa, yaxis=ya))
        notes += ann + T.model_labels(s, xaxis=xa, yaxis=ya)
        fig.layout[scene] = T.scene_layout(s, scale, key, view, dict(x=cols[c], y=[0.58, 1.0]))
        notes.append(dict(text=web(_arch(s)), x=(cols[c][0] + cols[c][1]) / 2, y=1.0, xref="paper", yref="paper",
                          yanchor="bottom", showarrow=False, font=dict(size=14)))
    # the maps square, the 3D views above them wider than high (their boxes, seen from 30 degrees, are)
    _xy_axes(fig, n, [0.0, 0.52], cols, surfaces=surfaces)
    # the top margin holds the toolbar above the panels' titles
    # the left margin holds the first map's tick labels (inside its column, that map came out smaller than the
    # others)
    fig.update_layout(annotations=notes, margin=dict(l=50, r=60, t=56, b=40), showlegend=False)
    settings = _settings_compare(surfaces)  # one block: the surfaces' shared settings once
    # full-size panels: in a window of the usual 16:10, 3D views above square maps fill a column's width only if
    # the page scrolls (fitted to the window's height they were a third of it, beside blank bands)
    return _page(fig, f"{' vs '.join(_arch(s) for s in surfaces)} — {key.replace('_', ' ')}", settings, path,
                 SYNC_CAMERAS, columns=n, tall=True)


def figure_json(path: str) -> tuple[list[dict], dict]:
    """The traces and the layout embedded in one of our pages (for tests and scripts that post-process pages)."""
    text = open(path, encoding="utf-8").read()
    at = text.find('Plotly.newPlot(')
    start = text.find('"landscape-figure"', at) if at >= 0 else -1
    if start < 0:
        raise LandscapeError(f"{path!r} is not a landscape HTML page")
    dec = json.JSONDecoder()
    i = text.index("[", start)
    data, end = dec.raw_decode(text, i)
    layout, _ = dec.raw_decode(text, text.index("{", end))
    return _decode(data), _decode(layout)


def figure_data(path: str) -> list[dict]:
    """The trace data embedded in one of our pages."""
    return figure_json(path)[0]


def _decode(obj):
    """Plotly >= 6 stores numpy arrays as ``{"dtype", "bdata"(base64), "shape"}``; turn them back into lists."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            import base64

            arr = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]))
            if "shape" in obj:
                shape = obj["shape"]
                arr = arr.reshape([int(s) for s in (shape.split(",") if isinstance(shape, str) else shape)])
            return arr.tolist()
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj
