"""Soak: real processes, real signals, one folder.

    python bench/soak.py --out /tmp/soak                                   # ~1 min on 2 cores
    python bench/soak.py --out /tmp/soak --grid 10 --surfaces 4 --kills 25 --seed 7   # longer

In one folder, at the same time:
  * ``--surfaces`` surfaces computed by separate ``python -m landscape.plot`` processes (same settings, their
    own ``--name``);
  * a renderer drawing the first of them (``python -m landscape.render``) over and over while it is written;
  * one more surface whose run is killed at random moments, ``kill -9`` and ``SIGTERM`` mixed, up to ``--kills``
    times, then left to finish.
Then every surface must equal an undisturbed run made beforehand in another folder (bit for bit), no lock and no
temporary file may be left, every render must have succeeded, every figure must open, and after each kill the
surface file must read, every point it marks done holding the undisturbed value. ``tests/test_soak.py`` runs a
short version in the normal suite; the last line here is machine-readable: ``SOAK ok=... kills=... renders=...``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from landscape.errors import LandscapeError  # noqa: E402
from landscape.surface import FileLock, read_surface  # noqa: E402


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)


def plot_cmd(ckpt: str, out: str, name: str, grid: int, samples: int) -> list[str]:
    return [sys.executable, "-m", "landscape.plot", "--ckpt", ckpt, "--x", f"-1:1:{grid}", "--y", f"-1:1:{grid}",
            "--samples", str(samples), "--batch-size", str(samples), "--no-render", "--quiet", "--device", "cpu",
            "--out", out, "--name", name]


def _done(path: str) -> int:
    """Finished points of a surface file being written (-1 when it cannot be read yet)."""
    try:
        return int(read_surface(path, probe=False).done["train"].sum())
    except (LandscapeError, KeyError):
        return -1


def _lock_free(path: str) -> bool:
    lock = FileLock(path)
    try:
        lock.acquire()
    except LandscapeError:
        return False
    lock.release()
    return True


# The renderer: imports once, then draws the file each time it finds new points, until it has drawn it complete.
RENDERER = r"""
import json, sys, time
from landscape.errors import LandscapeError
from landscape.render import render_surface
from landscape.surface import read_surface
path, total, deadline = sys.argv[1], int(sys.argv[2]), time.time() + float(sys.argv[3])
while time.time() < deadline:
    try:
        done = int(read_surface(path, probe=False).done["train"].sum())
    except (LandscapeError, KeyError):
        done = -1  # not created yet
    if done <= 0:
        time.sleep(0.05)
        continue
    try:
        render_surface(path, formats="png,html")
        rc, err = 0, ""
    except LandscapeError as e:
        rc, err = 2, str(e)
    print(json.dumps({"rc": rc, "done_before": done, "err": err}), flush=True)
    if done >= total:
        break
"""


def soak(out: str, ckpt: str, grid: int = 6, surfaces: int = 2, kills: int = 4, samples: int = 300,
         max_delay: float = 4.0, seed: int = 0, timeout: float = 600.0) -> dict:
    """Run the soak in ``out`` (created); returns a report whose ``problems`` list is empty when all held.

    Half the kills come at a random moment after start (start-up, creating the file, computing), half just after
    the run records a new point (mid-computation, a block in flight).
    """
    rng = random.Random(seed)
    total = grid * grid
    problems: list[str] = []
    t0 = time.perf_counter()
    deadline = time.time() + timeout
    shared, ref_dir = os.path.join(out, "shared"), os.path.join(out, "undisturbed")
    os.makedirs(shared, exist_ok=True)

    def start(folder: str, name: str) -> subprocess.Popen:
        return subprocess.Popen(plot_cmd(ckpt, folder, name, grid, samples), cwd=ROOT, env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    # the undisturbed run (its own folder), the concurrent surfaces, the renderer on s0
    procs = {"ref": start(ref_dir, "ref"), **{f"s{k}": start(shared, f"s{k}") for k in range(surfaces)}}
    renderer = subprocess.Popen([sys.executable, "-c", RENDERER, os.path.join(shared, "s0.h5"), str(total),
                                 str(timeout)], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    # the run killed at random until it completes
    killed: list[dict] = []

    # Both signals and both kinds of moment, whatever the seed: alternate, then shuffle.
    plan = [([signal.SIGTERM, signal.SIGKILL][k % 2], ["point", "time"][(k // 2) % 2]) for k in range(kills)]
    rng.shuffle(plan)

    def kill_loop():
        target = os.path.join(shared, "killed.h5")
        while time.time() < deadline:
            p = start(shared, "killed")
            if len(killed) < kills:
                sig, moment = plan[len(killed)]
                if moment == "time":  # start-up, creating the file or computing: wherever it is by then
                    when = time.time() + rng.uniform(0.3, max_delay)
                    while time.time() < when and p.poll() is None:
                        time.sleep(0.02)
                else:  # a random moment after the run has recorded a new point: mid-computation
                    first = _done(target)
                    while p.poll() is None and _done(target) <= first and time.time() < deadline:
                        time.sleep(0.02)
                    time.sleep(rng.uniform(0.0, 0.3))
                if p.poll() is None:
                    p.send_signal(sig)
                    _, err = p.communicate(timeout=120)
                    killed.append({"signal": signal.Signals(sig).name, "moment": moment, "rc": p.returncode,
                                   "done": _done(target), "lock_free": _lock_free(target),
                                   "err": err.strip()[:500]})
                    if killed[-1]["done"] >= 0:
                        bad = _wrong_points(target, ref_dir)
                        if bad:
                            problems.append(f"after {killed[-1]['signal']}: {bad}")
                    continue
            _, err = p.communicate(timeout=max(1.0, deadline - time.time()))
            if p.returncode != 0:
                problems.append(f"killed surface: the run that should finish exited {p.returncode}: {err[-300:]}")
            return

    thread = threading.Thread(target=kill_loop)
    thread.start()
    for name, p in procs.items():
        _, err = p.communicate(timeout=max(1.0, deadline - time.time()))
        if p.returncode != 0:
            problems.append(f"{name} exited {p.returncode}: {err[-300:]}")
    thread.join(max(1.0, deadline - time.time()))
    rout, rerr = renderer.communicate(timeout=max(1.0, deadline - time.time()))
    renders = [json.loads(line) for line in rout.splitlines() if line.startswith("{")]
    if renderer.returncode != 0:
        problems.append(f"the renderer exited {renderer.returncode}: {rerr[-300:]}")

    # what must hold
    for k in killed:
        if k["signal"] == "SIGTERM" and k["rc"] not in (143, -15):  # -15: stopped before the CLI started
            problems.append(f"SIGTERM gave exit code {k['rc']}: {k['err']}")
        if k["signal"] == "SIGTERM" and k["rc"] == 143 and "stopped by SIGTERM" not in k["err"]:
            problems.append(f"SIGTERM without the message: {k['err']}")
        if k["signal"] == "SIGKILL" and k["rc"] != -9:
            problems.append(f"SIGKILL gave exit code {k['rc']}: {k['err']}")
        if not k["lock_free"]:
            problems.append("a killed run left its lock held")
    for rr in renders:
        if rr["rc"] != 0:
            problems.append(f"drawing a file being written failed: {rr['err']}")
    if not any(rr["done_before"] < total for rr in renders):
        problems.append("no render of the file while it was being written")
    ref = read_surface(os.path.join(ref_dir, "ref.h5"))
    for name in [f"s{k}" for k in range(surfaces)] + ["killed"]:
        try:
            s = read_surface(os.path.join(shared, f"{name}.h5"))
        except LandscapeError as e:
            problems.append(str(e))
            continue
        for key in ("train_loss", "train_acc"):
            if not np.array_equal(s.values[key], ref.values[key]):
                problems.append(f"{name}: {key} differs from the undisturbed run")
    left = [f for f in os.listdir(shared) if f.endswith(".lock") or ".tmp" in f]
    if left:
        problems.append(f"left behind: {left}")
    for f in os.listdir(shared):
        if f.endswith(".png"):
            from PIL import Image

            try:
                Image.open(os.path.join(shared, f)).load()
            except Exception as e:  # noqa: BLE001 - any failure to decode is a half-written figure
                problems.append(f"{f}: {e}")
    return {"problems": problems, "kills": killed, "renders": renders, "seconds": round(time.perf_counter() - t0, 1),
            "grid": f"{grid}x{grid}", "surfaces": surfaces}


def _wrong_points(path: str, ref_dir: str) -> str:
    """'' when every point ``path`` marks done holds the undisturbed value (the reference may still be running:
    then only the points both have are compared)."""
    s = read_surface(path)
    try:
        ref = read_surface(os.path.join(ref_dir, "ref.h5"), probe=False)
    except LandscapeError:
        return ""
    both = s.done["train"] & ref.done["train"]
    if not np.array_equal(s.values["train_loss"][both], ref.values["train_loss"][both]):
        return "a point marked done holds a wrong value"
    return ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--ckpt", default=os.path.join(ROOT, "checkpoints", "resnet20_digits.pt"))
    p.add_argument("--grid", type=int, default=8)
    p.add_argument("--surfaces", type=int, default=3)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--max-delay", type=float, default=5.0, help="longest wait before a kill, seconds")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rep = soak(a.out, a.ckpt, a.grid, a.surfaces, a.kills, a.samples, a.max_delay, a.seed)
    print(json.dumps(rep, indent=1))
    print(f"SOAK ok={not rep['problems']} kills={len(rep['kills'])} renders={len(rep['renders'])} "
          f"seconds={rep['seconds']}")
    return 0 if not rep["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
