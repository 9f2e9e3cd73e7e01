import os

import pytest
import torch

from landscape.checkpoints import load_checkpoint
from landscape.train import augment, lr_at, main, train


def test_lr_schedule_is_he_et_al():
    assert [lr_at(e, 8, 0.1) for e in range(8)] == [0.1] * 4 + [0.01] * 2 + [0.001] * 2


def test_augment_crops_and_flips():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    outs = [augment(x, 1, True, torch.tensor([-9.0]), g) for _ in range(20)]
    assert all(o.shape == x.shape for o in outs)
    assert any(not torch.equal(o, x) for o in outs)
    assert any((o == -9).any() for o in outs)  # padding shows up at the borders
    flipped = augment(x, 0, True, torch.tensor([0.0]), torch.Generator().manual_seed(3))
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))


def test_training_is_deterministic_and_learns(tmp_path):
    h1 = train("resnet20", "digits", epochs=2, out=str(tmp_path / "a"), progress=False, device="cpu")
    h2 = train("resnet20", "digits", epochs=2, out=str(tmp_path / "b"), progress=False, device="cpu")
    a, _ = load_checkpoint(str(tmp_path / "a" / "final.pt"))
    b, info = load_checkpoint(str(tmp_path / "b" / "final.pt"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert h1["test_err"] == h2["test_err"] and h1["test_err"][-1] < 50
    assert info["arch"] == "resnet20" and info["in_channels"] == 1 and info["history"]["lr"] == [0.1, 0.001]
    # training-step time (throughput) is recorded per epoch, inside the epoch's total
    assert len(h1["train_seconds"]) == 2 and h1["samples"] == 1437
    assert all(0 < t < s for t, s in zip(h1["train_seconds"], h1["seconds"]))


def test_resume_equals_uninterrupted(tmp_path):
    full = str(tmp_path / "full")
    assert main(["--arch", "resnet20", "--epochs", "3", "--save-every", "1", "--out", full, "--quiet",
                 "--device", "cpu"]) == 0
    part = str(tmp_path / "part")
    train("resnet20", "digits", epochs=3, save_every=1, out=part, progress=False, device="cpu")
    (tmp_path / "part" / "epoch_003.pt").unlink()
    (tmp_path / "part" / "final.pt").unlink()
    train("resnet20", "digits", epochs=3, save_every=1, out=part, resume=True, progress=False, device="cpu")
    a, ia = load_checkpoint(full + "/final.pt")
    b, ib = load_checkpoint(part + "/final.pt")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert ia["history"]["test_loss"] == ib["history"]["test_loss"]


def test_training_uses_augmentation(monkeypatch, tmp_path):
    import landscape.train as lt

    calls = []
    real = lt.augment

    def spy(x, pad, flip, fill, g):
        out = real(x, pad, flip, fill, g)
        calls.append((pad, flip, not torch.equal(out, x)))
        return out

    monkeypatch.setattr(lt, "augment", spy)
    lt.train("resnet20", "digits", epochs=1, out=str(tmp_path), progress=False, device="cpu")
    assert len(calls) == 12  # ceil(1437 / 128) batches, each augmented
    assert all(p == 1 and f is False for p, f, _ in calls)  # digits: 1-px crops, no flips
    assert all(changed for *_, changed in calls)


def test_mixed_precision_training_the_gpu_default_runs_in_bf16_and_learns(monkeypatch, tmp_path):
    """``amp`` (bf16 autocast, on by default on CUDA) exercised on the CPU: training forwards run in bfloat16,
    evaluation and the saved weights stay float32, and the network still learns."""
    import landscape.train as lt

    seen = []
    real = lt.create_model

    def spy(*a, **k):
        m = real(*a, **k)
        m.register_forward_hook(lambda mod, inp, out: seen.append((mod.training, out.dtype)))
        return m

    monkeypatch.setattr(lt, "create_model", spy)
    h = lt.train("resnet20", "digits", epochs=2, out=str(tmp_path), progress=False, device="cpu", amp=True)
    assert {d for training, d in seen if training} == {torch.bfloat16}
    assert {d for training, d in seen if not training} == {torch.float32}
    model, _ = load_checkpoint(str(tmp_path / "final.pt"))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert h["test_err"][-1] < 50 and h["train_loss"][1] < h["train_loss"][0]


def test_python_and_cli_share_the_default_run_folder():
    from landscape.train import default_run_dir

    assert default_run_dir("resnet56", "cifar10:/data/cifar") == os.path.join("runs", "resnet56_cifar10")
    assert default_run_dir("resnet20", "digits") == os.path.join("runs", "resnet20_digits")


def test_recording_the_landscape_leaves_training_alone_and_frames_use_the_chosen_bn_statistics(tmp_path):
    import json

    import torch.nn.functional as F

    from landscape.data import load_data
    from landscape.surface.movie import read_movie

    plain, rec = str(tmp_path / "plain"), str(tmp_path / "rec")
    train("resnet20", "digits", epochs=2, out=plain, progress=False, device="cpu")
    assert main(["--arch", "resnet20", "--epochs", "2", "--out", rec, "--quiet", "--device", "cpu", "--record-every",
                 "1", "--record-grid", "-1:1:3", "--record-samples", "32", "--record-bn", "recompute"]) == 0
    a, _ = load_checkpoint(os.path.join(plain, "final.pt"))
    b, info = load_checkpoint(os.path.join(rec, "final.pt"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    m = read_movie(os.path.join(rec, "landscape.h5"))
    settings = json.loads(m["attrs"]["settings"])
    assert list(m["steps"]) == [0, 1, 2] and settings["bn"] == "recompute" and settings["samples"] == 32
    assert len(info["history"]["landscape_seconds"]) == 3
    # the centre of the last frame: the final weights, BN statistics of the 32 recorded images (one batch)
    d = load_data("digits", "train", 32, "cpu")
    x, y = d.x, d.y
    with torch.no_grad():
        stale = float(F.cross_entropy(a.eval()(x), y))  # the running statistics
        b.train()
        for mod in b.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.reset_running_stats()
                mod.momentum = None
        b(x)
        b.eval()
        want = float(F.cross_entropy(b(x), y))
    assert m["values"]["train_loss"][2, 1, 1] == pytest.approx(want, rel=1e-5)
    assert abs(want - stale) > 1e-3
