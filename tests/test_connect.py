"""landscape.connect: a curve of low loss between two solutions against the straight line (Garipov et al. 2018), on
a problem whose answer is known, with BN statistics re-estimated per point, resumable, from Python and the CLI."""

import copy
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.connect.curves import barrier, coefficients, plane_coords
from landscape.connect.pathfile import read_path_file
from landscape.connect.training import CurveSettings, train_bend
from landscape.errors import LandscapeError
from landscape.evaluate.passes import recompute_bn_statistics
from landscape.objectives import resolve_objective
from landscape.render.scale import fmt_value

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_curves_formulas():
    for t in (0.0, 0.3, 0.5, 0.8, 1.0):
        a, b, c = coefficients("bezier", t)
        assert (a, b, c) == pytest.approx(((1 - t) ** 2, 2 * t * (1 - t), t ** 2))
        assert a + b + c == pytest.approx(1.0)
    assert coefficients("polychain", 0.25) == pytest.approx((0.5, 0.5, 0.0))
    assert coefficients("polychain", 0.75) == pytest.approx((0.0, 0.5, 0.5))
    np.testing.assert_allclose(plane_coords("bezier", [0, 0.5, 1]), [[0, 0], [0.25, 0.5], [1, 0]])
    assert barrier([1.0, 3.0, 2.0]) == pytest.approx(1.5)


class Product(nn.Module):
    """f(x) = a * b * x: every (a, b) with a b = 1 fits y = x; (1, 1) and (4, 1/4) are two such solutions, joined by
    the hyperbola a b = 1 (zero loss) but not by the straight line (a b = 1.5625 at its middle)."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(a)), nn.Parameter(torch.tensor(b))

    def forward(self, x):
        return self.a * self.b * x


def test_on_a_known_problem_the_curve_has_almost_no_barrier_and_the_line_the_formulas(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 1, generator=g)
    res = landscape.connect(Product(1.0, 1.0), Product(4.0, 0.25), data=(x, x.clone()), loss="mse", epochs=30,
                            lr=0.02, train_batch=50, points=21, plane=None, out=str(tmp_path), render=False,
                            progress=False)
    d = read_path_file(res.path)
    t = d["t"]
    ab = (1 + 3 * t) * (1 - 0.75 * t)  # the straight line's product
    np.testing.assert_allclose(d["line"]["train_loss"], (ab - 1) ** 2 * float((x ** 2).mean()), rtol=1e-5)
    assert res.barriers["line_train"] == pytest.approx(0.5625 ** 2 * float((x ** 2).mean()), rel=1e-4)
    assert res.barriers["curve_train"] < res.barriers["line_train"] / 20
    bend = {n: v for n, v in zip(("a", "b"), (d_.item() for d_ in _bend(res.path)))}
    a_half = 0.25 * 1 + 0.5 * bend["a"] + 0.25 * 4  # the Bézier point at t = 1/2, by the formula
    b_half = 0.25 * 1 + 0.5 * bend["b"] + 0.25 * 0.25
    i = int(np.argmin(np.abs(t - 0.5)))
    assert d["curve"]["train_loss"][i] == pytest.approx((a_half * b_half - 1) ** 2 * float((x ** 2).mean()),
                                                        rel=1e-5)


def _bend(path):
    with h5py.File(path) as f:
        return [torch.tensor(f["bend"][str(i)][()]) for i in range(len(f["bend"]))]


class SmallBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).flatten(1))


@pytest.fixture(scope="module")
def digits_pair(digits_small):
    x, y = digits_small.x[:96], digits_small.y[:96]
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        m = SmallBN()
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        for _ in range(60):
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
        models.append(m.eval())
    return models, (x, y)


def test_bn_statistics_are_re_estimated_on_the_training_data_at_every_point(tmp_path, digits_pair):
    (a, b), (x, y) = digits_pair
    train, test = (x[:64], y[:64]), (x[64:], y[64:])
    res = landscape.connect(a, b, data={"train": train, "test": test}, epochs=2, train_batch=32, points=5,
                            plane=None, out=str(tmp_path), render=False, progress=False)
    d = read_path_file(res.path)
    bend = _bend(res.path)
    for kind in ("curve", "line"):
        for i, t in enumerate(d["t"]):
            ca, cb, cc = coefficients("bezier", t) if kind == "curve" else (1 - t, 0.0, t)
            m = copy.deepcopy(a)
            with torch.no_grad():
                for p, pa, pb, pm in zip(m.parameters(), a.parameters(), b.parameters(), bend):
                    p.copy_(ca * pa + cb * pm + cc * pb)
            data = landscape.data.Data(*train, "t", "train", 10)
            recompute_bn_statistics(m, data, batch_size=512)
            with torch.no_grad():
                want = float(F.cross_entropy(m(test[0]), test[1]))
            assert d[kind]["test_loss"][i] == pytest.approx(want, rel=1e-5), (kind, t)


def test_a_killed_training_resumes_to_the_same_curve(tmp_path, digits_pair):
    (a, b), (x, y) = digits_pair
    data = landscape.data.Data(x, y, "d", "train", 10)
    objective = resolve_objective("cross_entropy")
    objective.probe(a, data)
    settings = CurveSettings(epochs=4, batch_size=32, seed=3)
    whole, _ = train_bend(a, b, data, objective, settings, str(tmp_path / "whole.pt"), progress=False)
    calls = {"n": 0}
    real = objective.mean

    def dies(*args):
        calls["n"] += 1
        if calls["n"] > 7:  # in the third epoch (3 minibatches an epoch)
            raise KeyboardInterrupt
        return real(*args)

    objective.mean = dies
    with pytest.raises(KeyboardInterrupt):
        train_bend(a, b, data, objective, settings, str(tmp_path / "cut.pt"), progress=False)
    objective.mean = real
    assert len(torch.load(tmp_path / "cut.pt", weights_only=True)["history"]) == 2
    again, history = train_bend(a, b, data, objective, settings, str(tmp_path / "cut.pt"), progress=False)
    assert len(history) == 4
    assert all(torch.equal(whole[n], again[n]) for n in whole)
    with pytest.raises(LandscapeError, match="was made with other settings .*epochs: saved 4, now 5"):
        train_bend(a, b, data, objective, CurveSettings(epochs=5, batch_size=32, seed=3), str(tmp_path / "cut.pt"),
                   progress=False)


def test_the_cli_writes_the_curve_the_plane_and_their_figures(tmp_path, digits_pair):
    from landscape.checkpoints import save_checkpoint
    from conftest import make_model

    for i, seed in enumerate((1, 2)):
        save_checkpoint(str(tmp_path / f"run{i}" / "final.pt"), make_model("resnet20", seed=seed), "resnet20",
                        dataset="digits", normalization={"mean": [0.3054], "std": [0.3759]})
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "landscape.connect", "--ckpt", str(tmp_path / "run0" / "final.pt"),
                        "--ckpt2", str(tmp_path / "run1" / "final.pt"), "--samples", "48", "--epochs", "1",
                        "--points", "5", "--plane", "-0.5:1.5:5", "--quiet", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "curve: " in r.stdout and "line  train barrier" in r.stdout and "curve test  barrier" in r.stdout
    names = sorted(p.name for p in out.iterdir())
    assert "connect_run0_run1.h5" in names and "connect_run0_run1_plane.h5" in names
    assert "connect_run0_run1_paths.png" in names and "connect_run0_run1_paths.html" in names
    assert "connect_run0_run1_plane_contour.png" in names and "connect_run0_run1_plane.html" in names
    with h5py.File(out / "connect_run0_run1_plane.h5") as f:  # the curve drawn on the plane of A, B and the bend
        np.testing.assert_allclose(f["trajectory"]["x"][()][[0, 50, 100]], [0, 0.25, 1])
        np.testing.assert_allclose(f["trajectory"]["y"][()][[0, 50, 100]], [0, 0.5, 0])
    again = subprocess.run([sys.executable, "-m", "landscape.connect", "--ckpt", str(tmp_path / "run0" / "final.pt"),
                            "--ckpt2", str(tmp_path / "run1" / "final.pt"), "--samples", "48", "--epochs", "2",
                            "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, PYTHONPATH=ROOT))
    lines = again.stderr.strip().splitlines()
    assert again.returncode == 2 and len(lines) == 1 and "cannot resume" in lines[0] and "epochs" in lines[0]


# -- drawing a curve file again: the CLI, the scales, the legends, the plane's page ------------------------------

@pytest.fixture(scope="module")
def product_files(tmp_path_factory):
    """A curve file and its plane (seconds: the two-parameter problem above, y = x + noise so that no loss is 0)."""
    out = tmp_path_factory.mktemp("pp")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 1, generator=g)
    y = x + 0.1 * torch.randn(400, 1, generator=g)
    res = landscape.connect(Product(1.0, 1.0), Product(4.0, 0.25), data=(x, y), loss="mse", epochs=5, lr=0.02,
                            train_batch=50, points=21, plane="-0.5:1.5:9", out=str(out), render=False,
                            progress=False, name="pp")
    with h5py.File(res.path, "r+") as f:  # as a run from checkpoints names them
        f.attrs["ckpt"], f.attrs["ckpt2"] = "/x/runs/r20_s1/final.pt", "/x/runs/r20_s2/final.pt"
    return res, (x, y)


def test_the_render_cli_redraws_a_curve_file_and_its_plane(tmp_path, product_files, capsys):
    from landscape.cli import run
    from landscape.render.__main__ import main

    res, _ = product_files
    assert main([res.path, "--out", str(tmp_path / "a"), "--formats", "png,html", "--name", "nm"]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    for want in ("nm_paths.png", "nm_paths.html", "nm_plane_contour.png", "nm_plane.html"):
        assert want in names, names
    assert main([res.plane, "--out", str(tmp_path / "b"), "--formats", "html"]) == 0  # the plane file alone
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["pp_plane.html"]
    assert main([res.path, "--out", str(tmp_path / "c"), "--formats", "svg"]) == 0
    assert "pp_paths.svg" in [p.name for p in (tmp_path / "c").iterdir()]
    lone = tmp_path / "lone.h5"  # no plane beside it: the paths only
    lone.write_bytes(open(res.path, "rb").read())
    assert main([str(lone), "--formats", "png"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["lone.h5", "lone_paths.png"]
    capsys.readouterr()
    for argv, says in (([res.path, "--compare"], "drop --compare"), ([res.path, "--formats", "vtp"], "drop vtp"),
                       ([str(lone), "--vmax", "1"], "no plane file beside it"),
                       ([res.path, "--animate"], "drop --animate")):
        assert run(main, argv + ["--out", str(tmp_path / "d")], prog="landscape.render") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err


def test_the_paths_are_drawn_on_one_log_scale_with_the_legend_off_the_data(tmp_path, product_files):
    from landscape.render.connect import figure_paths, log_loss, render_connect
    from landscape.render.html import figure_json

    res, _ = product_files
    d = read_path_file(res.path)
    loss = np.concatenate([d[k]["train_loss"] for k in ("curve", "line")])
    assert loss.min() > 0 and loss.max() / loss.min() >= 10 and log_loss(d)
    fig = figure_paths(d, "t")
    ax_l, ax_a = fig.axes[:2]
    assert ax_l.get_yscale() == "log"
    assert ax_l.get_legend() is None and ax_a.get_legend() is None
    fig.canvas.draw()
    (leg,) = fig.legends
    box = leg.get_window_extent()
    for ax in (ax_l, ax_a):  # the legend lies below both panels, over none of their data
        frame = ax.get_window_extent()
        assert box.y1 < frame.y0 and not box.overlaps(frame)
    assert len(leg.get_texts()) == 2 and "barrier" in leg.get_texts()[0].get_text()
    # the x axis names the two models by their files
    a = d["attrs"]
    ends = [f"{n}: {os.path.basename(os.path.dirname(str(a[k])))}/{os.path.basename(str(a[k]))}" if a.get(k) else n
            for n, k in (("A", "ckpt"), ("B", "ckpt2"))]
    assert ax_l.get_xlabel() == f"t  ({ends[0]} at 0, {ends[1]} at 1)"
    # labels at 1, 2 and 5 of each decade the losses reach, as plain numbers; the page has the same
    drawn = [(round(v, 12), t.get_text()) for v, t in zip(ax_l.get_yticks(), ax_l.get_yticklabels())
             if loss.min() <= v <= loss.max()]
    lo, hi = loss.min(), loss.max()
    want = [m * 10.0 ** e for e in range(-6, 6) for m in (1, 2, 5) if lo <= m * 10.0 ** e <= hi]
    assert [v for v, _ in drawn] == pytest.approx(want) and [s for _, s in drawn] == [fmt_value(v) for v in want]
    page = [p for p in render_connect(res.path, str(tmp_path), "html") if p.endswith("_paths.html")][0]
    traces, layout = figure_json(page)
    assert layout["yaxis"]["type"] == "log" and layout["yaxis2"].get("type", "linear") != "log"
    assert layout["yaxis"]["tickvals"] == pytest.approx(want) and layout["yaxis"]["ticktext"] == [s for _, s in drawn]
    assert layout["xaxis"]["title"]["text"] == ax_l.get_xlabel()
    ys = [v for tr in traces if tr.get("yaxis", "y") == "y" for v in tr["y"] if v is not None]
    assert min(ys) == pytest.approx(float(loss.min()))  # the values themselves, not their logs
    legend = layout["legend"]
    assert legend["orientation"] == "h" and legend["yref"] == "container" and legend["y"] == 0


def test_the_plane_page_names_its_models_clear_of_theta_star_with_a_legend(tmp_path, product_files):
    from landscape.render.connect import render_connect
    from landscape.render.html import figure_json

    res, _ = product_files
    page = [p for p in render_connect(res.path, str(tmp_path), "html", plane=res.plane)
            if p.endswith("_plane.html")][0]
    traces, layout = figure_json(page)
    flat = [tr for tr in traces if tr.get("type") == "scatter"]
    star = [tr for tr in flat if tr.get("name") == "θ*"][0]
    shown_ = {tr["name"] for tr in flat if tr.get("showlegend")}
    assert shown_ == {"θ*", "straight line", "Bézier curve"} and layout["showlegend"] is True
    legend = layout["legend"]
    assert legend["yref"] == "container" and legend["y"] == 0 and legend["yanchor"] == "bottom"
    marks = [tr for tr in flat if tr.get("hovertemplate", "").startswith("%{text} (α")][0]
    assert marks["mode"] == "markers"  # the names are boxed labels now, not the marks' grey text
    labels = {a["text"]: a for a in layout["annotations"] if a["text"] in ("<b>A</b>", "<b>B</b>", "<b>bend</b>")}
    assert set(labels) == {"<b>A</b>", "<b>B</b>", "<b>bend</b>"}
    for a in labels.values():
        assert a["font"]["color"] == "black" and a["bgcolor"].startswith("rgba(255,255,255")
    a = labels["<b>A</b>"]
    assert (a["x"], a["y"]) == (0, 0) == (star["x"][0], star["y"][0])
    half = star["marker"]["size"] / 2  # A's box lies below left of theta*'s star, off it
    assert a["xanchor"] == "right" and a["yanchor"] == "top" and -a["xshift"] > half and -a["yshift"] > half
    text = open(page, encoding="utf-8").read()
    settings = text[text.index("<div class='settings'>"):]
    settings = settings[:settings.index("</div>")]
    assert "target:" not in settings and "<b>directions</b>" not in settings
    for want in ("<b>A</b> r20_s1/final.pt", "<b>B</b> r20_s2/final.pt", "<b>bend</b> pp.h5 (Bézier curve)"):
        assert want in settings, settings


def test_an_old_plane_file_is_refused_in_one_line_saying_what_differs(tmp_path, product_files):
    import shutil

    res, (x, y) = product_files
    for p in (res.path, res.plane):
        shutil.copy(p, tmp_path)
    plane = str(tmp_path / "pp_plane.h5")
    with h5py.File(plane, "r+") as f:  # as an older version wrote them
        f.attrs["directions"], f.attrs["dir_type"] = "target:Product/Product", "weights"
    before = open(plane, "rb").read()
    kw = dict(data=(x, y), loss="mse", epochs=5, lr=0.02, train_batch=50, points=21, plane="-0.5:1.5:9",
              out=str(tmp_path), render=False, progress=False, name="pp")
    with pytest.raises(LandscapeError) as e:
        landscape.connect(Product(1.0, 1.0), Product(4.0, 0.25), **kw)
    msg = str(e.value)
    assert "\n" not in msg and repr(plane) in msg
    assert "directions: file has 'target:Product/Product', this run 'target:Product | Product'" in msg
    assert "dir_type: file has 'weights'" in msg and "delete that file" in msg and "--out" in msg
    assert "another --name" not in msg
    assert open(plane, "rb").read() == before  # not reused, not touched
    os.remove(plane)
    again = landscape.connect(Product(1.0, 1.0), Product(4.0, 0.25), **kw)
    with h5py.File(again.plane) as f:
        assert f.attrs["directions"] == "target:Product | Product"
