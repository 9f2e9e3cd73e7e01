"""Bad input never crashes with a traceback nor damages an existing file; numerics; the one-writer lock;
torchrun scale-out; fuzzing of grid specs and of corrupted surface and checkpoint files."""

import hashlib
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_model
from procs import kill_torchrun_and_resume, wait_for_points
from landscape.checkpoints import load_checkpoint, save_checkpoint
from landscape.cli import run
from landscape.errors import LandscapeError
from landscape.plot import main
from landscape.surface import FileLock, parse_grid, read_surface

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BASE = ["--x", "-1:1:3", "--y", "-1:1:3", "--samples", "40", "--quiet", "--no-render", "--device", "cpu"]


def _sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


@pytest.fixture
def env(tmp_path, ckpt):
    """An output folder that already holds a finished surface 'good.h5' that no bad command may touch."""
    out = tmp_path / "out"
    assert main(["--ckpt", ckpt, *BASE, "--out", str(out), "--name", "good"]) == 0
    return {"ckpt": ckpt, "out": out, "good": out / "good.h5", "sha": _sha(out / "good.h5"), "tmp": tmp_path}


def _bad(env, capsys, args, needle, name="good", held_lock=False):
    argv = ["--ckpt", env["ckpt"], *BASE, "--out", str(env["out"]), "--name", name]
    # later flags win in argparse, so `args` override the defaults above
    rc = run(main, argv + args, prog="landscape.plot")
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err, err
    assert _sha(env["good"]) == env["sha"]  # the existing surface is untouched
    assert held_lock or not os.path.exists(str(env["good"]) + ".lock")  # no lock left behind
    return err


def _ckpt_file(env, content):
    p = env["tmp"] / "bad.pt"
    p.write_bytes(content)
    return str(p)


def test_missing_checkpoint(env, capsys):
    _bad(env, capsys, ["--ckpt", str(env["tmp"] / "absent.pt")], "checkpoint not found")


def test_empty_checkpoint(env, capsys):
    _bad(env, capsys, ["--ckpt", _ckpt_file(env, b"")], "is empty")


def test_truncated_checkpoint(env, capsys):
    data = open(env["ckpt"], "rb").read()
    _bad(env, capsys, ["--ckpt", _ckpt_file(env, data[: len(data) // 3])], "truncated or corrupt")


def test_random_byte_checkpoint(env, capsys):
    _bad(env, capsys, ["--ckpt", _ckpt_file(env, np.random.RandomState(0).bytes(5000))], "truncated or corrupt")


def test_pickled_whole_model_refused(env, capsys):
    p = env["tmp"] / "whole.pt"
    torch.save(make_model(), p)
    _bad(env, capsys, ["--ckpt", str(p), "--arch", "resnet20"], "--trust-checkpoint")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


def test_code_payload_not_run(env, capsys, monkeypatch):
    monkeypatch.chdir(env["tmp"])
    p = env["tmp"] / "evil.pt"
    torch.save({"state_dict": make_model().state_dict(), "arch": "resnet20", "x": _Payload()}, p)
    _bad(env, capsys, ["--ckpt", str(p)], "refused without running anything")
    assert not (env["tmp"] / "PWNED_BY_CHECKPOINT").exists()


def test_architecture_mismatch_lists_keys(env, capsys):
    err = _bad(env, capsys, ["--arch", "plain20"], "unexpected keys")
    assert "layer2.0.shortcut.0.weight" in err


def test_wrong_number_of_classes(env, capsys):
    torch.manual_seed(0)
    from landscape.models import create_model

    p = str(env["tmp"] / "five.pt")
    save_checkpoint(p, create_model("resnet20", num_classes=5, in_channels=1), "resnet20")
    _bad(env, capsys, ["--ckpt", p], "classifier has 5")


@pytest.mark.parametrize("grid,needle", [("-1:1", "expected 3 fields"), ("1:-1:5", "MIN must be below MAX"),
                                         ("0:0:0", "NUM must be between"), ("a:b:c", "must be numbers"),
                                         ("-1:1:0", "NUM must be between"), ("-1:1:99999999", "NUM must be between")])
def test_malformed_grid(env, capsys, grid, needle):
    _bad(env, capsys, ["--x", grid], needle)


def test_data_directory_with_missing_file(env, capsys):
    from test_data import _write_cifar

    _write_cifar(env["tmp"] / "cifar")
    (env["tmp"] / "cifar" / "data_batch_4").unlink()
    _bad(env, capsys, ["--data", f"cifar10:{env['tmp'] / 'cifar'}"], "data_batch_4")


def test_data_directory_with_corrupt_file(env, capsys):
    from test_data import _write_cifar

    _write_cifar(env["tmp"] / "cifar")
    (env["tmp"] / "cifar" / "data_batch_2").write_bytes(b"\x80\x04garbage")
    _bad(env, capsys, ["--data", f"cifar10:{env['tmp'] / 'cifar'}"], "corrupt CIFAR-10 file")


def test_corrupt_surface_file(env, capsys):
    bad = env["out"] / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 300)
    sha = _sha(bad)
    _bad(env, capsys, [], "not a readable HDF5 file", name="bad")
    assert _sha(bad) == sha


def test_foreign_hdf5_file(env, capsys):
    foreign = env["out"] / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["weights"] = np.arange(3)
    sha = _sha(foreign)
    _bad(env, capsys, [], "not a surface file written by landscape", name="foreign")
    assert _sha(foreign) == sha


def test_resume_with_different_settings(env, capsys):
    err = _bad(env, capsys, ["--seed", "9"], "cannot resume")
    assert "seed: file has 123, this run 9" in err


def test_unwritable_output_folder(env, capsys):
    blocker = env["tmp"] / "a_file"
    blocker.write_text("x")
    _bad(env, capsys, ["--out", str(blocker / "sub")], "cannot create output folder")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu(env, capsys):
    _bad(env, capsys, ["--device", "cuda"], "no CUDA GPU")


def test_second_writer_is_refused(env, capsys):
    lock = FileLock(str(env["good"]))
    lock.acquire()
    try:
        err = _bad(env, capsys, ["--x", "-1:1:3"], "being written by another process", held_lock=True)
        assert str(os.getpid()) in err
    finally:
        lock.release()
    assert main(["--ckpt", env["ckpt"], *BASE, "--out", str(env["out"]), "--name", "good"]) == 0  # free again


def test_overflowing_points_are_recorded_and_drawn_as_gaps(tmp_path, ckpt):
    out = tmp_path / "o"
    rc = main(["--ckpt", ckpt, "--1d", "--x", "-1e30:1e30:5", "--samples", "30", "--quiet", "--out", str(out), "--device",
               "cpu", "--formats", "png,html,vtp"])
    assert rc == 0
    with h5py.File(out / "r20_1d.h5") as f:
        loss, done = f["train_loss"][()], f["train_done"][()]
    assert done.all() and np.isfinite(loss[2]) and not np.isfinite(loss[0]) and not np.isfinite(loss[4])
    s = read_surface(str(out / "r20_1d.h5"))
    from landscape.surface import summarize

    summ = summarize(s)
    assert summ["done"] == 5 and summ["diverged"] >= 2


def test_torchrun_two_cpu_ranks_equal_one_process(tmp_path, ckpt):
    args = ["-m", "landscape.plot", "--ckpt", ckpt, "--x", "-1:1:5", "--y", "-1:1:3", "--samples", "100",
            "--quiet", "--no-render", "--device", "cpu"]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          *args, "--out", str(tmp_path / "two")], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("surface:") == 1  # rank 0 alone reports
    with h5py.File(tmp_path / "one" / "r20.h5") as a, h5py.File(tmp_path / "two" / "r20.h5") as b:
        np.testing.assert_array_equal(a["train_loss"][()], b["train_loss"][()])
        np.testing.assert_array_equal(a["train_acc"][()], b["train_acc"][()])
        assert b["train_done"][()].all() and b.attrs["device"] == "cpu x2 ranks"


# ---------------------------------------------------------------- fuzzing (bounded: well under a minute)

# derandomize: CI runs the same examples every time (a fuzz failure is then reproducible, never flaky).
FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
number = st.one_of(st.integers(-5, 5).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.text(max_size=4))


@FUZZ
@given(st.one_of(st.text(max_size=20), st.tuples(number, number, number).map(":".join),
                 st.tuples(number, number, st.integers(-3, 20_000).map(str)).map(":".join)))
def test_fuzz_grid_specs(spec):
    try:
        g = parse_grid(spec)
    except LandscapeError:
        return
    lo, hi, num = spec.split(":")
    assert len(g) == int(num) and g[0] == float(lo) and g[-1] == float(hi) and np.all(np.diff(g) > 0)


@pytest.fixture(scope="module")
def good_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    ck = str(d / "c.pt")
    save_checkpoint(ck, make_model(), "resnet20")
    surf = str(d / "s.h5")
    from test_render import _surface

    _surface(surf, nx=5, ny=4)
    return open(ck, "rb").read(), open(surf, "rb").read()


def _corrupt(factory, name: str, data: bytes, cuts: list, truncate: int | None) -> str:
    """Write ``data`` with bytes overwritten at ``cuts`` and cut at ``truncate``; returns the file's path."""
    b = bytearray(data)
    for pos, val in cuts:
        b[pos % len(b)] = val
    p = factory.mktemp("fuzz") / name
    p.write_bytes(bytes(b[:truncate] if truncate is not None else b))
    return str(p)


edits = st.lists(st.tuples(st.integers(0, 10 ** 7), st.integers(0, 255)), min_size=1, max_size=12)


@FUZZ
@given(edits, st.one_of(st.none(), st.integers(0, 4000)))
def test_fuzz_corrupted_surface_files(good_files, tmp_path_factory, cuts, truncate):
    try:
        s = read_surface(_corrupt(tmp_path_factory, "s.h5", good_files[1], cuts, truncate))
    except LandscapeError:
        return
    # a flipped byte may rename a dataset (still a valid file); whatever is read must be a consistent grid
    assert s.values and all(v.shape == (len(s.ycoordinates), len(s.xcoordinates)) for v in s.values.values())


@FUZZ
@given(edits, st.one_of(st.none(), st.integers(0, 2_000_000)))
def test_fuzz_corrupted_checkpoints(good_files, tmp_path_factory, cuts, truncate):
    try:
        model, info = load_checkpoint(_corrupt(tmp_path_factory, "c.pt", good_files[0], cuts, truncate))
    except LandscapeError:
        return
    assert info["arch"] == "resnet20"


def test_killed_torchrun_job_resumes(tmp_path, ckpt):
    """kill -9 the whole torchrun job mid-surface; re-running the same torchrun command finishes it, and the
    result equals a single-process run."""
    args = ["-m", "landscape.plot", "--ckpt", ckpt, "--x", "-1:1:8", "--y", "-1:1:5", "--samples", "400",
            "--batch-size", "400", "--quiet", "--no-render", "--device", "cpu"]
    h5, one = kill_torchrun_and_resume(tmp_path, args, points=6, total=40)
    with h5py.File(one) as a, h5py.File(h5) as b:
        np.testing.assert_array_equal(a["train_loss"][()], b["train_loss"][()])


def test_sigterm_to_torchrun_stops_every_rank_after_the_round(tmp_path, ckpt):
    """SIGTERM to torchrun (which passes it to its workers): every rank stops after the same round, rank 0 writes
    it and says how many points are saved, both exit 143 well before torchrun's 30 s grace ends, no lock is
    left, and the file resumes."""
    import signal
    import time

    args = ["-m", "landscape.plot", "--ckpt", ckpt, "--x", "-1:1:8", "--y", "-1:1:5", "--samples", "400",
            "--batch-size", "400", "--quiet", "--no-render", "--device", "cpu", "--out", str(tmp_path / "two")]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    h5 = tmp_path / "two" / "r20.h5"
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_points(h5, proc, 4)
    assert proc.poll() is None, "job finished before it could be stopped"
    t = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert time.time() - t < 20, "the workers did not stop by themselves (torchrun killed them)"
    saved = int(read_surface(str(h5)).done["train"].sum())
    assert saved % 2 == 0 and 4 <= saved < 40  # whole rounds: one block from each rank
    assert err.count("stopped by SIGTERM after the block in flight") == 1, err[-3000:]  # rank 0 speaks for all
    assert f"{saved} of 40 points are saved" in err and "to resume, run: the same torchrun command again" in err
    assert "Unable to shutdown process" not in err and not os.path.exists(str(h5) + ".lock")
    again = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and f"computed {40 - saved} in" in again.stdout, again.stderr


def test_surface_file_that_crashes_hdf5_is_a_clear_error(tmp_path, ckpt, capsys):
    """A corrupted surface file (found by fuzzing) on which the HDF5 C library segfaults: reading it, drawing
    it and resuming onto it are one-line errors, not a dead process."""
    src = os.path.join(os.path.dirname(__file__), "data", "segfaults_hdf5.h5")
    bad = tmp_path / "out" / "bad.h5"
    bad.parent.mkdir()
    shutil.copy(src, bad)
    crash = subprocess.run([sys.executable, "-c", f"import h5py; f = h5py.File({str(bad)!r}, 'r'); dict(f.attrs)"],
                           capture_output=True)
    # With this HDF5 build the file kills a plain reader; a later build may just reject it. Either way: an error.
    with pytest.raises(LandscapeError, match="the HDF5 library crashed" if crash.returncode < 0 else "damaged|not a readable"):
        read_surface(str(bad))
    rc = run(main, ["--ckpt", ckpt, *BASE, "--out", str(bad.parent), "--name", "bad"], prog="landscape.plot")
    assert rc == 2 and "damaged HDF5 file" in capsys.readouterr().err
    from landscape.render.__main__ import main as render_main

    assert run(render_main, [str(bad)], prog="landscape.render") == 2


# ---------------------------------------------------------------- a real full disk (a small tmpfs, where we may mount)

@pytest.fixture
def small_disk(tmp_path):
    """``resize(bytes)`` -> a folder on a tmpfs of that size (remounted on each call); skipped where mounting is
    not allowed (not root, or a container without the capability). The injected-error tests cover the same
    write sites everywhere."""
    d = tmp_path / "disk"
    d.mkdir()
    mounted = []

    def resize(size: int, ro: bool = False):
        opts = f"size={max(size, 4096)}" + (",ro" if ro else "")
        cmd = ["mount", "-o", f"remount,{opts}", str(d)] if mounted else ["mount", "-t", "tmpfs", "-o", opts,
                                                                          "tmpfs", str(d)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            if not mounted:
                pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()[:80]})")
            raise RuntimeError(r.stderr)
        mounted.append(True)
        return d

    yield resize
    if mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def _one_line_error(capsys, rc, needle):
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err, err
    return err


def test_full_disk_when_creating_the_surface_file(small_disk, ckpt, capsys):
    out = small_disk(256 * 1024)  # the directions alone need ~2 MB
    rc = run(main, ["--ckpt", ckpt, *BASE, "--out", str(out)], prog="landscape.plot")
    err = _one_line_error(capsys, rc, "No space left on device (ENOSPC)")
    assert repr(str(out / "r20.h5")) in err
    assert os.listdir(out) == []  # no surface file, no temporary file, no lock


def test_full_disk_when_drawing_then_resume_with_space(small_disk, ckpt, capsys, tmp_path):
    """Room for the surface and the PNGs but not the page: one line naming the page, every file under its final
    name whole; with space, the same command computes nothing more and draws the rest."""
    probe = tmp_path / "probe"
    assert main(["--ckpt", ckpt, *BASE, "--out", str(probe)]) == 0
    capsys.readouterr()
    room = os.path.getsize(probe / "r20.h5") + 2 * 1024 * 1024  # the PNGs fit; the page's plotly.js (4.6 MB) not
    out = small_disk(room)
    argv = ["--ckpt", ckpt, *[a for a in BASE if a != "--no-render"], "--out", str(out)]
    rc = run(main, argv, prog="landscape.plot")
    _one_line_error(capsys, rc, f"cannot write {str(out / 'r20.html')!r}: No space left on device (ENOSPC)")
    assert sorted(os.listdir(out)) == ["r20.h5", "r20_contour.png", "r20_contourf.png", "r20_heatmap.png",
                                       "r20_surface3d.png"]
    s = read_surface(str(out / "r20.h5"))
    assert s.done["train"].all()
    for f in os.listdir(out):
        if f.endswith(".png"):
            from PIL import Image

            Image.open(out / f).load()  # whole
    small_disk(room + 8 * 1024 * 1024)
    assert run(main, argv, prog="landscape.plot") == 0
    assert "computed 0 in" in capsys.readouterr().out
    assert (out / "r20.html").exists() and not [f for f in os.listdir(out) if ".tmp" in f or f.endswith(".lock")]


def test_full_and_read_only_disk_for_snapshots_and_outputs(small_disk, ckpt, capsys):
    out = small_disk(64 * 1024)
    with pytest.raises(LandscapeError, match=r"cannot write .*epoch_001\.pt'.*\(ENOSPC\)"):
        save_checkpoint(str(out / "epoch_001.pt"), load_checkpoint(ckpt)[0], "resnet20")
    assert os.listdir(out) == []
    small_disk(64 * 1024, ro=True)
    rc = run(main, ["--ckpt", ckpt, *BASE, "--out", str(out)], prog="landscape.plot")
    _one_line_error(capsys, rc, "is not writable")


def test_full_disk_while_recording_a_block(small_disk):
    """The disk fills up under a running surface: HDF5's own write of a block fails (the block's bytes fall in a
    hole punched in the file, which needs new space). One line; the file stays readable with every point
    recorded before; with space again the run resumes and completes."""
    import ctypes

    from landscape.surface import SurfaceWriter, compute_surface
    from test_surface import DIRS, _fake_eval, _settings

    out = small_disk(4 * 1024 * 1024)
    p = str(out / "s.h5")
    x = parse_grid("-1:1:101")
    with SurfaceWriter(p, x, x, _settings(), DIRS, DIRS) as w:
        compute_surface(w, _fake_eval([]), block_size=50, progress=False, todo=w.pending()[:100],
                        grid=(x, x))
    with h5py.File(p, "r") as f:
        off, size = f["train_loss"].id.get_offset(), f["train_loss"].id.get_storage_size()
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(p, os.O_RDWR)
    try:  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE over the part of train_loss not yet computed
        if libc.fallocate(fd, 3, ctypes.c_long(off + 4096), ctypes.c_long(size - 4096)) != 0:
            pytest.skip("this tmpfs cannot punch holes")
    finally:
        os.close(fd)
    with open(out / "filler", "wb") as f:
        with pytest.raises(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    with pytest.raises(LandscapeError) as e:
        with SurfaceWriter(p, x, x, _settings()) as w:
            compute_surface(w, _fake_eval([]), block_size=50, progress=False)
    assert str(e.value).startswith(f"cannot record 50 finished points in {p!r}: No space left on device (ENOSPC)")
    assert not os.path.exists(p + ".lock")
    done = int(read_surface(p).done["train"].sum())
    assert 100 <= done < 101 * 101
    os.remove(out / "filler")
    with SurfaceWriter(p, x, x, _settings()) as w:
        assert compute_surface(w, _fake_eval([]), block_size=50, progress=False) == 101 * 101 - done
    xx, yy = np.meshgrid(x, x)
    np.testing.assert_array_equal(read_surface(p).values["train_loss"], xx * 10 + yy)
