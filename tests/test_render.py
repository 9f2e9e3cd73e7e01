import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest
from PIL import Image

from fakes import failing_temp
from landscape.errors import LandscapeError
from landscape.render import render_surface
from landscape.render.html import figure_data
from landscape.sampling import Z95

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _surface(path, nx=9, ny=7, holes=True, split="train", ours=True):
    x, y = np.linspace(-1, 1, nx), np.linspace(-0.5, 0.5, ny)
    xx, yy = np.meshgrid(x, y)
    loss = 0.1 + xx ** 2 + 2 * yy ** 2
    acc = 100 - 10 * loss
    done = np.ones_like(loss, dtype=bool)
    if holes:
        loss[0, 0] = np.inf  # diverged
        done[-1, -1] = False  # not yet computed
        loss[-1, -1] = np.nan
    with h5py.File(path, "w") as f:
        f["xcoordinates"], f["ycoordinates"] = x, y
        f[f"{split}_loss"], f[f"{split}_acc"], f[f"{split}_done"] = loss, acc, done
        if ours:
            f.attrs["format_version"], f.attrs["arch"], f.attrs["split"] = 1, "resnet20", split
    return x, y, loss


def _png_ok(p, min_w=300):
    im = np.asarray(Image.open(p).convert("RGB"))
    assert im.shape[1] >= min_w and im.shape[0] >= 200
    assert len(np.unique(im.reshape(-1, 3), axis=0)) > 50  # a real picture, not a blank canvas


def test_2d_suite_with_gaps(tmp_path):
    p = str(tmp_path / "s.h5")
    x, y, loss = _surface(p)
    files = render_surface(p, str(tmp_path), "png,pdf,svg,html,vtp")
    for kind in ("contour", "contourf", "heatmap", "surface3d"):
        _png_ok(tmp_path / f"s_{kind}.png")
        assert (tmp_path / f"s_{kind}.pdf").read_bytes()[:4] == b"%PDF"
        assert b"<svg" in (tmp_path / f"s_{kind}.svg").read_bytes()[:500]
    assert len(files) == 14
    data = figure_data(str(tmp_path / "s.html"))
    heat = next(t for t in data if t["type"] == "heatmap")
    z = np.array([[np.nan if v is None else v for v in row] for row in heat["z"]], dtype=float)
    assert np.isnan(z[0, 0]) and np.isnan(z[-1, -1])  # gaps, never zeros
    assert heat["customdata"][3][4][0] == pytest.approx(loss[3, 4])
    np.testing.assert_allclose(heat["x"], x)
    mesh = next(t for t in data if t["type"] == "mesh3d")
    # the two diverged/missing corners are holes in the 3D mesh too: no vertex near them
    vx, vy = np.array(mesh["x"]), np.array(mesh["y"])
    assert not np.any((vx < x[0] + 1e-9) & (vy < y[0] + 1e-9))
    assert not np.any((vx > x[-1] - 1e-9) & (vy > y[-1] - 1e-9))


def test_vtp_parses_for_non_square_grid(tmp_path):
    p = str(tmp_path / "s.h5")
    _surface(p, nx=6, ny=4, holes=False)
    render_surface(p, str(tmp_path), "vtp")
    root = ET.parse(tmp_path / "s.vtp").getroot()
    piece = root.find("PolyData/Piece")
    assert piece.get("NumberOfPoints") == "24" and piece.get("NumberOfPolys") == str(5 * 3)
    import base64

    raw = base64.b64decode(piece.find("Points/DataArray").text)
    pts = np.frombuffer(raw[4:], dtype="<f8").reshape(-1, 3)
    assert int.from_bytes(raw[:4], "little") == 24 * 3 * 8
    assert tuple(pts[0, :2]) == (-1, -0.5) and tuple(pts[23, :2]) == (1, 0.5)


def test_1d_curve(tmp_path):
    p = tmp_path / "c.h5"
    x = np.linspace(-1, 1, 11)
    with h5py.File(p, "w") as f:
        f["xcoordinates"] = x
        f["train_loss"], f["train_acc"] = x ** 2 + 0.1, 100 - 20 * x ** 2
        f["test_loss"], f["test_acc"] = x ** 2 + 0.3, 90 - 20 * x ** 2
    files = render_surface(str(p), str(tmp_path), "png,html")
    _png_ok(tmp_path / "c_curve.png")
    names = [t["name"] for t in figure_data(str(tmp_path / "c.html"))]
    assert names == ["train loss", "train accuracy", "test loss", "test accuracy"]
    assert len(files) == 2


def test_reference_file_and_compare_via_cli(tmp_path):
    a, b = str(tmp_path / "resnet.h5"), str(tmp_path / "plain.h5")
    _surface(a, holes=False, ours=False)
    _, _, lb = _surface(b, holes=False)
    r = subprocess.run([sys.executable, "-m", "landscape.render", a, b, "--compare", "--out", str(tmp_path / "o")],
                       cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    _png_ok(tmp_path / "o" / "comparison_contourf.png", min_w=600)
    assert sorted(os.listdir(tmp_path / "o")) == ["comparison.html", "comparison_contourf.png"]  # no doubled word
    traces = figure_data(str(tmp_path / "o" / "comparison.html"))
    surfs = [t for t in traces if t["type"] == "mesh3d"]
    assert len(surfs) == 2 and surfs[0]["cmin"] == surfs[1]["cmin"] and surfs[0]["cmax"] == surfs[1]["cmax"]
    heats = [t for t in traces if t["type"] == "heatmap"]
    assert len(heats) == 2 and heats[0]["zmin"] == heats[1]["zmin"] and heats[0]["zmax"] == heats[1]["zmax"]


def test_render_errors(tmp_path):
    with pytest.raises(LandscapeError, match="not found"):
        render_surface(str(tmp_path / "none.h5"))
    p = str(tmp_path / "s.h5")
    _surface(p)
    with pytest.raises(LandscapeError, match="unknown format"):
        render_surface(p, formats="png,jpg")
    with pytest.raises(LandscapeError, match="test_loss"):
        render_surface(p, surface="test_loss")


def test_render_never_imports_torch():
    code = ("import sys, landscape.render, landscape.render.static, landscape.render.html, landscape.render.vtk;"
            "import landscape.render.paper, landscape.render.curve, landscape.render.html_traces;"
            "import landscape.render.__main__; print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.stdout.strip() == "False", r.stderr


def test_vtp_read_by_vtk(tmp_path):
    """ParaView's own reader (VTK) opens the file: points, quads, and the loss values."""
    vtk = pytest.importorskip("vtk") if os.environ.get("LANDSCAPE_REQUIRE_VTK") != "1" else __import__("vtk")
    p = str(tmp_path / "s.h5")
    x, y, loss = _surface(p, nx=7, ny=5, holes=True)
    render_surface(p, str(tmp_path), "vtp")
    r = vtk.vtkXMLPolyDataReader()
    r.SetFileName(str(tmp_path / "s.vtp"))
    r.Update()
    poly = r.GetOutput()
    assert poly.GetNumberOfPoints() == 35
    assert poly.GetNumberOfPolys() == 6 * 4 - 2  # the two cells touching the diverged/missing corners are holes
    arr = poly.GetPointData().GetArray("train_loss")
    assert arr.GetValue(1 * 7 + 3) == pytest.approx(loss[1, 3])
    assert poly.GetPoint(7 + 3)[:2] == pytest.approx((x[3], y[1]))


def test_default_scale_shows_the_basin():
    from landscape.render.scale import make_scale

    z = np.array([0.01, 0.5, 2.0, 50.0, 1e4, 1e6])
    lin = make_scale([z])
    assert lin.vmin == 0.01 and lin.vmax == pytest.approx(10.01)  # capped at max(10*min, min+10)
    lg = make_scale([z], log=True)
    assert lg.vmax == pytest.approx(np.percentile(z, 95)) and lg.lo == pytest.approx(-2)
    fixed = make_scale([z], vmin=0.1, vmax=10, levels=5)
    np.testing.assert_allclose(fixed.levels, [0.1, 2.575, 5.05, 7.525, 10])


@pytest.mark.parametrize("fmt,name", [("png", "s_contour.png"), ("pdf", "s_contour.pdf"), ("svg", "s_contour.svg"),
                                      ("html", "s.html"), ("vtp", "s.vtp")])
def test_a_full_disk_while_drawing_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch, capsys, fmt,
                                                                          name):
    """Every figure is written under a temporary name and renamed: a disk that fills up mid-file gives one line
    naming the file (exit 2), no temporary file, and the figure drawn before is still there, whole."""
    import landscape.paths as paths
    from landscape.cli import run
    from landscape.render.__main__ import main as render_main

    p = str(tmp_path / "s.h5")
    _surface(p)
    render_surface(p, str(tmp_path), fmt)
    before = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path) if not f.endswith(".h5")}
    assert name in before
    monkeypatch.setattr(paths, "_open_temp", failing_temp(1000))
    rc = run(render_main, [p, "--formats", fmt], prog="landscape.render")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "No space left on device (ENOSPC)" in err and str(tmp_path) in err, err
    assert sorted(os.listdir(tmp_path)) == sorted(list(before) + ["s.h5"])  # no temporary file left
    for f, data in before.items():
        assert (tmp_path / f).read_bytes() == data  # the earlier figures, whole


def _big(path, n):
    """An n x n bowl with ripples (enough contour lines), written like our files."""
    c = np.linspace(-1, 1, n)
    xx, yy = np.meshgrid(c, c)
    loss = 0.05 + 3 * (xx ** 2 + 0.6 * yy ** 2) + 0.2 * np.sin(9 * xx) ** 2
    with h5py.File(path, "w") as f:
        f["xcoordinates"], f["ycoordinates"] = c, c
        f["train_loss"], f["train_acc"] = loss, 100 - loss
        f["train_done"] = np.ones_like(loss, dtype=bool)
        f.attrs["format_version"], f.attrs["arch"], f.attrs["split"] = 1, "big", "train"
    return c, loss


def test_a_1001_grid_page_is_thinned_says_so_and_stays_small(tmp_path):
    """The authors' 1001x1001 recipe: the page's 3D view every 10th point, its colours every 2nd, its contour
    lines from every point, a note saying so, and a page of a few MB (was 100s of MB)."""
    import time

    from landscape.render.html_traces import HTML_CELLS, MAP_POINTS

    p = str(tmp_path / "big.h5")
    c, loss = _big(p, 1001)
    t = time.perf_counter()
    render_surface(p, str(tmp_path), "html")
    assert time.perf_counter() - t < 60  # ~2 s here; was ~1 min and 8 GB
    page = tmp_path / "big.html"
    assert os.path.getsize(page) < 15e6
    text = page.read_text(encoding="utf-8")
    assert ("Large grid (1001×1001): the 3D view shows every 10th point; the contour colours every 2nd point (the "
            "contour lines use all points). The PNG contour figures show every point.") in text
    data = figure_data(str(page))
    heat = next(t for t in data if t["type"] == "heatmap")
    np.testing.assert_array_equal(heat["x"], c[::2])
    assert np.asarray(heat["z"]).shape == (MAP_POINTS, MAP_POINTS)
    custom = np.asarray(heat["customdata"])
    np.testing.assert_allclose(custom[:, :, 0], loss[::2, ::2], rtol=1e-6)  # float32 on the page
    mesh = next(t for t in data if t["type"] == "mesh3d")
    assert len(mesh["i"]) <= 2 * HTML_CELLS ** 2 + 4 * HTML_CELLS  # triangles: a 101 x 101 grid, cut
    on_grid = np.isin(np.round(np.asarray(mesh["x"]), 9), np.round(c[::10], 9))
    assert on_grid.mean() > 0.5  # its corners are computed points (every 10th), not averages
    lines = next(t for t in data if t.get("name") == "levels")
    from landscape.render.geometry import level_paths
    from landscape.render.scale import make_scale

    sc = make_scale([loss])
    full = sum(len(ps) for _, ps in level_paths(c, c, np.clip(loss, sc.vmin, sc.vmax), sc.levels))
    assert np.isnan(np.asarray(lines["x"], dtype=float)).sum() == full  # every line of the full grid


def test_small_pages_are_not_thinned(tmp_path):
    p = str(tmp_path / "s.h5")
    _surface(p, nx=51, ny=51, holes=False)
    render_surface(p, str(tmp_path), "html")
    assert "Large grid" not in (tmp_path / "s.html").read_text(encoding="utf-8")
    heat = next(t for t in figure_data(str(tmp_path / "s.html")) if t["type"] == "heatmap")
    assert np.asarray(heat["z"]).shape == (51, 51)


def test_large_grids_draw_the_3d_mesh_thinned_and_vector_heatmaps_as_pixels(tmp_path):
    """Static figures of a fine grid: the 3D mesh thinned to 200 cells per axis (a 51x51 grid is refined to the
    same), the heatmap rasterized inside PDF/SVG; the contour figures keep every point."""
    from landscape.render.geometry import surface_heights, to_height
    from landscape.render.scale import make_scale
    from landscape.render.surface3d import STATIC_CELLS
    from landscape.surface import read_surface

    p = str(tmp_path / "big.h5")
    c, loss = _big(p, 1001)
    s = read_surface(p)
    sc = make_scale([loss])
    x, y, h = surface_heights(s, "train_loss", sc, 4, STATIC_CELLS)
    np.testing.assert_array_equal(x, c[::5])
    np.testing.assert_array_equal(h, to_height(sc, loss[::5, ::5]))
    p51 = str(tmp_path / "s51.h5")
    _big(p51, 51)
    assert surface_heights(read_surface(p51), "train_loss", sc, 4, STATIC_CELLS)[2].shape == (201, 201)
    p301 = str(tmp_path / "m.h5")
    _big(p301, 301)
    from landscape.render.static import render_2d

    m = read_surface(p301)
    render_2d(m, "train_loss", str(tmp_path / "m"), ["svg"], make_scale([m.values["train_loss"]]),
              kinds=("heatmap", "contour"))
    svg = (tmp_path / "m_heatmap.svg").read_bytes()
    assert b"<image" in svg and len(svg) < 1e6  # pixels, not 90,000 vector quads (~17 MB)
    assert b"<image" not in (tmp_path / "m_contour.svg").read_bytes()  # the lines stay vectors


def _with_errors(path, x, loss, se, n, cap=None):
    with h5py.File(path, "a") as f:
        f["train_loss_se"], f["train_n"] = se, n
        f["train_acc_se"] = np.full_like(se, 0.5)
        f.attrs["n_samples"] = 400
        if cap is not None:
            f.attrs["loss_cap"] = cap


def test_the_1d_figure_draws_the_95_percent_band_and_the_page_shows_plus_minus(tmp_path):
    p = tmp_path / "c.h5"
    x = np.linspace(-1, 1, 11)
    loss = x ** 2 + 0.1
    with h5py.File(p, "w") as f:
        f["xcoordinates"], f["train_loss"], f["train_acc"] = x, loss, 100 - 20 * x ** 2
        f.attrs["format_version"], f.attrs["split"] = 1, "train"
    se = np.where(np.abs(x) > 0.5, 0.05, 0.0)  # adaptive: the middle points ran on all the data
    _with_errors(p, x, loss, se, np.where(se > 0, 100.0, 400.0))
    render_surface(str(p), str(tmp_path), "png,html")
    _png_ok(tmp_path / "c_curve.png")
    data = figure_data(str(tmp_path / "c.html"))
    line, upper, lower = data[0], data[1], data[2]
    np.testing.assert_allclose(upper["y"], loss + Z95 * se)  # 1.96 SE: the 95 % interval
    np.testing.assert_allclose(lower["y"], loss - Z95 * se)
    assert lower["fill"] == "tonexty" and line["name"] == "train loss"
    assert line["customdata"][0] == pytest.approx([Z95 * 0.05, 100]) and line["customdata"][5] == [0, 400]
    assert "loss %{y:.3g} ± %{customdata[0]:.2g} (95 %)<br>%{customdata[1]:,.0f} of 400 samples" in \
        line["hovertemplate"]
    acc = data[3]
    assert acc["customdata"][0] == pytest.approx([Z95 * 0.5]) and "± %{customdata[0]:.2g}%" in acc["hovertemplate"]


def test_no_band_without_a_sampling_error(tmp_path):
    p = tmp_path / "c.h5"
    x = np.linspace(-1, 1, 5)
    with h5py.File(p, "w") as f:
        f["xcoordinates"], f["train_loss"] = x, x ** 2 + 0.1
        f.attrs["format_version"], f.attrs["split"] = 1, "train"
    _with_errors(p, x, x ** 2, np.zeros(5), np.full(5, 400.0))  # every point on all the data: exact
    render_surface(str(p), str(tmp_path), "html")
    data = figure_data(str(tmp_path / "c.html"))
    assert [t["name"] for t in data] == ["train loss"] and "±" not in data[0]["hovertemplate"]


def test_2d_hover_gives_the_interval_and_a_recorded_cap_bounds_the_scale(tmp_path):
    p = str(tmp_path / "s.h5")
    x, y, loss = _surface(p, holes=False)
    loss_se = np.full(loss.shape, 0.01)
    _with_errors(p, x, loss, loss_se, np.full(loss.shape, 128.0), cap=1.0)
    render_surface(p, str(tmp_path), "html")
    heat = next(t for t in figure_data(str(tmp_path / "s.html")) if t["type"] == "heatmap")
    assert heat["customdata"][3][4][2:] == pytest.approx([Z95 * 0.01, Z95 * 0.5, 128], abs=1e-6)
    assert ("train loss %{customdata[0]:.3g} ± %{customdata[2]:.2g} (95 %)<br>accuracy %{customdata[1]:.1f} ± "
            "%{customdata[3]:.2g}%<br>%{customdata[4]:,.0f} of 400 samples") in heat["hovertemplate"]
    assert heat["zmax"] == pytest.approx(1.0)  # the recorded cap, not the 95th percentile (1.39)
    from landscape.render.scale import make_scale

    assert make_scale([loss]).vmax == pytest.approx(np.percentile(loss, 95))
    assert make_scale([loss], ceiling=1.0).vmax == 1.0 and make_scale([loss], vmax=2.0, ceiling=1.0).vmax == 2.0
