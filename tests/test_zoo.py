"""The reference implementation's zoo from its own checkpoint layout, and --normalization reference reproducing
its evaluation loop on CIFAR-format data."""

import copy
import pickle
from collections import OrderedDict

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import make_model
from landscape.plot import main as plot_main


def _reference_checkpoint(tmp_path, net, name):
    """What the reference's main.py saves: {'acc', 'epoch', 'state_dict'}, old torch.save, no num_batches_tracked."""
    sd = OrderedDict((k, v) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked"))
    p = tmp_path / f"{name}_model_300.t7"
    torch.save({"acc": 90.0, "epoch": 300, "state_dict": sd}, p, _use_new_zipfile_serialization=False)
    return p


@pytest.mark.parametrize("arch", ["vgg9", "densenet121", "wrn56_2", "wrn56_4_noshort"])
def test_zoo_checkpoints_load_and_their_centre_is_the_model(tmp_path, arch):
    net = make_model(arch, in_channels=3)
    p = _reference_checkpoint(tmp_path, net, arch)
    out = tmp_path / "out"
    assert plot_main(["--ckpt", str(p), "--arch", arch, "--data", "synthetic:2", "--1d", "--x", "0:0:1", "--quiet",
                      "--no-render", "--out", str(out)]) == 0
    from landscape.data import load_data

    d = load_data("synthetic:2", in_channels=3)
    with torch.no_grad():
        expect = float(F.cross_entropy(net.eval()(d.x), d.y))
    with h5py.File(next(out.glob("*.h5"))) as f:
        assert f["train_loss"][0] == pytest.approx(expect, rel=1e-5)
        assert f.attrs["arch"] == arch


def _write_cifar(folder, n=8):
    folder.mkdir(parents=True)
    rng = np.random.RandomState(5)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.randint(0, 256, size=(n, 3072), dtype=np.uint8),
             b"labels": rng.randint(0, 10, size=n).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)


def _reference_loader(folder, batch_size=16):
    """The reference's loader: torchvision's CIFAR10 reading (latin1 pickles, HWC PIL images) with
    ToTensor + Normalize(its constants), a DataLoader without shuffling."""
    from PIL import Image
    from torchvision import transforms

    tf = transforms.Compose([transforms.ToTensor(),
                             transforms.Normalize(mean=[x / 255.0 for x in [125.3, 123.0, 113.9]],
                                                  std=[x / 255.0 for x in [63.0, 62.1, 66.7]])])
    xs, ys = [], []
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}  # py2 str keys
        data = entry["data"].reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))
        xs += [tf(Image.fromarray(img)) for img in data]
        ys += entry["labels"]
    ds = torch.utils.data.TensorDataset(torch.stack(xs), torch.tensor(ys))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False)


def _reference_eval(net, w, dx, dy, a, b, loader):
    """net_plotter.set_weights (p = w + a*dx + b*dy) then evaluation.eval_loss (sum of batch mean * batch size)."""
    with torch.no_grad():
        for p, w0, d0, d1 in zip(net.parameters(), w, dx, dy):
            p.data = w0 + torch.as_tensor(d0 * a + d1 * b).type(w0.dtype)
    net.eval()
    total, total_loss, correct = 0, 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            out = net(x)
            total += x.size(0)
            total_loss += F.cross_entropy(out, y).item() * x.size(0)
            correct += out.max(1)[1].eq(y).sum().item()
    return total_loss / total, 100.0 * correct / total


def test_reference_normalization_reproduces_the_reference_loop(tmp_path):
    net = make_model("resnet20", in_channels=3)
    ckpt = _reference_checkpoint(tmp_path, net, "resnet20")
    _write_cifar(tmp_path / "cifar-10-batches-py")
    out = tmp_path / "out"
    common = ["--ckpt", str(ckpt), "--arch", "resnet20", "--data", f"cifar10:{tmp_path}", "--x", "-1:1:3",
              "--y", "-1:1:3", "--quiet", "--no-render", "--out", str(out)]
    assert plot_main(common + ["--normalization", "reference"]) == 0
    with h5py.File(out / f"{ckpt.stem}.h5") as f:
        loss, acc = f["train_loss"][()], f["train_acc"][()]
        xs, ys = f["xcoordinates"][()], f["ycoordinates"][()]
        dx = [f["xdirection"][str(i)][()] for i in range(len(f["xdirection"]))]
        dy = [f["ydirection"][str(i)][()] for i in range(len(f["ydirection"]))]
        assert f.attrs["normalization"] == "reference"
        assert f.attrs["input_normalization"] == "0.491373,0.482353,0.446667/0.247059,0.243529,0.261569"
    loader = _reference_loader(tmp_path / "cifar-10-batches-py")
    ref_net = copy.deepcopy(net)
    w = [p.detach().clone() for p in ref_net.parameters()]
    for i, b in enumerate(ys):
        for j, a in enumerate(xs):
            ref_loss, ref_acc = _reference_eval(ref_net, w, dx, dy, a, b, loader)
            assert loss[i, j] == pytest.approx(ref_loss, rel=1e-6)
            assert acc[i, j] == pytest.approx(ref_acc, abs=1e-9)
    # today's CIFAR-10 constants give other inputs, hence other values: the choice matters
    out2 = tmp_path / "out2"
    assert plot_main([a if a != str(out) else str(out2) for a in common]) == 0
    with h5py.File(out2 / f"{ckpt.stem}.h5") as f:
        assert f.attrs["normalization"] == "default" and not np.allclose(f["train_loss"][()], loss, rtol=1e-7)
