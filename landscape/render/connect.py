"""Figures of a curve between two solutions (``landscape.connect``): loss and accuracy against ``t`` along the trained
curve and the straight line, each split, the barrier heights in the legend; and the plane through the two models
and the bend, with the curve on it. Reads files only: never imports torch.
"""

from __future__ import annotations

import os

import numpy as np

from landscape.connect.pathfile import read_path_file
from landscape.paths import ensure_writable_dir
from landscape.render.text import mpl, shown, web

COLOURS = {"curve": "#1f77b4", "line": "#7f7f7f"}
DASHES = {"train": "-", "test": "--"}
NAMES = {"bezier": "Bézier curve", "polychain": "polygonal chain", "line": "straight line"}


def _series(d: dict):
    """``(path kind, split, label, loss, acc)`` for every recorded series."""
    curve = str(d["attrs"].get("curve", "bezier"))
    for kind in ("curve", "line"):
        for key in sorted(d[kind]):
            if not key.endswith("_loss"):
                continue
            sp = shown(key[:-len("_loss")], 20)  # a dataset's name, from the file: shown as text
            loss = d[kind][key].astype(np.float64)
            acc = d[kind].get(f"{key[:-len('_loss')]}_acc")
            barrier = d["attrs"].get(f"{kind}_{key[:-len('_loss')]}_barrier")
            name = NAMES.get(curve, f"curve ({shown(curve, 30)})") if kind == "curve" else NAMES["line"]
            label = f"{name}, {sp}" + (f": barrier {float(barrier):.3g}" if barrier is not None else "")
            yield kind, sp, label, loss, acc


def figure_paths(d: dict, title: str):
    """The static figure: loss (log scale when it spans a decade or more) and accuracy against ``t``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = d["t"]
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    losses = []
    for kind, sp, label, loss, acc in _series(d):
        ax_l.plot(t, loss, DASHES.get(sp, "-"), color=COLOURS[kind], lw=1.8 if kind == "curve" else 1.4,
                  label=mpl(label, 200))
        if acc is not None and np.isfinite(acc).any():
            ax_a.plot(t, acc, DASHES.get(sp, "-"), color=COLOURS[kind], lw=1.8 if kind == "curve" else 1.4,
                      label=mpl(label.split(":")[0], 200))
        losses.append(loss[np.isfinite(loss)])
    allv = np.concatenate(losses) if losses else np.zeros(0)
    if len(allv) and np.min(allv) > 0 and np.max(allv) / np.min(allv) >= 10:
        ax_l.set_yscale("log")
    for ax, what in ((ax_l, "loss"), (ax_a, "accuracy (%)")):
        ax.set_xlabel("t  (A at 0, B at 1)")
        ax.set_ylabel(what)
        ax.set_xlim(0, 1)
        ax.grid(True, color="#e8e8e8")
    ax_l.legend(fontsize=8)
    if ax_a.lines:
        ax_a.legend(fontsize=8)
    else:
        ax_a.set_visible(False)
    fig.suptitle(mpl(title, 300))
    return fig


def page_paths(d: dict, title: str, path: str) -> str:
    """The interactive page: the same two panels, offline (plotly.js inside the page)."""
    from landscape.render.html import _plotly
    from landscape.render.page import write_page

    go, make_subplots = _plotly()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy (%)"))
    t = d["t"]
    for kind, sp, label, loss, acc in _series(d):
        dash = "solid" if sp == "train" else "dash"
        line = dict(color=COLOURS[kind], dash=dash, width=2.2 if kind == "curve" else 1.6)
        fig.add_trace(go.Scatter(x=t, y=[float(v) if np.isfinite(v) else None for v in loss], name=web(label, 200),
                                 line=line, hovertemplate="t %{x:.2f}<br>loss %{y:.4g}<extra>" + web(label, 200) +
                                 "</extra>"), row=1, col=1)
        if acc is not None and np.isfinite(acc).any():
            fig.add_trace(go.Scatter(x=t, y=[float(v) if np.isfinite(v) else None for v in acc],
                                     name=web(label.split(":")[0], 200), line=line, showlegend=False,
                                     hovertemplate="t %{x:.2f}<br>accuracy %{y:.2f}%<extra>" +
                                     web(label.split(":")[0], 200) + "</extra>"), row=1, col=2)
    fig.update_xaxes(title_text="t (A at 0, B at 1)", range=[0, 1], gridcolor="#e8e8e8")
    fig.update_yaxes(gridcolor="#e8e8e8")
    # The legend at the foot of the page, clear of the x axes; the top margin holds the toolbar above the panels'
    # titles.
    fig.update_layout(legend=dict(orientation="h", x=0, y=0, yanchor="bottom", yref="container"),
                      margin=dict(l=50, r=20, t=60, b=10))
    a = d["attrs"]
    items = [("curve", a.get("curve")), ("arch", a.get("arch")), ("dataset", a.get("dataset")),
             ("n_samples", a.get("n_samples")), ("bn_mode", a.get("bn_mode")), ("loss", a.get("loss"))]
    settings = "<div class='settings'>" + "".join(f"<span><b>{web(k)}</b> {web(v)}</span>"
                                                   for k, v in items if v not in (None, "")) + "</div>"
    return write_page(fig, title, settings, path, 2)


def render_connect(path: str, out: str | None = None, formats: str | list[str] = ("png", "html"),
                   plane: str | None = None) -> list[str]:
    """Draw a curve file (and its plane's surface file, when given); returns the paths written."""
    from landscape.render import STATIC, parse_formats
    from landscape.render.static import save

    fmts = parse_formats(formats)
    d = read_path_file(path)
    out = out or os.path.dirname(os.path.abspath(path))
    ensure_writable_dir(out)
    base = os.path.join(out, os.path.splitext(os.path.basename(path))[0])
    a = d["attrs"]
    title = f"{shown(a.get('arch', ''))}: {NAMES.get(str(a.get('curve')), 'curve')} against the straight line, " \
            f"{shown(a.get('dataset', ''))}"
    written = []
    static = [f for f in fmts if f in STATIC]
    if static:
        written += save(figure_paths(d, title), base + "_paths", static)
    if "html" in fmts:
        written.append(page_paths(d, title, base + "_paths.html"))
    if plane:
        from landscape.render import render_surface

        written += render_surface(plane, out, [f for f in fmts if f != "vtp"])
    return written
