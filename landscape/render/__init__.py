"""Figures from surface files only (ours or the reference's). Never imports torch.

``render_surface(path)`` draws one surface in every requested format; ``render_comparison(paths)`` puts
several side by side on one scale; ``render_paper(paths)`` draws Li et al.'s layout (contours over 3D, one column
per surface) in one PDF/PNG. ``python -m landscape.render`` is the CLI over all three.
"""

from __future__ import annotations

import os

from landscape.errors import LandscapeError
from landscape.paths import ensure_writable_dir
from landscape.render.scale import Scale, make_scale, mostly_over
from landscape.settings import split_names
from landscape.surface import Surface, read_surface
from landscape.surface.validate import max_points

FORMATS = ("png", "pdf", "svg", "html", "vtp")
STATIC = ("png", "pdf", "svg")


def parse_formats(spec: str | list[str]) -> list[str]:
    """``"png,html"`` -> ``["png", "html"]``, validated."""
    items = [f.strip().lower().lstrip(".") for f in (spec.split(",") if isinstance(spec, str) else spec)]
    items = [f for f in items if f]
    bad = [f for f in items if f not in FORMATS]
    if bad or not items:
        raise LandscapeError(f"unknown format(s) {bad or spec!r}; valid: {', '.join(FORMATS)} (comma-separated)")
    return list(dict.fromkeys(items))


def _pick_key(s: Surface, surface: str | None) -> str:
    if surface:
        if surface not in s.values:
            raise LandscapeError(f"{s.path!r} has no {surface!r}; it has {', '.join(s.names())}")
        return surface
    split = split_names(str(s.attrs.get("split", "train")))[0]
    for k in (f"{split}_loss", "train_loss", "test_loss"):
        if k in s.values:
            return k
    return s.names()[0]


def read_for_drawing(path: str, notes: list[str] | None = None) -> Surface:
    """A surface as figures draw it: a grid of more than ``LANDSCAPE_MAX_POINTS`` points (default 1001x1001,
    fewer on a machine short of memory) is read at every k-th point of each axis, which ``notes`` then says."""
    s = read_surface(path, max_points=max_points())
    if s.is_2d and min(len(s.xcoordinates), len(s.ycoordinates)) < 2:
        raise LandscapeError(f"{path!r} holds a {len(s.xcoordinates)}×{len(s.ycoordinates)} grid: 2D figures need "
                             "at least 2 points on each axis; compute it with NUM >= 2 in --x and --y (or without "
                             "--y, as a 1D curve)")
    if s.stride > 1 and notes is not None:
        from landscape.render.html_traces import stride_note

        notes.append(f"{path}: {stride_note(s)}")
    return s


def loss_ceiling(surfaces: list[Surface], key: str) -> float | None:
    """The lowest cap recorded by surfaces computed with ``--tolerance`` (``loss_cap``) when ``key`` is the loss
    it was made for: their points above it were only resolved as off the scale, so no default range goes higher."""
    caps = [float(s.attrs["loss_cap"]) for s in surfaces
            if key == f"{s.attrs.get('split', 'train')}_loss" and str(s.attrs.get("loss_cap", "")) != ""]
    return min(caps) if caps else None


def choose_log(arrays: list, log: bool | None, vmin: float | None, vmax: float | None,
               ceiling: float | None, what: str, notes: list[str] | None) -> bool:
    """``log`` as asked; left to us (None), a log scale when over three quarters of the values lie above the
    default linear range's cap (a linear figure would be mostly one colour), which ``notes`` then says."""
    if log is not None:
        return bool(log)
    if vmin is not None or vmax is not None or not mostly_over(arrays, ceiling):
        return False
    if notes is not None:
        notes.append(f"{what}: over three quarters of the values lie above the linear scale's cap (max(10*min, "
                     "min+10)): drawn on a log scale (--no-log for a linear one)")
    return True


def render_surface(path: str, out: str | None = None, formats: str | list[str] = ("png", "html"),
                   name: str | None = None, surface: str | None = None, log: bool | None = None,
                   vmin: float | None = None, vmax: float | None = None, levels: int | None = None,
                   notes: list[str] | None = None, scale: Scale | None = None) -> list[str]:
    """Draw one surface file; returns the paths written (``<out>/<name>_<kind>.<ext>``).

    2D: contour, contourf, heatmap and surface3d for each static format, one HTML page, a .vtp.
    1D: the loss/accuracy curve for each static format, an HTML page, a .vtp.

    Args:
        log: log10 scale; None (default): linear, unless most of the surface lies above the linear cap
            (:func:`choose_log`).
        notes: gets a line for each file read at every k-th point (see :func:`read_for_drawing`) and for a log
            scale chosen by itself.
        scale: a 2D surface's colour scale, made elsewhere (:func:`render_shared`: one for several surfaces);
            ``log``/``vmin``/``vmax``/``levels`` then went into it.
    """
    parse_formats(formats)  # a typo fails before the file is read
    s = read_for_drawing(path, notes)
    losses = [f"{sp}_loss" for sp in split_names(str(s.attrs.get("split", "train"))) if f"{sp}_loss" in s.values]
    if s.is_2d and surface is None and scale is None and len(losses) > 1:
        # train and test of one run (--split train,test): a set of figures for each, on one colour scale, as the
        # 1D figure draws both on one axis
        return _render_shared([s], out, formats, losses, log, vmin, vmax, levels, notes, name, f"{path} (train,test)")
    return _draw(s, out, formats, name, surface, log, vmin, vmax, levels, notes, scale)


def _draw(s: Surface, out: str | None, formats: str | list[str], name: str | None, surface: str | None,
          log: bool | None, vmin: float | None, vmax: float | None, levels: int | None, notes: list[str] | None,
          scale: Scale | None, view: tuple[float, float] | None = None) -> list[str]:
    """:func:`render_surface` of a surface already read (``view``: a 3D camera shared with other figures)."""
    fmts = parse_formats(formats)
    path = s.path
    key = _pick_key(s, surface)
    out = out or os.path.dirname(os.path.abspath(path))
    ensure_writable_dir(out)
    base = os.path.join(out, name or os.path.splitext(os.path.basename(path))[0])
    static = [f for f in fmts if f in STATIC]
    written: list[str] = []
    if scale is None:
        log = choose_log([s.values[key]], log, vmin, vmax, loss_ceiling([s], key), path, notes)
    if s.is_2d:
        scale = scale or make_scale([s.values[key]], vmin, vmax, levels, log, loss_ceiling([s], key))
        if view is None and static and "html" in fmts:  # one search for the camera both 3D views take
            from landscape.render.surface3d import camera

            view = camera([s], key, scale)
        if static:
            from landscape.render.static import render_2d

            written += render_2d(s, key, base, static, scale, view=view)
        if "html" in fmts:
            from landscape.render.html import render_html_2d

            written.append(render_html_2d(s, key, f"{base}.html", scale, view))
        if "max_eig" in s.values and "min_eig" in s.values:
            from landscape.render.eigen import render_eigen, render_html_eigen

            if static:
                written += render_eigen(s, base, static)
            if "html" in fmts:
                written.append(render_html_eigen(s, key, f"{base}_eigen.html"))
    else:
        scale = None
        if static:
            from landscape.render.curve import render_1d

            written += render_1d(s, base, static, log, vmin, vmax)
            if "max_eig" in s.values and "min_eig" in s.values:
                from landscape.render.eigen import render_eigen_1d

                written += render_eigen_1d(s, base, static)
        if "html" in fmts:
            from landscape.render.html import render_html_1d

            written.append(render_html_1d(s, f"{base}.html", log, vmin, vmax))
    if "vtp" in fmts:
        from landscape.render.vtk import write_vtp

        written.append(write_vtp(s, key, f"{base}.vtp", scale))
    return written


def render_shared(paths: list[str], out: str | None = None, formats: str | list[str] = ("png", "html"),
                  surfaces: list[str] | None = None, log: bool | None = None, vmin: float | None = None,
                  vmax: float | None = None, levels: int | None = None, notes: list[str] | None = None,
                  name: str | None = None) -> list[str]:
    """Each of several 2D surfaces drawn on its own figures, all on ONE colour scale (``--shared-scale``): train
    and test of one file (``surfaces=["train_loss", "test_loss"]``: ``<stem>_<key>_<kind>.<ext>``, ``stem`` the
    file's or ``name``), or any set of files, so that a colour means the same loss in every figure."""
    if not paths:
        raise LandscapeError("--shared-scale needs at least one surface file")
    return _render_shared([read_for_drawing(p, notes) for p in paths], out, formats, surfaces, log, vmin, vmax,
                          levels, notes, name)


def _render_shared(read: list[Surface], out: str | None, formats: str | list[str], surfaces: list[str] | None,
                   log: bool | None, vmin: float | None, vmax: float | None, levels: int | None,
                   notes: list[str] | None, name: str | None = None, what: str = "--shared-scale") -> list[str]:
    """:func:`render_shared` of surfaces already read (each file is read once); ``what`` names the reason in the
    notes."""
    if name is not None and len(read) > 1:
        raise LandscapeError("--name names one file's figures; with several files each keeps its own name")
    flat = [s for s in read if not s.is_2d]
    if flat:
        raise LandscapeError(f"--shared-scale draws 2D surfaces; {', '.join(s.path for s in flat)} are 1D")
    pairs = [(s, _pick_key(s, k)) for s in read for k in (surfaces or [None])]
    arrays = [s.values[k] for s, k in pairs]
    ceiling = min((c for c in (loss_ceiling([s], k) for s, k in pairs) if c is not None), default=None)
    log = choose_log(arrays, log, vmin, vmax, ceiling, what, notes)
    scale = make_scale(arrays, vmin, vmax, levels, log, ceiling)
    from landscape.render.surface3d import camera

    view = camera([s for s, _ in pairs], [k for _, k in pairs], scale)  # one camera too: the 3D views compare
    written: list[str] = []
    for s, k in pairs:
        stem = (name or os.path.splitext(os.path.basename(s.path))[0]) + (f"_{k}" if surfaces and len(surfaces) > 1
                                                                          else "")
        # one range and colours; each figure's over-range marks and stated maximum its own values'
        written += _draw(s, out, formats, stem, k, None, None, None, None, notes, scale.of([s.values[k]]), view)
    if notes is not None:
        notes.append(f"{what}: {len(pairs)} surfaces on one scale, {scale.vmin:.3g} to {scale.vmax:.3g}"
                     + (" (log)" if scale.log else ""))
    return written


def _shared(paths: list[str], surface: str | None, what: str, notes: list[str] | None = None
            ) -> tuple[list[Surface], str]:
    """Read 2D surfaces that are drawn on one scale, and the one dataset they all have."""
    if not paths:
        raise LandscapeError(f"{what} needs at least one surface file")
    surfaces = [read_for_drawing(p, notes) for p in paths]
    if any(not s.is_2d for s in surfaces):
        raise LandscapeError(f"{what} needs 2D surfaces; " +
                             ", ".join(s.path for s in surfaces if not s.is_2d) + " are 1D")
    keys = [_pick_key(s, surface) for s in surfaces]
    if len(set(keys)) > 1 and surface is None:
        keys = [keys[0]] * len(keys)
        missing = [s.path for s in surfaces if keys[0] not in s.values]
        if missing:
            raise LandscapeError(f"{', '.join(missing)} have no {keys[0]!r}; choose one with --surface")
    return surfaces, keys[0]


def render_comparison(paths: list[str], out: str, formats: str | list[str] = ("png", "html"),
                      name: str = "comparison", surface: str | None = None, log: bool | None = None,
                      vmin: float | None = None, vmax: float | None = None, levels: int | None = None,
                      notes: list[str] | None = None) -> list[str]:
    """Several 2D surfaces side by side on one shared colour scale and z range.

    Writes ``<out>/<name>_contourf.<ext>`` per static format and ``<out>/<name>.html``.
    """
    fmts = parse_formats(formats)
    surfaces, key = _shared(paths, surface, "--compare", notes)
    log = choose_log([s.values[key] for s in surfaces], log, vmin, vmax, loss_ceiling(surfaces, key), "--compare",
                     notes)
    scale = make_scale([s.values[key] for s in surfaces], vmin, vmax, levels, log, loss_ceiling(surfaces, key))
    scale = scale.panels([s.values[key] for s in surfaces])  # one bar: it states each panel's maximum
    ensure_writable_dir(out)
    base = os.path.join(out, name)
    written: list[str] = []
    static = [f for f in fmts if f in STATIC]
    if static:
        from landscape.render.static import render_compare

        written += render_compare(surfaces, key, base, static, scale)
    if "html" in fmts:
        from landscape.render.html import render_html_compare

        written.append(render_html_compare(surfaces, key, f"{base}.html", scale))
    return written


def render_paper(paths: list[str], out: str, formats: str | list[str] = ("pdf", "png"), name: str = "paper",
                 surface: str | None = None, log: bool | None = None, vmin: float | None = None,
                 vmax: float | None = None, levels: int | None = None, notes: list[str] | None = None) -> list[str]:
    """Li et al.'s figure layout: one column per surface, contours above 3D, one scale, panels (a), (b), ...

    Writes ``<out>/<name>.<ext>`` for each static format (default ``paper.pdf`` and ``paper.png``); the 3D meshes
    are rasterized inside the PDF so it stays small.
    """
    fmts = [f for f in parse_formats(formats) if f in STATIC]
    if not fmts:
        raise LandscapeError(f"--figure paper writes {', '.join(STATIC)}; got --formats {formats!r}")
    surfaces, key = _shared(paths, surface, "--figure paper", notes)
    log = choose_log([s.values[key] for s in surfaces], log, vmin, vmax, loss_ceiling(surfaces, key),
                     "--figure paper", notes)
    scale = make_scale([s.values[key] for s in surfaces], vmin, vmax, levels, log, loss_ceiling(surfaces, key))
    scale = scale.panels([s.values[key] for s in surfaces])  # one bar: it states each panel's maximum
    ensure_writable_dir(out)
    from landscape.render.paper import render_paper as draw

    return draw(surfaces, key, os.path.join(out, name), scale, fmts)


__all__ = ["render_surface", "render_shared", "render_comparison", "render_paper", "parse_formats", "FORMATS"]
