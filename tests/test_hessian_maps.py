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
