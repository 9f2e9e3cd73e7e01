"""Landscapes through training as an animation (``python -m landscape.render --animate FILE [FILE2 ...]``): one
panel per movie file (side by side, e.g. ResNet-56 and plain-56), one colour scale and fixed axes for every frame of
every panel, as a GIF and an interactive page with a slider. Reads files only: never imports torch.
"""

from __future__ import annotations

import html
import os

import numpy as np

from landscape.errors import LandscapeError
from landscape.paths import atomic_path, ensure_writable_dir
from landscape.render.scale import Scale, make_scale
from landscape.render.text import mpl, shown, web
from landscape.surface.movie import read_movie
from landscape.surface.schema import Surface

KEY = "train_loss"


def shared_scale(movies: list[dict], log: bool = False, vmin: float | None = None, vmax: float | None = None,
                 levels: int | None = None) -> Scale:
    """One scale for every frame of every movie: what makes the frames comparable (``vmin``, ``vmax``, ``levels``
    as for :func:`landscape.render.scale.make_scale`)."""
    arrays = [m["values"][KEY] for m in movies if len(m["steps"])]
    if not arrays:
        raise LandscapeError("the movie has no frames yet")
    return make_scale(arrays, vmin=vmin, vmax=vmax, levels=levels, log=log)


def _label(m: dict) -> str:
    """The movie's architecture (else its file's name): one line, cut; escape it for where it goes."""
    import json

    s = json.loads(m["attrs"].get("settings") or "{}")  # a JSON object: checked by read_movie
    return shown(s.get("arch") or os.path.splitext(os.path.basename(m["path"]))[0])


def _unit(m: dict) -> str:
    return shown(m["attrs"].get("unit") or "step", 20)


def frames(movies: list[dict]) -> list[list[int]]:
    """For each frame of the animation, the frame of each movie to show: the animation runs through the longest
    movie; a shorter one holds its last frame."""
    n = max(len(m["steps"]) for m in movies)
    return [[min(i, len(m["steps"]) - 1) for m in movies] for i in range(n)]


def render_gif(movies: list[dict], path: str, scale: Scale, fps: float = 3.0) -> str:
    """The GIF: per frame, a filled contour (2D) or a curve (1D) per movie, the same levels and axes throughout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    from landscape.render.static import colourbar, draw_2d

    two_d = movies[0]["y"] is not None
    fig, axes = plt.subplots(1, len(movies), figsize=(4.6 * len(movies) + 0.8, 4.4), squeeze=False,
                             constrained_layout=True)
    axes = axes[0]
    order = frames(movies)
    mappable = []

    def draw(i: int):
        mappable.clear()
        for ax, m, j in zip(axes, movies, order[i]):
            ax.clear()
            unit = mpl(_unit(m))
            if two_d:
                s = Surface(m["path"], m["x"], m["y"], {KEY: m["values"][KEY][j]}, {})
                mappable.append(draw_2d(ax, s, KEY, "contourf", scale, labels=False))
                ax.set_xlabel("α")
                ax.set_ylabel("β")
            else:
                ax.plot(m["x"], np.clip(m["values"][KEY][j], scale.vmin, scale.vmax), color="#1f77b4")
                ax.set_ylim(scale.vmin, scale.vmax)
                ax.set_yscale("log" if scale.log else "linear")
                ax.set_xlabel("α")
                ax.set_ylabel("train loss")
            ax.set_title(f"{mpl(_label(m))}: {unit} {int(m['steps'][j])}")
        return []

    draw(0)
    if two_d:
        colourbar(fig, mappable[0], scale, KEY, ax=list(axes), shrink=0.85)
    anim = FuncAnimation(fig, draw, frames=len(order), blit=False)
    try:
        with atomic_path(path) as tmp:
            anim.save(tmp, writer=PillowWriter(fps=fps), dpi=90)
    finally:
        plt.close(fig)
    return path


def render_page(movies: list[dict], path: str, scale: Scale) -> str:
    """The page: a heatmap (2D) or curve (1D) per movie and a slider over the frames; offline. The panels sit side
    by side on a wide window and one below the other on a narrow one (:mod:`landscape.render.page`)."""
    from landscape.render.html import _plotly
    from landscape.render.html_traces import COLORSCALE
    from landscape.render.page import write_page

    go, make_subplots = _plotly()
    two_d = movies[0]["y"] is not None
    order = frames(movies)
    fig = make_subplots(rows=1, cols=len(movies), subplot_titles=[web(_label(m)) for m in movies],
                        horizontal_spacing=0.08)
    ticks, tick_text = scale.bar_ticks()  # the PNG's: '≥ cap' where frames go above the range

    def traces(i: int, first: bool) -> list:
        """The panels' traces at frame ``i``: in full for the first view, only what changes for a frame (a frame's
        trace is merged into the drawn one, so the colour bar keeps the place the page's layout gave it)."""
        out = []
        for k, (m, j) in enumerate(zip(movies, order[i])):
            v = m["values"][KEY][j]
            if two_d:
                z = scale.colour(np.clip(v, scale.vmin, scale.vmax))
                if not first:
                    out.append(go.Heatmap(z=z, customdata=v))
                    continue
                out.append(go.Heatmap(x=m["x"], y=m["y"], z=z, customdata=v, colorscale=COLORSCALE,
                                      zmin=scale.clo, zmax=scale.chi, showscale=k == 0, zsmooth="best",
                                      hovertemplate="α %{x:.2f}, β %{y:.2f}<br>loss %{customdata:.4g}<extra></extra>",
                                      colorbar=dict(title=dict(text=web(scale.bar_label("train loss")),
                                                               side="right"), x=1.01, xanchor="left", thickness=14,
                                                    tickvals=list(scale.colour(ticks)), ticktext=tick_text)))
            elif not first:
                out.append(go.Scatter(y=np.clip(v, scale.vmin, scale.vmax)))
            else:
                out.append(go.Scatter(x=m["x"], y=np.clip(v, scale.vmin, scale.vmax), mode="lines",
                                      line=dict(color="#1f77b4"), showlegend=False,
                                      hovertemplate="α %{x:.2f}<br>loss %{y:.4g}<extra></extra>"))
        return out

    for k, tr in enumerate(traces(0, True)):
        fig.add_trace(tr, row=1, col=k + 1)
    for k, m in enumerate(movies):  # theta* of every frame: the weights of that step, at the origin of its plane
        i0 = int(np.argmin(np.abs(m["x"])))
        y0 = [0.0] if two_d else [float(np.clip(m["values"][KEY][0][i0], scale.vmin, scale.vmax))]
        fig.add_trace(go.Scatter(x=[0.0], y=y0, mode="markers", showlegend=False, hoverinfo="skip", name="θ*",
                                 marker=dict(symbol="star", size=14 if two_d else 11, color="white",
                                             line=dict(color="black", width=1))), row=1, col=k + 1)
        if two_d:  # the plane drawn 1:1, as the PNG and the other pages
            fig.update_yaxes(scaleanchor=f"x{k + 1 if k else ''}", scaleratio=1, constrain="domain", row=1,
                             col=k + 1)
            fig.update_xaxes(constrain="domain", row=1, col=k + 1)
    stars = list(range(len(movies), 2 * len(movies)))
    steps = []
    for i in range(len(order)):
        shown_steps = list(dict.fromkeys(int(m["steps"][j]) for m, j in zip(movies, order[i])))
        label = " / ".join(str(v) for v in shown_steps)  # one number when the movies are at the same step
        steps.append(dict(method="animate", label=label,
                          args=[[str(i)], dict(mode="immediate", frame=dict(duration=0, redraw=True))]))
    def star_at(i: int) -> list:
        """The 1D panels' theta* at frame ``i``: on the curve (the 2D ones stay at the origin)."""
        return [go.Scatter(y=[float(np.clip(m["values"][KEY][j][int(np.argmin(np.abs(m["x"])))], scale.vmin,
                                            scale.vmax))]) for m, j in zip(movies, order[i])]

    fig.frames = [go.Frame(data=traces(i, False) + ([] if two_d else star_at(i)), name=str(i),
                           traces=list(range(len(movies))) + ([] if two_d else stars)) for i in range(len(order))]
    unit = web(_unit(movies[0]))
    # The slider and the play button hang below the plots at a fixed distance in pixels (y 0, anchored at their
    # top, padded), so they stay clear of the x axes whatever the page's height.
    fig.update_layout(sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix=f"{unit}: "), x=0, len=1,
                                    # clear of the play button by pixels, not a fraction of the width (on a phone
                                    # a tenth of it was under the button)
                                    y=0, yanchor="top", pad=dict(t=50, l=70))],
                      updatemenus=[dict(type="buttons", showactive=False, x=0, y=0, xanchor="left", yanchor="top",
                                        pad=dict(t=62),
                                        buttons=[dict(label="play", method="animate",
                                                      args=[None, dict(frame=dict(duration=400, redraw=True),
                                                                       fromcurrent=True)])])],
                      # the top margin holds the toolbar above the panels' titles
                      margin=dict(l=50, r=70, t=60, b=110))
    fig.update_xaxes(title_text="α")
    if two_d:
        fig.update_yaxes(title_text="β")
    else:
        fig.update_yaxes(range=[np.log10(scale.vmin), np.log10(scale.vmax)] if scale.log else
                         [scale.vmin, scale.vmax], type="log" if scale.log else "linear",
                         title_text=web(scale.bar_label("train loss")) + (" (drawn at the top above the range)"
                                                                         if scale.over else ""))
    title = "landscape through training: " + ", ".join(_label(m) for m in movies)
    settings = "<div class='settings'>" + "".join(
        f"<span><b>{html.escape(_label(m))}</b> {len(m['steps'])} frames</span>" for m in movies) + "</div>"
    return write_page(fig, title, settings, path, len(movies), auto_play=False)


def default_name(paths: list[str]) -> str:
    """The files' stems joined; when they repeat (every recording is ``<run>/landscape.h5``), their folders'
    names: ``movie_resnet56_movie_plain56``, not ``landscape_landscape``."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    if len(set(stems)) < len(stems):
        stems = [os.path.basename(os.path.dirname(os.path.abspath(p))) or s for p, s in zip(paths, stems)]
    return "_".join(stems)


def render_animation(paths: list[str], out: str | None = None, formats: tuple[str, ...] = ("gif", "html"),
                     name: str | None = None, log: bool = False, vmin: float | None = None,
                     vmax: float | None = None, levels: int | None = None, fps: float = 3.0) -> list[str]:
    """Draw one or more movie files side by side on one scale (``log``, ``vmin``, ``vmax``, ``levels`` as for the
    other figures); returns the files written (``<name>.gif``, ``<name>.html``)."""
    movies = [read_movie(p) for p in paths]
    for m in movies:
        if KEY not in m["values"] or not len(m["steps"]):
            raise LandscapeError(f"{m['path']!r} has no {KEY} frames yet " + (
                f"(it has {', '.join(shown(k, 30) for k in list(m['values'])[:5])})" if m["values"] else "")
                + "; record at least one frame of the training loss first")
    shapes = {(len(m["x"]), None if m["y"] is None else len(m["y"])) for m in movies}
    if len(shapes) > 1:
        raise LandscapeError(f"the movies' grids differ ({sorted(shapes, key=str)}); animate movies of one grid "
                             "together")
    scale = shared_scale(movies, log, vmin, vmax, levels)
    out = out or os.path.dirname(os.path.abspath(paths[0]))
    ensure_writable_dir(out)
    base = os.path.join(out, name or default_name(paths))
    written = []
    if "gif" in formats:
        written.append(render_gif(movies, base + ".gif", scale, fps))
    if "html" in formats:
        written.append(render_page(movies, base + ".html", scale))
    return written
