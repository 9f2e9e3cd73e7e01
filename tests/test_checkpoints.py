import os
import re
from collections import OrderedDict

import pytest
import torch
import torchvision

from conftest import make_model
from fakes import failing_temp
from landscape.checkpoints import load_checkpoint, save_checkpoint
from landscape.errors import LandscapeError


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model", "model_state_dict", "net"])
@pytest.mark.parametrize("zipfmt", [True, False])
@pytest.mark.parametrize("prefix", ["", "module.", "_orig_mod."])
def test_formats_round_trip(tmp_path, wrap, zipfmt, prefix):
    m = make_model()
    sd = OrderedDict((prefix + k, v) for k, v in m.state_dict().items())
    obj = sd if wrap == "bare" else {wrap: sd, "epoch": 7}
    p = tmp_path / "c.pt"
    torch.save(obj, p, _use_new_zipfile_serialization=zipfmt)
    loaded, info = load_checkpoint(str(p), arch="resnet20")
    assert _same(loaded, m)
    assert info["arch"] == "resnet20" and info["in_channels"] == 1 and info["num_classes"] == 10
    assert not loaded.training
    if wrap != "bare":
        assert info["epoch"] == 7


@pytest.mark.parametrize("arch", ["resnet56", "resnet56_noshort"])
def test_reference_legacy_checkpoint(tmp_path, arch):
    """The reference saves {'acc', 'epoch', 'state_dict'} with an old, non-zip torch.save and no
    num_batches_tracked; it must load with --arch resnet56 / resnet56_noshort."""
    m = make_model(arch, in_channels=3)
    sd = OrderedDict((k, v) for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked"))
    p = tmp_path / "model_300.t7"
    torch.save({"acc": 93.1, "epoch": 300, "state_dict": sd}, p, _use_new_zipfile_serialization=False)
    with open(p, "rb") as f:
        assert f.read(2) != b"PK"  # really the legacy (non-zip) container
    loaded, info = load_checkpoint(str(p), arch=arch)
    assert info["acc"] == 93.1 and info["epoch"] == 300
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))


def test_our_format_needs_no_arch(tmp_path):
    m = make_model("plain20")
    p = str(tmp_path / "ours.pt")
    save_checkpoint(p, m, "resnet20_noshort", dataset="digits", acc=50.0)
    loaded, info = load_checkpoint(p)
    assert info["arch"] == "plain20" and info["dataset"] == "digits" and _same(loaded, m)
    assert len(info["sha256"]) == 64


def test_whole_pickled_model_refused_unless_trusted(tmp_path):
    m = make_model()
    p = str(tmp_path / "whole.pt")
    torch.save(m, p)
    with pytest.raises(LandscapeError, match="--trust-checkpoint") as e:
        load_checkpoint(p, arch="resnet20")
    assert "CifarResNet" in str(e.value)
    loaded, _ = load_checkpoint(p, arch="resnet20", trust=True)
    assert _same(loaded, m)


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_code_execution_payload_is_not_run(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    torch.save({"state_dict": make_model().state_dict(), "x": _Payload(str(marker))}, p)
    assert not marker.exists()
    with pytest.raises(LandscapeError, match="refused"):
        load_checkpoint(str(p), arch="resnet20")
    assert not marker.exists()


def test_mismatch_lists_keys(tmp_path):
    p = str(tmp_path / "r.pt")
    save_checkpoint(p, make_model("resnet20"), "resnet20")
    with pytest.raises(LandscapeError) as e:
        load_checkpoint(p, arch="plain20")
    assert "unexpected keys (12)" in str(e.value) and "layer2.0.shortcut.0.weight" in str(e.value)
    with pytest.raises(LandscapeError, match="missing keys"):
        load_checkpoint(p, arch="resnet32")


@pytest.mark.parametrize("content", [None, b"", b"\x00" * 10, os.urandom(4096), "truncated"])
def test_unreadable_files(tmp_path, content):
    p = tmp_path / "bad.pt"
    if content == "truncated":
        torch.save(make_model().state_dict(), p)
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(LandscapeError) as e:
        load_checkpoint(str(p), arch="resnet20")
    assert str(p) in str(e.value)


def test_numpy_scalar_metadata_loads_safely(tmp_path):
    import numpy as np

    p = tmp_path / "np.pt"
    torch.save({"acc": np.float64(91.5), "state_dict": make_model().state_dict()}, p)
    assert load_checkpoint(str(p), arch="resnet20")[1]["acc"] == 91.5


def test_bare_state_dict_architecture_is_detected(tmp_path):
    m = make_model("plain20")
    p = tmp_path / "bare.pt"
    torch.save(m.state_dict(), p)
    loaded, info = load_checkpoint(str(p))
    assert info["arch"] == "plain20" and _same(loaded, m)


def test_unknown_network_without_arch_names_the_closest_and_the_ways_out(tmp_path):
    sd = make_model("resnet20").state_dict()
    sd["extra.weight"] = torch.zeros(3)
    p = tmp_path / "other.pt"
    torch.save(sd, p)
    with pytest.raises(LandscapeError) as e:
        load_checkpoint(str(p))
    msg = str(e.value)
    assert "closest built-in: resnet20" in msg and "--arch" in msg and "--model" in msg
    assert "\n" not in msg


def test_torchvision_state_dict_loads_without_arch(tmp_path):
    tv = torchvision.models.resnet18(num_classes=7).eval()
    p = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), p)
    loaded, info = load_checkpoint(str(p))
    assert info["arch"] == "resnet18" and info["num_classes"] == 7
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), tv(x), atol=1e-5)


@pytest.mark.parametrize("prefix", ["model.", "net.", "model._orig_mod.", "module.model.", "model.module."])
def test_common_prefix_is_stripped(tmp_path, prefix):
    m = make_model()
    p = tmp_path / "pref.pt"
    torch.save({"state_dict": OrderedDict((prefix + k, v) for k, v in m.state_dict().items())}, p)
    loaded, info = load_checkpoint(str(p), arch="resnet20")
    assert _same(loaded, m)
    assert info["prefix"] == prefix.removeprefix("module.")  # a leading module. goes first, as always


def test_lightning_checkpoint(tmp_path):
    """A PyTorch Lightning .ckpt: the LightningModule's state_dict ('model.' in front of the network's keys) and
    the trainer's bookkeeping beside it."""
    m = make_model("resnet20")
    sd = OrderedDict(("model." + k, v) for k, v in m.state_dict().items())
    ckpt = {"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0", "state_dict": sd,
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4}}}},
            "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_score": None,
                                                               "best_model_path": "/x/epoch=3.ckpt"}},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0, 1]}]}],
            "lr_schedulers": [], "hparams_name": "kwargs", "hyper_parameters": {"lr": 0.1, "arch": "resnet20"}}
    p = tmp_path / "epoch=3-step=120.ckpt"
    torch.save(ckpt, p)
    loaded, info = load_checkpoint(str(p))  # detected: the keys are resnet20's after the prefix
    assert _same(loaded, m) and info["arch"] == "resnet20" and info["epoch"] == 3 and info["prefix"] == "model."


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_safetensors(tmp_path, dtype):
    st = pytest.importorskip("safetensors.torch")
    m = make_model()
    sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in m.state_dict().items()}
    p = tmp_path / "w.safetensors"
    st.save_file(sd, str(p), metadata={"arch": "resnet20"})
    loaded, info = load_checkpoint(str(p))
    assert info["arch"] == "resnet20"
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, sd[k].to(v.dtype)), k
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 100])
    with pytest.raises(LandscapeError, match="truncated"):
        load_checkpoint(str(p))


def test_non_finite_weights_are_refused_by_name(tmp_path):
    sd = make_model().state_dict()
    sd["layer2.1.conv1.weight"][0, 0, 0, 0] = float("nan")
    sd["layer2.1.conv1.weight"][1, 0, 0, 0] = float("inf")
    p = tmp_path / "nan.pt"
    torch.save(sd, p)
    with pytest.raises(LandscapeError) as e:
        load_checkpoint(str(p), arch="resnet20")
    assert "'layer2.1.conv1.weight' (2 of 9216 entries)" in str(e.value)


def test_model_pickled_in_a_script_says_so(tmp_path):
    """torch.save(model) from a script: its class is __main__.Net, importable nowhere else."""
    import subprocess
    import sys

    p = tmp_path / "whole.pt"
    code = ("import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.fc = torch.nn.Linear(2, 2)\n"
            f"torch.save(Net(), {str(p)!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(LandscapeError) as e:
        load_checkpoint(str(p))
    assert "pickled from a script or notebook (class __main__.Net)" in str(e.value)
    assert "state_dict()" in str(e.value)
    with pytest.raises(LandscapeError) as e:
        load_checkpoint(str(p), trust=True)
    assert "class cannot be imported here" in str(e.value) and "Net" in str(e.value)


def test_model_spec_torchvision_and_user_factory(tmp_path):
    tv = torchvision.models.vgg11_bn(num_classes=4).eval()
    p = tmp_path / "vgg.pt"
    torch.save({"model": tv.state_dict()}, p)
    loaded, info = load_checkpoint(str(p), model="torchvision:vgg11_bn")
    assert info["arch"] == "torchvision:vgg11_bn" and info["num_classes"] == 4
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), tv.state_dict().values()))
    f = tmp_path / "my_nets.py"
    f.write_text("import torch\n\ndef build(num_classes=10):\n"
                 "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, num_classes))\n")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    q = tmp_path / "mlp.pt"
    torch.save(net.state_dict(), q)
    loaded, info = load_checkpoint(str(q), model=f"{f}:build")
    assert torch.equal(loaded[1].weight, net[1].weight) and info["num_classes"] == 3


@pytest.mark.parametrize("spec,needle", [
    ("torchvision:resnet19", "unknown torchvision model 'resnet19'; did you mean resnet18"),
    ("nosuchmodule_xyz:build", "cannot import 'nosuchmodule_xyz'"),
    ("json:nothing_here", "has no 'nothing_here'"),
    ("resnet18", "bad --model"),
    ("/no/such/file.py:build", "no such file"),
])
def test_model_spec_errors(tmp_path, spec, needle):
    p = tmp_path / "m.pt"
    torch.save(make_model().state_dict(), p)
    with pytest.raises(LandscapeError, match=re.escape(needle)):
        load_checkpoint(str(p), model=spec)


def test_timm_model_spec(tmp_path):
    timm = pytest.importorskip("timm", reason="timm is an optional extra (pip install timm)")
    net = timm.create_model("resnet10t", pretrained=False, num_classes=5).eval()
    p = tmp_path / "t.pt"
    torch.save(net.state_dict(), p)
    loaded, info = load_checkpoint(str(p), model="timm:resnet10t")
    assert info["num_classes"] == 5 and _same(loaded, net)


@pytest.mark.parametrize("err", [28, 5])  # ENOSPC, EIO
def test_a_failed_save_is_one_line_and_keeps_the_old_checkpoint(tmp_path, monkeypatch, err):
    """A training snapshot on a failing disk: one line naming the file; the snapshot saved before stays whole
    and no temporary file is left."""
    import landscape.paths as paths

    p = tmp_path / "epoch_001.pt"
    save_checkpoint(str(p), make_model(seed=1), "resnet20")
    old = p.read_bytes()

    monkeypatch.setattr(paths, "_open_temp", failing_temp(4096, err))
    with pytest.raises(LandscapeError) as e:
        save_checkpoint(str(p), make_model(seed=2), "resnet20")
    monkeypatch.undo()
    assert str(e.value).startswith(f"cannot write {str(p)!r}: {os.strerror(err)}") and "\n" not in str(e.value)
    assert os.listdir(tmp_path) == ["epoch_001.pt"] and p.read_bytes() == old
