"""--model from the CLI: torchvision and user factories from a saved state_dict, detection without --model, and
one-line errors (exit 2, nothing written) for every new failure."""

import subprocess
import sys

import h5py
import pytest
import torch
import torchvision

from landscape.plot import main as plot_main


def _run(tmp_path, ckpt, *extra):
    out = tmp_path / "out"
    assert plot_main(["--ckpt", str(ckpt), "--data", "synthetic:4", "--1d", "--x", "-1:1:3", "--quiet",
                      "--no-render", "--out", str(out), *extra]) == 0
    (h5,) = out.glob("*.h5")
    with h5py.File(h5) as f:
        return f["train_loss"][()], dict(f.attrs)


def _centre_loss(net, n=4):
    from landscape.data import load_data

    d = load_data("synthetic:4", in_channels=3)
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(net.eval()(d.x[:n]), d.y[:n]))


@pytest.mark.parametrize("name", ["resnet18", "vgg11_bn"])
def test_torchvision_model_from_a_state_dict(tmp_path, name):
    torch.manual_seed(0)
    net = torchvision.models.get_model(name, num_classes=10).eval()
    p = tmp_path / f"{name}.pth"
    torch.save(net.state_dict(), p)
    loss, attrs = _run(tmp_path, p, "--model", f"torchvision:{name}")
    assert attrs["arch"] == f"torchvision:{name}"
    assert loss[1] == pytest.approx(_centre_loss(net), rel=1e-5)
    assert loss[0] != loss[1]


def test_torchvision_resnet18_is_detected_without_model(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    p = tmp_path / "r18.pth"
    torch.save(net.state_dict(), p)
    loss, attrs = _run(tmp_path, p)
    assert attrs["arch"] == "resnet18" and loss[1] == pytest.approx(_centre_loss(net), rel=1e-5)


def test_user_factory_file(tmp_path):
    f = tmp_path / "my_factory.py"
    f.write_text("import torch.nn as nn\n\n"
                 "def build(num_classes=10):\n"
                 "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),\n"
                 "                         nn.Flatten(), nn.Linear(8, num_classes))\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import my_factory

        torch.manual_seed(1)
        net = my_factory.build().eval()
    finally:
        sys.path.remove(str(tmp_path))
    p = tmp_path / "mine.pt"
    torch.save({"model_state_dict": net.state_dict()}, p)
    loss, attrs = _run(tmp_path, p, "--model", f"{f}:build")
    assert attrs["arch"] == f"{f}:build" and loss[1] == pytest.approx(_centre_loss(net), rel=1e-5)


@pytest.mark.parametrize("args,needle", [
    (["--model", "torchvision:resnet19"], "unknown torchvision model 'resnet19'; did you mean resnet18"),
    (["--model", "torchvision:vgg11"], "does not match architecture 'torchvision:vgg11'"),
    (["--model", "nope_module_xyz:build"], "cannot import 'nope_module_xyz'"),
    (["--arch", "VGGish"], "did you mean vgg9"),
])
def test_model_errors_are_one_line_exit_2_and_write_nothing(tmp_path, args, needle):
    net = torchvision.models.resnet18(num_classes=10)
    p = tmp_path / "r18.pth"
    torch.save(net.state_dict(), p)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "landscape.plot", "--ckpt", str(p), "--data", "synthetic:4", "--1d",
                        "--out", str(out), *args], capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr
    assert not out.exists() or not any(out.iterdir())
