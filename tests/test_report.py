import os

import h5py
import numpy as np
import pytest
import torch

from conftest import make_model
from landscape.data import load_data
from landscape.plot import main as plot_main
from landscape.report import layer_responses, main
from landscape.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    train("resnet20", "digits", epochs=4, save_every=1, out=str(d), progress=False, device="cpu")
    return d


def test_trajectory_surface_stores_and_draws_the_path(run_dir, tmp_path):
    out = tmp_path / "p"
    assert plot_main(["--ckpt", str(run_dir / "final.pt"), "--trajectory", str(run_dir), "--x", "-8:8:5",
                      "--y", "-8:8:4", "--samples", "100", "--quiet", "--out", str(out)]) == 0
    with h5py.File(out / "final.h5") as f:
        t = f["trajectory"]
        assert list(t["epochs"][()]) == [0, 1, 2, 3, 4]
        assert abs(t["x"][-1]) < 1e-9 and abs(t["y"][-1]) < 1e-9  # epoch 4 is the final model: the origin
        assert f.attrs["directions"] == f"pca:{run_dir.name}"
        r = t.attrs["explained_variance_ratio"]
        assert 0 < r[1] <= r[0] < 1
    from landscape.render.html import figure_data

    traces = figure_data(str(out / "final.html"))
    path = next(tr for tr in traces if tr.get("name") == "trajectory")
    assert len(path["x"]) == 5


def test_trajectory_default_grid_covers_the_path(run_dir, tmp_path):
    out = tmp_path / "q"
    assert plot_main(["--ckpt", str(run_dir / "final.pt"), "--trajectory", str(run_dir), "--samples", "50",
                      "--quiet", "--no-render", "--out", str(out)]) == 0
    with h5py.File(out / "final.h5") as f:
        x, y, t = f["xcoordinates"][()], f["ycoordinates"][()], f["trajectory"]
        assert len(x) == 21 and x.min() < t["x"][()].min() and x.max() > 0
        assert y.min() < t["y"][()].min() and y.max() > t["y"][()].max()


def test_degradation_report(run_dir, tmp_path, capsys):
    assert main(["degradation", str(run_dir), str(run_dir / "final.pt"), "--out", str(tmp_path),
                 "--formats", "png"]) == 0
    text = capsys.readouterr().out
    assert "resnet20: final training error" in text and "resnet20'" in text
    from PIL import Image

    im = np.asarray(Image.open(tmp_path / "report_degradation.png").convert("RGB"))
    assert im.shape[1] > 500 and len(np.unique(im.reshape(-1, 3), axis=0)) > 50


def test_layer_responses_are_the_bn_outputs_std():
    m = make_model("resnet20")
    x = load_data("digits", samples=64).x
    stds = layer_responses(m, x, batch_size=25)
    assert len(stds) == 19  # the stem and 2 convolutions in each of 9 blocks
    with torch.no_grad():
        out = m.bn1(m.conv1(x))
        first = float(out.double().std(unbiased=False))
        h = torch.relu(out)
        blk = m.layer1[0]
        second = float(blk.bn1(blk.conv1(h)).double().std(unbiased=False))
    assert stds[0] == pytest.approx(first, rel=1e-6) and stds[1] == pytest.approx(second, rel=1e-6)


def test_responses_report_cli(run_dir, tmp_path):
    assert main(["responses", str(run_dir), "--samples", "50", "--out", str(tmp_path), "--formats", "png"]) == 0
    assert os.path.getsize(tmp_path / "report_responses.png") > 10_000
