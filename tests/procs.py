"""Helpers for the tests that run real processes and stop them mid-surface (kill -9, SIGTERM, whole torchrun jobs).

Not a test module: imported by test_surface, test_reliability and test_sampling.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py

from landscape.errors import LandscapeError
from landscape.surface.h5io import FileLock


def done_points(h5, split: str = "train") -> int:
    """Finished points in a surface file another process is writing (0 while it cannot be read yet)."""
    if not os.path.exists(h5):
        return 0
    try:
        with h5py.File(h5, "r", locking=False) as f:  # the writer holds the file open
            return int(f[f"{split}_done"][()].sum())
    except (OSError, KeyError):  # not created yet, or caught between its creation and its first datasets
        return 0


def wait_for_points(h5, proc: subprocess.Popen, n: int, timeout: float = 180.0, poll: float = 0.05) -> int:
    """Wait until ``h5`` holds at least ``n`` finished points, ``proc`` ends, or ``timeout`` passes; returns the
    count last seen. The caller asserts the process is still running (else the grid was too small to stop)."""
    deadline, done = time.time() + timeout, 0
    while time.time() < deadline and proc.poll() is None and done < n:
        time.sleep(poll)
        done = done_points(h5)
    return done


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (torchrun's workers may run in sessions of their own)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [], [pid]
    while frontier:
        kids = [c for c, p in parent.items() if p in frontier]
        out += kids
        frontier = kids
    return out


def kill_job(proc: subprocess.Popen, h5) -> None:
    """``kill -9`` a process and all its descendants at once, as a cluster scheduler kills a job, then wait until
    the surface file's lock is free (the ranks die asynchronously; rank 0's lock goes with it)."""
    for pid in [proc.pid, *descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    for _ in range(100):
        lock = FileLock(str(h5))
        try:
            lock.acquire()
            lock.release()
            return
        except LandscapeError:
            time.sleep(0.1)


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def kill_torchrun_and_resume(tmp_path, args: list[str], points: int, total: int, name: str = "r20.h5"):
    """Run ``python -m torch.distributed.run ... args`` (two ranks), ``kill -9`` the whole job once ``points`` are
    saved, run the same command again, and the same ``args`` in one process; returns the paths of the resumed
    (``two/``) and single-process (``one/``) surface files. Asserts the job was killed mid-surface (``points`` to
    ``total`` - 1 saved), the resume computed exactly the rest, and both runs succeeded."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    tr = [sys.executable, *TORCHRUN, *args, "--out", str(tmp_path / "two")]
    h5 = tmp_path / "two" / name
    proc = subprocess.Popen(tr, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_points(h5, proc, points)
    assert proc.poll() is None, "job finished before it could be killed"
    kill_job(proc, h5)  # as a cluster scheduler kills a job: every process at once
    killed_done = done_points(h5)
    assert points <= killed_done < total
    again = subprocess.run(tr, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"computed {total - killed_done} in" in again.stdout
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    return h5, tmp_path / "one" / name
