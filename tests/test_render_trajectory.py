"""Planes with something drawn over them, read back as drawn: the optimizer's path on a PCA plane (a figure shaped
like the plane, every epoch of a short run labelled, on the PNG and on the page, never over theta*), a curve
between two models (its legend off the contours), and the line-contour colour bar's over-range end labelled."""


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from landscape.render import render_surface  # noqa: E402
from landscape.render.geometry import label_spots, level_paths  # noqa: E402
from landscape.render.html import figure_json  # noqa: E402
from landscape.render.scale import make_scale  # noqa: E402
from landscape.render.placement import distance_to_lines, epoch_label_spots, label_epochs, path_lines  # noqa: E402
from landscape.render.static import figure_2d, plane_layout  # noqa: E402
from planes import write_plane  # noqa: E402

# The reviewer's ResNet-20 run (4 epochs): the path on its PCA plane, epochs 2 to 4 crowding theta*.
R20_X = [9.574, 5.556, 0.228, 0.00678, 0.0]
R20_Y = [-0.804, 2.285, 0.154, 0.00352, 0.0]


_plane = write_plane


def _pca_plane(tmp_path, x=R20_X, y=R20_Y, epochs=None, name="p.h5"):
    """A 13 x 4 PCA plane (as the reviewer's) with a valley along the path and walls beyond 3.4."""
    gx, gy = np.linspace(-1.43, 11.0, 21), np.linspace(-1.27, 2.75, 21)
    xx, yy = np.meshgrid(gx, gy)
    loss = 0.2 + 0.35 * xx - 0.05 * xx ** 2 / 4 + 0.4 * yy ** 2 + 0.6 * np.exp(-((xx - 6) ** 2 + (yy + 1) ** 2) / 8)
    loss = np.clip(loss, 0.2, None) + np.where(xx > 10.5, 1.0, 0.0)
    tr = dict(x=x, y=y, epochs=np.arange(len(x)) if epochs is None else epochs,
              explained_variance_ratio=[0.931, 0.066])
    return _plane(tmp_path / name, gx, gy, loss, tr)


def _drawn_bar_labels(cb):
    """The colour bar's tick labels matplotlib draws: those inside its axis (the rest are never shown)."""
    lo, hi = sorted(cb.get_ylim())
    tol = 1e-9 * max(abs(lo), abs(hi))
    return [t.get_text() for t, v in zip(cb.get_yticklabels(), cb.get_yticks()) if lo - tol <= v <= hi + tol]


def _boxes(artists, fig):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    return [a.get_window_extent(r) for a in artists]


def _overlap(a, b, pad=0.0):
    return a.x0 < b.x1 + pad and b.x0 < a.x1 + pad and a.y0 < b.y1 + pad and b.y0 < a.y1 + pad


def _epoch_texts(ax):
    return [t for t in ax.texts if t.get_text().isdigit()]


def _star(ax):
    return next(ln for ln in ax.lines if ln.get_marker() == "*")


# -- 1. the line-contour colour bar ------------------------------------------------------------------------------

def test_the_line_contour_colour_bar_labels_its_over_range_end_as_the_filled_figures(tmp_path):
    x = np.linspace(-3, 3, 21)
    xx, yy = np.meshgrid(x, x)
    loss = 0.01 * (1.3e14 / 0.01) ** (np.sqrt(xx ** 2 + yy ** 2) / np.sqrt(18))
    s = _plane(tmp_path / "b.h5", x, x, loss)
    for scale in (make_scale([loss], log=False), make_scale([loss], log=True)):
        assert scale.extend == "max"
        drawn = {}
        for kind in ("contour", "contourf", "heatmap"):
            fig = figure_2d(s, "train_loss", kind, scale)
            fig.canvas.draw()
            cb = fig.axes[-1]
            assert cb.get_label() == "<colorbar>" and cb._colorbar.extend == "max"
            drawn[kind] = _drawn_bar_labels(cb)
            assert cb.get_ylim() == pytest.approx((scale.vmin, scale.vmax))  # the bar spans the whole range
            if kind == "contour":  # the levels drawn on the white bar as lines, at their values
                segs = cb._colorbar.lines[0].get_segments()
                ys = sorted(float(seg[0][1]) for seg in segs)
                np.testing.assert_allclose(ys, scale.levels, rtol=1e-6)
            plt.close(fig)
        ticks, labels = scale.bar_ticks()
        assert drawn["contour"][-1] == labels[-1] and labels[-1].startswith("≥ ")
        assert drawn["contour"] == drawn["contourf"] == drawn["heatmap"] == labels


# -- 1b. a plane with a legend (a curve between two models) ------------------------------------------------------

def _connect_plane(tmp_path):
    x, y = np.linspace(-0.25, 1.25, 31), np.linspace(-0.25, 1.25, 31)
    xx, yy = np.meshgrid(x, y)
    # rings around the middle of the plane: every level crosses the curve, which runs through it
    loss = 0.01 + (xx - 0.5) ** 2 + (yy - 0.5) ** 2 + 0.3 * xx * yy
    t = np.linspace(0, 1, 41)
    a, bend, b = np.array([0.0, 0.0]), np.array([0.5, 1.0]), np.array([1.0, 0.0])
    curve = ((1 - t) ** 2)[:, None] * a + (2 * t * (1 - t))[:, None] * bend + (t ** 2)[:, None] * b
    tr = dict(x=curve[:, 0], y=curve[:, 1], t=t, label="Bézier curve",
              marks={"A": [0.0, 0.0], "B": [1.0, 0.0], "bend": [0.5, 1.0]})
    return _plane(tmp_path / "c.h5", x, y, loss, tr)


def test_a_planes_legend_sits_below_it_and_contour_labels_keep_off_the_curve(tmp_path):
    s = _connect_plane(tmp_path)
    scale = make_scale([s.values["train_loss"]])
    x, y = s.xcoordinates, s.ycoordinates
    span = max(x[-1] - x[0], y[-1] - y[0])
    lines = path_lines(s)
    # without keeping clear, a label would sit on the curve or the straight line (what the reviewer saw)
    raw = label_spots(level_paths(x, y, s.values["train_loss"], scale.levels), scale.labelled,
                      (x[0], x[-1], y[0], y[-1]), avoid=[(0.0, 0.0)])
    assert any(distance_to_lines([(px, py)], lines)[0] < 0.03 * span for px, py, _ in raw)
    fig = figure_2d(s, "train_loss", "contour", scale)
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text() and t.get_text() not in ("A", "B", "bend")]
    assert len(labels) >= 2
    leg = ax.get_legend()
    assert [t.get_text() for t in leg.get_texts()] == [r"$\theta^*$", "straight line", "Bézier curve"]
    boxes = _boxes(labels + [leg, ax], fig)
    lb, ab = boxes[-2], boxes[-1]
    r = fig.canvas.get_renderer()
    xlabel = ax.xaxis.label.get_window_extent(r)
    assert lb.y1 <= xlabel.y0 and lb.y1 < ab.y0  # below the axes and its alpha label: it hides nothing
    assert not any(_overlap(b, lb) for b in boxes[:-2])
    for t in labels:  # every contour label clear of the curve, the straight line and the named models
        assert distance_to_lines([t.get_position()], lines)[0] >= 0.04 * span, t.get_text()
    plt.close(fig)


# -- 2. the PCA plane's figure follows its shape -----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["contour", "contourf", "heatmap"])
def test_a_wide_pca_plane_gets_a_wide_figure_and_a_bar_no_taller_than_the_plot(tmp_path, kind):
    s = _pca_plane(tmp_path)
    fig = figure_2d(s, "train_loss", kind, make_scale([s.values["train_loss"]]))
    ax, cb = fig.axes[0], fig.axes[-1]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    a = ax.get_window_extent(r)
    # the bar with its over-range triangle, which matplotlib draws inside the bar's box
    b = Bbox.union([cb.get_window_extent(r)] + [p.get_window_extent(r) for p in cb._colorbar._extend_patches])
    assert cb._colorbar._extend_patches  # this plane's walls rise beyond the range
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert a.width / a.height == pytest.approx((x1 - x0) / (y1 - y0), rel=0.01)  # equal aspect, as before
    assert b.height <= a.height + 1 and b.height >= 0.97 * a.height  # as tall as the plot, not twice it
    assert b.y0 >= a.y0 - 1 and b.y1 <= a.y1 + 1
    # the plot fills the figure as saved (tight): no blank bands above and below it
    whole = fig.get_tightbbox(r)  # inches
    assert a.height / fig.dpi >= 0.6 * whole.height
    assert a.width / fig.dpi >= 0.6 * whole.width
    assert whole.width / whole.height > 2.0
    plt.close(fig)


def test_plane_layout_bounds():
    for xs, ys in [(1, 1), (13, 4), (4, 13), (100, 1), (1, 100)]:
        (fw, fh), box, bar = plane_layout(xs, ys)
        w, h = box[2] * fw, box[3] * fh
        assert w <= 7.5 + 1e-9 and h <= 6.0 + 1e-9 and fw < 11 and fh < 8
        if min(w, h) > 0.1:
            assert w / h == pytest.approx(xs / ys, rel=1e-6)  # the plane's own shape
        hb = bar[3] * fh
        assert hb == pytest.approx(max(h, 1.9))  # as tall as the plot (a thin strip: tall enough to read)
        assert box[0] + box[2] < bar[0]  # the bar right of the plot, apart
    (fw, fh), box, _ = plane_layout(2, 2)
    assert box[2] * fw == pytest.approx(3.8) and box[3] * fh == pytest.approx(3.8)  # a 1:1 plane, as before
    assert plane_layout(0, 0) == plane_layout(1, 1)  # degenerate: square


# -- 3. the epochs: every one of a short run, on the PNG and on the page, never over theta* ---------------------

@pytest.mark.parametrize("kind", ["contour", "contourf", "heatmap"])
def test_every_epoch_of_a_short_run_is_labelled_beside_its_marker_clear_of_theta_star(tmp_path, kind):
    s = _pca_plane(tmp_path)
    fig = figure_2d(s, "train_loss", kind, make_scale([s.values["train_loss"]]))
    ax = fig.axes[0]
    texts = _epoch_texts(ax)
    assert sorted(t.get_text() for t in texts) == ["0", "1", "2", "3", "4"]  # epochs 2 and 3 were missing
    boxes = _boxes(texts + [_star(ax)], fig)
    *labels, star = boxes
    frame = ax.get_window_extent(fig.canvas.get_renderer())
    for i, b in enumerate(labels):
        assert not _overlap(b, star), texts[i].get_text()  # never over theta*
        assert frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1
        assert not any(_overlap(b, c) for c in labels[i + 1:])
    for t in texts:  # next to its own point: the anchor is the epoch's point
        e = int(t.get_text())
        assert t.xy == pytest.approx((R20_X[e], R20_Y[e]))
        assert max(map(abs, t.get_position())) <= 9  # offset a few points at most: past the star, no more
    plt.close(fig)


def test_epochs_are_thinned_only_when_they_would_overlap(tmp_path):
    # twelve epochs far apart: every one labelled
    x = list(np.linspace(10.0, 0.0, 12))
    y = [1.5 * np.sin(k) for k in range(11)] + [0.0]
    s = _pca_plane(tmp_path, x=x, y=y, name="far.h5")
    fig = figure_2d(s, "train_loss", "contour", make_scale([s.values["train_loss"]]))
    assert sorted(int(t.get_text()) for t in _epoch_texts(fig.axes[0])) == list(range(12))
    plt.close(fig)
    # a long run converging on theta*: round epochs, a dozen at most, the first and last among them, none touching
    n = 101
    r = np.linspace(10.0, 0.0, n) ** 2 / 10
    x, y = list(r * np.cos(np.linspace(0, 3, n)) * 0.9 + 0.0), list(r * np.sin(np.linspace(0, 3, n)) * 0.15)
    x[-1], y[-1] = 0.0, 0.0
    s = _pca_plane(tmp_path, x=x, y=y, name="long.h5")
    assert [int(e) for e in np.asarray(label_epochs(np.arange(n)))] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    fig = figure_2d(s, "train_loss", "contour", make_scale([s.values["train_loss"]]))
    ax = fig.axes[0]
    texts = _epoch_texts(ax)
    shown = [int(t.get_text()) for t in texts]
    assert 3 <= len(shown) <= 12 and 0 in shown and 100 in shown and all(e % 10 == 0 for e in shown)
    boxes = _boxes(texts + [_star(ax)], fig)
    for i, b in enumerate(boxes[:-1]):
        assert not _overlap(b, boxes[-1]) and not any(_overlap(b, c) for c in boxes[i + 1:-1])
    plt.close(fig)


def test_label_spots_never_cover_theta_star_or_each_other():
    t = dict(x=np.array(R20_X), y=np.array(R20_Y), epochs=np.arange(5))
    extent = (-1.43, 11.0, -1.27, 2.75)
    for width, font, star, marker in [(500, 11, 15, 5), (490, 7, 12, 3), (200, 11, 15, 5)]:
        spots = epoch_label_spots(t, extent, width, width * 4.02 / 12.43, font, star, marker)
        k = width / 12.43
        sx, sy = 1.43 * k, 1.27 * k
        rects = []
        for text, px, py, cx, cy, d in spots:
            ox, oy = (px + 1.43) * k + cx * d, (py + 1.27) * k + cy * d
            w, h = 0.62 * font * len(text) + 1, font
            rects.append((min(ox, ox + cx * w), min(oy, oy + cy * h), max(ox, ox + cx * w), max(oy, oy + cy * h)))
        for i, q in enumerate(rects):
            assert not (q[0] < sx + star / 2 and sx - star / 2 < q[2] and q[1] < sy + star / 2 and sy - star / 2 < q[3])
            assert all(not (q[0] < o[2] and o[0] < q[2] and q[1] < o[3] and o[1] < q[3]) for o in rects[i + 1:])
        if width >= 490:
            assert [p[0] for p in spots] == ["0", "1", "2", "3", "4"]
    assert epoch_label_spots(dict(x=[1.0], y=[1.0], epochs=None), extent, 500, 160, 11, 15, 5) == []


def test_the_page_labels_the_epochs_as_the_png(tmp_path):
    s = _pca_plane(tmp_path)
    render_surface(s.path, str(tmp_path), ["html", "png"])
    data, layout = figure_json(str(tmp_path / "p.html"))
    path = next(t for t in data if t.get("name") == "trajectory")
    assert path["mode"] == "lines+markers"
    labels = next(t for t in data if t.get("name") == "epochs")
    assert labels["mode"] == "markers+text" and labels["text"] == ["0", "1", "2", "3", "4"]
    assert labels["xaxis"] == path["xaxis"] and labels["yaxis"] == path["yaxis"]
    pos = labels["textposition"]
    assert set(pos) <= {"top right", "top left", "bottom right", "bottom left"}
    assert labels["textfont"]["color"] == "red" and labels["hoverinfo"] == "skip" and labels["cliponaxis"] is False
    # unseen markers set the text beside each point: past theta*'s star (15 px) for the points on it
    assert labels["marker"]["color"] == "rgba(0,0,0,0)" and labels["marker"]["line"]["width"] == 0
    sizes = labels["marker"]["size"]
    for x, y, size in zip(labels["x"], labels["y"], sizes):
        if np.hypot(x, y) < 0.05:
            assert size >= 15
        assert size >= 5
    # the points on theta* (epochs 3 and 4) go to different sides of it
    at_star = [p for p, x, y in zip(pos, labels["x"], labels["y"]) if np.hypot(x, y) < 0.05]
    assert len(at_star) == 2 and len(set(at_star)) == 2
    # the PNG labels the same epochs
    fig = figure_2d(s, "train_loss", "contour", make_scale([s.values["train_loss"]]))
    assert sorted(t.get_text() for t in _epoch_texts(fig.axes[0])) == labels["text"]
    plt.close(fig)


def test_a_path_without_epochs_draws_no_labels(tmp_path):
    s = _pca_plane(tmp_path)
    s.trajectory["epochs"] = None
    fig = figure_2d(s, "train_loss", "contour", make_scale([s.values["train_loss"]]))
    assert _epoch_texts(fig.axes[0]) == []
    plt.close(fig)
    from landscape.render import html_traces as T
    from landscape.render.html import _plotly

    go, _ = _plotly()
    assert [t.name for t in T.trajectory(go, s)] == ["trajectory"]  # the path alone, one trace, as before


def test_a_comparison_of_flat_planes_is_as_high_as_they_are_and_draws_their_paths(tmp_path):
    """Side by side (``--compare``), two 13 x 4 PCA planes fill a figure of their shape (in a 4.6-inch-high one
    they were strips between blank bands), and the comparison page draws each one's path, on the map and on the
    3D surface."""
    from matplotlib.image import imread

    from landscape.render.html import render_html_compare
    from landscape.render.static import render_compare

    flat = [_pca_plane(tmp_path, name=f"p{k}.h5") for k in range(2)]
    gx = gy = np.linspace(-1, 1, 21)
    xx, yy = np.meshgrid(gx, gy)
    square = [_plane(tmp_path / f"s{k}.h5", gx, gy, 0.2 + xx ** 2 + yy ** 2) for k in range(2)]
    shapes = []
    for group, name in ((flat, "flat"), (square, "square")):
        scale = make_scale([s.values["train_loss"] for s in group])
        (png,) = render_compare(group, "train_loss", str(tmp_path / name), ["png"], scale)
        shapes.append(imread(png).shape[:2])
    (fh, fw), (sh, sw) = shapes
    assert abs(fw - sw) < 0.1 * sw and fh < 0.6 * sh and fh / fw < 0.25
    scale = make_scale([s.values["train_loss"] for s in flat])
    data, _ = figure_json(render_html_compare(flat, "train_loss", str(tmp_path / "c.html"), scale))
    on_maps = [(t["xaxis"], list(t["x"])) for t in data if t.get("name") == "trajectory" and t["type"] == "scatter"]
    assert on_maps == [("x", R20_X), ("x2", R20_X)]
    in_3d = [t.get("scene", "scene") for t in data if t.get("name") == "trajectory (3D)"]
    assert in_3d == ["scene", "scene2"]
