"""The paper figure: Li et al.'s layout (their Fig. 5) in one file, one column per surface, contour lines on top,
the 3D surface below, one shared scale, panels lettered (a), (b), ... and titled by architecture."""

from __future__ import annotations

import string

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from landscape.render.scale import Scale  # noqa: E402
from landscape.render.static import arch_name, colourbar, draw_2d, save  # noqa: E402
from landscape.render.surface3d import BOX, camera, draw_surface3d, height_colourbar  # noqa: E402
from landscape.surface import Surface  # noqa: E402

PAPER_FORMATS = ("pdf", "png")
# Raster resolution of the 3D meshes inside the PDF and of the PNG: sharp in print, a PDF of a few hundred kB.
PAPER_DPI = 200
# Points between a 3D panel's drawing and its title.
TITLE_GAP = 3


def letter(k: int) -> str:
    """``0 -> '(a)'``, ``25 -> '(z)'``, ``26 -> '(aa)'``."""
    a = string.ascii_lowercase
    return f"({a[k]})" if k < 26 else f"({a[k // 26 - 1]}{a[k % 26]})"


def paper_figure(surfaces: list[Surface], key: str, scale: Scale):
    """The figure, not yet saved. Panels: row 1 contours (a)..(n), row 2 3D surfaces (n+1)..(2n)."""
    n = len(surfaces)
    fig = plt.figure(figsize=(3.3 * n + 1.0, 6.6))
    gs = fig.add_gridspec(2, n + 1, width_ratios=[1] * n + [0.05], height_ratios=[1, 1.05],
                          left=0.07, right=0.92, bottom=0.03, top=0.95, wspace=0.3, hspace=0.16)
    view = camera(surfaces, key, scale)  # one camera when one shows every basin: panels compare when seen alike
    m = m3 = None
    solid = []
    for c, s in enumerate(surfaces):
        ax = fig.add_subplot(gs[0, c])
        m = draw_2d(ax, s, key, "contour", scale)
        ax.set_aspect("equal")
        if c:
            ax.set_ylabel("")
        ax.set_title(f"{letter(c)} {arch_name(s)}", fontsize=10)
        ax3 = fig.add_subplot(gs[1, c], projection="3d", computed_zorder=False)
        m3 = draw_surface3d(ax3, s, key, scale, rasterized=True, view=view)
        ax3.set_title(f"{letter(n + c)} {arch_name(s)}", fontsize=10, pad=0, y=1.0)  # placed at the end
        ax3.set_box_aspect(BOX, zoom=0.9)  # room above the box for the title
        solid.append(ax3)
    colourbar(fig, m, scale, key, cax=fig.add_subplot(gs[0, n]))
    # the 2D bar again: the surfaces are coloured as the contours are
    height_colourbar(fig, m3, scale, key, cax=fig.add_axes(_shrunk(fig, gs[1, n])))
    _titles_above(fig, solid)
    return fig


def _titles_above(fig, axes: list) -> None:
    """Each 3D panel's title just above what the panel draws (its box and tick labels), at one height for the
    row: a steep camera stretches the box to the top of its axes, where a title at a fixed height sits on it."""
    fig.canvas.draw()  # the 3D axes project their box and ticks when drawn
    renderer = fig.canvas.get_renderer()
    top = 0.0
    for ax in axes:
        ax.title.set_visible(False)
        top = max(top, ax.get_tightbbox(renderer).y1)
        ax.title.set_visible(True)
    for ax in axes:
        y0 = ax.transAxes.transform((0, 0))[1]
        height = ax.transAxes.transform((0, 1))[1] - y0
        ax.title.set_y((top + TITLE_GAP * fig.dpi / 72 - y0) / height)
        ax.title.set_verticalalignment("bottom")


def _shrunk(fig, spec, frac: float = 0.75) -> list[float]:
    """The box of a grid cell, vertically shrunk to ``frac`` around its centre (the 3D panels draw smaller
    than their cells)."""
    box = spec.get_position(fig)
    h = box.height * frac
    return [box.x0, box.y0 + (box.height - h) / 2, box.width, h]


def render_paper(surfaces: list[Surface], key: str, base: str, scale: Scale,
                 formats: list[str] = PAPER_FORMATS) -> list[str]:
    """Write ``<base>.pdf`` and ``<base>.png`` (or the given static formats)."""
    return save(paper_figure(surfaces, key, scale), base, formats, dpi=PAPER_DPI)
