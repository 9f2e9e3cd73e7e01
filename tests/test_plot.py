import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from landscape.errors import LandscapeError
from landscape.evaluate import loss_and_accuracy
from landscape.job import compute_landscape
from landscape.data import load_data
from landscape.plot import main

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def test_cli_2d_end_to_end(tmp_path, ckpt, model, capsys):
    out = tmp_path / "out"
    rc = main(["--ckpt", ckpt, "--x", "-1:1:5", "--y", "-1:1:3", "--samples", "100", "--out", str(out), "--quiet",
               "--formats", "png,html"])
    assert rc == 0
    text = capsys.readouterr().out
    names = sorted(os.listdir(out))
    assert names == ["r20.h5", "r20.html", "r20_contour.png", "r20_contourf.png", "r20_heatmap.png",
                     "r20_surface3d.png"]
    # the engine evaluates in channels_last (faster on CPU and GPU); the same layout gives the same bits
    centre_loss, centre_acc = loss_and_accuracy(model.to(memory_format=torch.channels_last),
                                                load_data("digits", samples=100))
    with h5py.File(out / "r20.h5") as f:
        assert f["train_loss"].shape == (3, 5) and f["train_done"][()].all()
        assert f["train_loss"][1, 2] == centre_loss and f["train_acc"][1, 2] == centre_acc
        assert f.attrs["arch"] == "resnet20" and f.attrs["n_samples"] == 100 and f.attrs["norm"] == "filter"
    assert f"loss {centre_loss:.6g}" in text and "figures:" in text
    assert "computed 15 in " in text and " points/s; batch 512, 1 point per step)" in text


def test_cli_1d(tmp_path, ckpt):
    out = tmp_path / "o"
    assert main(["--ckpt", ckpt, "--1d", "--x", "-0.5:0.5:4", "--samples", "50", "--out", str(out), "--quiet"]) == 0
    assert sorted(os.listdir(out)) == ["r20_1d.h5", "r20_1d.html", "r20_1d_curve.png"]
    with h5py.File(out / "r20_1d.h5") as f:
        assert f["train_loss"].shape == (4,) and "ycoordinates" not in f and "ydirection" not in f


def test_cli_fold_bn_gives_the_same_surface(tmp_path, ckpt):
    args = ["--ckpt", ckpt, "--x", "-1:1:3", "--y", "-1:1:3", "--samples", "60", "--quiet", "--no-render"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--fold-bn"]) == 0
    with h5py.File(tmp_path / "a" / "r20.h5") as fa, h5py.File(tmp_path / "b" / "r20.h5") as fb:
        la, lb = fa["train_loss"][()], fb["train_loss"][()]
        np.testing.assert_allclose(lb, la, rtol=1e-5)
        np.testing.assert_array_equal(fb["train_acc"][()], fa["train_acc"][()])
        assert np.unique(la).size == 9


def test_same_directions_give_the_same_surface(tmp_path, ckpt):
    """Directions imported from a file (e.g. the reference's) reproduce the surface made with them."""
    a = compute_landscape(ckpt, x="-1:1:3", y="-1:1:3", samples=60, out=str(tmp_path), name="a", progress=False)
    ref = tmp_path / "dirs.h5"
    with h5py.File(a.path) as f, h5py.File(ref, "w") as g:
        for grp in ("xdirection", "ydirection"):
            gg = g.create_group(grp)
            for k in f[grp]:
                gg[k] = f[grp][k][()]
    b = compute_landscape(ckpt, x="-1:1:3", y="-1:1:3", samples=60, out=str(tmp_path), name="b",
                          directions=str(ref), progress=False)
    with h5py.File(a.path) as fa, h5py.File(b.path) as fb:
        np.testing.assert_array_equal(fa["train_loss"][()], fb["train_loss"][()])


def test_target_direction_interpolates_between_checkpoints(tmp_path, ckpt, model):
    from conftest import make_model
    from landscape.checkpoints import save_checkpoint

    other = make_model(seed=5)
    c2 = str(tmp_path / "other.pt")
    save_checkpoint(c2, other, "resnet20")
    # by default toward a model the BN running statistics move too (states), so alpha = 1 is exactly the other
    # model (as in Li et al. Fig. 3 and the reference's own interpolation example)
    r = compute_landscape(ckpt, ckpt2=c2, x="0:1:2", samples=80, out=str(tmp_path), progress=False)
    with h5py.File(r.path) as f:
        loss, dir_type = f["train_loss"][()], f.attrs["dir_type"]
    data = load_data("digits", samples=80)
    assert dir_type == "states"
    assert loss[0] == loss_and_accuracy(model.to(memory_format=torch.channels_last), data)[0]
    assert loss[1] == pytest.approx(loss_and_accuracy(other, data)[0], rel=1e-5)
    # moving the parameters alone leaves theta*'s BN statistics: alpha = 1 is then another network
    r = compute_landscape(ckpt, ckpt2=c2, x="0:1:2", samples=80, out=str(tmp_path), name="w", dir_type="weights",
                          progress=False)
    with h5py.File(r.path) as f:
        assert abs(f["train_loss"][1] - loss[1]) > 1e-3


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "landscape.plot", *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT))


@pytest.mark.parametrize("args,needle", [
    (["--x", "1:-1:5"], "MIN must be below MAX"),
    (["--x", "a:b:c"], "MIN and MAX must be numbers"),
    (["--y", "-1:1"], "expected 3 fields"),
    (["--formats", "png,gif"], "unknown format"),
    (["--arch", "resnet57"], "unknown architecture"),
    (["--data", "cifar10:/nonexistent"], "CIFAR-10 directory not found"),
])
def test_bad_input_is_one_line_exit_2(ckpt, args, needle):
    r = _cli("--ckpt", ckpt, "--samples", "10", "--no-render", *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr


def test_missing_checkpoint(tmp_path):
    r = _cli("--ckpt", str(tmp_path / "nope.pt"))
    assert r.returncode == 2 and "checkpoint not found" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_split_train_and_test_in_one_file(tmp_path, ckpt):
    """--split train,test: both splits at every point with the same weights, in one file; they equal two separate
    runs, a resume recomputes only what is missing in both, and the 1D figure shows both."""
    common = ["--ckpt", ckpt, "--samples", "40", "--1d", "--x", "-1:1:5", "--quiet"]
    both, alone = tmp_path / "both", tmp_path / "alone"
    assert main(common + ["--split", "train,test", "--out", str(both)]) == 0
    for split in ("train", "test"):
        assert main(common + ["--split", split, "--no-render", "--out", str(alone / split)]) == 0
    h5 = both / "r20_1d.h5"
    with h5py.File(h5) as f:
        assert f.attrs["split"] == "train,test" and f.attrs["test_n_samples"] == 40
        got = {k: f[k][()] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
        assert f["train_done"][()].all() and f["test_done"][()].all()
    for split in ("train", "test"):
        with h5py.File(alone / split / "r20_1d.h5") as f:
            np.testing.assert_array_equal(got[f"{split}_loss"], f[f"{split}_loss"][()])
            np.testing.assert_array_equal(got[f"{split}_acc"], f[f"{split}_acc"][()])
    assert not np.array_equal(got["train_loss"], got["test_loss"])
    # a run killed after some points: undone points are NaN in both splits and done flags false
    with h5py.File(h5, "r+") as f:
        for split in ("train", "test"):
            f[f"{split}_loss"][1:4] = np.nan
            f[f"{split}_done"][1:4] = False
    assert main(common + ["--split", "train,test", "--out", str(both), "--no-render"]) == 0
    with h5py.File(h5) as f:
        for k, v in got.items():
            np.testing.assert_array_equal(f[k][()], v)
    with pytest.raises(LandscapeError, match="cannot resume"):
        main(common + ["--split", "train", "--out", str(both), "--no-render"])
    from landscape.render.html import figure_data

    names = [t.get("name") for t in figure_data(str(both / "r20_1d.html"))]
    assert {"train loss", "test loss", "train accuracy", "test accuracy"} <= set(names)
