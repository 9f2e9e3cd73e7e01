"""3D surfaces read as Li et al.'s: theta* on the floor and in sight, heights and colours on the 2D panels' scale,
round height ticks, a clean cut at the cap, the same on the page and in the paper figure. Every check reads what
was drawn (the figure's artists, the page's JSON), not what the code meant to draw."""

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from mpl_toolkits.mplot3d import proj3d  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Line3D, Path3DCollection, Poly3DCollection  # noqa: E402

from landscape.render import render_surface  # noqa: E402
from landscape.render.geometry import OWN_FLOOR, height_range  # noqa: E402
from landscape.render.html import figure_json  # noqa: E402
from landscape.render.scale import fmt_value, make_scale  # noqa: E402
from landscape.render.static import figure_2d  # noqa: E402
from landscape.render.surface3d import BOX, camera  # noqa: E402
from landscape.surface import read_surface  # noqa: E402

KEY = "train_loss"


def _write(path, loss, arch):
    n = loss.shape[0]
    c = np.linspace(-1, 1, n)
    with h5py.File(path, "w") as f:
        f["xcoordinates"], f["ycoordinates"] = c, c
        f[KEY], f["train_done"] = loss, np.ones_like(loss, dtype=bool)
        f.attrs["format_version"], f.attrs["arch"], f.attrs["split"] = 1, arch, "train"
    return read_surface(path)


def _resnet(tmp_path, n=21):
    """A wide basin from 0.01, walls to ~1e3: geometric colour levels, so log heights."""
    x = np.linspace(-1, 1, n)
    xx, yy = np.meshgrid(x, x)
    return _write(str(tmp_path / "resnet.h5"), 0.01 * np.exp(7 * (xx ** 2 + 0.6 * yy ** 2)), "resnet56")


def _plain(tmp_path, n=21):
    """plain-56's shape: a narrow, off-centre bucket from 1.2 whose walls leap past 1e3 within a cell or two, with
    theta* near its edge; little more than a decade below the cap, so linear colour levels and heights."""
    x = np.linspace(-1, 1, n)
    xx, yy = np.meshgrid(x, x)
    r2 = ((xx - 0.15) / 0.35) ** 2 + (yy / 0.45) ** 2
    return _write(str(tmp_path / "plain.h5"), 1.2 + 3 * r2 + np.where(r2 > 1, 1e3 * (r2 - 1), 0), "plain56")


def _solid(fig):
    return next(a for a in fig.axes if a.name == "3d")


def _star(ax):
    (star,) = [c for c in ax.collections if isinstance(c, Path3DCollection)]
    return np.array([float(v[0]) for v in star._offsets3d])


def _faces(ax):
    (coll,) = [c for c in ax.collections if isinstance(c, Poly3DCollection)]
    return np.array(coll._faces, dtype=float)  # equal lengths: a short face repeats its last corner


def _covering(ax, radius_px=6.0):
    """Faces drawn in front of theta* on screen, by mplot3d's own projection: a face (away from theta*'s own floor,
    as the camera's criterion) that covers the star's centre or a point of its rim and is nearer the eye."""
    ax.figure.canvas.draw()
    M = ax.get_proj()
    faces = _faces(ax)
    p = _star(ax)
    lo = np.array([ax.get_xlim()[0], ax.get_ylim()[0], ax.get_zlim()[0]])
    span = np.array([np.ptp(ax.get_xlim()), np.ptp(ax.get_ylim()), np.ptp(ax.get_zlim())])
    box = (faces.mean(axis=1) - lo) / span * BOX
    faces = faces[np.linalg.norm(box - (p - lo) / span * BOX, axis=1) > OWN_FLOOR]
    f = faces.reshape(-1, 3)
    X, Y, Z = proj3d.proj_transform(f[:, 0], f[:, 1], f[:, 2], M)
    k = faces.shape[1]  # corners per face (short faces repeat their last one)
    px = ax.transData.transform(np.stack([X, Y], 1)).reshape(len(faces), k, 2)
    depth = Z.reshape(len(faces), k)  # smaller is nearer the eye
    sx, sy, sz = proj3d.proj_transform(*[np.array([v]) for v in p], M)
    centre = ax.transData.transform([[sx[0], sy[0]]])[0]
    ang = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    pts = np.vstack([centre, centre + radius_px * np.stack([np.cos(ang), np.sin(ang)], 1)])
    hits = 0
    for corners in ((0, j, j + 1) for j in range(1, k - 1)):  # fanned into triangles
        T, D = px[:, corners], depth[:, corners]
        e1, e2 = T[:, 1] - T[:, 0], T[:, 2] - T[:, 0]
        det = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
        good = np.abs(det) > 1e-9
        det = np.where(good, det, 1.0)[:, None]
        d = pts[None, :, :] - T[:, None, 0]
        b1 = (d[..., 0] * e2[:, None, 1] - e2[:, None, 0] * d[..., 1]) / det
        b2 = (e1[:, None, 0] * d[..., 1] - d[..., 0] * e1[:, None, 1]) / det
        inside = good[:, None] & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1)
        z = D[:, :1] + b1 * (D[:, 1:2] - D[:, :1]) + b2 * (D[:, 2:3] - D[:, :1])
        hits += int(np.sum(inside & (z < sz[0] - 1e-3)))
    return hits


def _bar_ticks(s, sc):
    """The 2D colour bar's ticks, read off a drawn contour figure."""
    fig = figure_2d(s, KEY, "contour", sc)
    cb = fig.axes[-1]
    fig.canvas.draw()
    labels = [t.get_text() for t in cb.get_yticklabels() if t.get_text()]
    plt.close(fig)
    return labels


@pytest.mark.parametrize("shape, log, log_heights", [("resnet", False, True), ("resnet", True, True),
                                                      ("plain", False, False), ("plain", True, True)])
def test_heights_colours_and_ticks_are_the_2d_scale(tmp_path, shape, log, log_heights):
    s = (_resnet if shape == "resnet" else _plain)(tmp_path)
    sc = make_scale([s.values[KEY]], log=log)
    assert sc.geometric == log_heights or log  # the case at hand: log heights exactly where 2D colours are log
    h = np.log10 if log_heights else (lambda v: np.asarray(v, float))
    fig = figure_2d(s, KEY, "surface3d", sc)
    ax = _solid(fig)
    fig.canvas.draw()
    # z limits: vmin to the cap, as heights
    np.testing.assert_allclose(ax.get_zlim(), [h(sc.vmin), h(sc.vmax)])
    # z ticks: round values of the 2D colour bar, at their heights, few enough to read
    bar = _bar_ticks(s, sc)
    labels = [t.get_text() for t in ax.get_zticklabels()]
    assert 2 <= len(labels) <= 4 and set(labels) <= {fmt_value(t) for t in sc.ticks}, (labels, bar)
    np.testing.assert_allclose(ax.get_zticks(), h([float(t) for t in labels]))
    boxes = [t.get_window_extent() for t in ax.get_zticklabels()]
    assert all(not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    # the 3D colour bar: the 2D bar's ticks, and each tick's colour the 2D colour of its value
    cbar = fig.axes[-1]
    assert [t.get_text() for t in cbar.get_yticklabels() if t.get_text()] == bar
    vals = np.array(sc.bar_ticks()[0])
    np.testing.assert_allclose(cbar._colorbar.norm(vals), sc.norm()(vals), atol=1e-9)
    # faces coloured the same way: the lowest face is the colour of the floor's value
    faces, colours = _faces(ax), np.asarray(ax.collections[0]._facecolor3d)  # in face order, not depth order
    k = int(np.argmin(faces[:, :, 2].mean(axis=1)))
    floor = faces[k, :, 2].mean()
    want = matplotlib.colormaps["viridis"](sc.norm()(10 ** floor if log_heights else floor))
    np.testing.assert_allclose(colours[k], want, atol=2e-3)
    # a clean cut: the walls reach the cap and end there, nothing flat on it
    top = h(sc.vmax)
    z = faces[:, :, 2]
    e1, e2 = faces[:, 1, :2] - faces[:, 0, :2], faces[:, 2, :2] - faces[:, 0, :2]
    area = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])  # a corner exactly at the cap cuts to a point
    assert np.max(z) == pytest.approx(top) and not (np.all(z >= top - 1e-9, axis=1) & (area > 1e-12)).any()
    plt.close(fig)


@pytest.mark.parametrize("shape", ["resnet", "plain"])
@pytest.mark.parametrize("log", [False, True])
def test_theta_star_on_the_floor_in_sight(tmp_path, shape, log):
    s = (_resnet if shape == "resnet" else _plain)(tmp_path)
    sc = make_scale([s.values[KEY]], log=log)
    fig = figure_2d(s, KEY, "surface3d", sc)
    ax = _solid(fig)
    lo, hi = height_range(sc)
    h = np.log10 if (sc.log or sc.geometric) else float
    # at (0, 0) and its own value's height, not the rim's
    np.testing.assert_allclose(_star(ax), [0, 0, h(s.values[KEY][10, 10])], atol=1e-12)
    assert _star(ax)[2] < lo + 0.2 * (hi - lo)
    # the drop line: from the cap straight down to it
    (line,) = [ln for ln in ax.lines if isinstance(ln, Line3D)]
    xs, ys, zs = line.get_data_3d()
    np.testing.assert_allclose([xs, ys, zs], [[0, 0], [0, 0], [hi, _star(ax)[2]]], atol=1e-12)
    # no face between the eye and the star, by the drawn projection
    assert _covering(ax) == 0, (ax.elev, ax.azim)
    assert ax.elev <= 75
    plt.close(fig)


def test_shared_camera_stays_low(tmp_path):
    """Side by side, one camera: the lowest that shows theta* on both, but never steeper than 45 degrees (seeing
    into plain-56's bucket took 65-75, which flattened both basins); then the first surface's lowest camera, its
    theta* in sight, and the other's marked by its drop line."""
    r, p = _resnet(tmp_path), _plain(tmp_path)
    sc = make_scale([r.values[KEY], p.values[KEY]], log=True)
    alone = camera([p], KEY, sc)
    assert alone[0] > 45  # on this scale the bucket alone needs a steep camera: the case is real
    elev, azim = camera([r, p], KEY, sc)
    assert elev == camera([r], KEY, sc)[0] <= 45
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d", computed_zorder=False)
    from landscape.render.surface3d import draw_surface3d

    draw_surface3d(ax, r, KEY, sc, view=(elev, azim))
    assert _covering(ax) == 0
    plt.close(fig)
    assert camera([p, r], KEY, sc) == alone  # the first surface decides: its theta* is the one kept in sight


def test_the_check_sees_a_hidden_star(tmp_path):
    """The occlusion check is not vacuous: from 5 degrees the bucket's near wall hides theta*."""
    s = _plain(tmp_path)
    sc = make_scale([s.values[KEY]])
    from landscape.render.surface3d import draw_surface3d

    fig = plt.figure()
    ax = fig.add_subplot(projection="3d", computed_zorder=False)
    draw_surface3d(ax, s, KEY, sc, view=(5, camera([s], KEY, sc)[1]))
    assert _covering(ax) > 0
    plt.close(fig)


@pytest.mark.parametrize("log", [False, True])
def test_page_3d_is_the_png_3d(tmp_path, log):
    s = _plain(tmp_path)
    sc = make_scale([s.values[KEY]], log=log)
    render_surface(s.path, str(tmp_path), "html", log=log)
    data, layout = figure_json(str(tmp_path / "plain.html"))
    mesh = next(t for t in data if t["type"] == "mesh3d")
    heat = next(t for t in data if t["type"] == "heatmap")
    star = next(t for t in data if t["type"] == "scatter3d")
    lo, hi = height_range(sc)
    h = np.log10 if (sc.log or sc.geometric) else float
    # colours: the contour map's coordinate, range and colour-bar ticks
    assert (mesh["cmin"], mesh["cmax"]) == pytest.approx((heat["zmin"], heat["zmax"]))
    ticks, labels = sc.bar_ticks()  # the PNG colour bar's
    assert mesh["colorbar"]["ticktext"] == labels
    assert mesh["colorbar"]["tickvals"] == pytest.approx(list(sc.colour(ticks)))
    # heights: vmin to the cap, round ticks of the colour bar at their heights
    z = layout["scene"]["zaxis"]
    assert z["range"] == pytest.approx([lo, hi])
    assert 2 <= len(z["ticktext"]) <= 4 and set(z["ticktext"]) <= {fmt_value(t) for t in sc.ticks}
    assert z["tickvals"] == pytest.approx([h(float(t)) for t in z["ticktext"]])
    assert min(z["tickvals"]) - lo >= 0.05 * (hi - lo)  # none on the floor, at alpha's and beta's corner
    assert max(np.asarray(mesh["z"], float)) == pytest.approx(hi)
    # theta* at its height, a drop line from the cap; the page's camera is the PNG's
    assert list(star["x"]) == [0, 0] and list(star["y"]) == [0, 0]
    assert star["z"] == pytest.approx([hi, h(s.values[KEY][10, 10])])
    eye = layout["scene"]["camera"]["eye"]
    elev, azim = camera([s], KEY, sc)
    assert np.degrees(np.arctan2(eye["z"], np.hypot(eye["x"], eye["y"]))) == pytest.approx(elev)
    assert np.degrees(np.arctan2(eye["y"], eye["x"])) == pytest.approx(azim)


def test_paper_3d_titles_clear_of_the_boxes(tmp_path):
    from landscape.render.paper import paper_figure

    surfaces = [_resnet(tmp_path), _plain(tmp_path)]
    sc = make_scale([s.values[KEY] for s in surfaces])
    fig = paper_figure(surfaces, KEY, sc)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    flat = [a for a in fig.axes if a.name != "3d" and a.get_title()]
    for ax in (a for a in fig.axes if a.name == "3d"):
        title = ax.title.get_window_extent(r)
        ax.title.set_visible(False)
        drawn = ax.get_tightbbox(r)
        ax.title.set_visible(True)
        assert title.y0 >= drawn.y1  # above the box and its tick labels
        for a in flat:  # and below the row above
            assert not title.overlaps(a.get_tightbbox(r))
        assert _covering(ax) == 0
        assert set(t.get_text() for t in ax.get_zticklabels()) <= {fmt_value(t) for t in sc.ticks}
    plt.close(fig)


def test_no_3d_tick_label_runs_into_another(tmp_path):
    """At the corner two axes share, their end labels ran together ('1 -1', '1' on '0.01'): once laid out, the
    alpha/beta labels within a third of a label's height of another axis's label are blanked, the height axis's
    kept. Checked over cameras, some of which do collide (so the check is not vacuous)."""
    from landscape.render.surface3d import declutter_ticks, draw_surface3d

    s = _resnet(tmp_path, n=11)
    sc = make_scale([s.values[KEY]])

    def labels(ax, r):
        out = []
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis), ("z", ax.zaxis)):
            for t in axis.get_major_ticks():
                if t.label1.get_visible() and t.label1.get_text():
                    b = t.label1.get_window_extent(r)
                    out.append((name, t.label1.get_text(), b.padded(b.height / 3)))
        return out

    def clashes(ax):
        ax.figure.canvas.draw()
        got = labels(ax, ax.figure.canvas.get_renderer())
        return [(a[:2], b[:2]) for i, a in enumerate(got) for b in got[i + 1:] if a[0] != b[0] and a[2].overlaps(b[2])]

    before = 0
    for elev, azim in [(30, -60), (55, 30), (60, -60), (45, 120)]:
        fig = plt.figure(figsize=(6, 4.5))
        ax = fig.add_subplot(projection="3d", computed_zorder=False)
        draw_surface3d(ax, s, KEY, sc, view=(elev, azim))
        before += len(clashes(ax))
        z_before = [t.label1.get_text() for t in ax.zaxis.get_major_ticks() if t.label1.get_text()]
        declutter_ticks(fig)
        assert clashes(ax) == [], (elev, azim)
        assert [t.label1.get_text() for t in ax.zaxis.get_major_ticks() if t.label1.get_text()] == z_before
        plt.close(fig)
    assert before > 0


@pytest.mark.parametrize("azim", [-60, 120])
def test_the_height_label_reads_upright_from_any_side(tmp_path, azim):
    """mplot3d turns the z label with its axis: seen from some sides it read upside down."""
    from landscape.render.surface3d import draw_surface3d

    s = _resnet(tmp_path, n=11)
    sc = make_scale([s.values[KEY]])
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d", computed_zorder=False)
    draw_surface3d(ax, s, KEY, sc, zlabel="train loss", view=(30, azim))
    fig.canvas.draw()
    assert ax.zaxis.label.get_text() == "train loss" and ax.zaxis.label.get_rotation() == 90
    plt.close(fig)
