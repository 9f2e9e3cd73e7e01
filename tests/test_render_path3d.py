"""A plane's path on its 3D surface (PNG and page): on the surface as drawn (bilinear heights, held at the cap,
gaps where the surface has none), hidden parts told from seen ones for the PNG's camera, and a camera that shows
the path when a ridge hides it from the one theta* alone would get."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from landscape.render.geometry import height_range  # noqa: E402
from landscape.render.html import figure_json, render_html_2d  # noqa: E402
from landscape.render import path3d  # noqa: E402
from landscape.render.path3d import (LIFT, MOST, densify, heights_at, lifted, parts, seen,  # noqa: E402
                                     values_at, vis_mesh)
from landscape.render.scale import make_scale  # noqa: E402
from landscape.render.static import figure_2d  # noqa: E402
from landscape.render.surface3d import BOX, STATIC_CELLS, camera, theta_star  # noqa: E402
from landscape.render.geometry import pick_camera, surface_heights  # noqa: E402
from planes import write_plane  # noqa: E402

A, BEND, B = np.array([0.0, 0.0]), np.array([0.5, 1.0]), np.array([1.0, 0.0])


_write = write_plane


def _curve(n=41):
    t = np.linspace(0, 1, n)
    return t, ((1 - t) ** 2)[:, None] * A + (2 * t * (1 - t))[:, None] * BEND + (t ** 2)[:, None] * B


def _ridge_plane(tmp_path):
    """Two minima A and B with a wall between them across the straight line (alpha = 0.5, beta < 0.3, far above
    the cap) and a low pass beyond its end, which the curve takes (it peaks at beta = 0.5)."""
    x = y = np.linspace(-0.25, 1.25, 31)
    xx, yy = np.meshgrid(x, y)
    wall = 50.0 * np.exp(-(xx - 0.5) ** 2 / 0.005) / (1 + np.exp((yy - 0.3) / 0.03))
    loss = 0.02 + 0.2 * ((xx - 0.5) ** 2 + (yy - 0.4) ** 2) + wall
    t, c = _curve()
    tr = dict(x=c[:, 0], y=c[:, 1], t=t, label="Bézier curve", marks={"A": list(A), "B": list(B), "bend": list(BEND)})
    return _write(tmp_path / "ridge.h5", x, y, loss, tr)


def test_the_path_lies_on_the_surface_held_at_the_cap_with_gaps_where_it_has_none(tmp_path):
    x, y = np.linspace(-1, 1, 5), np.linspace(-1, 1, 5)
    xx, yy = np.meshgrid(x, y)
    loss = 3 + xx + 2 * yy  # bilinear: any point's height is exact
    loss[4, 4] = np.nan  # a gap at the corner (1, 1)
    s = _write(tmp_path / "lin.h5", x, y, loss, dict(x=[-1.0, 0.3, 1.0], y=[0.0, 0.0, 0.75], epochs=[0, 1, 2]))
    scale = make_scale([s.values["train_loss"]], vmin=0.0, vmax=4.5, levels=10)
    lo, hi = height_range(scale)
    assert (lo, hi) == (0.0, 4.5)  # linear heights: the value itself
    np.testing.assert_allclose(heights_at(s, "train_loss", scale, np.array([0.3, -0.8, 0.1]),
                                          np.array([0.0, -0.9, 0.35]), STATIC_CELLS), [3.3, 0.4, 3.8])
    # computed points beside the gap are their values (a NaN corner of weight 0 counts for nothing)...
    np.testing.assert_allclose(heights_at(s, "train_loss", scale, np.array([1.0, 0.5]), np.array([0.5, 1.0]),
                                          200), [5.0, 5.5])
    # ... and inside its cells, or off the grid, nothing
    assert np.isnan(heights_at(s, "train_loss", scale, np.array([0.9, 1.5]), np.array([0.9, 0.0]), 200)).all()
    px, py, pz, raw = lifted(s, "train_loss", scale, [-1.0, 0.3, 1.0], [0.0, 0.0, 0.75], STATIC_CELLS)
    # cut finer than a cell (0.5) into 4, the given points kept
    assert np.max(np.hypot(np.diff(px), np.diff(py))) <= 0.5 / 4 + 1e-12
    assert {-1.0, 0.3, 1.0} <= set(np.round(px, 12)) and px[0] == -1.0 and py[-1] == 0.75
    np.testing.assert_allclose(raw[py == 0], 3 + px[py == 0])  # on the surface...
    np.testing.assert_allclose(pz[py == 0], 3 + px[py == 0] + LIFT * 4.5)  # ... a little above it
    over = np.isfinite(raw) & (raw > hi)
    assert over.sum() >= 2 and np.all(pz[over] == hi)  # held at the cap, the values told as they are
    np.testing.assert_allclose(raw[over], 3 + px[over] + 2 * py[over])
    band = np.isfinite(raw) & (raw > hi - LIFT * hi) & (raw <= hi)  # lifted past the cap: held there too
    assert np.all(pz[band] == hi)
    assert np.isnan(pz[-1]) and np.isnan(raw[-1])  # (1, 0.75) lies in the cell with the gap: none drawn there
    # the values are the file's, not raised to the scale's floor as the heights are
    high_floor = make_scale([s.values["train_loss"]], vmin=3.5, vmax=4.5, levels=10)
    assert heights_at(s, "train_loss", high_floor, np.array([-1.0]), np.array([0.0]), 200)[0] == 3.5
    assert values_at(s, "train_loss", np.array([-1.0]), np.array([0.0]), 200)[0] == 2.0
    for n in (3, 10_000):  # at most MOST points, however long or fine the path
        many_x, many_y = densify(np.linspace(0, 1000, n), np.zeros(n), 0.001)
        assert len(many_x) <= MOST and many_x[0] == 0 and many_x[-1] == 1000


def test_a_wall_hides_the_curve_from_one_side_and_not_the_other(tmp_path):
    s = _ridge_plane(tmp_path)
    scale = make_scale([s.values["train_loss"]])
    x, y, z, _ = lifted(s, "train_loss", scale, *_curve()[1].T, 60)
    low = y < 0.25  # where the wall (beta < 0.3) stands between the curve and a camera looking along alpha
    beyond, before = low & (x > 0.6), low & (x < 0.4)
    assert beyond.sum() >= 10 and before.sum() >= 10
    mesh = vis_mesh(s, "train_loss", scale, BOX)
    from_left = seen(mesh, x, y, z, (20.0, 180.0), BOX)  # from alpha < 0
    from_right = seen(mesh, x, y, z, (20.0, 0.0), BOX)  # from alpha > 1
    assert not from_left[beyond].any() and from_left[:20].all()  # the wall hides B's side, A's end is seen
    assert not from_right[before].any() and from_right[-20:].all()
    assert seen(mesh, x, y, z, (20.0, 90.0), BOX).all()  # along the wall: nothing in front


def _cameras(surfaces, scale, steepest):
    """Every camera path_camera may take, in its order, with whether it shows every theta* and the least share
    of a surface's path (curve and line, densely sampled) it shows."""
    from landscape.render.geometry import AZIMUTHS, ELEVATIONS, hidden, triangles

    lo, hi = height_range(scale)
    out = []
    for elev in (e for e in ELEVATIONS if e <= steepest):
        for azim in AZIMUTHS:
            star, shares = True, []
            for s in surfaces:
                gx, gy, gh = surface_heights(s, "train_loss", scale, 4, STATIC_CELLS)
                star &= not hidden(triangles(gx, gy, gh, hi), theta_star(s, "train_loss", scale), elev, azim,
                                   np.array([gx[0], gy[0], lo]), np.array([gx[-1] - gx[0], gy[-1] - gy[0], hi - lo]),
                                   BOX)
                pts = [lifted(s, "train_loss", scale, p["x"], p["y"], 60)[:3] for p in parts(s)]
                x, y, z = (np.concatenate([q[c] for q in pts]) for c in range(3))
                shares.append(seen(vis_mesh(s, "train_loss", scale, BOX), x, y, z, (elev, azim), BOX).mean())
            out.append(((float(elev), float(azim)), star, min(shares)))
    return out


def test_the_camera_shows_the_curve_not_only_theta_star(tmp_path, monkeypatch):
    s = _ridge_plane(tmp_path)
    scale = make_scale([s.values["train_loss"]])
    lo, hi = height_range(scale)
    grid = (*surface_heights(s, "train_loss", scale, 4, STATIC_CELLS), theta_star(s, "train_loss", scale))
    star_only = pick_camera([grid], hi, lo, BOX)
    view = camera([s], "train_loss", scale)
    table = _cameras([s], scale, 60)
    first = next(v for v, star, share in table if star and share >= 0.95)
    assert view == first  # the lowest (in order) that shows theta* and the path
    x, y, z, _ = lifted(s, "train_loss", scale, *_curve(201)[1].T, 60)
    mesh = vis_mesh(s, "train_loss", scale, BOX)
    assert seen(mesh, x, y, z, star_only, BOX).mean() < 0.9  # what it looked from before: the wall hid the curve
    # none good enough: the camera whose least-seen path is seen most (of those showing theta*)
    monkeypatch.setattr(path3d, "PATH_SEEN", 1.01)
    fallback = camera([s], "train_loss", scale)
    best = max(share for _, star, share in table if star)
    assert dict((v, share) for v, _, share in table)[fallback] >= best - 0.02
    # without a path, the camera is theta*'s as before
    plain = _write(tmp_path / "plain.h5", s.xcoordinates, s.ycoordinates, s.values["train_loss"])
    assert camera([plain], "train_loss", scale) == star_only


def test_panels_with_paths_share_a_camera_no_steeper_than_45_that_shows_each_path(tmp_path):
    s = _ridge_plane(tmp_path)
    x, y = s.xcoordinates, s.ycoordinates
    loss = np.asarray(s.values["train_loss"])[::-1]  # mirrored: beta -> 1 - beta, the wall at beta > 0.7
    t, c = _curve()
    other = _write(tmp_path / "other.h5", x, y, loss, dict(x=c[:, 0], y=1.0 - c[:, 1], t=t, label="Bézier curve",
                                                           marks={"A": [0.0, 1.0], "B": [1.0, 1.0],
                                                                  "bend": [0.5, 0.0]}))
    scale = make_scale([s.values["train_loss"], other.values["train_loss"]])
    view = camera([s, other], "train_loss", scale)
    table = _cameras([s, other], scale, 45)
    good = [v for v, star, share in table if star and share >= 0.95]
    if good:  # the lowest that shows both paths
        assert view == good[0]
    else:  # else the one that shows the less-seen path best
        best = max(share for _, star, share in table if star)
        assert dict((v, share) for v, _, share in table)[view] >= best - 0.02
    assert view[0] <= 45
    # each alone would take another camera: the shared one is not the first surface's
    assert camera([s], "train_loss", scale) != view or camera([other], "train_loss", scale) != view


def test_png_and_page_draw_the_curve_line_and_models_on_the_surface(tmp_path):
    s = _ridge_plane(tmp_path)
    scale = make_scale([s.values["train_loss"]])
    lo, hi = height_range(scale)
    fig = figure_2d(s, "train_loss", "surface3d", scale)
    ax = fig.axes[0]
    lines = {}
    for ln in ax.lines:
        xs, ys, zs = (np.asarray(v, float) for v in ln.get_data_3d())
        lines.setdefault((ln.get_color(), ln.get_linestyle()), []).append((xs, ys, zs))
    (cx, cy, cz), = lines[("red", "-")]  # the curve, solid where seen...
    (_, _, dz), = lines[("red", ":")]  # ... dotted where a wall hides it
    ex, ey, ez, _ = lifted(s, "train_loss", scale, *_curve()[1].T, STATIC_CELLS)
    np.testing.assert_array_equal(cx, ex)
    assert np.array_equal(np.isfinite(cz) | np.isfinite(dz), np.isfinite(ez)) and np.isfinite(cz).mean() > 0.9
    np.testing.assert_allclose(np.where(np.isfinite(cz), cz, dz), ez)
    # solid exactly where this camera sees the curve; the dotted part is the rest (and meets the solid)
    vis = seen(vis_mesh(s, "train_loss", scale, BOX), ex, ey, ez, (ax.elev, ax.azim), BOX)
    np.testing.assert_array_equal(np.isfinite(cz), vis)
    assert np.all(np.isfinite(dz[~vis]))
    (lx, ly, lz), = [v for v in lines[("black", "--")] if len(v[0]) > 2]  # the straight line (not theta*'s
    # drop line), over the wall: held at the cap
    assert lx[0] == 0 and lx[-1] == 1 and np.all(ly == 0)
    assert np.nanmax(lz) == hi and np.all(lz[np.abs(lx - 0.5) < 0.02] == hi)
    names = sorted(t.get_text() for t in ax.texts if t.get_text() in ("A", "B", "bend"))
    assert names == ["A", "B", "bend"]
    plt.close(fig)
    page = render_html_2d(s, "train_loss", str(tmp_path / "ridge.html"), scale)
    data, _ = figure_json(page)
    traces = {t.get("name"): t for t in data if t.get("type") == "scatter3d"}
    curve, line, models = traces["Bézier curve (3D)"], traces["straight line (3D)"], traces["models (3D)"]
    np.testing.assert_allclose(np.asarray(curve["z"], float),
                               lifted(s, "train_loss", scale, *_curve()[1].T, 100)[2])
    assert line["line"]["dash"] == "dash" and max(line["z"]) == hi
    assert models["text"] == ["A", "B", "bend"]
    # A's name beside theta*'s marker and drop line (its dot as wide as that marker), the others' above their dots
    assert models["textposition"] == ["top right", "top center", "top center"]
    assert models["marker"]["size"] == [13, 5, 5]
    np.testing.assert_allclose(models["x"], [0.0, 1.0, 0.5])
    np.testing.assert_allclose(np.asarray(models["customdata"], float),
                               s.values["train_loss"][[5, 5, 25], [5, 25, 15]], rtol=1e-5)  # the loss under each


def test_a_trajectory_gets_its_epochs_and_a_plain_surface_nothing(tmp_path):
    x, y = np.linspace(-2, 2, 21), np.linspace(-1, 1, 11)
    xx, yy = np.meshgrid(x, y)
    s = _write(tmp_path / "t.h5", x, y, 0.1 + xx ** 2 + yy ** 2,
               dict(x=[1.5, 0.5, 0.0], y=[0.5, 0.2, 0.0], epochs=[1, 5, 10], explained_variance_ratio=[0.9, 0.05]))
    (p,) = parts(s)
    assert p["kind"] == "trajectory" and list(p["marks"]) == ["epoch 1", "epoch 5", "epoch 10"]
    scale = make_scale([s.values["train_loss"]], levels=11)  # linear heights: bilinear in the values
    data, _ = figure_json(render_html_2d(s, "train_loss", str(tmp_path / "t.html"), scale))
    epochs = [t for t in data if t.get("type") == "scatter3d" and t.get("name") == "epochs (3D)"]
    assert len(epochs) == 1 and epochs[0]["text"] == ["epoch 1", "epoch 5", "epoch 10"]
    np.testing.assert_allclose(np.asarray(epochs[0]["customdata"], float), [0.1 + 2.26 + 0.26, 0.1 + 0.26 + 0.04,
                                                                             0.1], rtol=1e-5)
    fig = figure_2d(s, "train_loss", "surface3d", scale)
    assert any(ln.get_color() == "red" for ln in fig.axes[0].lines)
    plt.close(fig)
    bare = _write(tmp_path / "b.h5", x, y, 0.1 + xx ** 2 + yy ** 2)
    assert parts(bare) == []
    data, _ = figure_json(render_html_2d(bare, "train_loss", str(tmp_path / "b.html"), scale))
    assert [t.get("name") for t in data if t.get("type") == "scatter3d"] == ["θ*"]
