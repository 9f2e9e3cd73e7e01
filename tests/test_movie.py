"""Landscapes through training: a recorder for any loop, callbacks for Lightning and the HuggingFace Trainer, one
file of frames along directions fixed at the first, and an animation whose frames share one scale."""

import copy
import json
import os
import re
import shutil
import subprocess

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.movie import Recorder
from landscape.render.scale import fmt_value
from landscape.surface.movie import read_movie

GRID = dict(x="-1:1:5", y="-1:1:5")


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


def loop(model, x, y, epochs, recorder=None):
    torch.manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    if recorder is not None:
        recorder.record(0)
    snapshots = [copy.deepcopy(model)]
    for epoch in range(epochs):
        for i in range(0, len(x), 32):
            idx = torch.randperm(len(x))[:32]  # draws from torch's generator: recording must not shift it
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        if recorder is not None:
            recorder.record(epoch + 1)
        snapshots.append(copy.deepcopy(model))
    return snapshots


@pytest.fixture(scope="module")
def data(digits_small):
    return digits_small.x[:96].flatten(1).clone(), digits_small.y[:96].clone()


def test_frames_along_fixed_directions_equal_the_surface_by_hand_and_leave_training_alone(tmp_path, data):
    x, y = data
    path = str(tmp_path / "m.h5")
    plain = loop(net(), x, y, 3)
    rec = Recorder(net_ := net(), (x, y), path, samples=64, verbose=False, **GRID)
    snaps = loop(net_, x, y, 3, rec)
    assert all(torch.equal(a, b) for a, b in zip(plain[-1].state_dict().values(), snaps[-1].state_dict().values()))
    m = read_movie(path)
    assert list(m["steps"]) == [0, 1, 2, 3] and m["values"]["train_loss"].shape == (4, 5, 5)
    with h5py.File(path) as f:
        dx = [torch.from_numpy(f["xdirection"][str(i)][()]) for i in range(4)]
        dy = [torch.from_numpy(f["ydirection"][str(i)][()]) for i in range(4)]
    for k in (0, 2):  # frame k: the surface around that epoch's weights, along the directions of frame 0
        for (i, j) in ((0, 4), (2, 2), (3, 1)):
            moved = copy.deepcopy(snaps[k])
            a, b = m["x"][j], m["y"][i]
            with torch.no_grad():
                for p, u, v in zip(moved.parameters(), dx, dy):
                    p.add_(u * float(a) + v * float(b))
                want = float(F.cross_entropy(moved(x[:64]), y[:64]))
            assert m["values"]["train_loss"][k, i, j] == pytest.approx(want, rel=1e-6)
    again = Recorder(net(), (x, y), path, samples=64, verbose=False, **GRID)
    assert again.record(3) is None  # a resumed run skips what is recorded
    with pytest.raises(landscape.LandscapeError, match="other settings .*samples: file has 64, now 32"):
        Recorder(net(), (x, y), path, samples=32, verbose=False, **GRID)


def test_bn_recompute_frames_use_statistics_of_the_frame_samples_at_every_point(tmp_path, data):
    x, y = data
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    path = str(tmp_path / "bn.h5")
    rec = Recorder(model, (x, y), path, samples=64, bn="recompute", verbose=False, **GRID)
    snaps = loop(model, x, y, 1, rec)
    m = read_movie(path)
    assert json.loads(m["attrs"]["settings"])["bn"] == "recompute"
    with h5py.File(path) as f:
        dx = [torch.from_numpy(f["xdirection"][str(i)][()]) for i in range(len(f["xdirection"]))]
    for k in (0, 1):  # the point (alpha=1, beta=0): weights moved, BN statistics those of the 64 samples under them
        moved = copy.deepcopy(snaps[k]).eval()
        with torch.no_grad():
            for p, u in zip(moved.parameters(), dx):
                p.add_(u)
            h = moved[0](x[:64])
            moved[1].running_mean.copy_(h.mean(0))
            moved[1].running_var.copy_(h.var(0, unbiased=True))
            want = float(F.cross_entropy(moved(x[:64]), y[:64]))
            stale = copy.deepcopy(snaps[k]).eval()
            for p, u in zip(stale.parameters(), dx):
                p.add_(u)
            stale = float(F.cross_entropy(stale(x[:64]), y[:64]))
        assert m["values"]["train_loss"][k, 2, 4] == pytest.approx(want, rel=1e-5)
        assert abs(want - stale) > 1e-3  # the running statistics would have given another value
    with pytest.raises(landscape.LandscapeError, match="bn='running' is not one of eval, recompute"):
        Recorder(net(), (x, y), str(tmp_path / "x.h5"), bn="running", verbose=False, **GRID)


try:
    from lightning.pytorch import LightningModule
except ImportError:  # the test that uses it is skipped
    LightningModule = nn.Module


class LitNet(LightningModule):
    def __init__(self):
        super().__init__()
        self.net = net()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_the_lightning_callback_records_every_epoch(tmp_path, data):
    lightning = pytest.importorskip("lightning")
    x, y = data
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    cb = landscape.callbacks.lightning_callback(data=(x, y), every_n_epochs=1, path=str(tmp_path / "lit.h5"),
                                                samples=48, verbose=False, **GRID)
    trainer = lightning.pytorch.Trainer(max_epochs=2, callbacks=[cb], logger=False, enable_checkpointing=False,
                                        enable_progress_bar=False, enable_model_summary=False,
                                        default_root_dir=str(tmp_path), accelerator="cpu")
    trainer.fit(LitNet(), loader)
    m = read_movie(str(tmp_path / "lit.h5"))
    assert list(m["steps"]) == [0, 1, 2] and m["attrs"]["unit"] == "epoch"
    assert not np.array_equal(m["values"]["train_loss"][0], m["values"]["train_loss"][2])


def test_the_huggingface_callback_records_every_n_steps(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50,
                                                                 n_positions=16, bos_token_id=0, eos_token_id=0))
    ids = torch.randint(0, 50, (16, 8))
    train = [{"input_ids": r, "labels": r} for r in ids]
    cb = landscape.callbacks.hf_callback(data={"input_ids": ids, "labels": ids}, every_n_steps=2,
                                         path=str(tmp_path / "hf.h5"), verbose=False, x="-1:1:3", y=None)
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "o"), max_steps=4, per_device_train_batch_size=4,
                                          report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True,
                                          disable_tqdm=True)
    transformers.Trainer(model=model, args=args, train_dataset=train, callbacks=[cb]).train()
    m = read_movie(str(tmp_path / "hf.h5"))
    assert list(m["steps"]) == [0, 2, 4] and m["values"]["train_loss"].shape == (3, 3) and m["y"] is None


def test_the_animation_shares_one_scale_and_the_page_animates_offline(tmp_path, data, monkeypatch):
    x, y = data
    paths = []
    for i, width in enumerate((16, 4)):  # two networks side by side, as ResNet-56 and plain-56
        torch.manual_seed(i)
        model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))
        rec = Recorder(model, (x, y), str(tmp_path / f"m{i}.h5"), samples=64, verbose=False, **GRID)
        loop(model, x, y, 2 + i, rec)
        paths.append(str(tmp_path / f"m{i}.h5"))
    import landscape.render.static as static

    seen = []
    real = static.draw_2d

    def spy(ax, s, key, kind, scale, labels=True):
        seen.append((scale.vmin, scale.vmax, tuple(scale.levels)))
        return real(ax, s, key, kind, scale, labels)

    monkeypatch.setattr(static, "draw_2d", spy)
    from landscape.render.animate import render_animation

    written = render_animation(paths, str(tmp_path), name="both")
    assert [os.path.basename(w) for w in written] == ["both.gif", "both.html"]
    assert len(set(seen)) == 1 and len(seen) >= 2 * 4  # every panel of every frame: one scale
    from PIL import Image

    assert Image.open(written[0]).n_frames == 4  # the longer movie's frames; the shorter holds its last
    seen.clear()
    render_animation(paths, str(tmp_path), ("gif",), "fixed", vmin=0.5, vmax=3.0, levels=6)
    assert {(lo, hi, len(lv)) for lo, hi, lv in seen} == {(0.5, 3.0, 6)}  # --vmin/--vmax/--levels are kept
    text = open(written[1], encoding="utf-8").read()
    ranges = set(re.findall(r'"zmax":([-0-9.e]+)', text)) | set(re.findall(r'"zmin":([-0-9.e]+)', text))
    assert len(ranges) == 2  # one zmin and one zmax across the page's first view and all its frames
    browser = next((b for b in ("chromium", "chromium-browser") if shutil.which(b)), None)
    if browser is None:
        if os.environ.get("LANDSCAPE_REQUIRE_BROWSER") == "1":
            raise RuntimeError("LANDSCAPE_REQUIRE_BROWSER=1 but no chromium on PATH")
        pytest.skip("no headless Chromium")
    # (headless Chromium's virtual time runs no animation frames: the slider's step is started, its drawing not)
    tail = ("<script>window.__e=[];window.addEventListener('error',function(e){window.__e.push(String(e.message))});"
            "setTimeout(function(){var gd=document.getElementById('landscape-figure');"
            "Plotly.animate(gd,['3'],{frame:{duration:0},transition:{duration:0},mode:'immediate'});"
            "setTimeout(function(){document.title='PROBE'+JSON.stringify({errors:window.__e,"
            "frames:gd._transitionData._frames.length,slider:gd._fullLayout.sliders.length});},1000);},2000);"
            "</script>")
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", tail + "</body>"))
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--virtual-time-budget=8000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    got = re.search(r"<title>PROBE(.*?)</title>", dom, re.S)
    assert got, "the page never finished animating"
    res = json.loads(got.group(1).replace("&quot;", '"'))
    assert res == {"errors": [], "frames": 4, "slider": 1}


def test_the_movie_page_marks_theta_star_and_says_what_lies_above_its_scale(tmp_path):
    """Every panel has theta* at its origin, square axes, and a colour bar that marks the frames' values above the
    range ('≥ cap', the true maximum in its title); the slider names a step once when the movies share it, and
    recordings named alike (``<run>/landscape.h5``) get their folders' names."""
    from landscape.render.animate import default_name, render_page, shared_scale
    from landscape.render.html import figure_json

    g = np.linspace(-1, 1, 9)
    bowl = g[None, :] ** 2 + g[:, None] ** 2
    movies = [dict(x=g, y=g, steps=np.arange(3), path=str(tmp_path / f"m{i}.h5"), attrs={"unit": "epoch"},
                   values={"train_loss": np.stack([bowl * 50 * (3 - k) + 0.1 + i for k in range(3)])})
              for i in range(2)]
    scale = shared_scale(movies)
    assert scale.over  # the walls of the first frames lie above the default range
    traces, layout = figure_json(render_page(movies, str(tmp_path / "movie.html"), scale))
    stars = [t for t in traces if t.get("name") == "θ*"]
    assert [(t["x"], t["y"], t.get("xaxis", "x")) for t in stars] == [([0.0], [0.0], "x"), ([0.0], [0.0], "x2")]
    bar = next(t for t in traces if t["type"] == "heatmap" and t.get("showscale"))["colorbar"]
    assert bar["ticktext"][-1] == f"≥ {fmt_value(scale.vmax)}"
    assert bar["title"]["text"] == f"train loss (max {fmt_value(scale.data_max)})"
    assert layout["yaxis"]["scaleanchor"] == "x" and layout["yaxis2"]["scaleanchor"] == "x2"
    assert [s["label"] for s in layout["sliders"][0]["steps"]] == ["0", "1", "2"]
    assert default_name(["runs/movie_resnet56/landscape.h5", "runs/movie_plain56/landscape.h5"]) == \
        "movie_resnet56_movie_plain56"
    assert default_name(["a/r56.h5", "b/p56.h5"]) == "r56_p56"
