"""Figures of a curve between two solutions (``landscape.connect``): loss and accuracy against ``t`` along the trained
curve and the straight line, each split, the barrier heights in the legend; and the plane through the two models
and the bend, with the curve on it. Reads files only: never imports torch.
"""

from __future__ import annotations

import json
import os

import numpy as np

from landscape.paths import ensure_writable_dir
from landscape.render.scale import fmt_value
from landscape.render.text import mpl, run_name, shown, web
from landscape.surface.h5io import attr_value

COLOURS = {"curve": "#1f77b4", "line": "#7f7f7f"}
DASHES = {"train": "-", "test": "--"}
FORMAT = "landscape-connect"  # landscape.connect.pathfile.FORMAT (importing that package imports torch)
NAMES = {"bezier": "Bézier curve", "polychain": "polygonal chain", "line": "straight line"}


def read_path_file(path: str) -> dict:
    """:func:`landscape.connect.pathfile.read_path_file`, imported when a curve file is read (not to tell one)."""
    from landscape.connect.pathfile import read_path_file as read

    return read(path)


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


def t_label(d: dict) -> str:
    """The paths' x label, naming the two models by their files: ``t  (A: r20_s1/final.pt at 0, B: ... at 1)``."""
    a = d["attrs"]
    ends = [f"{n}: {shown(run_name(a[k]), 60)}" if a.get(k) else n for n, k in (("A", "ckpt"), ("B", "ckpt2"))]
    return f"t  ({ends[0]} at 0, {ends[1]} at 1)"


def log_loss(d: dict) -> bool:
    """Whether the loss is drawn on a log axis (PNG and page alike): when its finite values are all positive and
    span a decade or more (a curve's barrier of 0.03 beside a line's of 2 is then still seen)."""
    vals = [d[kind][k][np.isfinite(d[kind][k])] for kind in ("curve", "line") for k in d[kind] if k.endswith("_loss")]
    allv = np.concatenate(vals) if vals else np.zeros(0)
    return bool(len(allv) and np.min(allv) > 0 and np.max(allv) / np.min(allv) >= 10)


def log_ticks(d: dict) -> list[float]:
    """The log axis's labelled values, PNG and page alike: 1, 2 and 5 of each decade the losses reach."""
    vals = np.concatenate([d[kind][k][np.isfinite(d[kind][k])] for kind in ("curve", "line") for k in d[kind]
                           if k.endswith("_loss")])
    lo, hi = float(vals.min()), float(vals.max())
    return [m * 10.0 ** e for e in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
            for m in (1.0, 2.0, 5.0) if lo <= m * 10.0 ** e <= hi]


def figure_paths(d: dict, title: str):
    """The static figure: loss (log scale when it spans a decade or more) and accuracy against ``t``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = d["t"]
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for kind, sp, label, loss, acc in _series(d):
        ax_l.plot(t, loss, DASHES.get(sp, "-"), color=COLOURS[kind], lw=1.8 if kind == "curve" else 1.4,
                  label=mpl(label, 200))
        if acc is not None and np.isfinite(acc).any():
            ax_a.plot(t, acc, DASHES.get(sp, "-"), color=COLOURS[kind], lw=1.8 if kind == "curve" else 1.4,
                      label=mpl(label.split(":")[0], 200))
    if log_loss(d):
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

        ax_l.set_yscale("log")
        # round labels at 1, 2 and 5 of each decade (plain numbers): the paths span a decade or two, and decade
        # labels alone left the curve's band unlabelled
        ax_l.yaxis.set_major_locator(FixedLocator(log_ticks(d)))
        ax_l.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_value(v)))
        ax_l.yaxis.set_minor_formatter(NullFormatter())
    for ax, what in ((ax_l, "loss"), (ax_a, "accuracy (%)")):
        ax.set_xlabel(mpl(t_label(d)), fontsize=9)
        ax.set_ylabel(what)
        ax.set_xlim(0, 1)
        ax.grid(True, color="#e8e8e8")
    # One legend for both panels (the same colours and dashes), below them: inside either panel it covered a
    # path (the line's peak, its rising side).
    handles, labels = ax_l.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(handles), 2), fontsize=8,
                   frameon=False)
    if not ax_a.lines:
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
    fig.update_xaxes(title_text=web(t_label(d), 200), range=[0, 1], gridcolor="#e8e8e8")
    fig.update_yaxes(gridcolor="#e8e8e8")
    if log_loss(d):  # the PNG's scale: on a linear axis the curve's barriers lay on the zero line
        ticks = log_ticks(d)  # the PNG's labels (plotly's own labelled 2..9 of every decade)
        fig.update_yaxes(type="log", tickvals=ticks, ticktext=[fmt_value(v) for v in ticks], row=1, col=1)
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
                   plane: str | None = None, name: str | None = None, surface: str | None = None,
                   log: bool | None = None, vmin: float | None = None, vmax: float | None = None,
                   levels: int | None = None, notes: list[str] | None = None) -> list[str]:
    """Draw a curve file (``<name>_paths.*``) and its plane's surface file, when given (``<name>_plane*``);
    returns the paths written. ``surface``/``log``/``vmin``/``vmax``/``levels`` go to the plane's figures."""
    from landscape.render import STATIC, parse_formats
    from landscape.render.static import save

    fmts = parse_formats(formats)
    d = read_path_file(path)
    out = out or os.path.dirname(os.path.abspath(path))
    ensure_writable_dir(out)
    stem = name or os.path.splitext(os.path.basename(path))[0]
    base = os.path.join(out, stem)
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
        # (its page names A, B and the bend from the curve file beside the plane's: landscape.connect writes both)
        written += render_plane(plane, out, [f for f in fmts if f != "vtp"], stem + "_plane", surface, log, vmin,
                                vmax, levels, notes)
    return written


# -- the plane through A, B and the bend -----------------------------------------------------------------------

def file_kind(path: str) -> str | None:
    """``"connect"`` for a curve file of landscape.connect, ``"plane"`` for a surface file with a curve between
    two models drawn on it (the plane through A, B and the bend), else ``None`` (a surface, or not ours: the
    surface reader says why)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if str(attr_value(f.attrs.get("format", ""))) == FORMAT:
                return "connect"
            g = f.get("trajectory")
            if isinstance(g, h5py.Group) and "label" in g.attrs and "xcoordinates" in f:
                marks = json.loads(str(attr_value(g.attrs.get("marks", "{}"))))
                if isinstance(marks, dict) and {"A", "B"} <= set(marks):
                    return "plane"
    except Exception:  # not HDF5, missing, unreadable, a bad attribute: not ours to judge here
        return None
    return None


def plane_beside(path: str) -> str | None:
    """The plane file landscape.connect wrote beside a curve file (``<stem>_plane.h5``), when there is one."""
    p = os.path.splitext(path)[0] + "_plane.h5"
    return p if os.path.isfile(p) and file_kind(p) == "plane" else None


def curve_beside(plane: str) -> str | None:
    """The curve file a plane file belongs to (``<stem>.h5`` beside ``<stem>_plane.h5``), when there is one."""
    stem = os.path.splitext(plane)[0]
    if not stem.endswith("_plane"):
        return None
    p = stem[:-len("_plane")] + ".h5"
    return p if os.path.isfile(p) and file_kind(p) == "connect" else None


def render_plane(plane: str, out: str | None = None, formats: str | list[str] = ("png", "html"),
                 name: str | None = None, surface: str | None = None, log: bool | None = None,
                 vmin: float | None = None, vmax: float | None = None, levels: int | None = None,
                 notes: list[str] | None = None) -> list[str]:
    """The plane's figures (:func:`landscape.render.render_surface`: a plane through three models names them,
    its page's settings by the curve file beside it, :func:`plane_settings`)."""
    from landscape.render import render_surface

    return render_surface(plane, out, formats, name, surface, log, vmin, vmax, levels, notes=notes)


# Settings of random directions, meaningless for the plane of three models (its directions are B - A and
# bend - A, unnormalized): left off the page, which names the three models instead.
NOT_A_PLANES = ("directions", "norm", "ignore", "seed")


def plane_settings(s, curve_file: str | None) -> str:
    """The settings line of a plane's page (``s``: its :class:`~landscape.surface.Surface`): the file, A, B and
    the bend by their files, then the surface's settings that mean something here."""
    from landscape.render.html import _settings_block, _settings_items
    from landscape.render.html_traces import thinned_note

    items = _settings_items(s)
    models = []
    if curve_file:
        a = read_path_file(curve_file)["attrs"]
        bend = f"{os.path.basename(curve_file)} ({NAMES.get(str(a.get('curve')), 'curve')})"
        models = [("A", run_name(a["ckpt"]) if a.get("ckpt") else "model A"),
                  ("B", run_name(a["ckpt2"]) if a.get("ckpt2") else "model B"), ("bend", bend)]
    else:
        models = [("models", "A at (0, 0), B at (1, 0), the bend at (0, 1)")]
    items = items[:1] + models + [(k, v) for k, v in items[1:] if k not in NOT_A_PLANES]
    return _settings_block([(k, web(v)) for k, v in items], [thinned_note(s)])
