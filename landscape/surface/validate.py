"""Files from elsewhere (issue #24): every value a reader trusts is checked before it is used, every declared size
before anything big is read, so a hostile or broken file ends in one :class:`LandscapeError` line, never a
traceback, a silently wrong figure or gigabytes of memory.

Shared by the surface, movie and curve readers. Torch-free on purpose: the renderer reads files through it.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Callable, TypeVar

import h5py
import numpy as np

from landscape.errors import LandscapeError
from landscape.surface.grid import MAX_AXIS_POINTS
from landscape.surface.h5io import attr_value, open_h5, probe_h5

T = TypeVar("T")
SHOWN = 100  # characters of an attribute shown in a title, a page or a message
MAX_TRACE = 10_000  # points of a trajectory, of a curve between two models (t) and of its training history
MAX_FRAMES = 10_000  # frames of a movie (landscape.Recorder)
MAX_NAMES = 1_000  # names in identity_attrs / shown_attrs (landscape writes about 25)
MAX_MARKS = 26  # named points (A, B, bend) on a curve's plane
# |alpha|, |beta| in a file, as parse_grid allows them (MAX - MIN a finite float): a far grid whose losses overflow is
# legitimate (drawn as gaps), but near 1e308 the spacing of the coordinates overflows in the figures' arithmetic
MAX_COORDINATE = 1e307
DRAWN_POINTS = 1001 * 1001  # grid points drawn by default: Li et al.'s 1001x1001 production grid, 365-633 MB
# Peak memory of python -m landscape.render per grid point, measured with /usr/bin/time -v on a 1001x1001 surface
# with every format (png,pdf,svg,html,vtp; the .vtp is the largest): 633 MB, of which 140 MB is the interpreter and
# its libraries (an 11x11 surface); 365 MB with the default png,html.
BYTES_PER_POINT = 500
HINT = "the file was not written by landscape or was altered; correct it, or recompute the surface"

STRINGS = ("arch", "ckpt", "ckpt_sha256", "dataset", "split", "normalization", "input_normalization", "norm",
           "ignore", "dir_type", "directions", "precision", "bn_mode", "loss", "loss_weighting", "torch_version",
           "device", "created", "config", "params", "engine", "format", "unit", "settings", "curve", "label",
           "marks")
INTEGERS = ("format_version", "n_samples", "seed", "population", "permutation_seed", "min_samples", "seq_len")
FLOATS = ("loss_cap", "tolerance", "rtol")
BOOLS = ("refine", "eigen")
NAME_LISTS = ("identity_attrs", "shown_attrs")
NUMBER_LISTS = ("direction_eigenvalues", "explained_variance_ratio")
NON_NEGATIVE = ("tolerance", "rtol")  # floats that cannot be negative (nor can the whole numbers but seed)


def shown(value: Any, limit: int = SHOWN) -> str:
    """Any attribute value as one line of at most ``limit`` characters (``…`` where cut; control characters as
    spaces), so a 1 MB string or a newline never reaches a title, a page or a message whole."""
    if isinstance(value, bytes):
        value = value[:4 * limit].decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size > limit:
        value = value.reshape(-1)[:limit]  # str() of a huge array would format all of it first
    text = value[:limit + 1] if isinstance(value, str) else str(value)[:limit + 1]
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def kind_of(value: Any) -> str:
    """What a value is, for a message: ``a string ('lots')``, ``an array of shape (3,)``."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} ({value.dtype})"
    if isinstance(value, str):
        return f"a string ({shown(value, 40)!r})"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    return f"a {type(value).__name__} ({shown(value, 40)})"


def mem_available() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` in /proc/meminfo), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def max_points() -> int:
    """The most grid points a figure draws; a larger grid is read at every k-th point (:func:`stride_for`).

    ``LANDSCAPE_MAX_POINTS`` overrides; by default :data:`DRAWN_POINTS`, fewer when half the available memory
    would not hold that many at :data:`BYTES_PER_POINT`.
    """
    env = os.environ.get("LANDSCAPE_MAX_POINTS", "").strip()
    if env:
        try:
            value = int(float(env.replace("_", "")))
        except (ValueError, OverflowError):  # not a number, nan, inf
            value = 0
        if value < 4:
            raise LandscapeError(f"LANDSCAPE_MAX_POINTS={shown(env, 40)!r} is not a number of grid points >= 4; "
                                 f"unset it (default {DRAWN_POINTS:,}) or set e.g. LANDSCAPE_MAX_POINTS=4000000")
        return value
    avail = mem_available()
    return DRAWN_POINTS if avail is None else int(max(10_000, min(DRAWN_POINTS, avail // 2 // BYTES_PER_POINT)))


def stride_for(shape: tuple[int, ...], most: int) -> int:
    """The smallest k such that every k-th point of each axis of ``shape`` is at most ``most`` points."""
    k = max(1, math.ceil(math.sqrt(math.prod(shape) / most)) if len(shape) == 2 else math.ceil(shape[0] / most))
    while math.prod(-(-n // k) for n in shape) > most:
        k += 1
    return k


def _bad(path: str, what: str, value: Any, expected: str) -> LandscapeError:
    return LandscapeError(f"{path!r}: {what} is {kind_of(value)}; expected {expected}; {HINT}")


def expected_of(name: str) -> str | None:
    """What a known attribute must hold, in words (None: any value, only shown as text)."""
    if name in STRINGS:
        return "a string"
    if name in INTEGERS or re.fullmatch(r"\w+_n_samples", name):
        return f"a whole number{'' if name == 'seed' else ' >= 0'} (or '' when unset)"
    if name in FLOATS:
        return f"a finite number{' >= 0' if name in NON_NEGATIVE else ''} (or '' when unset)"
    if name in BOOLS:
        return "true or false (or '' when unset)"
    if name in NAME_LISTS:
        return f"a list of at most {MAX_NAMES:,} attribute names"
    if name in NUMBER_LISTS:
        return f"a list of at most {MAX_NAMES:,} finite numbers"
    return None


def check_attr(path: str, name: str, v: Any) -> Any:
    """One attribute as the readers use it (numbers as int/float, ``''`` for unset), or a one-line error naming
    it, what it holds and what is valid."""
    expected = expected_of(name)
    if isinstance(v, h5py.Empty):
        return ""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = attr_value(v[()])
    if expected is None:
        return v  # another attribute: only ever shown, as text (see shown())
    scalar = isinstance(v, (str, int, float)) and not isinstance(v, np.ndarray)
    ok = False
    if name in NAME_LISTS:
        names = np.atleast_1d(v) if isinstance(v, (np.ndarray, str)) else None
        ok = names is not None and names.ndim == 1 and names.size <= MAX_NAMES and names.dtype.kind in "OSU" and \
            all(isinstance(attr_value(n), str) and len(attr_value(n)) <= 200 for n in names)
    elif name in NUMBER_LISTS:
        arr = np.atleast_1d(v) if isinstance(v, (np.ndarray, int, float)) and not isinstance(v, bool) else None
        if arr is not None and arr.dtype.kind in "OSU" and arr.ndim == 1 and arr.size <= MAX_NAMES:
            try:  # the writer stores attribute lists as strings: numbers written as text
                arr = np.array([float(attr_value(n)) for n in arr], dtype=np.float64)
            except (TypeError, ValueError):
                arr = None
        ok = arr is not None and arr.ndim == 1 and arr.size <= MAX_NAMES and arr.dtype.kind in "iuf" and \
            bool(np.all(np.isfinite(arr)))
    elif name in STRINGS:
        ok = isinstance(v, str)
        if ok and name in ("settings", "marks") and v:
            try:
                ok = isinstance(json.loads(v), dict)
            except ValueError:
                ok = False
            expected = "a JSON object"
    elif scalar and v == "":
        return v  # unset (a setting that was off)
    elif name in BOOLS:
        ok = isinstance(v, (bool, int)) and not isinstance(v, float) and v in (0, 1)
        v = bool(v) if ok else v
    else:  # a number
        number = scalar and not isinstance(v, (str, bool)) and math.isfinite(v)
        ok = number and (v >= 0 or ">= 0" not in expected)
        if ok and name not in FLOATS:
            ok = v == int(v) and abs(v) < 2 ** 63
            v = int(v) if ok else v
        elif ok:
            v = float(v)
    if not ok:
        raise _bad(path, f"attribute {shown(name, 60)!r}", v, expected)
    return v


def read_attrs(path: str, attrs: h5py.AttributeManager, names) -> dict:
    """The attributes ``names`` present in ``attrs``, each read by name and checked (:func:`check_attr`)."""
    out = {}
    for k in names:
        if k not in attrs:
            continue
        try:
            v = attr_value(attrs[k])
        except (OSError, TypeError, ValueError, KeyError) as e:  # a type h5py cannot read (opaque, references...)
            raise LandscapeError(f"{path!r}: attribute {shown(k, 60)!r} cannot be read "
                                 f"({type(e).__name__}: {shown(e, 80)}); {HINT}") from None
        out[k] = check_attr(path, k, v)
    return out


def dataset(f: h5py.Group, key: str, path: str, required: bool = True) -> h5py.Dataset | None:
    """``f[key]`` when it is a dataset of numbers (or booleans); None when absent and not ``required``."""
    link = f.get(key, getlink=True)
    if isinstance(link, h5py.ExternalLink):  # never open another file a foreign file points at
        raise LandscapeError(f"{path!r}: {key!r} is a link to another file ({shown(link.filename, 60)!r}); "
                             f"expected an array of numbers in this file; {HINT}")
    obj = f.get(key) if link is not None else None
    if obj is None:
        if required:
            raise LandscapeError(f"{path!r} has no {key!r}; {HINT}")
        return None
    if not isinstance(obj, h5py.Dataset) or obj.dtype.kind not in "biuf" or obj.shape is None:
        what = "a group" if isinstance(obj, h5py.Group) else f"a dataset of {obj.dtype}" \
            if isinstance(obj, h5py.Dataset) else type(obj).__name__
        raise LandscapeError(f"{path!r}: {key!r} is {what}; expected an array of numbers; {HINT}")
    return obj


def check_size(ds: h5py.Dataset, what: str, path: str, most: int, hint: str) -> None:
    """Refuse a dataset that declares more than ``most`` elements before any of it is read."""
    if ds.size > most:
        raise LandscapeError(f"{path!r}: {what} declares {ds.size:,} values (shape {ds.shape}); at most {most:,} "
                             f"are read ({hint}); the file is too large, not damaged")


MAX_TENSORS = 100_000  # tensors of one direction or eigenvector (one per parameter tensor of the network)


def check_tensor_groups(f: h5py.Group, groups: list[str], path: str, hint: str) -> None:
    """Refuse, before reading any of it, a set of per-tensor groups (directions, eigenvectors: datasets ``0``,
    ``1``, ...) that no file of ours holds: a group of more than :data:`MAX_TENSORS` tensors or named otherwise,
    tensors that differ in shape from one group to the next, links to other files, or more bytes in all than half
    the memory available (a foreign file cannot make the reader allocate what the machine does not have)."""
    total, shapes = 0, None
    for name in groups:
        g = f[name]
        if not isinstance(g, h5py.Group) or len(g) > MAX_TENSORS:
            raise LandscapeError(f"{path!r}: {name!r} is not a group of at most {MAX_TENSORS:,} tensors; {hint}")
        if sorted(g.keys()) != sorted(str(i) for i in range(len(g))):
            raise LandscapeError(f"{path!r}: {name!r} must hold datasets '0'..'{len(g) - 1}'; {hint}")
        sets = [dataset(g, str(i), path) for i in range(len(g))]
        these = [ds.shape for ds in sets]
        if shapes is not None and these != shapes:
            raise LandscapeError(f"{path!r}: the tensors of {name!r} differ in shape from those of {groups[0]!r}; "
                                 f"{hint}")
        shapes = these
        total += sum(int(ds.size) * ds.dtype.itemsize for ds in sets)
    free = mem_available()
    if free is not None and total > free // 2:
        raise LandscapeError(f"{path!r}: {' and '.join(groups[:2])}{' ...' if len(groups) > 2 else ''} declare "
                             f"{total / 2**30:.1f} GiB, more than half the memory available ({free / 2**30:.1f} "
                             "GiB); read it on a machine with more memory")


def read_axis(f: h5py.Group, key: str, path: str, required: bool = True,
              most: int = MAX_AXIS_POINTS) -> np.ndarray | None:
    """A grid axis (or a curve's ``t``): at most ``most`` finite, strictly increasing numbers."""
    ds = dataset(f, key, path, required)
    if ds is None:
        return None
    check_size(ds, key, path, most, f"landscape grids have at most {MAX_AXIS_POINTS:,} points per axis" if
               most == MAX_AXIS_POINTS else f"at most {most:,} points")
    x = np.asarray(ds[()], dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise LandscapeError(f"{path!r}: {key} is empty; a grid needs at least one point; {HINT}")
    if not np.all(np.isfinite(x) & (np.abs(x) <= MAX_COORDINATE)):
        i = int(np.flatnonzero(~(np.isfinite(x) & (np.abs(x) <= MAX_COORDINATE)))[0])
        raise LandscapeError(f"{path!r}: {key}[{i}] is {x[i]:g}; coordinates must be finite numbers within "
                             f"+-{MAX_COORDINATE:g}; {HINT}")
    steps = np.diff(x)
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0])
        raise LandscapeError(f"{path!r}: {key} is not strictly increasing ({key}[{i}] = {x[i]:g}, "
                             f"{key}[{i + 1}] = {x[i + 1]:g}); coordinates must increase, as MIN:MAX:NUM makes them; "
                             f"{HINT}")
    # Evenly spaced, as MIN:MAX:NUM makes them (to within a factor 1e6, for any hand-made grid): steps of 1e-310
    # beside steps of 1e300 break the figures' interpolation (a subnormal step divides to inf).
    if x.size > 1 and (steps.min() < 1e-290 or steps.min() < steps.max() * 1e-6):
        raise LandscapeError(f"{path!r}: {key} is spaced from {steps.min():.3g} to {steps.max():.3g} between "
                             f"neighbours; a grid's points are evenly spaced (MIN:MAX:NUM), at least 1e-290 apart; "
                             f"{HINT}")
    return x


def read_points(g: h5py.Group, key: str, path: str, n: int | None = None, label: str | None = None,
                most: int = MAX_TRACE, finite: bool = True) -> np.ndarray:
    """A short 1-D array of numbers (a trajectory, a curve's values), its size checked before it is read
    (``n``: its exact length; ``label``: its name in messages; ``finite``: NaN and inf refused)."""
    label = label or key
    ds = dataset(g, key, path)
    check_size(ds, label, path, most, f"at most {most:,} points")
    arr = np.asarray(ds[()], dtype=np.float64)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        raise LandscapeError(f"{path!r}: {label} has shape {arr.shape}; expected " +
                             (f"({n},), one value per point" if n is not None else "one dimension") + f"; {HINT}")
    if finite and not np.all(np.isfinite(arr)):
        raise LandscapeError(f"{path!r}: {label} holds NaN or infinite values; expected finite numbers; {HINT}")
    return arr


def probed(path: str, load: Callable[[h5py.File], T], probe: bool = True, kind: str | None = None) -> T:
    """``load(file)`` on ``path`` opened for reading, after the same ``load`` ran in a forked child
    (:func:`probe_h5`): the child reads exactly what the parent will, within the same size checks, so a crash
    or hang of the HDF5 library on a damaged file is a one-line error and a huge declared size is never read.
    With ``kind`` (``movie``, ``curve``), any other failure inside ``load`` is the file's: a one-line "damaged"
    error."""
    if kind is not None:
        inner = load

        def load(f: h5py.File) -> T:
            try:
                return inner(f)
            except LandscapeError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure inside a damaged file is the file's, not ours
                raise LandscapeError(f"{path!r}: damaged {kind} file ({type(e).__name__}: {shown(e, 160)}); "
                                     "delete it to start over")

    if probe:
        def touch(p: str) -> None:
            with h5py.File(p, "r", locking=False) as f:
                load(f)

        probe_h5(path, touch=touch)
    with open_h5(path, "r", probe=False) as f:
        return load(f)
