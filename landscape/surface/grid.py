"""The grid and its scheduling: ``MIN:MAX:NUM`` specs, the flat point order, and the block-by-block loop that
evaluates pending points (round-robin over torchrun ranks) and records each finished block.

Torch-free: the evaluation arrives as a callable.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np

from landscape import signals
from landscape.errors import LandscapeError

MAX_AXIS_POINTS = 10_001  # a 10k x 10k grid is already a year of GPU time; larger is a typo


def parse_grid(spec: str, axis: str = "x") -> np.ndarray:
    """``"MIN:MAX:NUM"`` -> ``numpy.linspace(MIN, MAX, NUM)`` (float64).

    Raises:
        LandscapeError: anything but three fields, non-numbers, MAX - MIN overflowing, MIN >= MAX (unless
            NUM == 1 and MIN == MAX), NUM < 1 or NUM > 10,001.
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
    if not math.isfinite(hi - lo):
        # near +-1e308 the grid's own spacing overflows: its points would be inf/NaN (far points whose *losses*
        # overflow are fine: they are recorded and drawn as gaps)
        raise LandscapeError(f"bad grid {spec!r}: MAX - MIN overflows a float; keep MIN and MAX within +-1e307; {hint}")
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


def grid_str(c: np.ndarray | None) -> str:
    """``-1:1:51``-style description of a grid axis (``none (1D)`` for a missing one)."""
    if c is None:
        return "none (1D)"
    return f"{c[0]:g}:{c[-1]:g}:{len(c)}" if len(c) else "empty"


def row_segments(flat_idx: np.ndarray, shape: tuple[int, ...]) -> list[tuple]:
    """The index expressions that cover the flat (row-major) indices ``flat_idx`` of an array of ``shape``.

    Why: a finished block writes only its own points, and HDF5 writes a rectangular selection in one call. A run
    of consecutive flat indices is at most three rectangles of a 2D grid (the end of one row, whole rows, the
    start of another); indices that are not consecutive (points left over by an earlier run) become several runs.

    Returns:
        ``[(slice,), ...]`` in 1D, ``[(row, slice) or (slice, slice), ...]`` in 2D; ``arr[sel]`` for each covers
        exactly the indices.
    """
    idx = np.unique(np.asarray(flat_idx, dtype=np.int64))
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    starts, ends = idx[np.r_[0, breaks]], idx[np.r_[breaks - 1, len(idx) - 1]] + 1  # [start, end) per run
    if len(shape) == 1:
        return [(slice(int(a), int(b)),) for a, b in zip(starts, ends)]
    nx = shape[1]
    out: list[tuple] = []
    for a, b in zip(starts.tolist(), ends.tolist()):
        r0, c0 = divmod(a, nx)
        r1, c1 = divmod(b, nx)  # the run ends before column c1 of row r1
        if r0 == r1:
            out.append((r0, slice(c0, c1)))
            continue
        if c0:  # the end of the first row
            out.append((r0, slice(c0, nx)))
            r0 += 1
        if r1 > r0:  # whole rows
            out.append((slice(r0, r1), slice(0, nx)))
        if c1:  # the start of the last row
            out.append((r1, slice(0, c1)))
    return out


def compute_points(coords: np.ndarray, todo: np.ndarray,
                   evaluate: Callable[[np.ndarray], tuple[Sequence[float], Sequence[float] | None]],
                   record: Callable[[np.ndarray, Sequence[float], Sequence[float]], None] | None,
                   block_size: int = 1, rank: int = 0, world: int = 1, gather: Callable | None = None,
                   bar=None, stop: Callable[[], int] | None = None) -> int:
    """Evaluate the flat indices ``todo`` block by block and ``record`` each finished block.

    With ``world > 1`` blocks are dealt round-robin to the ranks; ``gather`` collects each round's results on
    rank 0, the only rank with a ``record``. Every rank runs the same number of rounds (an idle rank sends an
    empty block) so the collectives line up.

    Returns:
        0 when every block is done, else the signal number ``stop()`` returned after a round (checked once
        each round is recorded; in a distributed job ``stop`` is a collective, so all ranks stop together).
    """
    blocks = [todo[s:s + block_size] for s in range(0, len(todo), block_size)]
    rounds = -(-len(blocks) // world)
    for r in range(rounds):
        b = r * world + rank
        block = blocks[b] if b < len(blocks) else np.zeros(0, dtype=np.int64)
        res = evaluate(coords[block]) if len(block) else ([], [], {})
        losses, accs = res[0], res[1]
        extras = {k: list(v) for k, v in res[2].items()} if len(res) > 2 else {}
        results = gather((block, list(losses), None if accs is None else list(accs), extras)) if world > 1 \
            else [(block, losses, accs, extras)]
        if record is not None:
            for blk, lo, ac, ex in results:
                if len(blk):
                    # extra per-point values (e.g. Hessian eigenvalues) only for writers that take them
                    record(np.asarray(blk, dtype=np.int64), lo, ac, **({"extras": ex} if ex else {}))
                    if bar is not None:
                        bar.update(len(blk))
        sig = stop() if stop is not None else 0
        if sig:
            return sig
    return 0


def compute_surface(writer,
                    evaluate: Callable[[np.ndarray], tuple[Sequence[float], Sequence[float]]],
                    block_size: int = 1, progress: bool = True, desc: str = "surface", *,
                    grid: tuple[np.ndarray, np.ndarray | None] | None = None, todo: np.ndarray | None = None,
                    rank: int = 0, world: int = 1, gather: Callable | None = None,
                    stop: Callable[[], int] | None = None) -> int:
    """Fill the missing points block by block, with a progress bar; returns the number of points computed.

    A stop signal (:mod:`landscape.signals`) ends it after the block in flight is written, raising
    :class:`~landscape.signals.Stopped` with the number of points saved.

    Args:
        writer: an open :class:`~landscape.surface.writer.SurfaceWriter`, or ``None`` on the ranks > 0 of a
            distributed job (only rank 0 writes); its ``elapsed`` is set to the computing time.
        evaluate: ``coords (K, 2) -> (losses[K], accs[K] or None[, {name: values[K]}])``: the optional dict holds
            extra per-point values stored beside the loss (``max_eig``/``min_eig``).
        block_size: points per call of ``evaluate`` (and per write).
        progress: show a tqdm bar (points/s, ETA) on stderr.
        desc: the bar's label.
        grid, todo: ``(xcoords, ycoords)`` and the flat indices still to compute; default: the writer's.
        rank, world, gather: a distributed job's rank, size and result-gathering collective
            (see :func:`compute_points`).
        stop: returns the stop signal to obey after each round, 0 to go on; default: this process's
            (:func:`landscape.signals.pending`). A distributed job passes a collective that agrees on one.
    """
    if grid is None or todo is None:
        if writer is None:
            raise ValueError("compute_surface needs grid and todo when it has no writer")
        grid, todo = (writer.xcoords, writer.ycoords), writer.pending()
    coords = grid_coords(*grid)
    bar = progress_bar(len(coords), len(coords) - len(todo), desc, progress)
    t0 = time.perf_counter()
    try:
        with signals.deferred():
            sig = compute_points(coords, todo, evaluate, writer.write_block if writer is not None else None,
                                 block_size, rank, world, gather, bar, stop or signals.pending)
            if sig:
                if writer is None:
                    raise signals.Stopped(sig, main=False)
                raise signals.Stopped(sig, writer.path, int(writer.done.sum()), int(writer.done.size))
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
