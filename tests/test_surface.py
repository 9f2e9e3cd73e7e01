import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from landscape.errors import LandscapeError
from procs import done_points, wait_for_points
from landscape.surface import (SurfaceWriter, compute_surface, grid_coords, parse_grid, read_surface, summarize)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def test_parse_grid():
    np.testing.assert_array_equal(parse_grid("-1:1:5"), [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_array_equal(parse_grid("0:0:1"), [0.0])
    for bad in ["-1:1", "1:-1:5", "0:0:0", "a:b:c", "-1:1:0", "-1:1:100000000", "-1:1:2.5", "nan:1:3", "0:1:1"]:
        with pytest.raises(LandscapeError, match="MIN:MAX:NUM"):
            parse_grid(bad)


def test_grid_layout_is_the_references():
    x, y = np.array([0.0, 1.0, 2.0]), np.array([10.0, 20.0])
    c = grid_coords(x, y)
    # value at (x_j, y_i) lives at [i, j]; flat index i*nx + j
    assert tuple(c[1 * 3 + 2]) == (2.0, 20.0)


def _settings(**kw):
    s = {"arch": "resnet20", "ckpt_sha256": "abc", "dataset": "digits", "split": "train", "n_samples": 10,
         "norm": "filter", "ignore": "biasbn", "dir_type": "weights", "seed": 1, "directions": "random",
         "precision": "fp32", "bn_mode": "eval", "loss": "cross_entropy"}
    s.update(kw)
    return s


DIRS = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4, dtype=np.float32)]


def _fake_eval(calls):
    def ev(coords):
        calls.extend(map(tuple, coords))
        return [float(a * 10 + b) for a, b in coords], [float(50 + a) for a, b in coords]
    return ev


def test_hdf5_round_trip_is_exact(tmp_path):
    p = str(tmp_path / "s.h5")
    x, y = parse_grid("-1:1:5"), parse_grid("-0.5:0.5:3")
    with SurfaceWriter(p, x, y, _settings(), DIRS, DIRS, ["a.weight", "a.bias"]) as w:
        compute_surface(w, _fake_eval([]), block_size=4, progress=False)
    s = read_surface(p)
    xx, yy = np.meshgrid(x, y)
    np.testing.assert_array_equal(s.values["train_loss"], xx * 10 + yy)
    np.testing.assert_array_equal(s.values["train_acc"], 50 + xx)
    assert s.values["train_loss"].dtype == np.float64 and s.attrs["seed"] == 1 and s.attrs["format_version"] == 1
    with h5py.File(p) as f:
        assert f["train_done"][()].all() and f["xdirection"].attrs["names"][1] == "a.bias"
        np.testing.assert_array_equal(f["ydirection/0"][()], DIRS[0])
    assert summarize(s)["centre_loss"] == 0.0


def test_resume_computes_only_missing_points(tmp_path):
    p = str(tmp_path / "s.h5")
    x, y = parse_grid("-1:1:4"), parse_grid("-1:1:3")

    def crashing(coords, _n=[0]):
        _n[0] += 1
        if _n[0] == 3:
            raise RuntimeError("killed")
        return _fake_eval([])(coords)

    with pytest.raises(RuntimeError):
        with SurfaceWriter(p, x, y, _settings(), DIRS, DIRS) as w:
            compute_surface(w, crashing, block_size=2, progress=False)
    with h5py.File(p) as f:
        assert f["train_done"][()].sum() == 4
    calls = []
    with SurfaceWriter(p, x, y, _settings()) as w:
        assert compute_surface(w, _fake_eval(calls), block_size=2, progress=False) == 8
    assert len(calls) == 8
    full = str(tmp_path / "full.h5")
    with SurfaceWriter(full, x, y, _settings(), DIRS, DIRS) as w:
        compute_surface(w, _fake_eval([]), progress=False)
    np.testing.assert_array_equal(read_surface(p).values["train_loss"], read_surface(full).values["train_loss"])


@pytest.mark.parametrize("change", [{"seed": 2}, {"precision": "bf16"}, {"ckpt_sha256": "other"}, "grid"])
def test_resume_with_other_settings_is_an_error(tmp_path, change):
    p = str(tmp_path / "s.h5")
    x = parse_grid("-1:1:3")
    SurfaceWriter(p, x, x, _settings(), DIRS, DIRS).close()
    with pytest.raises(LandscapeError, match="different settings"):
        if change == "grid":
            SurfaceWriter(p, parse_grid("-1:1:5"), x, _settings())
        else:
            SurfaceWriter(p, x, x, _settings(**change))


def test_reference_surface_file_reads(tmp_path):
    p = str(tmp_path / "ref.h5")
    x = np.linspace(-1, 1, 3)
    with h5py.File(p, "w") as f:
        f["xcoordinates"], f["ycoordinates"] = x, x
        loss = -np.ones((3, 3))
        loss.ravel()[:5] = [1, 2, 3, 4, 5]
        f["train_loss"], f["train_acc"] = loss, loss
    s = read_surface(p)
    assert s.values["train_loss"][1, 1] == 5 and np.isnan(s.values["train_loss"][2, 2])


def test_foreign_and_corrupt_files(tmp_path):
    p = tmp_path / "foreign.h5"
    with h5py.File(p, "w") as f:
        f["data"] = [1, 2]
    with pytest.raises(LandscapeError, match="not a loss surface"):
        read_surface(str(p))
    q = tmp_path / "corrupt.h5"
    q.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(500))
    with pytest.raises(LandscapeError, match="not a readable HDF5"):
        read_surface(str(q))
    x = parse_grid("-1:1:3")
    with pytest.raises(LandscapeError, match="not a surface file written by landscape"):
        SurfaceWriter(str(p), x, x, _settings())


KILL_ARGS = ["--x", "-1:1:8", "--y", "-1:1:6", "--samples", "600", "--batch-size", "600", "--no-render", "--quiet",
             "--device", "cpu"]


def _plot_cmd(ckpt, out):
    return [sys.executable, "-m", "landscape.plot", "--ckpt", ckpt, *KILL_ARGS, "--out", str(out)]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """An uninterrupted run to compare killed-and-resumed runs with."""
    from conftest import make_model
    from landscape.checkpoints import save_checkpoint

    d = tmp_path_factory.mktemp("clean")
    ckpt = str(d / "r20.pt")
    save_checkpoint(ckpt, make_model(), "resnet20", dataset="digits")
    r = subprocess.run(_plot_cmd(ckpt, d / "out"), cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return ckpt, read_surface(str(d / "out" / "r20.h5"))


@pytest.mark.parametrize("moment", ["start", "early", "late"])
def test_killed_run_resumes_and_fills_only_missing_points(tmp_path, clean_run, moment):
    """SIGKILL a real run (right after start-up, early, late); the file still opens, every point marked done
    holds its correct value, and the re-run computes only what is missing and equals the clean run."""
    ckpt, clean = clean_run
    out = tmp_path / "killed"
    h5 = out / "r20.h5"
    want = {"start": 0, "early": 3, "late": 35}[moment]
    proc = subprocess.Popen(_plot_cmd(ckpt, out), cwd=ROOT, env=_env())
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if moment == "start":
            if h5.exists() or time.time() > deadline - 117:  # ~3 s: during start-up or file creation
                break
            continue
        if done_points(h5) >= want:
            break
    assert proc.poll() is None, "run finished before it could be killed; grid too small"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_done = 0
    if h5.exists():
        s = read_surface(str(h5))
        mask = s.done["train"]
        killed_done = int(mask.sum())
        np.testing.assert_array_equal(s.values["train_loss"][mask], clean.values["train_loss"][mask])
        np.testing.assert_array_equal(s.values["train_acc"][mask], clean.values["train_acc"][mask])
    assert killed_done >= want and killed_done < 48
    r = subprocess.run(_plot_cmd(ckpt, out), cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"computed {48 - killed_done} in" in r.stdout
    resumed = read_surface(str(h5))
    np.testing.assert_array_equal(resumed.values["train_loss"], clean.values["train_loss"])
    np.testing.assert_array_equal(resumed.values["train_acc"], clean.values["train_acc"])
    assert not [p for p in os.listdir(out) if ".tmp" in p or p.endswith(".lock")]


def test_row_segments_cover_exactly_the_indices():
    from landscape.surface.grid import row_segments

    # a run across rows: the end of row 0, rows 1-3 whole, the start of row 4 (5 x 4 grid)
    assert row_segments(np.arange(3, 17), (5, 4)) == [(0, slice(3, 4)), (slice(1, 4), slice(0, 4)),
                                                      (4, slice(0, 1))]
    assert row_segments(np.array([9, 2, 3, 10]), (7,)) == [(slice(2, 4),), (slice(9, 11),)]
    rng = np.random.default_rng(0)
    for shape in [(7,), (5, 4), (3, 1), (1, 6)]:
        n = int(np.prod(shape))
        for _ in range(100):
            idx = rng.choice(n, size=rng.integers(0, n + 1), replace=False)
            hit = np.zeros(shape, dtype=int)
            for sel in row_segments(idx, shape):
                hit[sel] += 1
            want = np.zeros(n, dtype=int)
            want[idx] = 1
            np.testing.assert_array_equal(hit.reshape(-1), want)


def _wchar() -> int:
    import re

    return int(re.search(r"wchar: (\d+)", open("/proc/self/io").read()).group(1))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux's per-process I/O counters")
def test_a_block_writes_only_its_own_points(tmp_path):
    """The bytes a finished block sends to the file do not grow with the grid: 16 points write 16 losses,
    16 accuracies and 16 flags (272 bytes), on an 11 x 11 grid as on a 401 x 401 one."""
    per_grid = []
    for n in (11, 401):
        x = parse_grid(f"-1:1:{n}")
        with SurfaceWriter(str(tmp_path / f"s{n}.h5"), x, x, _settings(), DIRS, DIRS) as w:
            todo = w.pending()
            sizes = []
            for k in range(3):  # blocks that start mid-row and cross a row's end
                idx = todo[n + 5 + 16 * k: n + 5 + 16 * (k + 1)]
                before = _wchar()
                w.write_block(idx, np.arange(16.0) + k, np.full(16, 50.0))
                sizes.append(_wchar() - before)
        per_grid.append(max(sizes))
        s = read_surface(str(tmp_path / f"s{n}.h5"))
        loss = s.values["train_loss"].reshape(-1)
        np.testing.assert_array_equal(loss[todo[n + 5:n + 53]], np.concatenate([np.arange(16.0) + k
                                                                               for k in range(3)]))
        assert np.isnan(loss).sum() == n * n - 48 and s.done["train"].sum() == 48
    assert per_grid[0] == per_grid[1] and per_grid[0] <= 1024, per_grid


def _fail_on_write(monkeypatch, nth: int, err: int = 28):
    """Make the ``nth`` HDF5 dataset write from now on (1-based) fail as a full disk does."""
    import errno as _errno

    real = h5py.Dataset.__setitem__
    calls = [0]

    def setitem(self, key, value):
        calls[0] += 1
        if calls[0] == nth:
            raise OSError(err, f"Can't synchronously write data (errno = {err}, error message = "
                               f"'{os.strerror(err)}')\nsecond line of HDF5 noise")
        return real(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", setitem)
    return _errno.errorcode[err]


@pytest.mark.parametrize("nth", [1, 2, 3])  # the loss, the accuracy, the done flags
def test_a_failed_block_write_is_one_line_and_resumable(tmp_path, monkeypatch, nth):
    p = str(tmp_path / "s.h5")
    x, y = parse_grid("-1:1:4"), parse_grid("-1:1:3")
    w = SurfaceWriter(p, x, y, _settings(), DIRS, DIRS)
    ev = _fake_eval([])
    todo = w.pending()
    w.write_block(todo[:4], *ev(grid_coords(x, y)[todo[:4]]))
    name = _fail_on_write(monkeypatch, nth)
    with pytest.raises(LandscapeError) as e:
        w.write_block(todo[4:8], *ev(grid_coords(x, y)[todo[4:8]]))
    w.close()
    monkeypatch.undo()
    msg = str(e.value)
    assert "\n" not in msg and repr(p) in msg and f"No space left on device ({name})" in msg, msg
    assert "run the same command again" in msg
    assert not os.path.exists(p + ".lock")
    s = read_surface(p)  # still a readable surface: the 4 points before the failure, none marked done after
    assert s.done["train"].sum() == 4
    with SurfaceWriter(p, x, y, _settings()) as w2:
        assert compute_surface(w2, _fake_eval([]), block_size=3, progress=False) == 8
    xx, yy = np.meshgrid(x, y)
    np.testing.assert_array_equal(read_surface(p).values["train_loss"], xx * 10 + yy)


@pytest.mark.parametrize("err,when", [(28, "write"), (5, "write"), (30, "open"), (13, "open")])
def test_a_failed_creation_leaves_no_file(tmp_path, monkeypatch, err, when):
    """ENOSPC/EIO half-way through writing the new file out, EROFS/EACCES when opening it: one line naming the
    file and the cause, and nothing left behind (no file under the final name, no temporary file, no lock)."""
    import errno as _errno

    import landscape.paths as paths

    class Failing:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            self.f.write(bytes(b)[:1000])
            raise OSError(err, os.strerror(err))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    real = paths._open_temp

    def fake_open(name, *a, **kw):
        if when == "open":
            raise OSError(err, os.strerror(err), name)
        f, tmp = real(name, *a, **kw)
        return Failing(f), tmp

    p = str(tmp_path / "s.h5")
    x = parse_grid("-1:1:3")
    monkeypatch.setattr(paths, "_open_temp", fake_open)
    with pytest.raises(LandscapeError) as e:
        SurfaceWriter(p, x, x, _settings(), DIRS, DIRS)
    monkeypatch.undo()
    msg = str(e.value)
    assert msg.startswith(f"cannot write {p!r}: {os.strerror(err)} ({_errno.errorcode[err]})") and "\n" not in msg
    assert os.listdir(tmp_path) == []


def test_sigterm_stops_after_the_block_and_resumes_to_the_clean_values(tmp_path, clean_run):
    """SIGTERM (what Slurm and Kubernetes send first) mid-run: exit 143, one line saying how many points are
    saved and the command that resumes, no lock; that command completes to the uninterrupted surface."""
    ckpt, clean = clean_run
    out = tmp_path / "term"
    h5 = out / "r20.h5"
    proc = subprocess.Popen(_plot_cmd(ckpt, out), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_points(h5, proc, 5, timeout=120)
    assert proc.poll() is None, "run finished before it could be stopped; grid too small"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()
    saved = int(read_surface(str(h5)).done["train"].sum())
    assert len(lines) == 1 and lines[0].startswith(
        f"landscape.plot: stopped by SIGTERM after the block in flight: {saved} of 48 points are saved in "), err
    assert 5 <= saved < 48 and not os.path.exists(str(h5) + ".lock")
    cmd = lines[0].split("; to resume, run: ")[1]
    assert cmd.split()[:3] == ["python", "-m", "landscape.plot"]
    r = subprocess.run([sys.executable, *cmd.split()[1:]], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"computed {48 - saved} in" in r.stdout
    resumed = read_surface(str(h5))
    np.testing.assert_array_equal(resumed.values["train_loss"], clean.values["train_loss"])
    np.testing.assert_array_equal(resumed.values["train_acc"], clean.values["train_acc"])
