"""--eigen: lambda_max and lambda_min at every grid point, stored as max_eig/min_eig and drawn as Li et al.'s map."""

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.errors import LandscapeError
from landscape.surface import read_direction, read_surface


@pytest.fixture
def mlp_and_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 6, generator=g)
    y = torch.randint(0, 3, (80,), generator=g)
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)), x, y


def _exact_extremes(net, x, y, shift):
    """Eigenvalues of the exact Hessian of the mean cross-entropy over the two weight matrices, at theta*+shift."""
    w1, b1, w2, b2 = [p.detach().double() + s.double() for p, s in zip(net.parameters(), shift)]

    def loss(v):
        a, b = v[:w1.numel()].view(w1.shape), v[w1.numel():].view(w2.shape)
        return F.cross_entropy(torch.tanh(x.double() @ a.T + b1) @ b.T + b2, y)

    ev = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, torch.cat([w1.reshape(-1), w2.reshape(-1)])))
    return float(ev[-1]), float(ev[0])


def test_eigen_maps_equal_the_exact_hessian_at_every_point(tmp_path, mlp_and_data):
    net, x, y = mlp_and_data
    res = landscape.compute(net, data=(x, y), eigen=True, x="-1:1:3", y="-1:1:2", out=str(tmp_path),
                            progress=False, formats="png")
    s = read_surface(res.path)
    with h5py.File(res.path, "r") as f:
        dx, _ = read_direction(f, "xdirection")
        dy, _ = read_direction(f, "ydirection")
    for i, b in enumerate(s.ycoordinates):
        for j, a in enumerate(s.xcoordinates):
            shift = [torch.from_numpy(p) * a + torch.from_numpy(q) * b for p, q in zip(dx, dy)]
            hi, lo = _exact_extremes(net, x, y, shift)
            assert s.values["max_eig"][i, j] == pytest.approx(hi, rel=1e-4)
            assert s.values["min_eig"][i, j] == pytest.approx(lo, rel=1e-4, abs=1e-6)
    assert any(f.endswith("_eigen.png") for f in res.figures)
    assert s.attrs["eigen"] is True or s.attrs["eigen"] == 1
    # resumable: a second call computes nothing; a file made without --eigen is not silently extended
    assert landscape.compute(net, data=(x, y), eigen=True, x="-1:1:3", y="-1:1:2", out=str(tmp_path),
                             progress=False, render=False).computed == 0
    with pytest.raises(LandscapeError, match="eigen: file has True, this run False"):
        landscape.compute(net, data=(x, y), x="-1:1:3", y="-1:1:2", out=str(tmp_path), progress=False,
                          render=False)


def test_eigen_ratio_map_values(tmp_path):
    from landscape.render.eigen import eigen_ratio
    from landscape.surface import Surface

    s = Surface("f.h5", np.array([0.0, 1.0]), np.array([0.0]), {"max_eig": np.array([[2.0, 4.0]]),
                                                                 "min_eig": np.array([[-1.0, 0.0]])}, {})
    np.testing.assert_allclose(eigen_ratio(s), [[-0.5, 0.0]])


def test_eigen_page_shows_both_maps_and_the_eigenvalues_on_hover(tmp_path, monkeypatch):
    """``<name>_eigen.html``: |ratio| and the signed ratio as heatmaps on fixed scales, theta* starred, and each
    cell's lambda_max, lambda_min, ratio and loss in its hover data."""
    pytest.importorskip("plotly")
    from landscape.render import render_surface
    from landscape.render.html import figure_data

    p = str(tmp_path / "e.h5")
    hi, lo = np.array([[2.0, 4.0, 5.0], [8.0, 1.0, 2.0]]), np.array([[-1.0, 0.0, 1.0], [-2.0, -0.5, -4.0]])
    loss = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    with h5py.File(p, "w") as f:
        f.attrs.update(format_version=1, arch="mlp")
        f["xcoordinates"], f["ycoordinates"] = np.array([-1.0, 0.0, 1.0]), np.array([0.0, 1.0])
        f["train_loss"], f["train_done"] = loss, np.ones((2, 3), bool)
        f["max_eig"], f["min_eig"] = hi, lo
    written = render_surface(p, str(tmp_path), "html")
    page = str(tmp_path / "e_eigen.html")
    assert page in written
    heat = [t for t in figure_data(page) if t["type"] == "heatmap"]
    ratio = lo / hi  # -0.5 0 0.2 / -0.25 -0.5 -2
    np.testing.assert_allclose(heat[0]["z"], np.abs(ratio))
    np.testing.assert_allclose(heat[1]["z"], ratio)
    assert [(h["zmin"], h["zmax"]) for h in heat] == [(0.0, 1.0), (-1.0, 1.0)]
    custom = np.array(heat[0]["customdata"])  # (ny, nx, [lambda_max, lambda_min, loss, ratio])
    np.testing.assert_allclose(custom[1, 2], [2.0, -4.0, 6.0, -2.0])
    assert "λmax %{customdata[0]" in heat[0]["hovertemplate"] and "train loss" in heat[0]["hovertemplate"]
    stars = [t for t in figure_data(page) if t["type"] == "scatter"]
    assert [(t["x"], t["y"], t["marker"]["symbol"]) for t in stars] == [([0.0], [0.0], "star")] * 2
    # a grid finer than the page's map is drawn at most MAP_POINTS a side, the first and last points kept
    import landscape.render.html_traces as traces

    monkeypatch.setattr(traces, "MAP_POINTS", 2)
    render_surface(p, str(tmp_path), "html")
    thin = [t for t in figure_data(page) if t["type"] == "heatmap"][1]
    assert thin["x"] == [-1.0, 1.0] and thin["y"] == [0.0, 1.0]
    np.testing.assert_allclose(thin["z"], ratio[:, [0, 2]])


def test_1d_eigen_figure_draws_both_eigenvalues_and_the_ratio(tmp_path, monkeypatch):
    """--1d --eigen: lambda_max and lambda_min along alpha on a symmetric-log axis (decade ticks, none crowding
    0), |ratio| below on [0, 1]."""
    import landscape.render.static as static
    from landscape.render import render_surface
    from landscape.render.eigen import _linthresh, _symlog_ticks

    p = str(tmp_path / "c.h5")
    hi, lo = np.array([995.0, 0.3, 623.0]), np.array([-411.0, -0.0085, -354.0])
    with h5py.File(p, "w") as f:
        f.attrs.update(format_version=1, arch="resnet20")
        f["xcoordinates"] = np.array([-1.0, 0.0, 1.0])
        f["train_loss"], f["train_done"] = np.array([30.0, 0.01, 20.0]), np.ones(3, bool)
        f["max_eig"], f["min_eig"] = hi, lo
    figs = []
    real = static.save
    monkeypatch.setattr(static, "save", lambda fig, base, *a, **kw: figs.append(fig) or real(fig, base, *a, **kw))
    written = render_surface(p, str(tmp_path), "png")
    assert str(tmp_path / "c_eigen.png") in written
    top, bottom = figs[-1].axes
    (l_hi, l_lo), (l_r,) = top.get_lines()[:2], bottom.get_lines()[:1]
    np.testing.assert_allclose(l_hi.get_ydata(), hi)
    np.testing.assert_allclose(l_lo.get_ydata(), lo)
    np.testing.assert_allclose(l_r.get_ydata(), np.abs(lo / hi))
    assert top.get_yscale() == "symlog" and bottom.get_ylim() == (0.0, 1.0)
    both = np.concatenate([hi, lo])
    assert _linthresh(both) == 0.1  # the decade of max(smallest |value|, 1e-3 of the largest)
    assert list(top.get_yticks()) == _symlog_ticks(both, 0.1) == [-1e3, -1e2, -1e1, -1.0, 0.0, 1.0, 1e1, 1e2, 1e3]
    assert _symlog_ticks(np.array([2.0, 5e6]), 1.0) == [0.0, 10.0, 1e3, 1e5, 1e7]  # 7 decades: every other, one side


def test_batched_eigen_problems_equal_the_exact_hessian_and_the_one_point_path(mlp_and_data):
    """K points' Lanczos runs in lockstep on vmap-batched HVPs (landscape.hessian.batched) follow each run's own
    steps: the same eigenvalues as one point at a time, and as the exact Hessian."""
    from landscape.directions import Directions, make_directions
    from landscape.evaluate import PlaneEvaluator
    from landscape.hessian.maps import CurvatureMap

    net, x, y = mlp_and_data
    xd, yd = make_directions(net, seed=5)
    dirs = Directions.of(net, xd, yd, "weights", "random")
    ev = PlaneEvaluator(net, landscape.Data(x, y, "t", "train", 3), dirs)
    coords = [(-1.0, 0.5), (0.0, 0.0), (0.7, -0.3), (1.0, 1.0), (0.2, 0.9)]
    _, _, one = CurvatureMap(ev, seed=2).evaluate(coords)
    _, _, many = CurvatureMap(ev, seed=2, points=3).evaluate(coords)  # blocks of 3 and 2
    for k, (a, b) in enumerate(coords):
        shift = [dx * a + dy * b for dx, dy in zip(xd, yd)]
        hi, lo = _exact_extremes(net, x, y, shift)
        assert many["max_eig"][k] == pytest.approx(hi, rel=1e-4)
        assert many["min_eig"][k] == pytest.approx(lo, rel=1e-4, abs=1e-6)
        assert many["max_eig"][k] == pytest.approx(one["max_eig"][k], rel=1e-5)
        assert many["min_eig"][k] == pytest.approx(one["min_eig"][k], rel=1e-5, abs=1e-7)


def test_batched_hvp_with_batchnorm_equals_one_point_hvps():
    from landscape.hessian.batched import StackedHessians
    from landscape.hessian.hvp import HessianOperator

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 1.5)
    net.eval()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 1, 6, 6, generator=g), torch.randint(0, 4, (24,), generator=g)
    names = [n for n, p in net.named_parameters() if p.dim() > 1]
    shifts = [{n: 0.1 * torch.randn(p.shape, generator=g) for n, p in net.named_parameters() if n in names}
              for _ in range(3)]
    stacked = StackedHessians(net, x, y, batch_size=10)
    live = dict(net.named_parameters())
    stacked.set_points({n: torch.stack([live[n].detach() + s[n] for s in shifts]) for n in names})
    V = torch.randn(3, stacked.dim, generator=g)
    W = stacked.matvec(V)
    for k, s in enumerate(shifts):
        m = __import__("copy").deepcopy(net)
        with torch.no_grad():
            for n, p in m.named_parameters():
                if n in s:
                    p.add_(s[n])
        ref = HessianOperator(m, x, y, batch_size=10).matvec(V[k])
        torch.testing.assert_close(W[k], ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(stacked.matvec(V[[2, 0]], which=[2, 0]), W[[2, 0]], rtol=1e-5, atol=1e-7)
