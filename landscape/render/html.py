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
from landscape.surface import Surface

def _plotly():
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise LandscapeError("HTML output needs plotly (pip install plotly); or drop 'html' from --formats")
    return go, make_subplots


def _settings_html(s: Surface) -> str:
    """The run's settings as a compact wrapped line of ``key: value`` items above the figure."""
    grid = f"x {s.xcoordinates[0]:g}..{s.xcoordinates[-1]:g} ({len(s.xcoordinates)})"
    if s.is_2d:
        grid += f", y {s.ycoordinates[0]:g}..{s.ycoordinates[-1]:g} ({len(s.ycoordinates)})"
    items = [("file", os.path.basename(s.path)), ("grid", grid)] + \
        [(k, s.attrs[k]) for k in s.shown_attrs if k in s.attrs and str(s.attrs[k]) != ""]
    return "<div class='settings'>" + "".join(
        f"<span><b>{html.escape(k)}</b> {html.escape(str(v))}</span>" for k, v in items) + "</div>"


def _nan_to_none(z: np.ndarray) -> list:
    """Plotly draws ``None`` as a gap; NaN would break the JSON."""
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.atleast_2d(z)]


def _surface_traces(go, s: Surface, key: str, scale: Scale, showscale: bool = True):
    z = scale.transform(s.values[key])
    shown = np.where(np.isnan(z), np.nan, np.clip(z, scale.lo, scale.hi))
    raw = s.values[key]
    split = key.rsplit("_", 1)[0]
    acc = s.values.get(f"{split}_acc", np.full_like(raw, np.nan))
    custom = np.dstack([np.where(np.isfinite(raw), raw, np.nan), acc])
    custom = [[[None if not np.isfinite(v) else float(v) for v in cell] for cell in row] for row in custom]
    hover = ("α=%{x:.3f}<br>β=%{y:.3f}<br>loss=%{customdata[0]:.5g}<br>accuracy=%{customdata[1]:.2f}%"
             "<extra></extra>")
    surf = go.Surface(x=s.xcoordinates, y=s.ycoordinates, z=_nan_to_none(shown), customdata=custom,
                      colorscale="Viridis", cmin=scale.lo, cmax=scale.hi, showscale=showscale,
                      colorbar=dict(title=("log10 " if scale.log else "") + key.replace("_", " "), x=0.46),
                      contours=dict(z=dict(show=True, usecolormap=True, project=dict(z=True),
                                           start=scale.lo, end=scale.hi,
                                           size=(scale.hi - scale.lo) / max(len(scale.levels) - 1, 1))),
                      hovertemplate=hover, name=os.path.basename(s.path))
    contour = go.Contour(x=s.xcoordinates, y=s.ycoordinates, z=_nan_to_none(shown), customdata=custom,
                         colorscale="Viridis", zmin=scale.lo, zmax=scale.hi, showscale=False,
                         contours=dict(start=scale.lo, end=scale.hi,
                                       size=(scale.hi - scale.lo) / max(len(scale.levels) - 1, 1),
                                       showlabels=True), hovertemplate=hover, connectgaps=False)
    centre = go.Scatter(x=[0], y=[0], mode="markers", marker=dict(symbol="star", size=14, color="white",
                                                                  line=dict(color="black", width=1)),
                        name="θ*", hovertemplate="θ* (α=0, β=0)<extra></extra>", showlegend=False)
    return surf, contour, centre


def _centre3d(go, s: Surface, key: str, scale: Scale):
    """theta* marked on the 3D surface too (alpha = beta = 0, or the nearest grid point)."""
    j = int(np.argmin(np.abs(s.xcoordinates)))
    i = int(np.argmin(np.abs(s.ycoordinates)))
    z = scale.transform(np.array([s.values[key][i, j]]))[0]
    if not np.isfinite(z):
        return None
    return go.Scatter3d(x=[float(s.xcoordinates[j])], y=[float(s.ycoordinates[i])], z=[float(z)], mode="markers",
                        marker=dict(size=5, color="white", line=dict(color="black", width=2)), name="θ*",
                        showlegend=False, hovertemplate="θ*<extra></extra>")


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.2em;color:#222}}h1{{font-size:1.3em}}
.settings{{display:flex;flex-wrap:wrap;gap:.3em .6em;font-size:.8em;margin:.3em 0 .8em;color:#444}}
.settings span{{background:#f3f3f3;border-radius:3px;padding:1px 6px}}</style></head>
<body><h1>{title}</h1>{settings}{figure}
<script>{script}</script>
</body></html>"""


def _page(fig, title: str, settings: str, path: str, script: str = "") -> str:
    body = fig.to_html(full_html=False, include_plotlyjs=True, div_id="landscape-figure",
                       config={"displaylogo": False, "responsive": True})
    with open(path, "w", encoding="utf-8") as f:
        f.write(PAGE.format(title=html.escape(title), settings=settings, figure=body, script=script))
    return path


def render_html_2d(s: Surface, key: str, path: str, scale: Scale) -> str:
    """3D surface (contours projected on the floor) beside a 2D contour view, hover with alpha/beta/loss/acc."""
    go, make_subplots = _plotly()
    fig = make_subplots(rows=1, cols=2, specs=[[{"type": "scene"}, {"type": "xy"}]], column_widths=[0.55, 0.45],
                        subplot_titles=("3D surface", "contours"))
    surf, contour, centre = _surface_traces(go, s, key, scale)
    fig.add_trace(surf, 1, 1)
    c3 = _centre3d(go, s, key, scale)
    if c3 is not None:
        fig.add_trace(c3, 1, 1)
    fig.add_trace(contour, 1, 2)
    fig.add_trace(centre, 1, 2)
    if s.trajectory:
        t = s.trajectory
        epochs = t.get("epochs")
        fig.add_trace(go.Scatter(x=t["x"], y=t["y"], mode="lines+markers", line=dict(color="red"),
                                 marker=dict(size=5), name="trajectory", showlegend=False,
                                 text=[f"epoch {int(e)}" for e in epochs] if epochs is not None else None,
                                 hovertemplate="%{text}<br>α=%{x:.3f}<br>β=%{y:.3f}<extra></extra>"), 1, 2)
    fig.update_scenes(xaxis_title="α", yaxis_title="β", zaxis_title=key.replace("_", " "),
                      zaxis_range=[scale.lo, scale.hi])
    fig.update_xaxes(title_text="α", row=1, col=2)
    fig.update_yaxes(title_text="β", row=1, col=2, scaleanchor="x", scaleratio=1)
    fig.update_layout(height=620, margin=dict(l=10, r=10, t=40, b=10))
    title = f"{s.attrs.get('arch', os.path.basename(s.path))} — {key.replace('_', ' ')}"
    return _page(fig, title, _settings_html(s), path)


def render_html_1d(s: Surface, path: str, log: bool = False) -> str:
    """Loss and accuracy against alpha on twin axes, train and test when both exist."""
    go, make_subplots = _plotly()
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for split, dash in (("train", "solid"), ("test", "dash")):
        if f"{split}_loss" in s.values:
            loss = s.values[f"{split}_loss"]
            fig.add_trace(go.Scatter(x=s.xcoordinates, y=[float(v) if np.isfinite(v) else None for v in loss],
                                     name=f"{split} loss", line=dict(color="#1f77b4", dash=dash),
                                     hovertemplate="α=%{x:.3f}<br>loss=%{y:.5g}<extra></extra>"), secondary_y=False)
        if f"{split}_acc" in s.values:
            acc = s.values[f"{split}_acc"]
            fig.add_trace(go.Scatter(x=s.xcoordinates, y=[float(v) if np.isfinite(v) else None for v in acc],
                                     name=f"{split} accuracy", line=dict(color="#d62728", dash=dash),
                                     hovertemplate="α=%{x:.3f}<br>accuracy=%{y:.2f}%<extra></extra>"),
                          secondary_y=True)
    fig.update_xaxes(title_text="α")
    fig.update_yaxes(title_text="loss", type="log" if log else "linear", secondary_y=False)
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 100], secondary_y=True)
    fig.update_layout(height=520, margin=dict(l=10, r=10, t=40, b=10))
    title = f"{s.attrs.get('arch', os.path.basename(s.path))} — 1D loss and accuracy"
    return _page(fig, title, _settings_html(s), path)


# Rotating one 3D view rotates the others: copy the camera on every relayout.
SYNC_CAMERAS = """
(function(){var gd=document.getElementById('landscape-figure');if(!gd||!gd.on)return;var busy=false;
gd.on('plotly_relayout',function(ev){if(busy)return;var cam=null;for(var k in ev){
 var m=k.match(/^(scene\\d*)\\.camera$/);if(m){cam=ev[k];break;}}if(!cam)return;var upd={};
 Object.keys(gd._fullLayout).forEach(function(k){if(/^scene\\d*$/.test(k))upd[k+'.camera']=cam;});
 busy=true;Plotly.relayout(gd,upd).then(function(){busy=false;});});})();
"""


def render_html_compare(surfaces: list[Surface], key: str, path: str, scale: Scale) -> str:
    """Several surfaces' 3D views side by side on one colour scale and z range, rotating together."""
    go, make_subplots = _plotly()
    n = len(surfaces)
    titles = [str(s.attrs.get("arch", os.path.basename(s.path))) for s in surfaces]
    fig = make_subplots(rows=2, cols=n, specs=[[{"type": "scene"}] * n, [{"type": "xy"}] * n],
                        row_heights=[0.62, 0.38], subplot_titles=titles + [""] * n, vertical_spacing=0.06)
    for i, s in enumerate(surfaces, start=1):
        surf, contour, centre = _surface_traces(go, s, key, scale, showscale=(i == n))
        surf.colorbar.x = 1.02
        fig.add_trace(surf, 1, i)
        c3 = _centre3d(go, s, key, scale)
        if c3 is not None:
            fig.add_trace(c3, 1, i)
        fig.add_trace(contour, 2, i)
        fig.add_trace(centre, 2, i)
    fig.update_scenes(xaxis_title="α", yaxis_title="β", zaxis_title=key.replace("_", " "),
                      zaxis_range=[scale.lo, scale.hi])
    fig.update_layout(height=900, margin=dict(l=10, r=10, t=40, b=10))
    settings = "".join(_settings_html(s) for s in surfaces)
    return _page(fig, f"comparison — {key.replace('_', ' ')}", settings, path, SYNC_CAMERAS)


def figure_data(path: str) -> list[dict]:
    """The trace data embedded in one of our pages (for tests and for scripts that post-process pages)."""
    import re

    text = open(path, encoding="utf-8").read()
    m = re.search(r'Plotly\.newPlot\(\s*"landscape-figure",\s*(\[.*?\])\s*,\s*\{', text, re.S)
    if not m:
        raise LandscapeError(f"{path!r} is not a landscape HTML page")
    return _decode(json.loads(m.group(1)))


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
