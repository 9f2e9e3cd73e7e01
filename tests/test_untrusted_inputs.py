"""Shared folders and hostile input: planted links are never followed, names stay inside --out, flags that would
overflow or draw nothing are refused at the door, and an allocation failure or a lost torchrun peer mid-run is one
line with the command that resumes, every finished point kept."""

import os
import stat

import h5py
import numpy as np
import pytest
import torch

from landscape.cli import failure_kind, run
from landscape.errors import LandscapeError
from landscape.paths import atomic_open, atomic_path, check_name
from landscape.plot import main
from landscape.render.__main__ import main as render_main
from landscape.surface import FileLock

BASE = ["--x", "-1:1:3", "--y", "-1:1:3", "--samples", "40", "--quiet", "--no-render", "--device", "cpu"]


def _one_line_error(capsys, rc, needle):
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err, err
    return err


@pytest.fixture
def victim(tmp_path):
    p = tmp_path / "victim.txt"
    p.write_text("precious\n")
    return p


@pytest.fixture
def surface(tmp_path, ckpt):
    out = tmp_path / "surface"
    assert main(["--ckpt", ckpt, *BASE, "--out", str(out), "--name", "s"]) == 0
    return out / "s.h5"


# ------------------------------------------------------------------------------------------------- planted links

def test_a_lock_planted_as_a_link_is_refused_and_its_target_untouched(tmp_path, victim, ckpt, capsys):
    out = tmp_path / "shared"
    out.mkdir()
    os.symlink(victim, out / "s.h5.lock")
    rc = run(main, ["--ckpt", ckpt, *BASE, "--out", str(out), "--name", "s"], prog="landscape.plot")
    _one_line_error(capsys, rc, "is a symbolic link, which this tool never makes")
    assert victim.read_text() == "precious\n" and not (out / "s.h5").exists()
    os.unlink(out / "s.h5.lock")
    os.link(victim, out / "s.h5.lock")  # a hard link: writing our pid would write into the victim
    with pytest.raises(LandscapeError, match="not a plain file of its own"):
        FileLock(str(out / "s.h5")).acquire()
    assert victim.read_text() == "precious\n"


def test_links_planted_at_temporary_and_final_names_are_never_followed(tmp_path, victim, surface, capsys):
    out = tmp_path / "shared"
    out.mkdir()
    pid = os.getpid()
    for name in ("s_contourf.png", "s.html"):  # the final names, and the temporary names earlier versions used
        os.symlink(victim, out / name)
        for p in range(pid - 3, pid + 300):
            os.symlink(victim, out / f"{name}.tmp{p}")
    assert render_main([str(surface), "--out", str(out), "--formats", "png,html"]) == 0
    assert victim.read_text() == "precious\n"
    for name in ("s_contourf.png", "s.html"):  # the links themselves were replaced by the figures
        st = os.lstat(out / name)
        assert stat.S_ISREG(st.st_mode) and st.st_size > 1000
    assert (out / "s_contourf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_temporary_files_are_private_and_unpredictable_and_get_the_usual_permissions(tmp_path):
    target = tmp_path / "f.bin"
    with atomic_path(str(target)) as tmp:
        folder = os.path.dirname(tmp)
        assert os.path.dirname(folder) == str(tmp_path) and os.path.basename(folder).startswith(".f.bin.")
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700  # nobody else can plant anything in it
        open(tmp, "wb").write(b"x")
    with atomic_open(str(tmp_path / "g.txt")) as f:
        name = f.name
        f.write("y")
    assert not os.path.exists(folder) and not os.path.exists(name)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~mask == stat.S_IMODE(os.stat(tmp_path / "g.txt").st_mode)
    assert sorted(os.listdir(tmp_path)) == ["f.bin", "g.txt"]
    with pytest.raises(ZeroDivisionError), atomic_open(str(tmp_path / "h.txt")) as f:
        f.write("half")
        1 / 0
    assert sorted(os.listdir(tmp_path)) == ["f.bin", "g.txt"]  # a failed write leaves nothing


@pytest.mark.parametrize("name", ["../x", "/tmp/x", ".", "..", "a/b", ".hidden", ""])
def test_names_stay_inside_the_output_folder(tmp_path, ckpt, surface, capsys, name):
    out = tmp_path / "o"
    rc = run(main, ["--ckpt", ckpt, *BASE, "--out", str(out), "--name", name], prog="landscape.plot")
    _one_line_error(capsys, rc, "is not a file stem")
    rc = run(render_main, [str(surface), "--out", str(out), "--name", name], prog="landscape.render")
    _one_line_error(capsys, rc, "is not a file stem")
    assert not os.path.exists(tmp_path / "x") and sorted(os.listdir(tmp_path)) == ["r20.pt", "surface"]
    assert check_name("resnet56_wide-2") == "resnet56_wide-2"


# ------------------------------------------------------------------------------------------------- flags

@pytest.mark.parametrize("args, needle", [
    (["--seed", str(10**23)], "--seed 100000000000000000000000 is not an integer from -2**63 to 2**64-1"),
    (["--x", ""], "--x is empty"),
    (["--x", "-1e308:1e308:5"], "MAX - MIN overflows a float; keep MIN and MAX within +-1e307"),
    (["--data", "digits:ARG"], "--data digits takes no argument"),
])
def test_flags_that_would_overflow_or_be_ignored_are_refused(tmp_path, ckpt, capsys, args, needle):
    rc = run(main, ["--ckpt", ckpt, *BASE, "--out", str(tmp_path / "o"), "--name", "s", *args], prog="landscape.plot")
    _one_line_error(capsys, rc, needle)
    assert not os.path.exists(tmp_path / "o" / "s.h5")


@pytest.mark.parametrize("args, needle", [
    (["--vmin", "nan"], "argument --vmin: 'nan' is not a finite number"),
    (["--vmax", "inf"], "argument --vmax: 'inf' is not a finite number"),
    (["--levels", "1000000"], "argument --levels: 1000000 is not between 2 and 200"),
])
def test_scale_flags_that_draw_nothing_or_run_for_minutes_are_refused(tmp_path, surface, capsys, args, needle):
    with pytest.raises(SystemExit) as e:
        render_main([str(surface), "--out", str(tmp_path / "figs"), *args])
    assert e.value.code == 2
    _one_line_error(capsys, 2, needle)
    assert not os.path.exists(tmp_path / "figs")


# ------------------------------------------------------------------------------------------------- failures mid-run

def test_an_allocation_failure_mid_compute_is_one_line_and_keeps_every_finished_point(tmp_path, ckpt, capsys,
                                                                                     monkeypatch):
    from landscape.evaluate.driver import PlaneEvaluator

    real, calls = PlaneEvaluator.evaluate_points, []

    def failing(self, coords):
        calls.append(len(coords))
        if len(calls) == 2:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: "
                               "you tried to allocate 8589934592 bytes. Error code 12 (Cannot allocate memory)")
        return real(self, coords)

    monkeypatch.setattr(PlaneEvaluator, "evaluate_points", failing)
    argv = ["--ckpt", ckpt, *BASE, "--out", str(tmp_path), "--name", "s", "--points-per-step", "2"]
    err = _one_line_error(capsys, run(main, argv, prog="landscape.plot"), "out of memory (")
    assert "can't allocate memory" in err and err.endswith("then run: python -m landscape.plot " + " ".join(argv))
    with h5py.File(tmp_path / "s.h5", "r") as f:
        done = int(np.sum(f["train_done"][()]))
    assert 0 < done == calls[0] < 9  # the first block is in the file
    monkeypatch.setattr(PlaneEvaluator, "evaluate_points", real)
    assert main(argv) == 0  # and the same command finishes it


def test_failures_are_told_apart_by_kind():
    import torch.distributed as dist

    assert failure_kind(MemoryError()) == "memory"
    assert failure_kind(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")) == "memory"
    assert failure_kind(dist.DistBackendError("[../gloo/transport/tcp/pair.cc:534] Connection closed by peer")) == \
        "peer"
    assert failure_kind(RuntimeError("[/gloo/transport/tcp/unbound_buffer.cc:81] Timed out waiting 1800000ms for "
                                     "recv operation to complete: Connection reset by peer")) == "peer"
    assert failure_kind(RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")) is None


def test_a_lost_torchrun_peer_is_one_line_and_a_bug_keeps_its_traceback(capsys):
    import torch.distributed as dist

    def peer_gone(argv):
        raise dist.DistBackendError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer "
                                    "[127.0.0.1]:29500")

    _one_line_error(capsys, run(peer_gone, ["--x", "-1:1:3"], prog="landscape.plot"),
                    "another process of this torchrun job failed or left")

    def bug(argv):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")

    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        run(bug, [], prog="landscape.plot")
