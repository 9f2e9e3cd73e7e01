"""The surface file (HDF5, DESIGN section 6) and the resumable computation of a grid.

Torch-free on purpose: rendering reads surface files through this module and must never import torch.
Directions arrive as anything ``numpy.asarray`` accepts (torch CPU tensors included).

Layout: ``xcoordinates`` (nx,), ``ycoordinates`` (ny,) (absent in 1D); ``{split}_loss``/``{split}_acc``
(ny, nx) float64, value at (x_j, y_i) in ``[i, j]``, NaN until computed; ``{split}_done`` bool;
``xdirection``/``ydirection`` groups of datasets ``"0".."N-1"``; settings in attributes. This is the
reference's layout for square grids, so its plotting scripts read our files.
"""

from __future__ import annotations

import datetime as _dt
import glob
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import h5py
import numpy as np

from landscape.errors import LandscapeError

FORMAT_VERSION = 1
MAX_AXIS_POINTS = 10_001  # a 10k x 10k grid is already a year of GPU time; larger is a typo
# Settings that define a surface's values; resuming with any of them different would mix two surfaces.
IDENTITY_ATTRS = ("arch", "ckpt_sha256", "dataset", "split", "n_samples", "norm", "ignore", "dir_type", "seed",
                  "directions", "precision", "bn_mode", "loss")
VALUE_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc", "train_err", "test_err")
ATTRS = ("format_version", "arch", "ckpt", "ckpt_sha256", "dataset", "split", "n_samples", "norm", "ignore",
         "dir_type", "seed", "directions", "precision", "bn_mode", "loss", "created", "torch_version", "device")


def parse_grid(spec: str, axis: str = "x") -> np.ndarray:
    """``"MIN:MAX:NUM"`` -> ``numpy.linspace(MIN, MAX, NUM)`` (float64).

    Raises:
        LandscapeError: anything but three fields, non-numbers, MIN >= MAX (unless NUM == 1 and MIN == MAX),
            NUM < 1 or NUM > 10,001.
    """
    hint = f"--{axis} takes MIN:MAX:NUM, e.g. --{axis} -1:1:51"
    parts = str(spec).split(":")
    if len(parts) != 3:
        raise LandscapeError(f"bad grid {spec!r}: expected 3 fields MIN:MAX:NUM, got {len(parts)}; {hint}")
    try:
        lo, hi = float(parts[0]), float(parts[1])
        num = int(parts[2])
    except ValueError:
        raise LandscapeError(f"bad grid {spec!r}: MIN and MAX must be numbers and NUM an integer; {hint}")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise LandscapeError(f"bad grid {spec!r}: MIN and MAX must be finite; {hint}")
    if num < 1 or num > MAX_AXIS_POINTS:
        raise LandscapeError(f"bad grid {spec!r}: NUM must be between 1 and {MAX_AXIS_POINTS}, got {num}; {hint}")
    if num == 1 and lo != hi:
        raise LandscapeError(f"bad grid {spec!r}: one point needs MIN == MAX (e.g. 0:0:1); {hint}")
    if num > 1 and not lo < hi:
        raise LandscapeError(f"bad grid {spec!r}: MIN must be below MAX; {hint}")
    return np.linspace(lo, hi, num)


def grid_shape(xcoords: np.ndarray, ycoords: np.ndarray | None) -> tuple[int, ...]:
    return (len(xcoords),) if ycoords is None else (len(ycoords), len(xcoords))


def grid_coords(xcoords: np.ndarray, ycoords: np.ndarray | None) -> np.ndarray:
    """(n_points, 2) array of (alpha, beta) in the file's flat (row-major) order."""
    if ycoords is None:
        return np.stack([xcoords, np.zeros_like(xcoords)], axis=1)
    xx, yy = np.meshgrid(xcoords, ycoords)  # [i, j] = (x_j, y_i), as the reference lays it out
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def write_direction(h5: h5py.File, group: str, direction: Sequence, names: Sequence[str] | None = None) -> None:
    """Store a direction as ``group/"0".."N-1"`` (the reference's layout), with attr ``names``."""
    if group in h5:
        del h5[group]
    g = h5.create_group(group)
    for i, d in enumerate(direction):
        g.create_dataset(str(i), data=np.asarray(d, dtype=np.float32))
    if names is not None:
        g.attrs["names"] = np.array([str(n) for n in names], dtype=h5py.string_dtype())


def read_direction(h5: h5py.File, group: str) -> tuple[list[np.ndarray], list[str] | None]:
    """Inverse of :func:`write_direction`; also reads the reference's direction files (no ``names``)."""
    g = h5[group]
    n = len(g.keys())
    missing = [str(i) for i in range(n) if str(i) not in g]
    if missing:
        raise LandscapeError(f"direction group {group!r} in {h5.filename!r} must hold datasets '0'..'{n - 1}'; "
                             f"missing {missing[:5]}")
    out = [np.asarray(g[str(i)][()], dtype=np.float32) for i in range(n)]
    names = g.attrs.get("names")
    return out, ([s.decode() if isinstance(s, bytes) else str(s) for s in names] if names is not None else None)


@dataclass
class Surface:
    """A surface file's contents, as numpy arrays (what rendering needs)."""

    path: str
    xcoordinates: np.ndarray
    ycoordinates: np.ndarray | None
    values: dict  # "train_loss" -> array, ... (NaN where not computed)
    attrs: dict
    done: dict = None  # "train" -> bool array, for our files (a diverged point is done with a NaN/inf loss)
    trajectory: dict = None  # {"x", "y", "epochs", "explained_variance_ratio"} when made with --trajectory

    @property
    def is_2d(self) -> bool:
        return self.ycoordinates is not None

    def names(self) -> list[str]:
        return sorted(self.values)


def _touch_everything(path: str) -> None:
    """Read every part of a file that landscape ever reads (used by :func:`probe_h5` in a child process)."""
    with h5py.File(path, "r", locking=False) as f:
        for k in ATTRS:
            if k in f.attrs:
                f.attrs[k]
        for key in ("xcoordinates", "ycoordinates") + VALUE_KEYS + ("train_done", "test_done"):
            if key in f:
                f[key][()]
        for group in ("xdirection", "ydirection", "trajectory"):
            if group in f:
                g = f[group]
                for name in [str(i) for i in range(len(g))] + ["x", "y", "epochs"]:
                    if name in g:
                        g[name][()]
                if "names" in g.attrs:
                    g.attrs["names"]


def probe_h5(path: str, timeout: float | None = None) -> None:
    """Read ``path`` once in a forked child first: a damaged HDF5 file can crash the HDF5 C library (a
    segmentation fault, found by fuzzing) or make it loop, which no ``try`` can catch. A crash or hang in the
    child becomes a one-line :class:`LandscapeError`; anything else is left to the real read, which then
    behaves exactly as the child did. No-op where ``fork`` does not exist.
    """
    if not hasattr(os, "fork") or not os.path.isfile(path):
        return
    if timeout is None:  # generous for big direction sets on slow disks; a damaged file loops far longer
        timeout = 20.0 + os.path.getsize(path) / 50e6
    pid = os.fork()
    if pid == 0:  # child: never returns, never runs the parent's atexit handlers or flushes its buffers
        code = 0
        try:
            import faulthandler

            faulthandler.disable()  # a crash here is expected and reported by the parent, not dumped
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)  # and HDF5's own error stack is noise for a file we are only probing
            _touch_everything(path)
        except BaseException:  # noqa: BLE001 - a Python-level error is reproduced by the parent's own read
            code = 3
        os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise LandscapeError(f"{path!r} is a damaged HDF5 file (reading it did not finish in {timeout:.0f} s); "
                                 "delete it to start over, or pass another --name")
        time.sleep(0.005)
    if os.WIFSIGNALED(status):
        raise LandscapeError(f"{path!r} is a damaged HDF5 file (the HDF5 library crashed reading it, signal "
                             f"{os.WTERMSIG(status)}); delete it to start over, or pass another --name")


def _open_h5(path: str, mode: str, probe: bool = True) -> h5py.File:
    if not os.path.exists(path):
        raise LandscapeError(f"surface file not found: {path!r}")
    if probe:  # files this process just checked or wrote itself need no second probe (it re-reads everything)
        probe_h5(path)
    try:
        # Readers skip HDF5's own file lock so a figure can be drawn while a run is still writing; writers are
        # serialised by our lock file (SurfaceWriter), which gives a clear message instead of HDF5's.
        return h5py.File(path, mode, locking=False) if mode == "r" else h5py.File(path, mode)
    except (OSError, ValueError) as e:
        raise LandscapeError(f"{path!r} is not a readable HDF5 file (corrupt or truncated?): "
                             f"{str(e).splitlines()[0][:160]}; delete it to start over, or pass another --name")


def read_surface(path: str, probe: bool = True) -> Surface:
    """Read any surface file: ours, or the reference's (where -1 marks points not yet computed).

    Args:
        probe: first read the file in a forked child (see :func:`probe_h5`); ``False`` only for a file this
            process has just written.

    Raises:
        LandscapeError: missing/corrupt file, or an HDF5 file that is not a loss surface.
    """
    f = _open_h5(path, "r", probe)
    with f:
        try:
            if "xcoordinates" not in f:
                raise LandscapeError(f"{path!r} is an HDF5 file but not a loss surface (no 'xcoordinates')")
            x = np.asarray(f["xcoordinates"][()], dtype=np.float64).reshape(-1)
            if x.size == 0 or not np.all(np.isfinite(x)):
                raise ValueError("xcoordinates is empty or not finite")
            y = np.asarray(f["ycoordinates"][()], dtype=np.float64).reshape(-1) if "ycoordinates" in f else None
            # Look up known names one by one rather than iterating: a corrupted attribute or link table can make
            # HDF5's iteration run (practically) forever, while a lookup by name stays bounded.
            attrs = {}
            for k in ATTRS:
                if k in f.attrs:
                    attrs[k] = _attr(f.attrs[k])
            ours = "format_version" in attrs
            values, done = {}, {}
            for key in VALUE_KEYS:
                if key not in f:
                    continue
                ds = f[key]
                if not isinstance(ds, h5py.Dataset):
                    continue
                arr = np.array(ds[()], dtype=np.float64)
                if not ours:
                    # The reference initialises with -1 and stores (nx, ny); its values are at [i, j] = (x_j, y_i)
                    # in flat order, which for square grids is also our (ny, nx) layout.
                    arr[arr == -1] = np.nan
                    if y is not None and arr.shape != (len(y), len(x)):
                        arr = arr.reshape(-1)[: len(x) * len(y)].reshape(len(y), len(x))
                else:
                    split_name = key.rsplit("_", 1)[0]
                    if f"{split_name}_done" in f:
                        done[split_name] = np.asarray(f[f"{split_name}_done"][()], dtype=bool)
                        if done[split_name].shape != arr.shape:
                            raise ValueError(f"{split_name}_done has shape {done[split_name].shape}, "
                                             f"{key} {arr.shape}")
                        arr[~done[split_name]] = np.nan
                values[key] = arr
            trajectory = None
            if "trajectory" in f and isinstance(f["trajectory"], h5py.Group):
                g = f["trajectory"]
                trajectory = {"x": np.asarray(g["x"][()], dtype=np.float64),
                              "y": np.asarray(g["y"][()], dtype=np.float64),
                              "epochs": np.asarray(g["epochs"][()]) if "epochs" in g else None,
                              "explained_variance_ratio": [float(v) for v in
                                                           g.attrs.get("explained_variance_ratio", [])]}
        except LandscapeError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure inside a damaged file is the file's, not ours
            raise LandscapeError(f"{path!r}: damaged surface file ({type(e).__name__}: {str(e)[:160]}); delete it "
                                 "to start over")
    expected = grid_shape(x, y)
    for key, arr in values.items():
        if arr.shape != expected:
            raise LandscapeError(f"{path!r}: {key} has shape {arr.shape} but the grid is {expected}")
    if not values:
        raise LandscapeError(f"{path!r} holds coordinates but no *_loss/*_acc values yet")
    return Surface(path, x, y, values, attrs, done, trajectory)


def _attr(v):
    return v.decode() if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v)


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``<path>.lock``: one writer per surface file.

    The kernel drops the lock when the process dies (even on ``kill -9``), so a crashed run never leaves a
    stale lock behind. The lock file is removed on release.
    """

    def __init__(self, path: str):
        self.path = f"{path}.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            return
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise LandscapeError(f"cannot create lock file {self.path!r} ({e.strerror}); is --out writable?")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                try:
                    with open(self.path) as f:
                        holder = f.read().strip()
                except OSError:
                    holder = "?"
                raise LandscapeError(f"{self.path[:-5]!r} is being written by another process (pid {holder}); "
                                     "wait for it to finish, or use another --name")
            # The holder before us may have unlinked the file between our open and our flock: then we locked
            # an orphan inode and must try again on the current file.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                self.fd = fd
                return
            os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)  # while still holding the lock (see acquire)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None


class SurfaceWriter:
    """Creates a surface file or re-opens one to resume, and writes blocks of finished points.

    Args:
        path: the ``.h5`` file.
        xcoords, ycoords: the grid (``ycoords=None`` for 1D).
        settings: attribute dict (see ``ATTRS``); on resume, ``IDENTITY_ATTRS`` must equal the file's.
        xdir, ydir, names: directions to store when creating (ignored on resume: the file's are used).
    """

    def __init__(self, path: str, xcoords: np.ndarray, ycoords: np.ndarray | None, settings: dict,
                 xdir: Sequence | None = None, ydir: Sequence | None = None, names: Sequence[str] | None = None,
                 trajectory: dict | None = None):
        self.path, self.split = path, settings.get("split", "train")
        self.shape = grid_shape(xcoords, ycoords)
        self.xcoords, self.ycoords = xcoords, ycoords
        self.loss_key, self.acc_key, self.done_key = (f"{self.split}_{k}" for k in ("loss", "acc", "done"))
        self.f = None
        self.elapsed = 0.0  # seconds spent computing, set by compute_surface
        self.lock = FileLock(path)
        self.lock.acquire()
        try:
            if os.path.exists(path):
                self._check_resume(settings)
            else:
                if xdir is None:
                    raise LandscapeError("creating a surface file needs the directions")
                self._create(settings, xdir, ydir, names, trajectory)
            self.f = _open_h5(path, "r+", probe=False)  # probed by _check_resume, or created just now
        except BaseException:
            self.lock.release()
            raise
        self.loss = np.array(self.f[self.loss_key][()], dtype=np.float64)
        self.acc = np.array(self.f[self.acc_key][()], dtype=np.float64)
        self.done = np.array(self.f[self.done_key][()], dtype=bool)

    def _create(self, settings: dict, xdir, ydir, names, trajectory: dict | None = None) -> None:
        # Build the whole file under a temporary name and rename it into place: a crash during creation never
        # leaves a half-made file that a later run would have to diagnose.
        for stale in glob.glob(glob.escape(self.path) + ".tmp*"):  # left by a run killed while creating
            os.remove(stale)
        tmp = f"{self.path}.tmp{os.getpid()}"
        try:
            with h5py.File(tmp, "w") as f:
                f["xcoordinates"] = self.xcoords
                if self.ycoords is not None:
                    f["ycoordinates"] = self.ycoords
                for key, fill, dtype in ((self.loss_key, np.nan, np.float64), (self.acc_key, np.nan, np.float64),
                                         (self.done_key, False, bool)):
                    f.create_dataset(key, data=np.full(self.shape, fill, dtype=dtype))
                write_direction(f, "xdirection", xdir, names)
                if ydir is not None:
                    write_direction(f, "ydirection", ydir, names)
                if trajectory is not None:
                    g = f.create_group("trajectory")
                    path = np.asarray(trajectory["path"], dtype=np.float64).reshape(-1, 2)
                    g["x"], g["y"] = path[:, 0], path[:, 1]
                    g["epochs"] = np.asarray(trajectory.get("epochs", range(len(path))), dtype=np.int64)
                    g.attrs["explained_variance_ratio"] = np.asarray(trajectory["explained_variance_ratio"])
                full = {"format_version": FORMAT_VERSION,
                        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **settings}
                for k, v in full.items():
                    f.attrs[k] = "" if v is None else (str(v) if isinstance(v, str) else v)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        os.replace(tmp, self.path)

    def _check_resume(self, settings: dict) -> None:
        with _open_h5(self.path, "r") as f:
            if "format_version" not in f.attrs or "xcoordinates" not in f:
                raise LandscapeError(f"{self.path!r} exists but is not a surface file written by landscape; "
                                     "pass another --name or --out, or delete the file")
            diffs = []
            for k in IDENTITY_ATTRS:
                old, new = _attr(f.attrs.get(k, "")), ("" if settings.get(k) is None else settings.get(k))
                if str(old) != str(new):
                    diffs.append(f"{k}: file has {old!r}, this run {new!r}")
            x_old = f["xcoordinates"][()]
            y_old = f["ycoordinates"][()] if "ycoordinates" in f else None
            if x_old.shape != self.xcoords.shape or not np.array_equal(x_old, self.xcoords):
                diffs.append(f"x grid: file has {_grid_str(x_old)}, this run {_grid_str(self.xcoords)}")
            if (y_old is None) != (self.ycoords is None) or (
                    y_old is not None and (y_old.shape != self.ycoords.shape or not np.array_equal(y_old, self.ycoords))):
                diffs.append(f"y grid: file has {_grid_str(y_old)}, this run {_grid_str(self.ycoords)}")
            missing = [k for k in (self.loss_key, self.acc_key, self.done_key) if k not in f]
            if missing and not diffs:
                diffs.append(f"datasets {missing} missing")
        if diffs:
            raise LandscapeError(f"cannot resume {self.path!r} with different settings ({'; '.join(diffs)}); "
                                 "use the original settings, another --name, or delete the file")

    def read_directions(self) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        x, _ = read_direction(self.f, "xdirection")
        y = read_direction(self.f, "ydirection")[0] if "ydirection" in self.f else None
        return x, y

    def pending(self) -> np.ndarray:
        """Flat indices (row-major) of points not yet done."""
        return np.flatnonzero(~self.done.reshape(-1))

    def write_block(self, flat_idx: Sequence[int], losses: Sequence[float], accs: Sequence[float]) -> None:
        """Record finished points and flush, so a crash loses at most the block in flight."""
        idx = np.asarray(flat_idx, dtype=np.int64)
        self.loss.reshape(-1)[idx] = losses
        self.acc.reshape(-1)[idx] = accs
        self.done.reshape(-1)[idx] = True
        # Values before the done flags: a crash between the two leaves points computed but not marked done,
        # which a resume simply recomputes, never a point marked done without its value.
        self.f[self.loss_key][...] = self.loss
        self.f[self.acc_key][...] = self.acc
        self.f.flush()
        self.f[self.done_key][...] = self.done
        self.f.flush()

    def close(self) -> None:
        if getattr(self, "f", None) is not None:
            self.f.close()
            self.f = None
        if getattr(self, "lock", None) is not None:
            self.lock.release()

    def __enter__(self) -> "SurfaceWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _grid_str(c: np.ndarray | None) -> str:
    if c is None:
        return "none (1D)"
    return f"{c[0]:g}:{c[-1]:g}:{len(c)}" if len(c) else "empty"


def compute_points(coords: np.ndarray, todo: np.ndarray,
                   evaluate: Callable[[np.ndarray], tuple[Sequence[float], Sequence[float]]],
                   record: Callable[[np.ndarray, Sequence[float], Sequence[float]], None] | None,
                   block_size: int = 1, rank: int = 0, world: int = 1, gather: Callable | None = None,
                   bar=None) -> None:
    """Evaluate the flat indices ``todo`` block by block and ``record`` each finished block.

    With ``world > 1`` blocks are dealt round-robin to the ranks; ``gather`` collects each round's results on
    rank 0, the only rank with a ``record``. Every rank runs the same number of rounds (an idle rank sends an
    empty block) so the collectives line up.
    """
    blocks = [todo[s:s + block_size] for s in range(0, len(todo), block_size)]
    rounds = -(-len(blocks) // world)
    for r in range(rounds):
        b = r * world + rank
        block = blocks[b] if b < len(blocks) else np.zeros(0, dtype=np.int64)
        losses, accs = evaluate(coords[block]) if len(block) else ([], [])
        results = gather((block, list(losses), list(accs))) if world > 1 else [(block, losses, accs)]
        if record is not None:
            for blk, lo, ac in results:
                if len(blk):
                    record(np.asarray(blk, dtype=np.int64), lo, ac)
                    if bar is not None:
                        bar.update(len(blk))


def compute_surface(writer: SurfaceWriter | None,
                    evaluate: Callable[[np.ndarray], tuple[Sequence[float], Sequence[float]]],
                    block_size: int = 1, progress: bool = True, desc: str = "surface", *,
                    grid: tuple[np.ndarray, np.ndarray | None] | None = None, todo: np.ndarray | None = None,
                    rank: int = 0, world: int = 1, gather: Callable | None = None) -> int:
    """Fill the missing points block by block, with a progress bar; returns the number of points computed.

    Args:
        writer: an open :class:`SurfaceWriter`, or ``None`` on the ranks > 0 of a distributed job (only rank 0
            writes); its ``elapsed`` is set to the computing time.
        evaluate: ``coords (K, 2) -> (losses[K], accs[K])``.
        block_size: points per call of ``evaluate`` (and per write).
        progress: show a tqdm bar (points/s, ETA) on stderr.
        desc: the bar's label.
        grid, todo: ``(xcoords, ycoords)`` and the flat indices still to compute; default: the writer's.
        rank, world, gather: a distributed job's rank, size and result-gathering collective
            (see :func:`compute_points`).
    """
    if grid is None or todo is None:
        if writer is None:
            raise ValueError("compute_surface needs grid and todo when it has no writer")
        grid, todo = (writer.xcoords, writer.ycoords), writer.pending()
    coords = grid_coords(*grid)
    bar = progress_bar(len(coords), len(coords) - len(todo), desc, progress)
    t0 = time.perf_counter()
    try:
        compute_points(coords, todo, evaluate, writer.write_block if writer is not None else None, block_size,
                       rank, world, gather, bar)
    finally:
        bar.close()
    if writer is not None:
        writer.elapsed = time.perf_counter() - t0
    return len(todo)


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    """A tqdm bar in points with rate and ETA, on stderr."""
    from tqdm.auto import tqdm

    return tqdm(total=int(total), initial=int(initial), desc=desc, unit="pt", disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)


def summarize(surface: Surface, split: str | None = None) -> dict:
    """Centre value (alpha = beta = 0, or the nearest point), min/max loss and where they are."""
    split = split or str(surface.attrs.get("split", "train"))
    loss = surface.values.get(f"{split}_loss")
    acc = surface.values.get(f"{split}_acc")
    if loss is None:
        raise LandscapeError(f"{surface.path!r} has no {split}_loss")
    jx = int(np.argmin(np.abs(surface.xcoordinates)))
    centre_idx = (jx,) if surface.ycoordinates is None else (int(np.argmin(np.abs(surface.ycoordinates))), jx)
    finite = np.isfinite(loss)
    out = {"centre": (float(surface.xcoordinates[jx]),
                      0.0 if surface.ycoordinates is None else float(surface.ycoordinates[centre_idx[0]])),
           "centre_loss": float(loss[centre_idx]), "centre_acc": float(acc[centre_idx]) if acc is not None else None,
           "total": int(loss.size)}
    done = (surface.done or {}).get(split)
    if done is None:
        done = ~np.isnan(loss)
    out["done"] = int(done.sum())
    out["diverged"] = int(np.sum(done & ~finite))
    if finite.any():
        out["min_loss"], out["max_loss"] = float(np.min(loss[finite])), float(np.max(loss[finite]))
    return out
