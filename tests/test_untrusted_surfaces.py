"""Surface, movie and curve files from elsewhere (#24): drawn right (a file's text shown literally, cut to one short
line) or refused in one line (exit 2), and never read beyond a bound fixed before anything big is read."""

import html
import os
import shutil
import subprocess
import sys
import time
import warnings

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn

import landscape
import landscape.render.curve as curve_module
import landscape.render.static as static
from landscape.connect.pathfile import read_path_file, record_overlay
from landscape.errors import LandscapeError
from landscape.render import render_comparison, render_surface
from landscape.render.animate import render_animation
from landscape.render.connect import render_connect
from landscape.render.html import figure_json
from landscape.surface import read_surface
from landscape.surface.movie import read_movie

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MATH = r"a$\frac{$b"  # matplotlib's math parser fails on it: drawn, it must read exactly so


class Product(nn.Module):
    """y = a b x: two solutions of y = x joined by a curve (landscape.connect's smallest real case)."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(a)), nn.Parameter(torch.tensor(b))

    def forward(self, x):
        return self.a * self.b * x


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Real files made by the tool: a 2D surface (with --tolerance: loss_cap, standard errors) carrying a curve
    drawn over it, a 1D curve, a movie and a curve file between two models."""
    d = str(tmp_path_factory.mktemp("real"))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(60, 4), torch.randint(0, 3, (60,))
    two = landscape.compute(net, data=(x, y), x="-1:1:5", y="-1:1:4", out=d, name="two", tolerance=0.05,
                            render=False, progress=False).path
    record_overlay(two, np.array([[-0.5, -0.2], [0.0, 0.3], [0.5, 0.1]]), np.array([0, 0.5, 1.0]), "Bézier curve",
                   {"A": (-0.5, -0.2), "B": (0.5, 0.1), "bend": (0.0, 0.4)})
    one = landscape.compute(net, data=(x, y), x="-1:1:7", one_d=True, out=d, name="one", samples=30, render=False,
                            progress=False).path
    rec = landscape.Recorder(net, (x, y), os.path.join(d, "movie.h5"), x="-1:1:5", y="-1:1:5", samples=32,
                             verbose=False)
    rec.record(1)
    rec.record(2)
    xx = torch.randn(100, 1)
    curve = landscape.connect(Product(1.0, 1.0), Product(4.0, 0.25), data=(xx, xx.clone()), loss="mse", epochs=1,
                              train_batch=50, points=5, plane=None, out=d, render=False, progress=False).path
    return {"two": two, "one": one, "movie": rec.path, "curve": curve}


def _copy(real, tmp_path, kind="two", name="s"):
    p = str(tmp_path / f"{name}.h5")
    shutil.copy(real[kind], p)
    return p


def _attr(path, key, value, group="/"):
    # libver latest: an attribute over 64 KB needs dense attribute storage
    with h5py.File(path, "r+", libver=("earliest", "latest")) as f:
        g = f[group]
        if key in g.attrs:
            del g.attrs[key]
        g.attrs[key] = value


def _replace(path, key, data=None, **create):
    with h5py.File(path, "r+") as f:
        if key in f:
            del f[key]
        f.create_dataset(key, data=data, **create)


@pytest.fixture
def texts(monkeypatch):
    """Every text of every matplotlib figure saved, as drawn: (text, is math text) after matplotlib's own
    preprocessing, so ``a\\$b`` is recorded as the literal ``a$b``."""
    import matplotlib.text

    seen = []
    real_save = static.save

    def spy(fig, *a, **kw):
        for t in fig.findobj(matplotlib.text.Text):
            if t.get_text():
                seen.append(t._preprocess_math(t.get_text()))
        return real_save(fig, *a, **kw)

    monkeypatch.setattr(static, "save", spy)
    monkeypatch.setattr(curve_module, "save", spy)
    return seen


def test_math_text_in_a_files_attributes_is_drawn_literally_in_figures_and_escaped_in_pages(real, tmp_path, texts):
    p = _copy(real, tmp_path)
    _attr(p, "arch", MATH + "<b>x</b>")
    _attr(p, "dataset", r"d$\sqrt{$")
    _attr(p, "label", r"c$\frac{$<i>", "trajectory")
    _attr(p, "marks", '{"$A$": [-0.5, -0.2], "B": [0.5, 0.1]}', "trajectory")
    render_surface(p, str(tmp_path), "png,html")
    arch = MATH + "<b>x</b>"
    titles = [t for t, math in texts if t.startswith(arch)]
    assert len(titles) == 4 and titles[0] == f"{arch} · train loss · d$\\sqrt{{$"  # 4 figures, literal dollars
    assert (r"c$\frac{$<i>", False) in texts and ("$A$", False) in texts  # legend entry, a named point
    assert {t for t, math in texts if math} == {r"$\alpha$", r"$\beta$", r"$\theta^*$"}  # only our own labels
    page = (tmp_path / "s.html").read_text(encoding="utf-8")
    assert f"<h1>{html.escape(arch)} — train loss</h1>" in page and "<b>x</b>" not in page.split("<h1>")[1][:300]
    data, _ = figure_json(str(tmp_path / "s.html"))
    red = [t for t in data if t.get("mode") == "lines" and t.get("line", {}).get("color") == "red"]
    assert [(t["type"], t["name"]) for t in red] == [("scatter3d", r"c$\frac{$&lt;i&gt; (3D)"),  # on the surface
                                                     ("scatter", r"c$\frac{$&lt;i&gt;")]  # and on the map
    # (Plotly reads tags in names: entities show them as text)
    models = next(t for t in data if t.get("name") == "models (3D)")
    assert models["text"] == ["$A$", "B"]
    # side by side, each panel is titled by its file's arch (a Plotly annotation)
    q = _copy(real, tmp_path, name="q")
    render_comparison([p, q], str(tmp_path), "html", name="cmp")
    _, layout = figure_json(str(tmp_path / "cmp.html"))
    assert html.escape(arch, quote=False) in [a["text"] for a in layout["annotations"]]


def test_a_1mb_attribute_is_cut_to_a_line_in_titles_pages_and_messages(real, tmp_path, texts):
    p = _copy(real, tmp_path)
    _attr(p, "arch", "R" * 1_000_000)
    _attr(p, "device", "line one\nline two " + "D" * 500_000)  # a shown attribute, on the page's settings line
    render_surface(p, str(tmp_path), "png,html")
    title = next(t for t, _ in texts if t.startswith("RRR"))
    assert title == "R" * 99 + "… · train loss · tensors"  # 100 characters, the last an ellipsis
    page = (tmp_path / "s.html").read_text(encoding="utf-8")
    assert "<h1>" + "R" * 99 + "… — train loss</h1>" in page and "R" * 101 not in page and "D" * 201 not in page
    assert "<b>device</b> line one line two DDD" in page  # one line: the newline is a space
    render_surface(real["two"], str(tmp_path), "html")
    assert abs(len(page) - len((tmp_path / "two.html").read_text(encoding="utf-8"))) < 2_000  # not a 1 MB page
    _attr(p, "n_samples", "N" * 1_000_000)
    with pytest.raises(LandscapeError, match=r"attribute 'n_samples' is a string \('N{39}…'\)") as e:
        read_surface(p)
    assert len(str(e.value)) < 300 and "\n" not in str(e.value)


@pytest.mark.parametrize("key,value,group,expected", [
    ("arch", np.arange(5), "/", r"attribute 'arch' is an array of shape \(5,\) \(int64\); expected a string"),
    ("n_samples", "lots", "/", r"attribute 'n_samples' is a string \('lots'\); expected a whole number >= 0"),
    ("n_samples", np.arange(3), "/", r"attribute 'n_samples' is an array of shape \(3,\).*expected a whole number"),
    ("loss_cap", "high", "/", r"attribute 'loss_cap' is a string \('high'\); expected a finite number"),
    ("loss_cap", np.nan, "/", r"attribute 'loss_cap' is a number \(nan\); expected a finite number"),
    ("tolerance", "abc", "/", r"attribute 'tolerance' is a string \('abc'\); expected a finite number >= 0"),
    ("rtol", -0.5, "/", r"attribute 'rtol' is a number \(-0.5\); expected a finite number >= 0"),
    ("min_samples", 2.5, "/", r"attribute 'min_samples' is a number \(2.5\); expected a whole number >= 0"),
    ("seed", "x", "/", r"attribute 'seed' is a string \('x'\); expected a whole number \(or '' when unset\)"),
    ("refine", 7, "/", r"attribute 'refine' is a number \(7\); expected true or false"),
    ("shown_attrs", np.ones((2, 2)), "/", r"attribute 'shown_attrs' is an array of shape \(2, 2\).*attribute names"),
    ("split", b"\xff\xfe", "/", None),  # not UTF-8: shown with replacement characters, drawn
    ("marks", '{"A": [0, "x"]}', "trajectory", r"trajectory attribute 'marks' is .*expected at most 26 named points"),
    ("explained_variance_ratio", "most", "trajectory",
     r"attribute 'explained_variance_ratio' is a string \('most'\); expected a list of at most 1,000 finite"),
])
def test_attributes_of_the_wrong_type_are_one_line_errors_naming_them(real, tmp_path, key, value, group, expected):
    p = _copy(real, tmp_path)
    _attr(p, key, value, group)
    if expected is None:
        assert read_surface(p).attrs[key] == "\ufffd\ufffd"
        render_surface(p, str(tmp_path), "html")
        assert "<b>split</b> \ufffd\ufffd" in (tmp_path / "s.html").read_text(encoding="utf-8")
        return
    with pytest.raises(LandscapeError, match=expected) as e:
        read_surface(p)
    assert str(e.value).startswith(repr(p)) and "\n" not in str(e.value) and "recompute the surface" in str(e.value)


@pytest.mark.parametrize("key,edit,expected", [
    ("xcoordinates", lambda x: np.where(np.arange(len(x)) == 2, np.nan, x), r"xcoordinates\[2\] is nan; coordinates "
     r"must be finite numbers"),
    ("ycoordinates", lambda y: np.where(np.arange(len(y)) == 1, np.inf, y), r"ycoordinates\[1\] is inf"),
    ("xcoordinates", lambda x: x[::-1].copy(), r"xcoordinates is not strictly increasing \(xcoordinates\[0\] = 1, "
     r"xcoordinates\[1\] = 0.5\)"),
    ("xcoordinates", lambda x: np.r_[x[:2], x[1:-1]], r"not strictly increasing \(xcoordinates\[1\] = -0.5, "
     r"xcoordinates\[2\] = -0.5\)"),
    ("xcoordinates", lambda x: x[:4], r"train_loss has shape \(4, 5\) but the grid .* is \(4, 4\)"),
    ("ycoordinates", lambda y: np.r_[y, 2.0], r"has shape \(4, 5\) but the grid .* is \(5, 5\)"),
    ("xcoordinates", lambda x: np.array([-1e300, 0, 1e-310, 1, 2.0]), r"xcoordinates is spaced from 1e-310 to 1e\+300"),
    ("xcoordinates", lambda x: x * 1e308, r"xcoordinates\[0\] is -1e\+308; coordinates must be finite numbers within"),
])
def test_bad_coordinates_are_one_line_errors(real, tmp_path, key, edit, expected):
    p = _copy(real, tmp_path)
    with h5py.File(p, "r") as f:
        c = f[key][()]
    _replace(p, key, edit(c))
    with pytest.raises(LandscapeError, match=expected) as e:
        read_surface(p)
    assert "\n" not in str(e.value) and "damaged" not in str(e.value)


def _declared(path, n, fill=1.0):
    """A surface that declares an n x n grid in chunks never written: a small file, huge arrays."""
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = f["ycoordinates"] = np.linspace(-1, 1, n)
        for key in ("train_loss", "train_acc"):
            f.create_dataset(key, shape=(n, n), dtype="f8", chunks=(100, 100), fillvalue=fill)
        f.create_dataset("train_done", shape=(n, n), dtype=bool, chunks=(100, 100), fillvalue=True)
        f.attrs["format_version"], f.attrs["arch"], f.attrs["split"] = 1, "declared", "train"


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="measures VmHWM in /proc (Linux)")
def test_a_10000_grid_in_a_small_file_is_drawn_from_every_10th_point_within_a_few_hundred_mb(tmp_path):
    p = str(tmp_path / "big.h5")
    _declared(p, 10_000)
    assert os.path.getsize(p) < 1_000_000  # 1.6 GB of values declared
    s = read_surface(p, max_points=1001 * 1001)
    assert s.stride == 10 and s.grid == (10_000, 10_000) and s.values["train_loss"].shape == (1000, 1000)
    np.testing.assert_array_equal(s.xcoordinates, np.linspace(-1, 1, 10_000)[::10])
    # The CLI, measured: the peak of the process (VmHWM: ru_maxrss would count the pytest process it was forked
    # from) and of its forked probe (was 19.8 GB and 207 s).
    code = ("import resource, sys; from landscape.cli import run; from landscape.render.__main__ import main; "
            "rc = run(main, sys.argv[1:], prog='landscape.render'); "
            "hwm = [int(v.split()[1]) for v in open('/proc/self/status') if v.startswith('VmHWM')][0]; "
            "print('peak', max(hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(rc)")
    t = time.time()
    r = subprocess.run([sys.executable, "-c", code, p, "--formats", "png", "--out", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "LANDSCAPE_MAX_POINTS": ""})
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert time.time() - t < 60
    peak_mb = int(r.stdout.split("peak ")[1]) / 1024
    assert 100 < peak_mb < 600, peak_mb  # measured: 390 MB
    assert ("note: " + p + ": The file's 10,000×10,000 grid is drawn from every 10th point of each axis "
            "(1,000×1,000)") in r.stdout
    assert os.path.getsize(tmp_path / "big_contour.png") > 10_000


def test_larger_grids_are_refused_as_too_large_not_damaged_and_the_bound_is_an_environment_variable(tmp_path,
                                                                                                   monkeypatch):
    p = str(tmp_path / "huge.h5")
    _declared(p, 100_000)
    with pytest.raises(LandscapeError, match=r"xcoordinates declares 100,000 values .* at most 10,001 are read "
                                             r"\(landscape grids have at most 10,001 points per axis\); the file is "
                                             r"too large, not damaged") as e:
        render_surface(p, str(tmp_path), "png")
    assert "delete" not in str(e.value)
    q = str(tmp_path / "mid.h5")
    _declared(q, 201)
    monkeypatch.setenv("LANDSCAPE_MAX_POINTS", "10000")
    notes = []
    render_surface(q, str(tmp_path), "html", notes=notes)
    assert notes == [f"{q}: The file's 201×201 grid is drawn from every 3rd point of each axis (67×67); "
                     "LANDSCAPE_MAX_POINTS sets how many points are read."]
    assert "drawn from every 3rd point" in (tmp_path / "mid.html").read_text(encoding="utf-8")
    monkeypatch.setenv("LANDSCAPE_MAX_POINTS", "lots")
    with pytest.raises(LandscapeError, match=r"LANDSCAPE_MAX_POINTS='lots' is not a number of grid points >= 4"):
        render_surface(q, str(tmp_path), "html")
    # a reader that wants every point (the Python API) is refused when the arrays would not fit in memory
    monkeypatch.setattr("landscape.surface.schema.mem_available", lambda: 10**9)
    with pytest.raises(LandscapeError, match=r"reading every point of its 10,000×10,000 grid needs 4.0 GB, 1.0 GB "
                                             r"is available"):
        _declared(p, 10_000)
        read_surface(p)


def test_declared_sizes_of_trajectories_movies_and_curves_are_checked_before_reading(real, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_MAX_POINTS", "1002001")  # the default on a machine with a GB free
    p = _copy(real, tmp_path)
    _replace(p, "trajectory/x", shape=(10**8,), dtype="f8", chunks=(10**5,))
    with pytest.raises(LandscapeError, match=r"trajectory/x declares 100,000,000 values .* at most 10,000 are read"):
        read_surface(p)
    m = _copy(real, tmp_path, "movie", "m")
    _replace(m, "steps", shape=(10**7,), dtype="i8", chunks=(10**5,))
    with pytest.raises(LandscapeError, match=r"steps declares 10,000,000 values .*a movie has at most 10,000 frames"):
        read_movie(m)
    m = _copy(real, tmp_path, "movie", "m2")
    for key in ("xcoordinates", "ycoordinates"):
        _replace(m, key, np.linspace(-1, 1, 101))
    for key in ("train_loss", "train_acc"):
        _replace(m, key, shape=(2000, 101, 101), dtype="f8", chunks=(1, 101, 101))
    _replace(m, "steps", np.arange(2000))
    with pytest.raises(LandscapeError, match=r"2,000 frames of a 101×101 grid are 20,402,000 values; an "
                                             r"animation reads at most 1,002,001 \(LANDSCAPE_MAX_POINTS\); the file "
                                             r"is too large"):
        read_movie(m)
    c = _copy(real, tmp_path, "curve", "c")
    _replace(c, "t", shape=(10**8,), dtype="f8", chunks=(10**5,))
    with pytest.raises(LandscapeError, match=r"t declares 100,000,000 values .* at most 10,000 are read"):
        read_path_file(c)
    c = _copy(real, tmp_path, "curve", "c2")
    _attr(c, "curve_train_barrier", "high")
    with pytest.raises(LandscapeError, match=r"attribute 'curve_train_barrier' is a string \('high'\); expected a "
                                             r"finite number"):
        read_path_file(c)


def test_movie_and_curve_text_is_drawn_literally(real, tmp_path, texts):
    m = _copy(real, tmp_path, "movie", "m")
    _attr(m, "settings", '{"arch": "' + MATH.replace("\\", "\\\\") + '<b>"}')
    render_animation([m], str(tmp_path), ("html",))
    layout = figure_json(str(tmp_path / "m.html"))[1]
    assert layout["annotations"][0]["text"] == MATH + "&lt;b&gt;"
    c = _copy(real, tmp_path, "curve", "c")
    _attr(c, "arch", MATH)
    _attr(c, "curve", "spline" * 50)  # not one landscape makes: named, cut, not a KeyError
    render_connect(c, str(tmp_path), "png")
    assert (f"{MATH}: curve against the straight line, tensors", False) in texts
    assert any(t.startswith("curve (splinesplinesplinesplinesplin…), train: barrier") for t, _ in texts)


def test_the_cli_says_one_line_and_exits_2(real, tmp_path):
    p = _copy(real, tmp_path)
    _attr(p, "n_samples", np.arange(3))
    r = subprocess.run([sys.executable, "-m", "landscape.render", p, "--out", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"landscape.render: error: {p!r}: attribute 'n_samples' is an array of shape (3,)")


# ------------------------------------------------------------------------------------------------------------------
# Fuzzing: random damage to real files, read and drawn in-process: only success or LandscapeError may come out.
VALUES = [lambda r: int(r.integers(-10, 10**6)), lambda r: float(r.choice([np.nan, np.inf, -1.0, 1e308, 2.5])),
          lambda r: bool(r.integers(0, 2)), lambda r: "".join(r.choice(list("ab$\\{}<>%&_\n\x00é"), 12)),
          lambda r: "x" * int(r.choice([101, 100_000])), lambda r: r.normal(size=int(r.integers(0, 4))),
          lambda r: np.arange(4).reshape(2, 2), lambda r: np.array(["a", "$b$", "<i>"], dtype=h5py.string_dtype()),
          lambda r: h5py.Empty("f8"), lambda r: np.bytes_(b"\xff$x$"), lambda r: '{"A": [1, "x"]}',
          lambda r: str(r.choice(["", "test", "train,test", ",,"]))]
TEXTS = [MATH, "<b>%{x}</b>", "$$", "$x^$", "line\nbreak", "\x00", "é" * 200_000]  # what figures show, hostile
ATTRS = ["arch", "dataset", "n_samples", "loss_cap", "split", "tolerance", "min_samples", "seed", "shown_attrs",
         "identity_attrs", "format_version", "refine", "direction_eigenvalues", "settings", "unit", "curve",
         "curve_train_barrier", "label", "marks", "custom"]


def _mutate(f: h5py.File, rng) -> None:
    names = []
    f.visit(names.append)
    arrays = [n for n in names if isinstance(f[n], h5py.Dataset) and f[n].size <= 10**5]
    what = rng.integers(0, 6)
    if what <= 1:  # an attribute replaced by a random type, value, huge string or array
        g = f["trajectory"] if "trajectory" in f and rng.random() < 0.3 else f
        key = str(rng.choice(ATTRS + list(g.attrs)))
        value = VALUES[int(rng.integers(0, len(VALUES)))](rng)
        if rng.random() < 0.4:  # text that titles, legends and pages show
            key, value = str(rng.choice(["arch", "dataset", "label"])), str(rng.choice(TEXTS))
        if key in g.attrs:
            del g.attrs[key]
        g.attrs[key] = value
    elif what == 2 and arrays:  # values: NaN, inf, -1, huge, subnormal
        ds = f[str(rng.choice(arrays))]
        a = np.array(ds[()])
        if a.dtype.kind == "f" and a.size:
            a.flat[rng.integers(0, a.size, max(1, a.size // 3))] = rng.choice([np.nan, np.inf, -1, 1e308, 5e-324])
            ds[...] = a
    elif what == 3 and arrays:  # resized, retyped or perturbed (coordinates swapped, repeated, stretched)
        key = str(rng.choice(arrays))
        a = np.array(f[key][()])
        op = rng.integers(0, 4)
        if op == 0:
            a = rng.normal(size=tuple(int(v) for v in rng.integers(0, 7, int(rng.integers(0, 4)))))
        elif op == 1 and a.size > 1 and a.dtype.kind == "f":
            a.flat[[0, -1]] = a.flat[[-1, 0]]
        elif op == 2:
            a = a.astype(str(rng.choice(["S4", "c16", "f2", "i1", "bool"])))
        elif a.dtype.kind in "fi":
            a = a * float(rng.choice([1e300, 1e-300, -1]))
        del f[key]
        f[key] = a
    elif what == 4 and names:  # deleted
        del f[str(rng.choice(names))]
    elif arrays:  # declared huge (chunks never written)
        key = str(rng.choice(arrays))
        shape = (int(rng.choice([20_000, 10**8])),) + tuple(f[key].shape[1:])
        del f[key]
        f.create_dataset(key, shape=shape, dtype="f8", chunks=True, fillvalue=1.0)


def test_fuzzed_files_are_drawn_or_refused_in_one_line(real, tmp_path):
    rng = np.random.default_rng(24)
    start, outcomes = time.time(), {"drawn": 0, "refused": 0}
    warnings.simplefilter("ignore")  # overflow in figures of 1e308 values is drawn (clipped), and warns
    for i in range(100):
        kind = str(rng.choice(["two", "two", "two", "two", "one", "one", "movie", "curve"]))
        p = _copy(real, tmp_path, kind, f"f{i}")
        with h5py.File(p, "r+", libver=("earliest", "latest")) as f:
            for _ in range(int(rng.integers(1, 4))):
                _mutate(f, rng)
        t = time.time()
        try:
            if kind == "movie":
                render_animation([p], str(tmp_path / "out"), ("html",))
            elif kind == "curve":
                render_connect(p, str(tmp_path / "out"), str(rng.choice(["png", "html"])))
            else:
                render_surface(p, str(tmp_path / "out"), str(rng.choice(["png", "html", "png,html", "vtp", "svg"])))
            outcomes["drawn"] += 1
        except LandscapeError as e:
            outcomes["refused"] += 1
            assert "\n" not in str(e) and len(str(e)) < 700, str(e)
        assert time.time() - t < 15, (i, kind)
        os.remove(p)
    assert outcomes["drawn"] >= 15 and outcomes["refused"] >= 40, outcomes  # both paths exercised
    assert time.time() - start < 90


def test_stored_directions_are_checked_before_they_are_read(tmp_path, monkeypatch):
    """A direction group (a surface file's own, the reference's direction file) is read only once its declared
    tensors are a group '0', '1', ... that fits in memory: a foreign file cannot make the reader allocate what it
    declares."""
    import landscape.surface.validate as V
    from landscape.surface import read_direction

    p = str(tmp_path / "d.h5")
    with h5py.File(p, "w") as f:
        f["xdirection/0"], f["xdirection/1"] = np.ones((3, 2), np.float32), np.ones(4, np.float32)
        f.create_dataset("ydirection/0", shape=(2 ** 34,), dtype="f4")  # declared, never written
        f["zdirection/0"], f["zdirection/2"] = np.ones(2, np.float32), np.ones(2, np.float32)
    monkeypatch.setattr(V, "mem_available", lambda: 8 * 2 ** 30)
    with h5py.File(p, "r") as f:
        x, names = read_direction(f, "xdirection")
        assert [a.shape for a in x] == [(3, 2), (4,)] and names is None
        with pytest.raises(LandscapeError, match=r"declare 64\.0 GiB, more than half the memory available"):
            read_direction(f, "ydirection")
        with pytest.raises(LandscapeError, match=r"must hold datasets '0'..'1'"):
            read_direction(f, "zdirection")
