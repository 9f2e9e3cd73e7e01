"""The figures as a reader sees them: round ticks and levels, labels that do not collide, a 3D surface that ends at
the cap, theta* on every figure, the 1D figure's cut axis said out loud, loss-only files, the paper figure."""

import os
import subprocess
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from landscape.render import render_paper, render_surface  # noqa: E402
from landscape.render.geometry import height_range  # noqa: E402
from landscape.render.html import figure_json  # noqa: E402
from landscape.render.scale import fmt_value, make_scale  # noqa: E402
from landscape.render.static import figure_2d  # noqa: E402
from landscape.surface import read_surface  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _bowl(path, n=21, acc=True, arch="resnet56", floor=0.008, steep=6.0, split="train"):
    """A ResNet-like surface: a narrow basin from ``floor`` whose walls reach ~1e3 at the corners."""
    x = y = np.linspace(-1, 1, n)
    xx, yy = np.meshgrid(x, y)
    r2 = (xx + 0.3 * yy) ** 2 + (yy - 0.2 * xx) ** 2
    loss = floor * np.exp(steep * 1.6 * np.sqrt(r2)) + 0.5 * r2
    with h5py.File(path, "w") as f:
        f["xcoordinates"], f["ycoordinates"] = x, y
        f[f"{split}_loss"], f[f"{split}_done"] = loss, np.ones_like(loss, dtype=bool)
        if acc:
            f[f"{split}_acc"] = np.clip(100 - 10 * loss, 10, 100)
        f.attrs["format_version"], f.attrs["arch"], f.attrs["split"] = 1, arch, split
    return loss


def _is_round(text):
    """'0.01', '3', '1.5', '300', '1e+04': at most two significant digits."""
    v = float(text.replace("\u2212", "-").removeprefix("≥ ").removeprefix("≤ "))  # "≥ 10": above the range
    return v == 0 or float(f"{v:.2g}") == v


@pytest.fixture
def bowl(tmp_path):
    p = str(tmp_path / "bowl.h5")
    loss = _bowl(p)
    return read_surface(p), loss


def _no_overlap(texts, fig, pad=1.0):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in texts if t.get_visible() and t.get_text()]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a.x0 < b.x1 - pad and b.x0 < a.x1 - pad and a.y0 < b.y1 - pad and b.y0 < a.y1 - pad), \
                f"tick/label boxes overlap: {a} {b}"
    return boxes


def test_default_levels_resolve_basin_and_walls():
    z = np.array([0.008, 0.02, 0.1, 0.5, 2.0, 9.0, 50.0, 1e3, 1e4])
    sc = make_scale([z])
    assert sc.vmin == 0.008 and sc.vmax == pytest.approx(10.008)
    assert all(_is_round(fmt_value(v)) for v in sc.levels)
    # The basin (below 10x the minimum) holds as many lines as a decade of wall: linear levels gave it one.
    assert (sc.levels < 0.08).sum() >= 5 and ((sc.levels >= 1) & (sc.levels <= 10)).sum() >= 5
    assert 3 <= len(sc.ticks) <= 8 and all(_is_round(fmt_value(t)) for t in sc.ticks)
    # Less than a decade: Li et al.'s fixed round spacing.
    narrow = make_scale([np.array([2.1, 2.5, 4.0])])
    assert not narrow.geometric and np.allclose(np.diff(narrow.levels), np.diff(narrow.levels)[0])
    assert all(_is_round(fmt_value(v)) for v in narrow.levels)
    # The flags still override.
    assert len(make_scale([z], levels=7).levels) == 7
    fixed = make_scale([z], vmin=0.5, vmax=5)
    assert fixed.vmin == 0.5 and fixed.vmax == 5 and fixed.levels.min() >= 0.5 and fixed.levels.max() <= 5
    assert make_scale([z], log=True).log


def test_fmt_value():
    assert [fmt_value(v) for v in (0.008, 1.043, 2.077, 300.46, 0.1 + 0.2, 7.0, 12345.0)] == \
        ["0.008", "1.04", "2.08", "300", "0.3", "7", "1.2e+04"]


@pytest.mark.parametrize("kind", ["contour", "contourf", "heatmap", "surface3d"])
def test_colour_bar_ticks_are_round(bowl, kind):
    s, _ = bowl
    sc = make_scale([s.values["train_loss"]])
    fig = figure_2d(s, "train_loss", kind, sc)
    fig.canvas.draw()
    cbar = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    assert len(cbar) == 1
    labels = [t.get_text() for t in cbar[0].get_yticklabels() if t.get_text()]
    assert 3 <= len(labels) <= 8, labels
    assert all(_is_round(t) for t in labels), labels
    plt.close(fig)


def test_contour_labels_few_round_apart(bowl):
    s, _ = bowl
    sc = make_scale([s.values["train_loss"]])
    fig = figure_2d(s, "train_loss", "contour", sc)
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text()]
    assert 3 <= len(labels) <= 8, [t.get_text() for t in labels]
    assert all(_is_round(t.get_text()) for t in labels)
    boxes = _no_overlap(labels, fig)
    # theta* (the star at 0, 0) stays visible: no label on it.
    star = ax.transData.transform((0, 0))
    assert all(not (b.x0 - 6 < star[0] < b.x1 + 6 and b.y0 - 6 < star[1] < b.y1 + 6) for b in boxes)
    # The lines are the scale's levels: the same as the HTML page draws.
    cs = next(c for c in ax.collections if hasattr(c, "levels"))
    np.testing.assert_allclose(cs.levels, sc.levels)
    plt.close(fig)


@pytest.mark.parametrize("kind", ["contour", "contourf", "heatmap"])
def test_tick_labels_do_not_run_together(bowl, kind):
    s, _ = bowl
    fig = figure_2d(s, "train_loss", kind, make_scale([s.values["train_loss"]]))
    ax = fig.axes[0]
    fig.canvas.draw()
    for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
        shown = [t for t in ticks if t.get_text()]
        assert 3 <= len(shown) <= 6
        assert all(_is_round(t.get_text()) for t in shown)
        _no_overlap(shown, fig, pad=-4)  # at least 4 px apart
    plt.close(fig)


def _faces(fig):
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    ax = next(a for a in fig.axes if a.name == "3d")
    coll = [c for c in ax.collections if isinstance(c, Poly3DCollection)]
    assert len(coll) == 1
    faces, invalid = getattr(coll[0], "_faces", None), getattr(coll[0], "_invalid_vertices", None)
    assert faces is not None, "matplotlib changed Poly3DCollection internals; update this test"
    faces = np.array(faces, dtype=float)
    if invalid is not None and np.ndim(invalid):  # triangles padded to the quads' length
        faces[np.broadcast_to(np.asarray(invalid)[..., None], faces.shape)] = np.nan
    return ax, faces


def test_3d_surface_ends_at_the_cap_without_a_plateau(bowl):
    s, loss = bowl
    sc = make_scale([s.values["train_loss"]])
    assert (loss > sc.vmax).mean() > 0.3  # a surface with plenty above the cap
    fig = figure_2d(s, "train_loss", "surface3d", sc)
    ax, faces = _faces(fig)
    z = faces[:, :, 2]
    hi = height_range(sc)[1]  # the cap as a height (log10: the bowl's colour levels are geometric)
    assert np.nanmax(z) <= hi + 1e-9
    assert np.nanmax(z) > hi - 1e-6  # the walls go all the way up to the cap ...
    flat_at_cap = np.all(np.isnan(z) | (z >= hi - 1e-9), axis=1)
    assert flat_at_cap.sum() == 0  # ... and end there: no face lies flat on the cap (the old table top)
    # No whole-cell saw teeth: the rim vertices (at the cap) lie on the cap's contour line, between grid points.
    rim = faces[np.abs(faces[:, :, 2] - hi) < 1e-9][:, :2]
    on_grid = np.isclose(rim[:, None, 0], s.xcoordinates[None, :]).any(1) & \
        np.isclose(rim[:, None, 1], s.ycoordinates[None, :]).any(1)
    assert len(rim) > 20 and on_grid.mean() < 0.2
    assert ax.get_zlabel() == "train loss"
    plt.close(fig)


@pytest.mark.parametrize("kind", ["contour", "contourf", "heatmap", "surface3d"])
def test_theta_star_on_every_figure(bowl, kind):
    s, _ = bowl
    fig = figure_2d(s, "train_loss", kind, make_scale([s.values["train_loss"]]))
    ax = fig.axes[0]
    if kind == "surface3d":
        from mpl_toolkits.mplot3d.art3d import Path3DCollection

        stars = [c for c in ax.collections if isinstance(c, Path3DCollection)]
        assert len(stars) == 1
        xs, ys, zs = stars[0]._offsets3d
        assert (float(xs[0]), float(ys[0])) == (0.0, 0.0)
        assert stars[0].get_zorder() > ax.collections[0].get_zorder()  # never hidden by the walls
    else:
        stars = [ln for ln in ax.lines if ln.get_marker() == "*"]
        assert len(stars) == 1 and list(stars[0].get_xdata()) == [0] and list(stars[0].get_ydata()) == [0]
    plt.close(fig)


def test_camera_shows_theta_star(bowl):
    from landscape.render.geometry import surface_heights, _visible
    from landscape.render.surface3d import BOX, camera, theta_star

    s, _ = bowl
    sc = make_scale([s.values["train_loss"]])
    elev, azim = camera([s], "train_loss", sc)
    x, y, h = surface_heights(s, "train_loss", sc, 4)
    p = theta_star(s, "train_loss", sc)
    lo, hi = height_range(sc)
    assert _visible(x, y, h, hi, lo, BOX, elev, azim, p)
    # From the side the walls of a bucket hide it (linear heights: log ones make this bowl a cone, whose tip
    # stays in sight).
    lin = make_scale([s.values["train_loss"]], levels=7)
    x, y, h = surface_heights(s, "train_loss", lin, 4)
    lo, hi = height_range(lin)
    assert not _visible(x, y, h, hi, lo, BOX, 5, azim, theta_star(s, "train_loss", lin))


def _curve(path, big=300.0, acc=True, test=True):
    x = np.linspace(-1, 1, 41)
    loss = 0.01 + big * x ** 6
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = x
        f["train_loss"] = loss
        if test:
            f["test_loss"] = loss * 1.2 + 0.05
        if acc:
            f["train_acc"] = np.clip(100 - 40 * x ** 2, 10, 100)
            if test:
                f["test_acc"] = np.clip(95 - 40 * x ** 2, 10, 100)
        f.attrs["format_version"], f.attrs["arch"] = 1, "resnet56"


def test_1d_png_says_it_is_cut_and_keeps_the_legend_off_the_data(tmp_path, monkeypatch):
    p = str(tmp_path / "c.h5")
    _curve(p)
    figs = []
    monkeypatch.setattr("landscape.render.curve.save", lambda fig, base, formats: figs.append(fig) or [base])
    from landscape.render.curve import render_1d

    render_1d(read_surface(p), str(tmp_path / "c"), ["png"])
    fig = figs[0]
    ax, ax2 = fig.axes
    fig.canvas.draw()
    top = ax.get_ylim()[1]
    assert top < 20  # the basin's range, not 0..300
    notes = [t.get_text() for t in ax.texts]
    # test loss 1.2 x 300; no command-line hint inside the figure (the summary line is for that)
    assert any("cut at" in t and "max 360" in t and "--log" not in t for t in notes), notes
    leg = ax.get_legend()
    assert [t.get_text() for t in leg.get_texts()] == ["train loss", "test loss", "train accuracy", "test accuracy"]
    r = fig.canvas.get_renderer()
    lb, ab = leg.get_window_extent(r), ax.get_window_extent(r)
    assert lb.y1 <= ab.y0  # below the axes, never on the accuracy plateau
    assert [t.get_text() for t in ax2.get_yticklabels() if t.get_text()] == ["0", "20", "40", "60", "80", "100"]
    # a curve that fits: no note
    q = str(tmp_path / "d.h5")
    _curve(q, big=1.0)
    figs.clear()
    render_1d(read_surface(q), str(tmp_path / "d"), ["png"])
    assert not any("cut at" in t.get_text() for t in figs[0].axes[0].texts)


def test_1d_page_range_button_and_round_accuracy_ticks(tmp_path):
    p = str(tmp_path / "c.h5")
    _curve(p)
    render_surface(p, str(tmp_path), "html")
    data, layout = figure_json(str(tmp_path / "c.html"))
    assert [t["name"] for t in data] == ["train loss", "train accuracy", "test loss", "test accuracy"]
    from landscape.render.curve import loss_range

    bottom, top, big, clipped = loss_range(read_surface(p))
    assert layout["yaxis"]["range"] == pytest.approx([bottom, top])  # the PNG's range
    buttons = layout["updatemenus"][0]["buttons"]
    full = buttons[1]["args"][0]["yaxis.range"]
    assert full[1] >= big and "full range" in buttons[1]["label"]
    assert layout["yaxis2"]["tickvals"] == [0, 20, 40, 60, 80, 100]


def test_loss_only_files_draw_everything(tmp_path):
    """Regression losses: no accuracy datasets; every figure and page works with the loss alone."""
    p2, p1 = str(tmp_path / "reg.h5"), str(tmp_path / "reg1d.h5")
    _bowl(p2, acc=False)
    _curve(p1, acc=False)
    files = render_surface(p2, str(tmp_path), "png,html,vtp") + render_surface(p1, str(tmp_path), "png,html")
    assert len(files) == 4 + 1 + 1 + 2
    data, layout = figure_json(str(tmp_path / "reg.html"))
    heat = next(t for t in data if t["type"] == "heatmap")
    assert "accuracy" not in heat["hovertemplate"]
    data, layout = figure_json(str(tmp_path / "reg1d.html"))
    assert [t["name"] for t in data] == ["train loss", "test loss"] and "yaxis2" not in layout
    render_paper([p2, p2], str(tmp_path))


def test_html_uses_the_png_levels(bowl, tmp_path):
    s, _ = bowl
    render_surface(s.path, str(tmp_path), "html")
    sc = make_scale([s.values["train_loss"]])
    data, layout = figure_json(str(tmp_path / "bowl.html"))
    heat = next(t for t in data if t["type"] == "heatmap")
    assert heat["colorbar"]["ticktext"] == sc.bar_ticks()[1]  # the PNG's, "≥ 10" at the top (walls above)
    labels = [a["text"] for a in layout["annotations"] if a.get("xref") == "x"]
    assert 3 <= len(labels) <= 8 and set(labels) <= {fmt_value(t) for t in sc.ticks}
    assert "%{customdata[0]:.3g}" in heat["hovertemplate"] and ":.3f" not in heat["hovertemplate"]
    mesh = next(t for t in data if t["type"] == "mesh3d")
    hi = height_range(sc)[1]
    assert max(mesh["z"]) <= hi + 1e-9 and max(mesh["z"]) > hi - 1e-6  # cut at the cap, as the PNG
    assert layout["xaxis"]["title"]["text"] == "α" and layout["yaxis"]["scaleanchor"] == "x"


def test_compare_page_panels_square_with_titles(tmp_path):
    from landscape.render import render_comparison

    paths = []
    for name in ("resnet56", "plain56", "resnet20"):
        paths.append(str(tmp_path / f"{name}.h5"))
        _bowl(paths[-1], arch=name)
    render_comparison(paths, str(tmp_path), "html")
    _, layout = figure_json(str(tmp_path / "comparison.html"))
    for k in ("", "2", "3"):
        assert layout[f"xaxis{k}"]["title"]["text"] == "α" and layout[f"yaxis{k}"]["title"]["text"] == "β"
        assert layout[f"yaxis{k}"]["scaleanchor"] == f"x{k}" and layout[f"yaxis{k}"]["scaleratio"] == 1
    assert [a["text"] for a in layout["annotations"] if a.get("xref") == "paper"] == \
        ["resnet56", "plain56", "resnet20"]


def test_paper_figure_layout(tmp_path):
    paths = []
    for name, floor in (("resnet56", 0.008), ("plain56", 1.2), ("resnet20", 0.02)):
        paths.append(str(tmp_path / f"{name}.h5"))
        _bowl(paths[-1], n=41, arch=name, floor=floor)
    from landscape.render.paper import paper_figure
    from landscape.render import _shared

    surfaces, key = _shared(paths, None, "--figure paper")
    sc = make_scale([s.values[key] for s in surfaces])
    fig = paper_figure(surfaces, key, sc)
    flat = [a for a in fig.axes if a.name != "3d" and a.get_label() != "<colorbar>" and a.get_title()]
    solid = [a for a in fig.axes if a.name == "3d"]
    assert len(flat) == 3 and len(solid) == 3  # one panel per surface and row
    assert [a.get_title() for a in flat + solid] == ["(a) resnet56", "(b) plain56", "(c) resnet20",
                                                     "(d) resnet56", "(e) plain56", "(f) resnet20"]
    # one shared scale: every panel's contour levels and 3D height range are the same
    for a in flat:
        cs = next(c for c in a.collections if hasattr(c, "levels"))
        np.testing.assert_allclose(cs.levels, sc.levels)
    assert len({a.get_zlim() for a in solid}) == 1
    assert len({(a.elev, a.azim) for a in solid}) == 1  # one camera
    plt.close(fig)
    # the CLI writes <out>/<name>.pdf and .png; the PDF stays small (3D meshes rasterized inside it)
    r = subprocess.run([sys.executable, "-m", "landscape.render", *paths, "--figure", "paper", "--out",
                        str(tmp_path / "o"), "--name", "fig5"], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "o")) == ["fig5.pdf", "fig5.png"]
    pdf = (tmp_path / "o" / "fig5.pdf").read_bytes()
    assert pdf[:4] == b"%PDF" and len(pdf) < 1_500_000 and b"/Image" in pdf
    im = np.asarray(Image.open(tmp_path / "o" / "fig5.png").convert("RGB"))
    assert im.shape[1] > im.shape[0] > 800


def test_paper_figure_needs_2d(tmp_path):
    from landscape.errors import LandscapeError

    p = str(tmp_path / "c.h5")
    _curve(p)
    with pytest.raises(LandscapeError, match="2D"):
        render_paper([p], str(tmp_path))
    q = str(tmp_path / "s.h5")
    _bowl(q)
    with pytest.raises(LandscapeError, match="--figure paper writes"):
        render_paper([q], str(tmp_path), formats="html")
