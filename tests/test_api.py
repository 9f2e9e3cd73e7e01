"""The front door: any nn.Module, any data (tensors, Dataset, DataLoader), any loss, from Python."""

import copy
import dataclasses

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.datasource import resolve_data
from landscape.directions import make_directions
from landscape.errors import LandscapeError
from landscape.evaluate import PlaneEvaluator
from landscape.settings import Config, setting
from landscape.surface import read_direction, read_surface


class SmallCNN(nn.Module):
    """A user's network, not in the registry."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 4 * 4, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(x.flatten(1))


class CountingDataset(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y, self.reads = x, y, 0

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.reads += 1
        return self.x[i], self.y[i]


@pytest.fixture
def net():
    torch.manual_seed(0)
    m = SmallCNN()
    with torch.no_grad():  # non-trivial BN statistics, so eval mode matters
        m.bn.running_mean.uniform_(-0.2, 0.2)
        m.bn.running_var.uniform_(0.5, 1.5)
    return m.train()  # a notebook's model may well be in training mode


@pytest.fixture(scope="module")
def tensors(digits_small):
    return digits_small.x[:120].clone(), digits_small.y[:120].clone()


GRID = dict(x="-1:1:3", y="-1:1:3", render=False, progress=False)


def _by_hand(model, path, x, y, loss_fn, points=((1, 2), (0, 0), (2, 1))):
    """Loss at grid points, recomputed from the file's directions on a fresh copy of the model."""
    with h5py.File(path, "r") as f:
        dx, _ = read_direction(f, "xdirection")
        dy, _ = read_direction(f, "ydirection")
        xs, ys = f["xcoordinates"][()], f["ycoordinates"][()]
    out = {}
    for i, j in points:
        m = copy.deepcopy(model).eval()
        with torch.no_grad():
            for p, a_, b_ in zip(m.parameters(), dx, dy):
                p.add_(torch.from_numpy(a_) * float(xs[j]) + torch.from_numpy(b_) * float(ys[i]))
            out[(i, j)] = float(loss_fn(m(x), y))
    return out


@pytest.mark.parametrize("kind", ["tensors", "dataset", "dataloader"])
def test_a_users_cnn_on_tensors_dataset_and_dataloader(tmp_path, net, tensors, kind):
    x, y = tensors
    before = copy.deepcopy(net.state_dict())
    ds = CountingDataset(x, y)
    data = {"tensors": (x, y), "dataset": ds,
            "dataloader": torch.utils.data.DataLoader(ds, batch_size=32, shuffle=False)}[kind]
    res = landscape.compute(net, data=data, out=str(tmp_path), name=kind, **GRID)
    s = read_surface(res.path)
    for (i, j), want in _by_hand(net, res.path, x, y, F.cross_entropy).items():
        assert s.values["train_loss"][i, j] == pytest.approx(want, rel=1e-6)
    assert s.attrs["arch"] == "SmallCNN" and s.attrs["n_samples"] == 120 and s.attrs["loss"] == "cross_entropy"
    if kind != "tensors":
        assert ds.reads == 120  # read once, not once per point
    # the caller's model is exactly as it came in: weights, BN buffers, mode, device, layout
    assert net.training and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert all(p.device.type == "cpu" and p.is_contiguous() for p in net.parameters())


def test_the_three_data_kinds_give_the_same_surface(tmp_path, net, tensors):
    x, y = tensors
    a = landscape.compute(net, data=(x, y), out=str(tmp_path), name="a", **GRID)
    b = landscape.compute(net, data=torch.utils.data.TensorDataset(x, y), out=str(tmp_path), name="b", **GRID)
    np.testing.assert_allclose(read_surface(a.path).values["train_loss"], read_surface(b.path).values["train_loss"],
                               rtol=1e-6)


def test_mse_is_the_references_softmax_against_one_hot(tmp_path, net, tensors):
    x, y = tensors
    res = landscape.compute(net, data=(x, y), loss="mse", out=str(tmp_path), **GRID)
    s = read_surface(res.path)

    def ref_mse(out, t):  # the reference: nn.MSELoss()(F.softmax(outputs), one_hot_targets)
        return nn.MSELoss()(F.softmax(out, dim=1), F.one_hot(t, 10).float())

    for (i, j), want in _by_hand(net, res.path, x, y, ref_mse).items():
        assert s.values["train_loss"][i, j] == pytest.approx(want, rel=1e-6)
    assert s.attrs["loss"] == "mse" and "train_acc" in s.values


def huber_per_sample(out, target):
    return F.cross_entropy(out, target, reduction="none") * 0.5 + out.pow(2).mean(1) * 0.01


def test_a_callable_loss_matches_by_hand_and_is_recorded_by_name(tmp_path, net, tensors):
    x, y = tensors
    res = landscape.compute(net, data=(x, y), loss=huber_per_sample, out=str(tmp_path), **GRID)
    s = read_surface(res.path)
    for (i, j), want in _by_hand(net, res.path, x, y, lambda o, t: huber_per_sample(o, t).mean()).items():
        assert s.values["train_loss"][i, j] == pytest.approx(want, rel=1e-6)
    assert s.attrs["loss"] == "test_api.huber_per_sample"
    # a callable returning the batch mean gives the same surface
    res2 = landscape.compute(net, data=(x, y), loss=lambda o, t: huber_per_sample(o, t).mean(),
                             out=str(tmp_path), name="mean", **GRID)
    np.testing.assert_allclose(read_surface(res2.path).values["train_loss"], s.values["train_loss"], rtol=1e-6)
    # resuming with another loss is an error, not a silent mix
    with pytest.raises(LandscapeError, match="loss: file has 'test_api.huber_per_sample', this run 'nll'"):
        landscape.compute(net, data=(x, y), loss="nll", out=str(tmp_path), **GRID)


def test_nll_on_log_probabilities(tmp_path, tensors):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.LogSoftmax(dim=1))
    x, y = tensors
    res = landscape.compute(net, data=(x, y), loss="nll", out=str(tmp_path), **GRID)
    s = read_surface(res.path)
    for (i, j), want in _by_hand(net, res.path, x, y, F.nll_loss).items():
        assert s.values["train_loss"][i, j] == pytest.approx(want, rel=1e-6)


def test_a_regression_model_has_no_accuracy(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0], [3.0]]) + 0.1 * torch.randn(200, 1, generator=g)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1))
    res = landscape.compute(net, data=(x, y), loss="mse", out=str(tmp_path), render=True, progress=False,
                            x="-1:1:3", y="-1:1:3", formats="png")
    s = read_surface(res.path)
    assert "train_acc" not in s.values and res.summary["centre_acc"] is None
    want = _by_hand(net, res.path, x, y, F.mse_loss)
    for (i, j), v in want.items():
        assert s.values["train_loss"][i, j] == pytest.approx(v, rel=1e-6)
    assert res.figures  # drawn without accuracy


def test_streamed_data_gives_the_resident_numbers(net, tensors):
    x, y = tensors
    resident = resolve_data((x, y))
    streamed = resolve_data((x, y), budget_bytes=1000)  # far less than the data: kept on the host, streamed
    assert streamed.streamed and not resident.streamed
    xdir, ydir = make_directions(net, seed=4)
    coords = [(0.2, -0.4), (0.0, 0.0), (-1.0, 0.6)]
    for k in (1, 3):
        a = PlaneEvaluator(net, resident, xdir, ydir, batch_size=32, points_per_step=k).evaluate(coords)
        b = PlaneEvaluator(net, streamed, xdir, ydir, batch_size=32, points_per_step=k).evaluate(coords)
        assert a == b


def test_data_larger_than_host_memory_is_a_one_line_error(monkeypatch, tensors):
    import landscape.datasource as dsrc

    monkeypatch.setattr(dsrc, "_available_host_bytes", lambda: 1000)
    with pytest.raises(LandscapeError, match=r"samples=N \(--samples N\)"):
        resolve_data(torch.utils.data.TensorDataset(*tensors))


def test_bad_data_and_options_are_one_line_errors(tmp_path, net, tensors):
    with pytest.raises(LandscapeError, match="unknown setting"):
        landscape.compute(net, data=tensors, loss_fn="mse")
    with pytest.raises(LandscapeError, match="unsupported data"):
        landscape.compute(net, data=42, out=str(tmp_path), **GRID)
    with pytest.raises(LandscapeError, match="the model fails on the data"):
        landscape.compute(net, data=(torch.randn(10, 3, 9, 9), torch.zeros(10, dtype=torch.long)),
                          out=str(tmp_path), **GRID)
    with pytest.raises(LandscapeError, match="unknown loss"):
        landscape.compute(net, data=tensors, loss="hinge", out=str(tmp_path), **GRID)


@dataclasses.dataclass
class ConfigWithTemperature(Config):
    """A new setting, declared once: it must reach the file, the resume check and the page."""

    temperature: float = setting(1.0, "softmax temperature", attr="temperature", identity=True, shown=True)


def test_a_setting_declared_once_reaches_the_file_the_resume_check_and_the_page(tmp_path, net, tensors):
    from landscape.render.html import _settings_html

    cfg = ConfigWithTemperature(temperature=2.5, out=str(tmp_path), **GRID)
    res = landscape.compute(net, data=tensors, config=cfg)
    s = read_surface(res.path)
    assert s.attrs["temperature"] == 2.5
    assert "<b>temperature</b> 2.5" in _settings_html(s)
    with pytest.raises(LandscapeError, match="temperature: file has 2.5, this run 3.0"):
        landscape.compute(net, data=tensors, config=cfg.replace(temperature=3.0))
    assert landscape.compute(net, data=tensors, config=cfg).computed == 0  # same value: resumes (nothing left)


def test_hessian_directions_are_the_top_eigenvectors(tmp_path, tensors):
    """--directions hessian: x and y are the Hessian's top two eigenvectors (unit with --norm none), recorded with
    their eigenvalues; the curve along x curves the loss by lambda_max at theta*."""
    torch.manual_seed(2)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.Tanh(), nn.Linear(12, 10))
    x, y = tensors
    res = landscape.compute(net, data=(x, y), directions="hessian", norm="none", x="-0.02:0.02:3",
                            y="-0.02:0.02:3", out=str(tmp_path), render=False, progress=False)
    s = read_surface(res.path)
    lam = [float(v) for v in s.attrs["direction_eigenvalues"]]
    assert s.attrs["directions"] == "hessian" and lam[0] >= lam[1] > 0
    # the exact Hessian of the mean loss over the weight matrices (dim > 1), by autograd
    ws = [p for p in net.parameters() if p.dim() > 1]
    flat = torch.cat([w.detach().reshape(-1) for w in ws]).double()

    def loss_of(v):
        parts, o = [], 0
        for w in ws:
            parts.append(v[o:o + w.numel()].view(w.shape))
            o += w.numel()
        h = torch.tanh(x.flatten(1).double() @ parts[0].T + net[1].bias.double())
        return F.cross_entropy(h @ parts[1].T + net[3].bias.double(), y)

    H = torch.autograd.functional.hessian(loss_of, flat)
    ev = torch.linalg.eigvalsh(H).flip(0)
    assert lam == pytest.approx(ev[:2].tolist(), rel=1e-4)
    with h5py.File(res.path, "r") as f:
        d = torch.cat([torch.from_numpy(a).reshape(-1) for a, p in zip(read_direction(f, "xdirection")[0],
                                                                       net.parameters()) if p.dim() > 1]).double()
    assert float(d @ H @ d) == pytest.approx(lam[0], rel=1e-4) and float(d.norm()) == pytest.approx(1, rel=1e-5)
    # a second call resumes from the file's directions (no second eigen-solve, same settings)
    assert landscape.compute(net, data=(x, y), directions="hessian", norm="none", x="-0.02:0.02:3",
                             y="-0.02:0.02:3", out=str(tmp_path), render=False, progress=False).computed == 0


def test_train_and_test_tensors_in_one_file(tmp_path, net, tensors):
    """data={'train': ..., 'test': ...} from a notebook: both evaluated at every point with the same weights, the
    test values equal to the loss by hand on the test tensors, the file saying split train,test."""
    x, y = tensors
    res = landscape.compute(net, data={"test": (x[80:], y[80:]), "train": (x[:80], y[:80])}, out=str(tmp_path),
                            **GRID)
    s = read_surface(res.path)
    assert s.attrs["split"] == "train,test" and s.attrs["n_samples"] == 80 and s.attrs["test_n_samples"] == 40
    for key, (xs, ys) in (("train_loss", (x[:80], y[:80])), ("test_loss", (x[80:], y[80:]))):
        for (i, j), v in _by_hand(net, res.path, xs, ys, F.cross_entropy).items():
            assert s.values[key][i, j] == pytest.approx(v, rel=1e-5)
    assert s.done["test"].all() and s.values["test_acc"].shape == (3, 3)
    only_test = landscape.compute(net, data={"test": (x[80:], y[80:])}, out=str(tmp_path), name="t", **GRID)
    assert read_surface(only_test.path).attrs["split"] == "test"
    with pytest.raises(LandscapeError, match=r"keys 'train' and/or 'test'; got \['train', 'val'\]"):
        landscape.compute(net, data={"train": (x, y), "val": (x, y)}, out=str(tmp_path), **GRID)
    with pytest.raises(LandscapeError, match="split='train' but the data is given for 'train,test'"):
        landscape.compute(net, data={"train": (x, y), "test": (x, y)}, split="train", out=str(tmp_path), **GRID)
    with pytest.raises(LandscapeError, match=r"or data=\{'train': \.\.\., 'test': \.\.\.\}"):
        landscape.compute(net, data=(x, y), split="train,test", out=str(tmp_path), **GRID)
