import os
from collections import OrderedDict

import pytest
import torch

from conftest import make_model
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


def test_no_arch_anywhere_is_a_clear_error(tmp_path):
    p = tmp_path / "bare.pt"
    torch.save(make_model().state_dict(), p)
    with pytest.raises(LandscapeError, match="--arch"):
        load_checkpoint(str(p))


@pytest.mark.parametrize("err", [28, 5])  # ENOSPC, EIO
def test_a_failed_save_is_one_line_and_keeps_the_old_checkpoint(tmp_path, monkeypatch, err):
    """A training snapshot on a failing disk: one line naming the file; the snapshot saved before stays whole
    and no temporary file is left."""
    import landscape.paths as paths

    p = tmp_path / "epoch_001.pt"
    save_checkpoint(str(p), make_model(seed=1), "resnet20")
    old = p.read_bytes()

    class Failing:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            self.n += len(b)
            if self.n > 4096:
                raise OSError(err, os.strerror(err))
            return self.f.write(b)

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(paths, "open", lambda *a, **kw: Failing(open(*a, **kw)), raising=False)
    with pytest.raises(LandscapeError) as e:
        save_checkpoint(str(p), make_model(seed=2), "resnet20")
    monkeypatch.undo()
    assert str(e.value).startswith(f"cannot write {str(p)!r}: {os.strerror(err)}") and "\n" not in str(e.value)
    assert os.listdir(tmp_path) == ["epoch_001.pt"] and p.read_bytes() == old
