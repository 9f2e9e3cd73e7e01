"""The file of a curve between two solutions (HDF5, one per pair; torch-free):

| item | shape | meaning |
|---|---|---|
| ``t`` | (T,) | the points along both paths, 0 to 1 |
| ``curve/{split}_loss``, ``curve/{split}_acc`` | (T,) | along the trained curve; NaN until computed |
| ``line/{split}_loss``, ``line/{split}_acc`` | (T,) | along the straight line, at the same ``t`` |
| ``curve/{split}_done``, ``line/{split}_done`` | (T,) bool | point finished (values are written first) |
| ``bend/`` | datasets ``"0".."N-1"`` | the bend's weights, attr ``names`` (parameter order) |
| ``history/epoch``, ``history/loss``, ``history/lr`` | (E,) | the bend's training |
| attrs | | ``format`` (``landscape-connect``), ``curve``, ``settings`` (JSON), ``ckpt``/``ckpt2`` and their
  SHA-256, ``arch``, ``dataset``, ``split``, ``n_samples``, ``loss``, ``bn_mode`` (``recompute``: BN statistics
  re-estimated on the training data at every point of both paths), ``{path}_{split}_barrier`` (highest loss minus
  the mean of the ends), ``torch_version``, ``created`` |

Resuming with other settings or other models is an error; the writer holds the same lock as a surface's. Importable
without torch (the renderer reads these files).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
from dataclasses import asdict

import h5py
import numpy as np

from landscape.errors import LandscapeError
from landscape.paths import atomic_open
from landscape.settings import split_names
from landscape.surface.h5io import FileLock, attr_value, open_h5
from landscape.surface.validate import (HINT, MAX_TRACE, check_attr, kind_of, probed, read_axis, read_points,
                                        shown)

FORMAT = "landscape-connect"
PATHS = ("curve", "line")
IDENTITY = ("curve", "settings", "ckpt_sha256", "ckpt2_sha256", "arch", "dataset", "split", "n_samples", "loss")


class PathFile:
    """Creates or resumes a curve's file and records its bend and points (see the module docstring)."""

    def __init__(self, path: str, conn, cfg, infos: tuple[dict, dict], datas: list, loss: str):
        self.path = path
        self.splits = split_names(cfg.split)
        self.t = np.linspace(0.0, 1.0, int(conn.points))
        info_a, info_b = infos
        settings = {k: v for k, v in asdict(conn).items() if k != "plane"}
        self.attrs = {"format": FORMAT, "curve": conn.curve, "settings": json.dumps(settings, sort_keys=True),
                      "ckpt": info_a.get("path", ""), "ckpt_sha256": info_a["sha256"],
                      "ckpt2": info_b.get("path", ""), "ckpt2_sha256": info_b["sha256"], "arch": info_a["arch"],
                      "dataset": datas[0].name, "split": cfg.split, "n_samples": len(datas[0]), "loss": loss,
                      "bn_mode": "recompute", "precision": cfg.precision}
        for sp, d in zip(self.splits[1:], datas[1:]):
            self.attrs[f"{sp}_n_samples"] = len(d)
        self.lock = FileLock(path)
        self.lock.acquire()
        try:
            if os.path.exists(path):
                self._check(path)
            else:
                self._create(path)
            self.f = open_h5(path, "r+", probe=False)
        except BaseException:
            self.lock.release()
            raise

    def _check(self, path: str) -> None:
        with open_h5(path, "r") as f:
            if attr_value(f.attrs.get("format", "")) != FORMAT:
                raise LandscapeError(f"{path!r} exists but is not a curve file; pass another --name or --out")
            diffs = [f"{k}: file has {attr_value(f.attrs.get(k, ''))!r}, this run {self.attrs[k]!r}"
                     for k in IDENTITY if str(attr_value(f.attrs.get(k, ""))) != str(self.attrs[k])]
            if len(f["t"]) != len(self.t):
                diffs.append(f"points: file has {len(f['t'])}, this run {len(self.t)}")
        if diffs:
            raise LandscapeError(f"cannot resume {path!r} with different settings ({'; '.join(diffs)}); use the "
                                 "original settings, another --name, or delete the file")

    def _create(self, path: str) -> None:
        buf = io.BytesIO()
        with h5py.File(buf, "w") as f:
            f["t"] = self.t
            for kind in PATHS:
                g = f.create_group(kind)
                for sp in self.splits:
                    g.create_dataset(f"{sp}_loss", data=np.full(len(self.t), np.nan))
                    g.create_dataset(f"{sp}_acc", data=np.full(len(self.t), np.nan))
                    g.create_dataset(f"{sp}_done", data=np.zeros(len(self.t), dtype=bool))
            created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            import torch

            for k, v in {**self.attrs, "created": created, "torch_version": torch.__version__}.items():
                f.attrs[k] = str(v) if isinstance(v, str) else ("" if v is None else v)
        with atomic_open(path, "wb") as out:
            out.write(buf.getbuffer())

    # -- the bend ------------------------------------------------------------------------------------------------
    def bend(self):
        """The recorded bend (``{name: tensor}``), or ``None`` when it is still to be trained."""
        if "bend" not in self.f:
            return None
        import torch

        g = self.f["bend"]
        names = [attr_value(n) for n in g.attrs["names"]]
        return {n: torch.from_numpy(np.asarray(g[str(i)][()])) for i, n in enumerate(names)}

    def record_bend(self, bend: dict, history: list) -> None:
        g = self.f.create_group("bend")
        names = list(bend)
        for i, n in enumerate(names):
            g.create_dataset(str(i), data=bend[n].detach().cpu().float().numpy())
        g.attrs["names"] = np.array(names, dtype=h5py.string_dtype())
        h = self.f.create_group("history")
        for key in ("epoch", "loss", "lr"):
            h[key] = np.array([row[key] for row in history], dtype=np.float64)
        self.f.flush()

    @property
    def history(self) -> list[dict]:
        if "history" not in self.f:
            return []
        h = self.f["history"]
        return [{"epoch": int(e), "loss": float(v), "lr": float(r)}
                for e, v, r in zip(h["epoch"][()], h["loss"][()], h["lr"][()])]

    # -- the points ----------------------------------------------------------------------------------------------
    def done(self, kind: str, split: str) -> np.ndarray:
        return np.asarray(self.f[kind][f"{split}_done"][()], dtype=bool)

    def record(self, kind: str, split: str, idx, losses, accs) -> None:
        """Values first, then their done flags (a crash never leaves a flag without its value)."""
        g = self.f[kind]
        idx = np.asarray(idx, dtype=np.int64)
        for key, vals in ((f"{split}_loss", losses), (f"{split}_acc", accs)):
            if vals is None:
                continue
            arr = g[key][()]
            arr[idx] = vals
            g[key][...] = arr
        self.f.flush()
        done = g[f"{split}_done"][()]
        done[idx] = True
        g[f"{split}_done"][...] = done
        self.f.flush()

    def barriers(self) -> dict:
        """``{path}_{split}`` -> the barrier height of each finished path (recorded as attributes too)."""
        from landscape.connect.curves import barrier

        out = {}
        for kind in PATHS:
            for sp in self.splits:
                if self.done(kind, sp).all():
                    out[f"{kind}_{sp}"] = barrier(self.f[kind][f"{sp}_loss"][()])
                    self.f.attrs[f"{kind}_{sp}_barrier"] = out[f"{kind}_{sp}"]
        self.f.flush()
        return out

    def close(self) -> None:
        try:
            if getattr(self, "f", None) is not None:
                self.f.close()
                self.f = None
        finally:
            self.lock.release()


def read_path_file(path: str) -> dict:
    """A curve's file as plain arrays (what rendering needs): ``t``, ``curve``/``line`` -> {key: array}, attrs.

    Checked before use (a file from elsewhere is drawn right or refused in one line): ``t`` at most
    :data:`~landscape.surface.validate.MAX_TRACE` finite, increasing points, every series as long as ``t``, the
    attributes of the types landscape writes.
    """
    return probed(path, lambda f: _read(f, path), kind="curve")


def _read(f: h5py.File, path: str) -> dict:
    if "format" not in f.attrs or attr_value(f.attrs["format"]) != FORMAT:
        raise LandscapeError(f"{path!r} is not a curve file of landscape.connect")
    t = read_axis(f, "t", path, most=MAX_TRACE)
    attrs = {k: check_attr(path, k, attr_value(f.attrs[k])) for k in list(f.attrs)[:1000]}
    for k, v in attrs.items():  # {path}_{split}_barrier: a number
        if k.endswith("_barrier") and (isinstance(v, (bool, str)) or not isinstance(v, (int, float))
                                       or not np.isfinite(v)):
            raise LandscapeError(f"{path!r}: attribute {shown(k, 40)!r} is {kind_of(v)}; expected a finite number "
                                 f"(the path's barrier height); {HINT}")
    out = {"t": t, "attrs": attrs}
    for kind in PATHS:
        g = f.get(kind) if kind in f else None
        if not isinstance(g, h5py.Group):
            raise LandscapeError(f"{path!r} has no group {kind!r} (the values along the {kind}); {HINT}")
        out[kind] = {k: read_points(g, k, path, len(t), label=f"{kind}/{shown(k, 40)}", finite=False)
                     for k in list(g)[:100] if k.endswith(("_loss", "_acc", "_done"))}
        out[kind].update({k: v.astype(bool) for k, v in out[kind].items() if k.endswith("_done")})
    h = f.get("history") if "history" in f else None
    out["history"] = {k: read_points(h, k, path, label=f"history/{shown(k, 40)}", finite=False)
                      for k in list(h)[:100]} if isinstance(h, h5py.Group) else {}
    return out


def record_overlay(path: str, xy: np.ndarray, t: np.ndarray, label: str, marks: dict) -> None:
    """Record a path to draw over a surface (a curve in the plane of its three models): the ``trajectory`` group
    with ``x``, ``y``, ``t`` and attributes ``label`` and ``marks`` (JSON: name -> (x, y))."""
    with FileLock(path):
        with open_h5(path, "r+", probe=False) as f:
            if "trajectory" in f:
                del f["trajectory"]
            g = f.create_group("trajectory")
            g["x"], g["y"], g["t"] = xy[:, 0], xy[:, 1], np.asarray(t, dtype=np.float64)
            g.attrs["label"] = label
            g.attrs["marks"] = json.dumps({k: [float(v[0]), float(v[1])] for k, v in marks.items()})
