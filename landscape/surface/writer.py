"""Writing a surface file: created whole under a temporary name, then filled block by block (values flushed
before their done flags), one writer at a time (a lock file), resumable with the same settings only.

Torch-free.
"""

from __future__ import annotations

import datetime as _dt
import glob
import io
import os
from typing import Callable, Sequence

import h5py
import numpy as np

from landscape.errors import LandscapeError
from landscape.paths import atomic_open, remove_stale_temps, write_error
from landscape.settings import IDENTITY_ATTRS, split_names
from landscape.surface.grid import grid_shape, grid_str, row_segments
from landscape.surface.h5io import FileLock, attr_value, open_h5
from landscape.surface.schema import FORMAT_VERSION, listed_attrs, read_direction, write_direction


class SurfaceWriter:
    """Creates a surface file or re-opens one to resume, and writes blocks of finished points.

    Args:
        path: the ``.h5`` file.
        xcoords, ycoords: the grid (``ycoords=None`` for 1D).
        settings: attribute dict (:func:`landscape.settings.recorded`); its ``identity_attrs`` list (default:
            :data:`landscape.settings.IDENTITY_ATTRS`) names the attributes that must equal the file's on resume
            (together with the file's own list).
        xdir, ydir, names: directions to store when creating (ignored on resume: the file's are used).
        trajectory: the projected optimizer path of PCA directions, stored with them.
        accuracy: whether the surface has accuracy values (``{split}_acc``); losses without class labels have
            none, and none is faked.
        extras: names of extra per-point datasets (``max_eig``, ``min_eig``), NaN until written.
        write_directions: instead of ``xdir``/``ydir``, a function that records the directions in the new file
            (``fn(h5file)``: regenerable directions write their recipe, not tensors).
    """

    def __init__(self, path: str, xcoords: np.ndarray, ycoords: np.ndarray | None, settings: dict,
                 xdir: Sequence | None = None, ydir: Sequence | None = None, names: Sequence[str] | None = None,
                 trajectory: dict | None = None, accuracy: bool = True, extras: Sequence[str] = (),
                 write_directions: Callable | None = None):
        # With several splits (train,test) the first is the main one; the others' values arrive as extras
        # ({split}_loss, ...) and their done flags are the main one's (every point evaluates every split).
        splits = split_names(settings.get("split", "train"))
        self.path, self.split = path, splits[0]
        self.shape = grid_shape(xcoords, ycoords)
        self.xcoords, self.ycoords = xcoords, ycoords
        self.loss_key, self.acc_key, self.done_key = (f"{self.split}_{k}" for k in ("loss", "acc", "done"))
        self.other_done_keys = [f"{s}_done" for s in splits[1:]]
        # --refine: which points were evaluated (the others are predicted), one flag per split
        self.evaluated_keys = [f"{s}_evaluated" for s in splits] if settings.get("refine") else []
        self.f = None
        self._failed = False  # a write failed: closing may fail too, and that second error says nothing new
        self.elapsed = 0.0  # seconds spent computing, set by compute_surface
        self.lock = FileLock(path)
        self.lock.acquire()
        try:
            if os.path.exists(path):
                self._check_resume(settings)
            else:
                if xdir is None and write_directions is None:
                    raise LandscapeError("creating a surface file needs the directions")
                self._create(settings, xdir, ydir, names, trajectory, accuracy, extras, write_directions)
            self.f = open_h5(path, "r+", probe=False)  # probed by _check_resume, or created just now
        except BaseException:
            self.lock.release()
            raise
        self.loss = np.array(self.f[self.loss_key][()], dtype=np.float64)
        self.acc = np.array(self.f[self.acc_key][()], dtype=np.float64) if self.acc_key in self.f else None
        self.done = np.array(self.f[self.done_key][()], dtype=bool)
        self.evaluated = np.array(self.f[self.evaluated_keys[0]][()], dtype=bool) if self.evaluated_keys else None
        self.extras = {k: np.array(self.f[k][()], dtype=np.float64) for k in extras if k in self.f}

    def _create(self, settings: dict, xdir, ydir, names, trajectory: dict | None = None,
                accuracy: bool = True, extras: Sequence[str] = (), write_directions: Callable | None = None) -> None:
        # Build the whole file under a temporary name and rename it into place: a crash during creation never
        # leaves a half-made file that a later run would have to diagnose.
        remove_stale_temps(self.path)  # left by a run killed while creating (we hold the lock: none is live)
        for stale in glob.glob(glob.escape(self.path) + ".tmp*"):  # the names earlier versions used
            try:
                os.remove(stale)
            except OSError:
                pass  # a read-only or failing disk: the creation below says so
        # Built in memory and written out by Python: HDF5 never meets the disk while creating (when the disk
        # fills up under it mid-file, closing the file can crash the HDF5 library), and an OS error (disk full,
        # read-only, ...) becomes one line naming the file, with the temporary file removed.
        buf = io.BytesIO()
        with atomic_open(self.path, "wb") as out:
            with h5py.File(buf, "w") as f:
                f["xcoordinates"] = self.xcoords
                if self.ycoords is not None:
                    f["ycoordinates"] = self.ycoords
                keys = [(self.loss_key, np.nan, np.float64), (self.done_key, False, bool)]
                keys += [(k, False, bool) for k in self.other_done_keys + self.evaluated_keys]
                if accuracy:
                    keys.insert(1, (self.acc_key, np.nan, np.float64))
                keys += [(k, np.nan, np.float64) for k in extras]
                for key, fill, dtype in keys:
                    f.create_dataset(key, data=np.full(self.shape, fill, dtype=dtype))
                if write_directions is not None:
                    write_directions(f)
                else:
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
                full.setdefault("identity_attrs", list(IDENTITY_ATTRS))
                for k, v in full.items():
                    if isinstance(v, (list, tuple)):
                        f.attrs[k] = np.array([str(s) for s in v], dtype=h5py.string_dtype())
                    else:
                        f.attrs[k] = "" if v is None else (str(v) if isinstance(v, str) else v)
            out.write(buf.getbuffer())

    def _check_resume(self, settings: dict) -> None:
        check_resume(self.path, self.xcoords, self.ycoords, settings)

    def read_directions(self) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        x, _ = read_direction(self.f, "xdirection")
        y = read_direction(self.f, "ydirection")[0] if "ydirection" in self.f else None
        return x, y

    def pending(self) -> np.ndarray:
        """Flat indices (row-major) of points not yet done."""
        return np.flatnonzero(~self.done.reshape(-1))

    def write_block(self, flat_idx: Sequence[int], losses: Sequence[float],
                    accs: Sequence[float] | None = None, extras: dict | None = None, evaluated: bool = True) -> None:
        """Record finished points and flush, so a crash loses at most the block in flight (``evaluated=False``:
        points predicted by ``--refine``, flagged so in ``{split}_evaluated``).

        Only the block's own points go to the file (a few row segments per dataset), so the bytes written per
        block do not grow with the grid.

        Raises:
            LandscapeError: the disk failed (full, read-only, I/O error); the points recorded before this block
                stay in the file and a later run resumes from them.
        """
        idx = np.asarray(flat_idx, dtype=np.int64)
        # Every per-point dataset this block fills: its name, the writer's copy of it, the block's values.
        columns = [(self.loss_key, self.loss, losses)]
        if self.acc is not None and accs is not None:
            columns.append((self.acc_key, self.acc, accs))
        columns += [(k, self.extras[k], v) for k, v in (extras or {}).items() if k in self.extras]
        segments = row_segments(idx, self.shape)
        try:
            # Values before the done flags: a crash between the two leaves points computed but not marked done,
            # which a resume simply recomputes, never a point marked done without its value.
            for key, arr, vals in columns:
                arr.reshape(-1)[idx] = vals
                self._write_segments(key, arr, segments)
            if self.evaluated is not None:
                self.evaluated.reshape(-1)[idx] = evaluated
                for k in self.evaluated_keys:
                    self._write_segments(k, self.evaluated, segments)
            self.f.flush()
            self.done.reshape(-1)[idx] = True
            self._write_segments(self.done_key, self.done, segments)
            for k in self.other_done_keys:  # the other splits' flags: every point evaluates every split
                self._write_segments(k, self.done, segments)
            self.f.flush()
        except OSError as e:
            self._failed = True
            raise write_error(self.path, e, f"cannot record {len(idx)} finished points in") from e

    def _write_segments(self, key: str, arr: np.ndarray, segments: list[tuple]) -> None:
        ds = self.f[key]
        for sel in segments:
            ds[sel] = arr[sel]

    def close(self) -> None:
        """Close the file and release the lock (always, even when the disk fails on the way)."""
        try:
            if getattr(self, "f", None) is not None:
                f, self.f = self.f, None
                try:
                    f.close()
                except OSError as e:
                    if not self._failed:  # after a failed write, that error is the one to tell
                        raise write_error(self.path, e, "cannot finish writing") from e
        finally:
            if getattr(self, "lock", None) is not None:
                self.lock.release()

    def __enter__(self) -> "SurfaceWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_resume(path: str, xcoords: np.ndarray, ycoords: np.ndarray | None, settings: dict) -> None:
    """Raise a one-line error unless ``path`` is our surface file with the same identity settings and grid.

    The identity settings are those the file lists (``identity_attrs``) and those ``settings`` lists.
    """
    with open_h5(path, "r") as f:
        if "format_version" not in f.attrs or "xcoordinates" not in f:
            raise LandscapeError(f"{path!r} exists but is not a surface file written by landscape; "
                                 "pass another --name or --out, or delete the file")
        diffs = []
        theirs = listed_attrs({"identity_attrs": f.attrs.get("identity_attrs")}, "identity_attrs", IDENTITY_ATTRS)
        ours = listed_attrs(settings, "identity_attrs", IDENTITY_ATTRS)
        for k in dict.fromkeys(theirs + ours):
            old, new = attr_value(f.attrs.get(k, "")), ("" if settings.get(k) is None else settings.get(k))
            if k not in f.attrs and new in ("", False, "default"):
                continue  # a setting newer than the file, at its default: the file was made with it off
            if str(old) != str(new):
                diffs.append(f"{k}: file has {old!r}, this run {new!r}")
        x_old = f["xcoordinates"][()]
        y_old = f["ycoordinates"][()] if "ycoordinates" in f else None
        if x_old.shape != xcoords.shape or not np.array_equal(x_old, xcoords):
            diffs.append(f"x grid: file has {grid_str(x_old)}, this run {grid_str(xcoords)}")
        if (y_old is None) != (ycoords is None) or (
                y_old is not None and (y_old.shape != ycoords.shape or not np.array_equal(y_old, ycoords))):
            diffs.append(f"y grid: file has {grid_str(y_old)}, this run {grid_str(ycoords)}")
        split = split_names(settings.get("split", "train"))[0]
        missing = [k for k in (f"{split}_loss", f"{split}_done") if k not in f]
        if missing and not diffs:
            diffs.append(f"datasets {missing} missing")
    if diffs:
        raise LandscapeError(f"cannot resume {path!r} with different settings ({'; '.join(diffs)}); "
                             "use the original settings, another --name, or delete the file")

